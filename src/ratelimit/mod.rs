//! Rate limits (`governor`'s keyed GCRA limiters): per client address
//! (IPv6 counted per /64 and per /48, both applying), per scene, per client,
//! avatar bytes per address, and failed client authentications per client
//! and source. Each request falls under one per-address [`Scope`]; which
//! path is which scope is one table at the HTTP edge
//! (`http::throttle::SCOPES`). Limits are `[rate_limit]` keys; 0 turns one
//! off.

mod failures;
mod key;

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::RateLimitSettings;
use failures::Failures;
pub use key::IpKey;

/// Most (client, block) pairs whose failed authentications are counted at
/// once; past it, sources the counter does not know are refused.
const MAX_COUNTED: usize = 100_000;
/// How many times a /64's allowance (or an IPv4 address's) a whole IPv6
/// /48 gets: a site with many subnets is more than one subscriber, but
/// not 65,536 of them.
pub const WIDE_FACTOR: u32 = 8;

/// A refusal: wait this long before trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many requests; retry in {retry_after_secs} s")]
pub struct Throttled {
    /// Whole seconds, at least 1 (the `Retry-After` value).
    pub retry_after_secs: u64,
}

impl Throttled {
    fn after(wait: Duration) -> Self {
        Self {
            retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
        }
    }
}

/// One keyed limit, or none when configured as 0.
pub struct Limit<K: Hash + Eq + Clone> {
    limiter: Option<DefaultKeyedRateLimiter<K>>,
    /// How long an empty allowance takes to fill again.
    refill: Duration,
    clock: DefaultClock,
}

impl<K: Hash + Eq + Clone> Limit<K> {
    fn of(quota: Option<Quota>) -> Self {
        Self {
            refill: quota.map_or(Duration::ZERO, |q| q.burst_size_replenished_in()),
            limiter: quota.map(DefaultKeyedRateLimiter::keyed),
            clock: DefaultClock::default(),
        }
    }

    /// `per_minute` per key, up to `burst` at once; 0 per minute: no limit.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self::of(NonZeroU32::new(per_minute).map(|n| {
            let burst = NonZeroU32::new(burst).unwrap_or(n);
            Quota::per_minute(n).allow_burst(burst)
        }))
    }

    /// `per_minute` per key, the whole minute's worth at once.
    pub fn per_minute(per_minute: u32) -> Self {
        Self::new(per_minute, per_minute)
    }

    /// `per_hour` units per key, the whole hour's worth at once.
    pub fn per_hour(per_hour: u32) -> Self {
        Self::of(NonZeroU32::new(per_hour).map(|n| Quota::per_hour(n).allow_burst(n)))
    }

    /// Takes one unit for `key`, or says how long to wait.
    pub fn check(&self, key: &K) -> Result<(), Throttled> {
        self.check_n(key, 1)
    }

    /// Takes `n` units for `key` at once, or says how long to wait (more
    /// than the whole allowance: until it is full again, and still refused).
    pub fn check_n(&self, key: &K, n: u32) -> Result<(), Throttled> {
        let (Some(limiter), Some(n)) = (&self.limiter, NonZeroU32::new(n)) else {
            return Ok(());
        };
        match limiter.check_key_n(key, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Throttled::after(not_until.wait_time_from(self.clock.now()))),
            Err(_) => Err(Throttled::after(self.refill)),
        }
    }

    /// Forgets keys whose allowance is full again (bounds memory).
    fn shrink(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// Keys held now.
    fn keys(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }
}

/// A limit per client address: an IPv4 address or IPv6 /64 gets the
/// allowance, an IPv6 /48 [`WIDE_FACTOR`] times it; both apply.
pub struct IpLimit {
    narrow: Limit<IpKey>,
    wide: Limit<IpKey>,
}

impl IpLimit {
    /// `per_minute` per address, up to `burst` at once.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            narrow: Limit::new(per_minute, burst),
            wide: Limit::new(
                per_minute.saturating_mul(WIDE_FACTOR),
                burst.saturating_mul(WIDE_FACTOR),
            ),
        }
    }

    /// `per_minute` per address, the whole minute's worth at once.
    pub fn per_minute(per_minute: u32) -> Self {
        Self::new(per_minute, per_minute)
    }

    /// `per_hour` units per address, the whole hour's worth at once.
    pub fn per_hour(per_hour: u32) -> Self {
        Self {
            narrow: Limit::per_hour(per_hour),
            wide: Limit::per_hour(per_hour.saturating_mul(WIDE_FACTOR)),
        }
    }

    /// Takes one unit for the client's address; a request without a known
    /// peer (never over TCP) is not limited.
    pub fn check(&self, ip: Option<IpAddr>) -> Result<(), Throttled> {
        self.check_n(ip, 1)
    }

    /// Takes `n` units for the client's address.
    pub fn check_n(&self, ip: Option<IpAddr>, n: u32) -> Result<(), Throttled> {
        let Some(ip) = ip else {
            return Ok(());
        };
        self.narrow.check_n(&IpKey::from(ip), n)?;
        match IpKey::wide(ip) {
            Some(wide) => self.wide.check_n(&wide, n),
            None => Ok(()),
        }
    }

    fn shrink(&self) {
        self.narrow.shrink();
        self.wide.shrink();
    }

    fn keys(&self) -> usize {
        self.narrow.keys() + self.wide.keys()
    }
}

/// The per-address limit a request falls under, chosen by its path
/// (`http::throttle::SCOPES`) before anything else reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Scene creation (`scenes_per_minute`, `burst`).
    Scenes,
    /// Code images (`qrcodes_per_minute`).
    Qrcodes,
    /// Long-polls (`polls_per_minute`).
    Polls,
    /// WebSocket upgrades, and plain requests to the socket path
    /// (`sockets_per_minute`).
    Sockets,
    /// Mini-program calls, avatar uploads included (`mp_per_minute`; the
    /// per-scene limit follows once the body names the scene).
    MiniProgram,
    /// Site backends: no per-address limit (a site's backend is one
    /// address doing all its redemptions); limited per client once
    /// authenticated, failed or malformed credentials per client and
    /// address, and requests without credentials under [`Scope::Other`].
    Site,
    /// Everything else: pages, widget, health, OpenID Connect, avatars,
    /// the simulator, unknown paths (`other_per_minute`).
    Other,
}

/// Every limit of the hub.
pub struct RateLimits {
    pub scenes: IpLimit,
    pub qrcodes: IpLimit,
    pub sockets: IpLimit,
    pub polls: IpLimit,
    pub mp: IpLimit,
    pub mp_scene: Limit<String>,
    pub redeems: Limit<String>,
    pub other: IpLimit,
    /// Avatar bytes stored per address and hour.
    pub avatar_bytes: IpLimit,
    failures: Failures,
}

impl RateLimits {
    /// The limits `[rate_limit]` asks for.
    pub fn new(s: &RateLimitSettings) -> Self {
        Self {
            scenes: IpLimit::new(s.scenes_per_minute, s.burst),
            qrcodes: IpLimit::per_minute(s.qrcodes_per_minute),
            sockets: IpLimit::per_minute(s.sockets_per_minute),
            polls: IpLimit::per_minute(s.polls_per_minute),
            mp: IpLimit::per_minute(s.mp_per_minute),
            mp_scene: Limit::per_minute(s.mp_per_scene_per_minute),
            redeems: Limit::per_minute(s.redeems_per_minute),
            other: IpLimit::per_minute(s.other_per_minute),
            avatar_bytes: IpLimit::per_hour(s.avatar_bytes_per_hour),
            failures: Failures::new(s.auth_failures_per_minute, MAX_COUNTED),
        }
    }

    /// The per-address limit of a scope (`None`: limited otherwise).
    pub fn of(&self, scope: Scope) -> Option<&IpLimit> {
        match scope {
            Scope::Scenes => Some(&self.scenes),
            Scope::Qrcodes => Some(&self.qrcodes),
            Scope::Polls => Some(&self.polls),
            Scope::Sockets => Some(&self.sockets),
            Scope::MiniProgram => Some(&self.mp),
            Scope::Site => None,
            Scope::Other => Some(&self.other),
        }
    }

    /// Takes one unit of `scope`'s limit for the client's address.
    pub fn check_scope(&self, scope: Scope, ip: Option<IpAddr>) -> Result<(), Throttled> {
        self.of(scope).map_or(Ok(()), |l| l.check(ip))
    }

    /// Before checking a client's credentials: refused while this source
    /// has used up its failures for this client (or while the full counter
    /// cannot count it). Other sources, the site's own backend among them,
    /// are not affected.
    pub fn auth_allowed(
        &self,
        client_id: &str,
        known: bool,
        ip: Option<IpAddr>,
    ) -> Result<(), Throttled> {
        self.failures.allowed(client_id, known, ip)
    }

    /// Counts a failed client authentication in the source's window.
    pub fn auth_failed(&self, client_id: &str, known: bool, ip: Option<IpAddr>) {
        self.failures.failed(client_id, known, ip);
    }

    /// Keys the per-address limits hold now (what `shrink` bounds).
    pub fn keys(&self) -> usize {
        [
            &self.scenes,
            &self.qrcodes,
            &self.sockets,
            &self.polls,
            &self.mp,
            &self.other,
            &self.avatar_bytes,
        ]
        .iter()
        .map(|l| l.keys())
        .sum::<usize>()
            + self.mp_scene.keys()
            + self.redeems.keys()
    }

    /// Forgets full allowances and ended blocks (run by housekeeping).
    pub fn shrink(&self) {
        for l in [
            &self.scenes,
            &self.qrcodes,
            &self.sockets,
            &self.polls,
            &self.mp,
            &self.other,
            &self.avatar_bytes,
        ] {
            l.shrink();
        }
        self.mp_scene.shrink();
        self.redeems.shrink();
        self.failures.shrink();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("an address"))
    }

    #[test]
    fn zero_is_off_and_limits_refuse_past_the_burst() {
        let off: Limit<u8> = Limit::new(0, 0);
        assert!((0..1000).all(|_| off.check(&1).is_ok()));
        let l: Limit<u8> = Limit::new(60, 3);
        assert!((0..3).all(|_| l.check(&1).is_ok()));
        let t = l.check(&1).unwrap_err();
        assert!(t.retry_after_secs >= 1);
        assert!(l.check(&2).is_ok(), "keys are separate");
    }

    #[test]
    fn both_the_64_and_the_48_apply() {
        let l = IpLimit::per_minute(2);
        let mut passed = 0;
        for i in 0..(4 * WIDE_FACTOR) {
            // Two requests from each /64 of one /48.
            for host in 1..=3 {
                if l.check(ip(&format!("2001:db8:9:{i:x}::{host}"))).is_ok() {
                    passed += 1;
                }
            }
        }
        assert_eq!(
            passed,
            2 * WIDE_FACTOR,
            "the /48 holds {WIDE_FACTOR} /64s' worth"
        );
        assert!(l.check(ip("2001:db8:a::1")).is_ok(), "another /48");
        assert!(l.check(ip("192.0.2.1")).is_ok());
        assert!(l.check(None).is_ok(), "no peer, no limit");
    }

    #[test]
    fn byte_budgets_take_many_units_at_once() {
        let l = IpLimit::per_hour(1000);
        assert!(l.check_n(ip("192.0.2.1"), 600).is_ok());
        let t = l.check_n(ip("192.0.2.1"), 600).unwrap_err();
        assert!(t.retry_after_secs > 60, "{t:?}");
        let t = l.check_n(ip("192.0.2.2"), 5000).unwrap_err();
        assert_eq!(t.retry_after_secs, 3600, "more than the budget: refused");
    }
}

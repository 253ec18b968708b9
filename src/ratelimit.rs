//! Rate limits on every public endpoint (`governor`'s keyed GCRA limiters):
//! per client IP (IPv6 counted per /64, the block one subscriber gets), per
//! scene, per client, and failed client authentications per client and
//! source IP. Limits are `[rate_limit]` keys; 0 turns one off.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::RateLimitSettings;

/// Most (client, IP) pairs whose failed authentications are counted at
/// once; past it, failures from new pairs are not counted until
/// [`RateLimits::shrink`] forgets ended windows.
const MAX_COUNTED: usize = 100_000;
/// The window failed authentications are counted in.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

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

/// A client address as the limits count it: an IPv4 address, or the /64 an
/// IPv6 address belongs to (one subscriber gets a whole /64, so counting
/// single IPv6 addresses would give one person 2^64 buckets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpKey(u128);

impl From<IpAddr> for IpKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(u32::from(v4) as u128),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(u32::from(v4) as u128),
                // Tagged above the IPv4 range, so no /64 equals an IPv4 key.
                None => Self((u128::from(v6) & !((1u128 << 64) - 1)) | 1),
            },
        }
    }
}

/// One keyed limit, or none when configured as 0.
pub struct Limit<K: Hash + Eq + Clone> {
    limiter: Option<DefaultKeyedRateLimiter<K>>,
    clock: DefaultClock,
}

impl<K: Hash + Eq + Clone> Limit<K> {
    /// `per_minute` per key, up to `burst` at once; 0 per minute: no limit.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_minute).map(|n| {
            let burst = NonZeroU32::new(burst).unwrap_or(n);
            DefaultKeyedRateLimiter::keyed(Quota::per_minute(n).allow_burst(burst))
        });
        Self {
            limiter,
            clock: DefaultClock::default(),
        }
    }

    /// `per_minute` per key, the whole minute's worth at once.
    pub fn per_minute(per_minute: u32) -> Self {
        Self::new(per_minute, per_minute)
    }

    /// Takes one unit for `key`, or says how long to wait.
    pub fn check(&self, key: &K) -> Result<(), Throttled> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter
            .check_key(key)
            .map_err(|not_until| Throttled::after(not_until.wait_time_from(self.clock.now())))
    }

    /// Forgets keys whose allowance is full again (bounds memory).
    fn shrink(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// Every limit of the hub.
pub struct RateLimits {
    pub scenes: Limit<IpKey>,
    pub qrcodes: Limit<IpKey>,
    pub sockets: Limit<IpKey>,
    pub polls: Limit<IpKey>,
    pub mp: Limit<IpKey>,
    pub mp_scene: Limit<String>,
    pub redeems: Limit<String>,
    pub other: Limit<IpKey>,
    /// Failed authentications allowed per (client, IP) and window; 0: off.
    max_failures: u32,
    /// Failures per (client, IP) in the window that began at the instant.
    failures: DashMap<(String, IpKey), (u32, Instant)>,
}

impl RateLimits {
    /// The limits `[rate_limit]` asks for.
    pub fn new(s: &RateLimitSettings) -> Self {
        Self {
            scenes: Limit::new(s.scenes_per_minute, s.burst),
            qrcodes: Limit::per_minute(s.qrcodes_per_minute),
            sockets: Limit::per_minute(s.sockets_per_minute),
            polls: Limit::per_minute(s.polls_per_minute),
            mp: Limit::per_minute(s.mp_per_minute),
            mp_scene: Limit::per_minute(s.mp_per_scene_per_minute),
            redeems: Limit::per_minute(s.redeems_per_minute),
            other: Limit::per_minute(s.other_per_minute),
            max_failures: s.auth_failures_per_minute,
            failures: DashMap::new(),
        }
    }

    /// Checks `limit` for the client's IP; a request without a known peer
    /// (never over TCP) is not limited.
    pub fn by_ip(limit: &Limit<IpKey>, ip: Option<IpAddr>) -> Result<(), Throttled> {
        match ip {
            Some(ip) => limit.check(&IpKey::from(ip)),
            None => Ok(()),
        }
    }

    fn auth_key(client_id: &str, known: bool, ip: Option<IpAddr>) -> Option<(String, IpKey)> {
        // Unknown client ids share one key per IP, so made-up ids cannot
        // mint fresh buckets.
        let client = if known { client_id } else { "?" };
        ip.map(|ip| (client.to_owned(), IpKey::from(ip)))
    }

    /// Before checking a client's credentials: refused while this source
    /// has used up its failures for this client. Other IPs, the site's own
    /// backend among them, are not affected.
    pub fn auth_allowed(
        &self,
        client_id: &str,
        known: bool,
        ip: Option<IpAddr>,
    ) -> Result<(), Throttled> {
        let Some(key) = Self::auth_key(client_id, known, ip).filter(|_| self.max_failures > 0)
        else {
            return Ok(());
        };
        let now = Instant::now();
        match self.failures.get(&key).map(|f| *f) {
            Some((count, since)) if count >= self.max_failures && now < since + FAILURE_WINDOW => {
                Err(Throttled::after(since + FAILURE_WINDOW - now))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed client authentication in the source's window.
    pub fn auth_failed(&self, client_id: &str, known: bool, ip: Option<IpAddr>) {
        let Some(key) = Self::auth_key(client_id, known, ip).filter(|_| self.max_failures > 0)
        else {
            return;
        };
        let now = Instant::now();
        if let Some(mut f) = self.failures.get_mut(&key) {
            if now >= f.1 + FAILURE_WINDOW {
                *f = (0, now);
            }
            f.0 = f.0.saturating_add(1);
        } else if self.failures.len() < MAX_COUNTED {
            self.failures.insert(key, (1, now));
        }
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
        ] {
            l.shrink();
        }
        self.mp_scene.shrink();
        self.redeems.shrink();
        let now = Instant::now();
        self.failures
            .retain(|_, (_, since)| now < *since + FAILURE_WINDOW);
        self.failures.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_per_64_and_ipv4_mapped_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(IpKey::from(a), IpKey::from(b));
        assert_ne!(IpKey::from(a), IpKey::from(c));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(IpKey::from(v4), IpKey::from(mapped));
        assert_ne!(
            IpKey::from(v4),
            IpKey::from("::c000:207".parse::<IpAddr>().unwrap())
        );
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
    fn failures_block_one_source_for_one_client_only() {
        let s = RateLimitSettings {
            auth_failures_per_minute: 2,
            ..RateLimitSettings::default()
        };
        let limits = RateLimits::new(&s);
        let stranger: Option<IpAddr> = Some("198.51.100.1".parse().unwrap());
        let backend: Option<IpAddr> = Some("203.0.113.5".parse().unwrap());
        for _ in 0..2 {
            assert!(limits.auth_allowed("shop", true, stranger).is_ok());
            limits.auth_failed("shop", true, stranger);
        }
        assert!(limits.auth_allowed("shop", true, stranger).is_err());
        assert!(limits.auth_allowed("shop", true, backend).is_ok());
        assert!(limits.auth_allowed("other", true, stranger).is_ok());
    }
}

//! Failed client authentications per client and source (an IPv4 address,
//! an IPv6 /64 and its /48), in one-minute windows. The counter is bounded;
//! when it is full even after forgetting ended windows, a source it does
//! not know yet is refused (fails closed): forgetting would let a stranger
//! with many addresses guess without ever being counted.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use super::{IpKey, Throttled, WIDE_FACTOR};

/// The window failed authentications are counted in.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How often a full counter may be swept for ended windows.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The failure counter.
pub(super) struct Failures {
    /// Failures allowed per (client, address or /64) and window; a /48 gets
    /// [`WIDE_FACTOR`] times as many. 0: off.
    max: u32,
    /// Most (client, block) entries kept at once.
    capacity: usize,
    /// Failures per (client, block) in the window that began at the instant.
    counts: DashMap<(String, IpKey), (u32, Instant)>,
    /// When a full counter was last swept.
    swept: Mutex<Option<Instant>>,
}

impl Failures {
    pub(super) fn new(max: u32, capacity: usize) -> Self {
        Self {
            max,
            capacity,
            counts: DashMap::new(),
            swept: Mutex::new(None),
        }
    }

    /// The entries a source's failure counts under, with their allowance.
    /// Unknown client ids share one name, so made-up ids mint no buckets.
    fn keys(
        &self,
        client_id: &str,
        known: bool,
        ip: Option<IpAddr>,
    ) -> Vec<((String, IpKey), u32)> {
        let (Some(ip), true) = (ip, self.max > 0) else {
            return Vec::new();
        };
        let client = if known { client_id } else { "?" };
        let mut keys = vec![((client.to_owned(), IpKey::from(ip)), self.max)];
        if let Some(wide) = IpKey::wide(ip) {
            keys.push((
                (client.to_owned(), wide),
                self.max.saturating_mul(WIDE_FACTOR),
            ));
        }
        keys
    }

    /// Refused while the source has used up its failures for this client,
    /// or while the counter is full and does not know the source.
    pub(super) fn allowed(
        &self,
        client_id: &str,
        known: bool,
        ip: Option<IpAddr>,
    ) -> Result<(), Throttled> {
        let now = Instant::now();
        for (key, allowance) in self.keys(client_id, known, ip) {
            match self.counts.get(&key).map(|f| *f) {
                Some((count, since)) if count >= allowance && now < since + FAILURE_WINDOW => {
                    return Err(Throttled::after(since + FAILURE_WINDOW - now));
                }
                Some(_) => {}
                None if self.full(now) => return Err(Throttled::after(FAILURE_WINDOW)),
                None => {}
            }
        }
        Ok(())
    }

    /// Counts a failed authentication in the source's windows.
    pub(super) fn failed(&self, client_id: &str, known: bool, ip: Option<IpAddr>) {
        let now = Instant::now();
        for (key, _) in self.keys(client_id, known, ip) {
            if let Some(mut f) = self.counts.get_mut(&key) {
                if now >= f.1 + FAILURE_WINDOW {
                    *f = (0, now);
                }
                f.0 = f.0.saturating_add(1);
            } else if !self.full(now) {
                self.counts.insert(key, (1, now));
            }
            // Full: the source stays unknown, and `allowed` refuses it.
        }
    }

    /// Whether no new entry fits, after forgetting ended windows (at most
    /// once a second, so a flood of strangers does not sweep per request).
    fn full(&self, now: Instant) -> bool {
        if self.counts.len() < self.capacity {
            return false;
        }
        let sweep = match self.swept.lock() {
            Ok(mut last) if last.is_none_or(|t| now >= t + SWEEP_EVERY) => {
                *last = Some(now);
                true
            }
            _ => false,
        };
        if sweep {
            self.forget_ended(now);
        }
        self.counts.len() >= self.capacity
    }

    fn forget_ended(&self, now: Instant) {
        self.counts
            .retain(|_, (_, since)| now < *since + FAILURE_WINDOW);
    }

    /// Forgets ended windows and gives back memory (run by housekeeping).
    pub(super) fn shrink(&self) {
        self.forget_ended(Instant::now());
        self.counts.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("an address"))
    }

    #[test]
    fn failures_block_one_source_for_one_client_only() {
        let f = Failures::new(2, 1000);
        for _ in 0..2 {
            assert!(f.allowed("shop", true, ip("198.51.100.1")).is_ok());
            f.failed("shop", true, ip("198.51.100.1"));
        }
        assert!(f.allowed("shop", true, ip("198.51.100.1")).is_err());
        assert!(f.allowed("shop", true, ip("203.0.113.5")).is_ok());
        assert!(f.allowed("other", true, ip("198.51.100.1")).is_ok());
    }

    /// The attack: a stranger with more sources than the counter holds
    /// fills it, then guesses from fresh sources that were never counted.
    #[test]
    fn a_full_counter_refuses_new_sources_instead_of_forgetting_them() {
        let f = Failures::new(2, 4);
        for i in 0..4 {
            let src = ip(&format!("198.51.100.{i}"));
            f.failed("shop", true, src);
        }
        let fresh = ip("203.0.113.9");
        let mut checked = 0;
        for _ in 0..50 {
            if f.allowed("shop", true, fresh).is_ok() {
                checked += 1;
                f.failed("shop", true, fresh);
            }
        }
        assert_eq!(
            checked, 0,
            "a source the full counter cannot count is refused"
        );
        let t = f.allowed("shop", true, fresh).unwrap_err();
        assert_eq!(t.retry_after_secs, FAILURE_WINDOW.as_secs());
        // A source already counted keeps its own allowance.
        assert!(f.allowed("shop", true, ip("198.51.100.0")).is_ok());
    }

    #[test]
    fn an_ipv6_48_has_a_bigger_allowance_shared_by_its_64s() {
        let f = Failures::new(1, 100_000);
        let mut checked = 0;
        for i in 0..(2 * WIDE_FACTOR) {
            let src = ip(&format!("2001:db8:7:{i:x}::1"));
            if f.allowed("shop", true, src).is_ok() {
                checked += 1;
                f.failed("shop", true, src);
            }
        }
        assert_eq!(
            checked, WIDE_FACTOR,
            "one failure per /64, {WIDE_FACTOR} per /48"
        );
        assert!(
            f.allowed("shop", true, ip("2001:db8:8::1")).is_ok(),
            "another /48"
        );
    }
}

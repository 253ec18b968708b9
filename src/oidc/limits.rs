//! Throttling of the token endpoint: per client, and harder for failed
//! client authentication per (client, source IP), so a stranger's failures
//! never lock out the site's own backend. Local to OIDC until the shared
//! `crate::ratelimit` grows keyed limiters of its own.

use std::net::IpAddr;
use std::num::NonZeroU32;

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::error::ApiError;

/// Token requests per client per minute (burst the same).
const PER_CLIENT_PER_MINUTE: u32 = 600;
/// Failed client authentications per (client, IP) per minute before refusing.
const FAILURES_PER_MINUTE: u32 = 10;
/// Most (client, IP) pairs remembered as blocked.
const MAX_BLOCKED: usize = 10_000;
/// Longest client id kept as a key.
const MAX_KEY: usize = 64;

/// The token endpoint's limits.
pub struct TokenLimits {
    per_client: DefaultKeyedRateLimiter<String>,
    failures: DefaultKeyedRateLimiter<(String, Option<IpAddr>)>,
    blocked: DashMap<(String, Option<IpAddr>), std::time::Instant>,
    clock: DefaultClock,
}

fn quota(per_minute: u32) -> Quota {
    let n = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(n).allow_burst(n)
}

impl Default for TokenLimits {
    fn default() -> Self {
        Self {
            per_client: DefaultKeyedRateLimiter::keyed(quota(PER_CLIENT_PER_MINUTE)),
            failures: DefaultKeyedRateLimiter::keyed(quota(FAILURES_PER_MINUTE)),
            blocked: DashMap::new(),
            clock: DefaultClock::default(),
        }
    }
}

fn key(client_id: &str, ip: Option<IpAddr>) -> (String, Option<IpAddr>) {
    (client_id.chars().take(MAX_KEY).collect(), ip)
}

impl TokenLimits {
    /// Refuses a (client, IP) that failed to authenticate too often lately.
    pub fn check_blocked(&self, client_id: &str, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let k = key(client_id, ip);
        let now = std::time::Instant::now();
        match self.blocked.get(&k).map(|until| *until) {
            Some(until) if until > now => {
                Err(ApiError::RateLimited((until - now).as_secs().max(1)))
            }
            Some(_) => {
                self.blocked.remove(&k);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a failed authentication; past the allowance the pair is
    /// blocked until the allowance refills.
    pub fn failed(&self, client_id: &str, ip: Option<IpAddr>) {
        let k = key(client_id, ip);
        if let Err(not_until) = self.failures.check_key(&k) {
            let wait = not_until.wait_time_from(self.clock.now());
            if self.blocked.len() >= MAX_BLOCKED {
                let now = std::time::Instant::now();
                self.blocked.retain(|_, until| *until > now);
            }
            if self.blocked.len() < MAX_BLOCKED {
                self.blocked.insert(k, std::time::Instant::now() + wait);
            }
        }
    }

    /// Takes one token request of an authenticated client.
    pub fn check_client(&self, client_id: &str) -> Result<(), ApiError> {
        self.per_client
            .check_key(&client_id.to_owned())
            .map_err(|not_until| {
                ApiError::RateLimited(not_until.wait_time_from(self.clock.now()).as_secs().max(1))
            })
    }

    /// Forgets keys whose allowance is full again (bounds memory).
    pub fn shrink(&self) {
        self.per_client.retain_recent();
        self.failures.retain_recent();
        let now = std::time::Instant::now();
        self.blocked.retain(|_, until| *until > now);
    }
}

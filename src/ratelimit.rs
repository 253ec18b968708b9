//! Per-IP rate limit on scene creation (`governor`).

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::RateLimitSettings;
use crate::error::ApiError;

/// A keyed limiter by client IP.
pub struct RateLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl RateLimit {
    pub fn new(s: &RateLimitSettings) -> Self {
        let per_minute = NonZeroU32::new(s.scenes_per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(s.burst).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(
                Quota::per_minute(per_minute).allow_burst(burst),
            ),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one unit for `ip` or says how long to wait.
    pub fn check(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            ApiError::RateLimited(wait.as_secs().max(1))
        })
    }

    /// Forgets IPs whose allowance is full again (bounds memory).
    pub fn shrink(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

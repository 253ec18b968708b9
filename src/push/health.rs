//! Whether this node hears the other nodes: the bus listener marks itself
//! down when its connection drops and up once it listens again; `/readyz`
//! fails when it has been down longer than the grace, so a load balancer
//! takes a node that would miss pushes out of rotation.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The listener's state as readiness sees it.
#[derive(Debug)]
pub struct BusHealth {
    /// Since when the listener has not been listening; `None` while it listens.
    down_since: Mutex<Option<Instant>>,
    grace: Duration,
}

impl BusHealth {
    /// A bus that needs no connection (one node on SQLite): always ready.
    pub fn always_up() -> Self {
        Self {
            down_since: Mutex::new(None),
            grace: Duration::ZERO,
        }
    }

    /// A listener that has not connected yet; ready once it listens, or
    /// until `grace` has passed without it.
    pub fn starting(grace: Duration) -> Self {
        Self {
            down_since: Mutex::new(Some(Instant::now())),
            grace,
        }
    }

    /// The listener lost its connection (keeps the earlier instant when it
    /// was already down).
    pub fn mark_down(&self) {
        let mut since = self
            .down_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        since.get_or_insert_with(Instant::now);
    }

    /// The listener listens again.
    pub fn mark_up(&self) {
        *self
            .down_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// `Err(how long)` when the listener has been down for longer than the grace.
    pub fn ready(&self) -> Result<(), Duration> {
        let since = *self
            .down_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match since.map(|t| t.elapsed()) {
            Some(down) if down > self.grace => Err(down),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_within_the_grace_and_after_recovery() {
        let h = BusHealth::starting(Duration::from_secs(60));
        assert!(h.ready().is_ok(), "within the grace");
        let h = BusHealth::starting(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(2));
        assert!(h.ready().is_err(), "down past the grace");
        h.mark_up();
        assert!(h.ready().is_ok());
        h.mark_down();
        std::thread::sleep(Duration::from_millis(2));
        assert!(h.ready().is_err());
        assert!(BusHealth::always_up().ready().is_ok());
    }
}

//! Which app's mini-program code a scene shows. A client names its app (or
//! gets the first); when WeChat answers 45009 (the app's daily quota is
//! spent) the app is skipped on this node until the quota resets (midnight
//! Beijing time) and the code comes from the next configured app.

use dashmap::DashMap;

/// WeChat's "reach max api daily quota limit".
pub const QUOTA_ERROR: i64 = 45009;
/// Beijing time is UTC+8 all year.
const BEIJING_OFFSET_MS: i64 = 8 * 3600 * 1000;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// The configured apps, in order, and which are out of quota until when.
pub struct AppChooser {
    order: Vec<String>,
    exhausted: DashMap<String, i64>,
}

impl AppChooser {
    /// A chooser over the app ids in configuration order.
    pub fn new(order: Vec<String>) -> Self {
        Self {
            order,
            exhausted: DashMap::new(),
        }
    }

    fn is_exhausted(&self, app_id: &str, now: i64) -> bool {
        self.exhausted.get(app_id).is_some_and(|until| *until > now)
    }

    /// The app a new scene of a client preferring `preferred` shows: the
    /// preferred (or first) app, or the next one with quota left.
    pub fn pick(&self, preferred: Option<&str>, now: i64) -> Option<String> {
        self.candidates(preferred, now).into_iter().next()
    }

    /// The apps to ask for a code, in order: `start` (or the first app),
    /// then the others after it in configuration order, wrapping around,
    /// skipping apps out of quota; when every app is, `start` alone (so a
    /// reset quota is noticed).
    pub fn candidates(&self, start: Option<&str>, now: i64) -> Vec<String> {
        let first = start
            .and_then(|s| self.order.iter().position(|a| a == s))
            .unwrap_or(0);
        let n = self.order.len();
        let rotated = (0..n).map(|i| &self.order[(first + i) % n]);
        let fresh: Vec<String> = rotated
            .clone()
            .filter(|a| !self.is_exhausted(a, now))
            .cloned()
            .collect();
        if fresh.is_empty() {
            return self.order.get(first).cloned().into_iter().collect();
        }
        fresh
    }

    /// WeChat said `app_id`'s quota is spent: skip it until midnight in Beijing.
    pub fn exhausted(&self, app_id: &str, now: i64) {
        let local = now + BEIJING_OFFSET_MS;
        let until = local - local.rem_euclid(DAY_MS) + DAY_MS - BEIJING_OFFSET_MS;
        self.exhausted.insert(app_id.to_owned(), until);
    }

    /// `app_id` made a code: its quota is not spent (any more).
    pub fn worked(&self, app_id: &str) {
        self.exhausted.remove(app_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_back_in_order_and_resets_at_beijing_midnight() {
        let c = AppChooser::new(vec!["a".into(), "b".into(), "c".into()]);
        let now = 1_764_460_800_000; // 2025-11-30 00:00 UTC = 08:00 in Beijing
        assert_eq!(c.candidates(Some("b"), now), ["b", "c", "a"]);
        assert_eq!(c.pick(None, now).as_deref(), Some("a"));
        c.exhausted("a", now);
        assert_eq!(c.pick(None, now).as_deref(), Some("b"));
        assert_eq!(c.candidates(Some("a"), now), ["b", "c"]);
        // 16:00 UTC is midnight in Beijing: the quota is back.
        let reset = now + 16 * 3600 * 1000;
        assert_eq!(c.pick(None, reset - 1).as_deref(), Some("b"));
        assert_eq!(c.pick(None, reset).as_deref(), Some("a"));
        c.exhausted("b", now);
        c.exhausted("c", now);
        assert_eq!(c.candidates(Some("b"), now), ["b"]);
        c.worked("b");
        assert_eq!(c.candidates(Some("a"), now), ["b"]);
    }
}

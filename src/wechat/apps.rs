//! Which app's mini-program code a scene shows. A client names its app (or
//! gets the first); when WeChat answers 45009 the code comes from the next
//! configured app. For `getwxacodeunlimit`, 45009 is WeChat's per-minute
//! limit (5,000 calls a minute, not a daily quota), so the app is skipped on
//! this node for the rest of that minute only, plus a little jitter so that
//! nodes do not all come back at the same instant.

use arc_swap::ArcSwap;
use dashmap::DashMap;
use rand::Rng;

/// WeChat's 45009 ("reach max api daily quota limit"; for
/// `getwxacodeunlimit` it means the per-minute limit).
pub const QUOTA_ERROR: i64 = 45009;
const MINUTE_MS: i64 = 60_000;
/// Most jitter added after the minute ends.
pub const MAX_JITTER_MS: i64 = 3_000;

/// The configured apps, in order (a reload may change them), and which are
/// skipped until when.
pub struct AppChooser {
    order: ArcSwap<Vec<String>>,
    exhausted: DashMap<String, i64>,
}

impl AppChooser {
    /// A chooser over the app ids in configuration order.
    pub fn new(order: Vec<String>) -> Self {
        Self {
            order: ArcSwap::from_pointee(order),
            exhausted: DashMap::new(),
        }
    }

    /// The configured apps are now `order` (after a reload); the skips of
    /// apps still configured stay.
    pub fn reorder(&self, order: Vec<String>) {
        self.exhausted.retain(|app_id, _| order.contains(app_id));
        self.order.store(std::sync::Arc::new(order));
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
        let order = self.order.load();
        let first = start
            .and_then(|s| order.iter().position(|a| a == s))
            .unwrap_or(0);
        let n = order.len();
        let rotated = (0..n).map(|i| &order[(first + i) % n]);
        let fresh: Vec<String> = rotated
            .clone()
            .filter(|a| !self.is_exhausted(a, now))
            .cloned()
            .collect();
        if fresh.is_empty() {
            return order.get(first).cloned().into_iter().collect();
        }
        fresh
    }

    /// WeChat said `app_id` reached its per-minute limit: skip it for the
    /// rest of this minute plus up to [`MAX_JITTER_MS`]. Returns until when.
    pub fn exhausted(&self, app_id: &str, now: i64) -> i64 {
        let jitter = rand::rng().random_range(0..=MAX_JITTER_MS);
        let until = skip_until(now, jitter);
        self.exhausted.insert(app_id.to_owned(), until);
        until
    }

    /// `app_id` made a code: its quota is not spent (any more).
    pub fn worked(&self, app_id: &str) {
        self.exhausted.remove(app_id);
    }
}

/// The end of `now`'s minute, plus `jitter` ms.
fn skip_until(now: i64, jitter: i64) -> i64 {
    now - now.rem_euclid(MINUTE_MS) + MINUTE_MS + jitter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_back_in_order_and_comes_back_after_the_minute() {
        let c = AppChooser::new(vec!["a".into(), "b".into(), "c".into()]);
        let now = 1_764_460_830_000; // 2025-11-30 00:00:30 UTC
        assert_eq!(c.candidates(Some("b"), now), ["b", "c", "a"]);
        assert_eq!(c.pick(None, now).as_deref(), Some("a"));
        let until = c.exhausted("a", now);
        // The rest of the minute (30 s), plus at most the jitter.
        let minute_end = now + 30_000;
        assert!((minute_end..=minute_end + MAX_JITTER_MS).contains(&until));
        assert_eq!(c.pick(None, now).as_deref(), Some("b"));
        assert_eq!(c.candidates(Some("a"), now), ["b", "c"]);
        assert_eq!(c.pick(None, minute_end - 1).as_deref(), Some("b"));
        // 45009 is the per-minute limit: the app is back after the minute
        // (and its jitter), not at midnight in Beijing.
        assert_eq!(
            c.pick(None, minute_end + MAX_JITTER_MS).as_deref(),
            Some("a")
        );
        c.exhausted("b", now);
        c.exhausted("c", now);
        assert_eq!(c.candidates(Some("b"), now), ["b"]);
        c.worked("b");
        assert_eq!(c.candidates(Some("a"), now), ["b"]);
    }

    #[test]
    fn a_reload_changes_the_order_and_keeps_the_skips_of_apps_still_there() {
        let c = AppChooser::new(vec!["a".into(), "b".into()]);
        let now = 1_764_460_830_000;
        c.exhausted("a", now);
        c.exhausted("b", now);
        c.reorder(vec!["c".into(), "b".into(), "a".into()]);
        assert_eq!(c.candidates(None, now), ["c"]);
        assert_eq!(c.candidates(Some("a"), now), ["c"]);
        c.reorder(vec!["a".into()]);
        assert_eq!(
            c.candidates(None, now),
            ["a"],
            "every app skipped: the first"
        );
        c.reorder(vec!["b".into(), "a".into()]);
        // "b" was dropped with the last order, and its skip with it.
        assert_eq!(c.candidates(None, now), ["b"]);
    }

    #[test]
    fn the_skip_ends_with_the_minute_it_began_in() {
        assert_eq!(skip_until(120_000, 0), 180_000);
        assert_eq!(skip_until(179_999, 0), 180_000);
        assert_eq!(skip_until(150_000, 2_500), 182_500);
    }
}

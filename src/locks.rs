//! Keyed async locks: one holder per key at a time, so "ask WeChat once per
//! scene" or "exchange a code once" hold under concurrent requests in a
//! process. Entries vanish when nobody holds or waits for them.

use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// A set of named mutexes.
#[derive(Default)]
pub struct KeyedLocks {
    map: Arc<DashMap<String, Arc<Mutex<()>>>>,
}

/// Holds the lock of one key; releases (and forgets the key if unused) on drop.
pub struct KeyGuard {
    map: Arc<DashMap<String, Arc<Mutex<()>>>>,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    /// Waits for and takes the lock of `key`.
    pub async fn lock(&self, key: &str) -> KeyGuard {
        // Clone the mutex out so no map guard is held across the await.
        let mutex = self.map.entry(key.to_owned()).or_default().clone();
        let guard = mutex.lock_owned().await;
        KeyGuard {
            map: self.map.clone(),
            key: key.to_owned(),
            guard: Some(guard),
        }
    }

    /// Number of keys currently held or awaited.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        self.guard.take();
        self.map
            .remove_if(&self.key, |_, m| Arc::strong_count(m) == 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_per_key_and_cleanup() {
        let locks = Arc::new(KeyedLocks::default());
        let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (locks, counter) = (locks.clone(), counter.clone());
            tasks.push(tokio::spawn(async move {
                let _g = locks.lock("k").await;
                let before = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::task::yield_now().await;
                counter.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                before
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task"), 0, "two holders at once");
        }
        assert!(locks.is_empty());
    }
}

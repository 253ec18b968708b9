//! Local listeners by scene: `DashMap<scene_id, listeners>`. Each listener
//! has a one-slot mailbox that keeps the furthest state pushed to it and a
//! `Notify`: dispatch never waits and never fails, one slow browser never
//! holds up another, and a listener that has not read yet still gets the
//! latest state (states only move forward, SPEC.md). No map guard is held
//! across an await. A mailbox is a few dozen bytes, where a channel's
//! buffers were about 800 per waiting browser.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use dashmap::DashMap;
use tokio::sync::Notify;

use crate::scene::SceneView;

#[derive(Default)]
struct Mailbox {
    latest: Mutex<Option<Arc<SceneView>>>,
    notify: Notify,
}

impl Mailbox {
    /// Keeps `view` unless a further state is already waiting.
    fn put(&self, view: &Arc<SceneView>) {
        let mut slot = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        if slot
            .as_ref()
            .is_none_or(|held| held.state.rank() <= view.state.rank())
        {
            *slot = Some(view.clone());
        }
        drop(slot);
        self.notify.notify_one();
    }

    fn take(&self) -> Option<Arc<SceneView>> {
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

type Listeners = Vec<(u64, Arc<Mailbox>)>;

/// This node's listeners.
#[derive(Default)]
pub struct Registry {
    map: DashMap<String, Listeners>,
    next_id: AtomicU64,
}

/// One listener's end; dropping it unregisters.
pub struct Subscription {
    mailbox: Arc<Mailbox>,
    registry: Arc<Registry>,
    scene_id: String,
    id: u64,
}

impl Subscription {
    /// The next state pushed since the last call (the furthest one when
    /// several came). Cancel-safe: a view stays in the mailbox until taken.
    pub async fn recv(&mut self) -> Arc<SceneView> {
        loop {
            if let Some(view) = self.mailbox.take() {
                return view;
            }
            self.mailbox.notify.notified().await;
        }
    }
}

impl Registry {
    /// Starts listening to `scene_id`.
    pub fn subscribe(self: &Arc<Self>, scene_id: &str) -> Subscription {
        let mailbox = Arc::new(Mailbox::default());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.map
            .entry(scene_id.to_owned())
            .or_default()
            .push((id, mailbox.clone()));
        Subscription {
            mailbox,
            registry: self.clone(),
            scene_id: scene_id.to_owned(),
            id,
        }
    }

    /// Hands `view` to every local listener of its scene; returns how many
    /// there were.
    pub fn dispatch(&self, view: SceneView) -> usize {
        let Some(list) = self.map.get(&view.scene_id) else {
            return 0;
        };
        let view = Arc::new(view);
        for (_, mailbox) in list.iter() {
            mailbox.put(&view);
        }
        list.len()
    }

    /// Listeners on this node.
    pub fn listeners(&self) -> usize {
        self.map.iter().map(|e| e.value().len()).sum()
    }

    /// Scenes with at least one listener on this node.
    pub fn scenes(&self) -> usize {
        self.map.len()
    }

    /// The ids of the scenes with at least one listener on this node (a
    /// snapshot; for re-reading them after the bus missed notifications).
    pub fn scene_ids(&self) -> Vec<String> {
        self.map.iter().map(|e| e.key().clone()).collect()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let id = self.id;
        if let Some(mut list) = self.registry.map.get_mut(&self.scene_id) {
            list.retain(|(i, _)| *i != id);
        }
        self.registry
            .map
            .remove_if(&self.scene_id, |_, list| list.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::State;

    fn view(id: &str, state: State) -> SceneView {
        SceneView {
            scene_id: id.into(),
            state,
            confirmed: None,
        }
    }

    #[tokio::test]
    async fn dispatch_reaches_listeners_and_guards_clean_up() {
        let reg = Arc::new(Registry::default());
        let mut a = reg.subscribe("s1");
        let b = reg.subscribe("s1");
        assert_eq!(reg.listeners(), 2);
        assert_eq!(reg.dispatch(view("s1", State::Scanned)), 2);
        assert_eq!(a.recv().await.state, State::Scanned);
        drop(b);
        assert_eq!(reg.listeners(), 1);
        drop(a);
        assert_eq!(reg.scenes(), 0);
        assert_eq!(reg.dispatch(view("s1", State::Expired)), 0);
    }

    #[tokio::test]
    async fn a_listener_that_has_not_read_gets_the_furthest_state() {
        let reg = Arc::new(Registry::default());
        let mut slow = reg.subscribe("s");
        let mut fast = reg.subscribe("s");
        for state in [State::Scanned, State::Confirmed] {
            assert_eq!(reg.dispatch(view("s", state)), 2);
            assert_eq!(fast.recv().await.state, state);
        }
        // A late, older state does not replace the further one.
        reg.dispatch(view("s", State::Scanned));
        assert_eq!(slow.recv().await.state, State::Confirmed);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), slow.recv()).await;
        assert!(waited.is_err(), "nothing more was pushed");
    }
}

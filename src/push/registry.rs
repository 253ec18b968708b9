//! Local listeners by scene: `DashMap<scene_id, listeners>`. A subscription
//! unregisters itself on drop; dispatch clones senders out of the map and
//! uses `try_send` on bounded channels, so one slow browser never blocks
//! another and no map guard is held across an await.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use tokio::sync::mpsc;

use crate::scene::SceneView;

/// Events a listener may have queued before it counts as too slow; it then
/// misses pushes but re-reads the state from the database when it catches up.
const QUEUE: usize = 4;

type Listeners = Vec<(u64, mpsc::Sender<Arc<SceneView>>)>;

/// This node's listeners.
#[derive(Default)]
pub struct Registry {
    map: DashMap<String, Listeners>,
    next_id: AtomicU64,
}

/// One listener's end; dropping it unregisters.
pub struct Subscription {
    pub rx: mpsc::Receiver<Arc<SceneView>>,
    registry: Arc<Registry>,
    scene_id: String,
    id: u64,
}

impl Registry {
    /// Starts listening to `scene_id`.
    pub fn subscribe(self: &Arc<Self>, scene_id: &str) -> Subscription {
        let (tx, rx) = mpsc::channel(QUEUE);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.map
            .entry(scene_id.to_owned())
            .or_default()
            .push((id, tx));
        Subscription {
            rx,
            registry: self.clone(),
            scene_id: scene_id.to_owned(),
            id,
        }
    }

    /// Hands `view` to every local listener of its scene; returns how many
    /// took it.
    pub fn dispatch(&self, view: SceneView) -> usize {
        let senders: Vec<mpsc::Sender<Arc<SceneView>>> = match self.map.get(&view.scene_id) {
            Some(list) => list.iter().map(|(_, tx)| tx.clone()).collect(),
            None => return 0,
        };
        let view = Arc::new(view);
        senders
            .iter()
            .filter(|tx| tx.try_send(view.clone()).is_ok())
            .count()
    }

    /// Listeners on this node.
    pub fn listeners(&self) -> usize {
        self.map.iter().map(|e| e.value().len()).sum()
    }

    /// Scenes with at least one listener on this node.
    pub fn scenes(&self) -> usize {
        self.map.len()
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
        assert_eq!(a.rx.recv().await.map(|v| v.state), Some(State::Scanned));
        drop(b);
        assert_eq!(reg.listeners(), 1);
        drop(a);
        assert_eq!(reg.scenes(), 0);
        assert_eq!(reg.dispatch(view("s1", State::Expired)), 0);
    }

    #[tokio::test]
    async fn a_full_listener_does_not_block_others() {
        let reg = Arc::new(Registry::default());
        let _slow = reg.subscribe("s");
        let mut fast = reg.subscribe("s");
        for _ in 0..QUEUE {
            reg.dispatch(view("s", State::Scanned));
            fast.rx.recv().await;
        }
        assert_eq!(
            reg.dispatch(view("s", State::Confirmed)),
            1,
            "only the fast one had room"
        );
    }
}

//! Local listeners by topic (a scene id): `DashMap<topic, listeners>`. Each
//! listener has a one-slot mailbox that keeps the furthest message pushed to
//! it (by [`Message::rank`]) and a `Notify`: dispatch never waits and never
//! fails, one slow browser never holds up another, and a listener that has
//! not read yet still gets the latest message (messages only move forward).
//! No map guard is held across an await. A mailbox is a few dozen bytes,
//! where a channel's buffers were about 800 per waiting browser.
//!
//! It also counts each topic's authenticated WebSockets (a long-poll listens
//! too but is not a socket), so a scene holds a bounded number of them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use dashmap::DashMap;
use tokio::sync::Notify;

use super::Message;

struct Mailbox<M> {
    latest: Mutex<Option<Arc<M>>>,
    notify: Notify,
}

impl<M: Message> Mailbox<M> {
    fn new() -> Self {
        Self {
            latest: Mutex::new(None),
            notify: Notify::new(),
        }
    }

    /// Keeps `view` unless a further message is already waiting.
    fn put(&self, view: &Arc<M>) {
        let mut slot = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_none_or(|held| held.rank() <= view.rank()) {
            *slot = Some(view.clone());
        }
        drop(slot);
        self.notify.notify_one();
    }

    fn take(&self) -> Option<Arc<M>> {
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

type Listeners<M> = Vec<(u64, Arc<Mailbox<M>>)>;

/// This node's listeners.
pub struct Registry<M> {
    map: DashMap<String, Listeners<M>>,
    next_id: AtomicU64,
    sockets: DashMap<String, usize>,
}

impl<M> Default for Registry<M> {
    fn default() -> Self {
        Self {
            map: DashMap::new(),
            next_id: AtomicU64::new(0),
            sockets: DashMap::new(),
        }
    }
}

/// One WebSocket's place among its topic's; dropping it frees the place.
pub struct SocketSlot<M: Message> {
    registry: Arc<Registry<M>>,
    scene_id: String,
}

/// One listener's end; dropping it unregisters.
pub struct Subscription<M: Message> {
    mailbox: Arc<Mailbox<M>>,
    registry: Arc<Registry<M>>,
    scene_id: String,
    id: u64,
}

impl<M: Message> Subscription<M> {
    /// The next message pushed since the last call (the furthest one when
    /// several came). Cancel-safe: a message stays in the mailbox until taken.
    pub async fn recv(&mut self) -> Arc<M> {
        loop {
            if let Some(view) = self.mailbox.take() {
                return view;
            }
            self.mailbox.notify.notified().await;
        }
    }
}

impl<M: Message> Registry<M> {
    /// Starts listening to `scene_id`.
    pub fn subscribe(self: &Arc<Self>, scene_id: &str) -> Subscription<M> {
        let mailbox = Arc::new(Mailbox::new());
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

    /// A place for one more WebSocket on `scene_id`, unless it already has
    /// `max` on this node. Counting and taking are one step, so concurrent
    /// callers never get past `max`.
    pub fn socket_slot(self: &Arc<Self>, scene_id: &str, max: usize) -> Option<SocketSlot<M>> {
        let mut count = self.sockets.entry(scene_id.to_owned()).or_default();
        if *count >= max {
            drop(count);
            self.sockets.remove_if(scene_id, |_, n| *n == 0);
            return None;
        }
        *count += 1;
        drop(count);
        Some(SocketSlot {
            registry: self.clone(),
            scene_id: scene_id.to_owned(),
        })
    }

    /// WebSockets holding a place on `scene_id` on this node.
    pub fn sockets_of(&self, scene_id: &str) -> usize {
        self.sockets.get(scene_id).map_or(0, |n| *n)
    }

    /// Hands `view` to every local listener of its topic; returns how many
    /// there were.
    pub fn dispatch(&self, view: M) -> usize {
        let Some(list) = self.map.get(view.topic()) else {
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

impl<M: Message> Drop for Subscription<M> {
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

impl<M: Message> Drop for SocketSlot<M> {
    fn drop(&mut self) {
        if let Some(mut n) = self.registry.sockets.get_mut(&self.scene_id) {
            *n = n.saturating_sub(1);
        }
        self.registry
            .sockets
            .remove_if(&self.scene_id, |_, n| *n == 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message of the tests: a topic and a step along it.
    #[derive(Debug, PartialEq)]
    struct Note(&'static str, u8);

    impl Message for Note {
        fn topic(&self) -> &str {
            self.0
        }
        fn rank(&self) -> u8 {
            self.1
        }
    }

    #[tokio::test]
    async fn dispatch_reaches_listeners_and_guards_clean_up() {
        let reg = Arc::new(Registry::default());
        let mut a = reg.subscribe("s1");
        let b = reg.subscribe("s1");
        assert_eq!(reg.listeners(), 2);
        assert_eq!(reg.dispatch(Note("s1", 1)), 2);
        assert_eq!(*a.recv().await, Note("s1", 1));
        drop(b);
        assert_eq!(reg.listeners(), 1);
        drop(a);
        assert_eq!(reg.scenes(), 0);
        assert_eq!(reg.dispatch(Note("s1", 2)), 0);
    }

    #[test]
    fn a_scene_takes_at_most_max_sockets_and_frees_them() {
        let reg: Arc<Registry<Note>> = Arc::new(Registry::default());
        let mut held: Vec<_> = (0..3)
            .map(|_| reg.socket_slot("s", 3).expect("room"))
            .collect();
        assert!(reg.socket_slot("s", 3).is_none());
        assert_eq!(reg.sockets_of("s"), 3);
        // Another scene has its own count; listeners are not sockets.
        let other = reg.socket_slot("t", 3).expect("room");
        let _listener = reg.subscribe("s");
        assert_eq!(reg.sockets_of("s"), 3);
        held.pop();
        assert_eq!(reg.sockets_of("s"), 2);
        held.push(reg.socket_slot("s", 3).expect("a freed place"));
        drop((held, other));
        assert_eq!((reg.sockets_of("s"), reg.sockets_of("t")), (0, 0));
        assert!(reg.sockets.is_empty(), "no entry left behind");
        // A refusal leaves no entry behind either.
        assert!(reg.socket_slot("u", 0).is_none());
        assert!(reg.sockets.is_empty());
    }

    #[tokio::test]
    async fn a_listener_that_has_not_read_gets_the_furthest_message() {
        let reg = Arc::new(Registry::default());
        let mut slow = reg.subscribe("s");
        let mut fast = reg.subscribe("s");
        for rank in [1, 2] {
            assert_eq!(reg.dispatch(Note("s", rank)), 2);
            assert_eq!(fast.recv().await.1, rank);
        }
        // A late, older message does not replace the further one.
        reg.dispatch(Note("s", 1));
        assert_eq!(slow.recv().await.1, 2);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), slow.recv()).await;
        assert!(waited.is_err(), "nothing more was pushed");
    }
}

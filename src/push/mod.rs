//! Telling browsers at once: the registry of this node's listeners (sockets
//! and long-polls) and the bus that carries "topic X changed" between nodes.
//! It carries any [`Message`]: the flow says what a message is, its topic
//! and its rank. Only names still speak of scenes (a topic is a scene id:
//! `Registry::scene_ids`, the PostgreSQL channel `scanlogin_scenes`).

pub mod bus;
pub mod catch_up;
pub mod health;
pub mod pg_bus;
pub mod registry;

use futures_util::future::BoxFuture;

pub use bus::{Bus, BusError, LocalBus};
pub use health::BusHealth;
pub use registry::{Registry, SocketSlot, Subscription};

/// What is pushed: a message about one topic, at a rank along which a
/// topic's messages only move forward (a listener keeps the highest it got,
/// and a lower one that arrives late is not shown after it).
pub trait Message: Send + Sync + 'static {
    /// The topic listeners subscribe to.
    fn topic(&self) -> &str;
    /// The message's place in its topic's order.
    fn rank(&self) -> u8;
}

/// Where the current messages of topics are read again, after the bus may
/// have missed some (a reconnect).
pub trait Source<M>: Send + Sync {
    /// The current messages of these topics worth pushing (a topic may have
    /// none).
    fn reread<'a>(&'a self, topics: &'a [String]) -> BoxFuture<'a, Result<Vec<M>, String>>;
}

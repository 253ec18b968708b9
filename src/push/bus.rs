//! The bus carries each message to every node's registry. With SQLite there
//! is one node and the bus is a direct call; with PostgreSQL a LISTEN/NOTIFY
//! bus implements the same trait.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::{Message, Registry};

/// Publishes messages to every node.
pub trait Bus<M>: Send + Sync {
    /// Delivers `message` to the listeners of its topic on every node.
    /// Failure is logged by the caller and never undoes the change: the
    /// database holds the state and listeners re-read it.
    fn publish(&self, message: M) -> BoxFuture<'_, Result<(), BusError>>;
}

/// The bus could not deliver.
#[derive(Debug, thiserror::Error)]
#[error("bus: {0}")]
pub struct BusError(pub String);

/// Single-node bus: hands events straight to the local registry.
pub struct LocalBus<M> {
    registry: Arc<Registry<M>>,
}

impl<M> LocalBus<M> {
    pub fn new(registry: Arc<Registry<M>>) -> Self {
        Self { registry }
    }
}

impl<M: Message> Bus<M> for LocalBus<M> {
    fn publish(&self, message: M) -> BoxFuture<'_, Result<(), BusError>> {
        self.registry.dispatch(message);
        Box::pin(std::future::ready(Ok(())))
    }
}

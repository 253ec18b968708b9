//! The bus carries "scene X is now in state S" to every node's registry. With
//! SQLite there is one node and the bus is a direct call; with PostgreSQL a
//! LISTEN/NOTIFY bus implements the same trait.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::Registry;
use crate::scene::SceneView;

/// Publishes scene changes to every node.
pub trait Bus: Send + Sync {
    /// Delivers `view` to the listeners of its scene on every node. Failure
    /// is logged by the caller and never undoes the change: the database
    /// holds the state and listeners re-read it.
    fn publish(&self, view: SceneView) -> BoxFuture<'_, Result<(), BusError>>;
}

/// The bus could not deliver.
#[derive(Debug, thiserror::Error)]
#[error("bus: {0}")]
pub struct BusError(pub String);

/// Single-node bus: hands events straight to the local registry.
pub struct LocalBus {
    registry: Arc<Registry>,
}

impl LocalBus {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

impl Bus for LocalBus {
    fn publish(&self, view: SceneView) -> BoxFuture<'_, Result<(), BusError>> {
        self.registry.dispatch(view);
        Box::pin(std::future::ready(Ok(())))
    }
}

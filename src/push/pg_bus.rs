//! The PostgreSQL bus: `NOTIFY scanlogin_scenes, '<SceneView JSON>'` on
//! publish, and one `LISTEN` connection per node that hands every
//! notification to the local registry, so a browser on node A hears at once
//! what a phone did through node B. The payload carries no secret (the
//! ticket is derived on each node from the shared server key).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement};
use sqlx::postgres::PgListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Registry;
use super::bus::{Bus, BusError};
use crate::scene::SceneView;

/// The notification channel.
pub const CHANNEL: &str = "scanlogin_scenes";

/// Publishes with `pg_notify` on the shared database.
pub struct PgBus {
    db: DatabaseConnection,
}

impl PgBus {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

impl Bus for PgBus {
    fn publish(&self, view: SceneView) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move {
            let payload = serde_json::to_string(&view).map_err(|e| BusError(e.to_string()))?;
            let stmt = Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [CHANNEL.into(), payload.into()],
            );
            self.db
                .execute_raw(stmt)
                .await
                .map_err(|e| BusError(e.to_string()))?;
            Ok(())
        })
    }
}

/// Listens on `CHANNEL` until `shutdown`, reconnecting with back-off, and
/// dispatches each scene change to this node's registry. A listener that
/// missed notifications while disconnected catches up from the database
/// (sockets re-read their scene at every heartbeat).
pub fn spawn_listener(
    url: String,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        loop {
            let connected = async {
                let mut listener = PgListener::connect(&url).await?;
                listener.listen(CHANNEL).await?;
                Ok::<_, sqlx::Error>(listener)
            };
            let mut listener = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = connected => match r {
                    Ok(l) => l,
                    Err(e) => {
                        warn!(error = %e, "bus: cannot listen; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                        continue;
                    }
                },
            };
            info!(channel = CHANNEL, "bus: listening");
            backoff = Duration::from_millis(200);
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    n = listener.try_recv() => n,
                };
                match next {
                    Ok(Some(n)) => match serde_json::from_str::<SceneView>(n.payload()) {
                        Ok(view) => {
                            registry.dispatch(view);
                        }
                        Err(e) => warn!(error = %e, "bus: unreadable notification"),
                    },
                    Ok(None) => warn!("bus: connection lost; reconnecting"),
                    Err(e) => {
                        warn!(error = %e, "bus: listener failed; reconnecting");
                        break;
                    }
                }
            }
        }
    })
}

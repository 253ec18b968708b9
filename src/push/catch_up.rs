//! Catching up what the bus missed: the current messages of every topic
//! with a listener on this node, re-read from their source (the database)
//! in batches, one query per few hundred topics, and dispatched (listeners
//! ignore what they are already past). The bus does it after each
//! (re)connect; [`spawn`] does it on a timer, so a socket never reads the
//! database itself.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{Message, Registry, Source};
use crate::telemetry::metrics;

/// Topics re-read per query.
pub const BATCH: usize = 500;

/// What one catch-up did.
#[derive(Debug, Default, Clone, Copy)]
pub struct CaughtUp {
    /// Topics with a listener.
    pub topics: usize,
    /// Messages that reached at least one listener.
    pub pushed: usize,
    /// Topics whose batch could not be read.
    pub unread: usize,
}

/// Re-reads every topic with a listener on this node and dispatches what
/// the source gives. A batch whose read fails is retried twice, then left
/// to the next catch-up.
pub async fn reread_listened<M: Message>(
    registry: &Registry<M>,
    source: &dyn Source<M>,
) -> CaughtUp {
    let ids = registry.scene_ids();
    let mut done = CaughtUp {
        topics: ids.len(),
        ..CaughtUp::default()
    };
    for batch in ids.chunks(BATCH) {
        let mut attempt = 0;
        let messages = loop {
            attempt += 1;
            match source.reread(batch).await {
                Ok(found) => break Some(found),
                Err(e) if attempt < 3 => {
                    warn!(error = %e, "catch-up read failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    warn!(error = %e, "catch-up read failed; these listeners catch up next time");
                    break None;
                }
            }
        };
        let Some(messages) = messages else {
            done.unread += batch.len();
            continue;
        };
        for message in messages {
            if registry.dispatch(message) > 0 {
                done.pushed += 1;
            }
        }
    }
    metrics::bus_resynced(done.topics);
    done
}

/// Catches up every `every` until `shutdown`.
pub fn spawn<M: Message>(
    registry: Arc<Registry<M>>,
    source: Arc<dyn Source<M>>,
    every: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if registry.scenes() == 0 {
                continue;
            }
            let done = reread_listened(&registry, source.as_ref()).await;
            if done.pushed > 0 {
                debug!(?done, "catch-up pushed what the bus missed");
            }
        }
    })
}

//! The PostgreSQL bus: `NOTIFY scanlogin_scenes, '<message JSON>'` on
//! publish, and one `LISTEN` connection per node that hands every
//! notification to the local registry, so a browser on node A hears at once
//! what a phone did through node B. What the payload holds is the message's
//! own affair (the flow's scene view carries no secret).
//!
//! Notifications sent while the listener is disconnected are lost, so after
//! every (re)connect, once it listens again, the node re-reads every topic
//! it has local listeners for from its [`Source`] and dispatches what it
//! finds (`super::catch_up`): a change made during the gap reaches the
//! browser right after the reconnect, not at the node's next timed catch-up.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::bus::{Bus, BusError};
use super::{BusHealth, Message, Registry, Source};
use crate::telemetry::metrics;

/// The notification channel.
pub const CHANNEL: &str = "scanlogin_scenes";

/// Publishes with `pg_notify` on the shared database.
pub struct PgBus {
    db: DatabaseConnection,
}

impl PgBus {
    /// Publishes through `db` (the write pool).
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

impl<M: Serialize + Send + 'static> Bus<M> for PgBus {
    fn publish(&self, view: M) -> BoxFuture<'_, Result<(), BusError>> {
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

/// Longest wait for a connection and its `LISTEN`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// First wait before retrying a failed connect, doubled per failure up to
/// `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// A connection that listened at least this long before dropping is retried
/// at once; one that dropped sooner backs off (a flapping connection is
/// re-opened about once a second at most).
const STABLE: Duration = Duration::from_secs(1);
/// How often an idle listener checks its connection (a peer gone without a
/// FIN or RST shows nothing otherwise), and how long the check may take.
const PROBE_EVERY: Duration = Duration::from_secs(10);
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the listener task needs.
pub struct ListenerSetup<M> {
    /// Where to `LISTEN` (`database.listen_url`, else `database.url`).
    pub url: String,
    /// The connection's `application_name` (shown in `pg_stat_activity`).
    pub application_name: String,
    /// This node's listeners.
    pub registry: Arc<Registry<M>>,
    /// Where the listened topics are re-read after a reconnect.
    pub source: Arc<dyn Source<M>>,
    /// Marked down while the listener does not listen (readiness).
    pub health: Arc<BusHealth>,
}

/// Listens on `CHANNEL` until `shutdown` and dispatches each scene change to
/// this node's registry. A lost connection is logged and marked down at
/// once, then re-opened with bounded back-off; after each (re)connect the
/// listened scenes are re-read (see the module documentation).
pub fn spawn_listener<M: Message + DeserializeOwned>(
    setup: ListenerSetup<M>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let options = match PgConnectOptions::from_str(&setup.url) {
            Ok(o) => o.application_name(&setup.application_name),
            Err(e) => {
                error!(error = %e, "bus: the listen URL is unusable; this node hears no other node");
                return;
            }
        };
        let mut delay = Duration::ZERO;
        let mut down_at: Option<Instant> = None;
        let mut failures = 0u64;
        let mut resync: Option<JoinHandle<()>> = None;
        loop {
            if !delay.is_zero() {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(jittered(delay)) => {}
                }
            }
            // A pool of its own per attempt: a connection that hangs while
            // being put back never blocks the next attempt.
            let pool = listener_pool(options.clone());
            let mut listener = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = tokio::time::timeout(CONNECT_TIMEOUT, connect(&pool)) => match r {
                    Ok(Ok(l)) => l,
                    failed => {
                        let error = match failed {
                            Ok(Err(e)) => e.to_string(),
                            _ => format!("no connection within {CONNECT_TIMEOUT:?}"),
                        };
                        delay = next_backoff(delay);
                        failures += 1;
                        // The first failure and then about one a minute.
                        if failures == 1 || failures.is_multiple_of(60) {
                            warn!(%error, failures, retry_in_ms = delay.as_millis() as u64, "bus: cannot listen; retrying");
                        } else {
                            debug!(%error, failures, "bus: cannot listen; retrying");
                        }
                        continue;
                    }
                },
            };
            failures = 0;
            setup.health.mark_up();
            metrics::bus_listening(true);
            match down_at.take() {
                Some(t) => info!(
                    channel = CHANNEL,
                    down_ms = t.elapsed().as_millis() as u64,
                    "bus: listening again"
                ),
                None => info!(channel = CHANNEL, "bus: listening"),
            }
            if let Some(previous) = resync.take() {
                previous.abort();
            }
            resync = Some(tokio::spawn(reread_listened(
                setup.registry.clone(),
                setup.source.clone(),
            )));
            let since = Instant::now();
            let Some(lost) = listen(&mut listener, &setup.registry, &shutdown).await else {
                break;
            };
            setup.health.mark_down();
            metrics::bus_listening(false);
            metrics::bus_dropped();
            down_at = Some(Instant::now());
            warn!(error = %lost, "bus: connection lost; reconnecting (pushes from other nodes wait)");
            delay = if since.elapsed() >= STABLE {
                Duration::ZERO
            } else {
                next_backoff(delay)
            };
        }
        if let Some(r) = resync {
            r.abort();
        }
    })
}

fn listener_pool(options: PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(CONNECT_TIMEOUT)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with(options)
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // A lost connection is reported at once (`Ok(None)`) and re-opened here,
    // not silently inside `try_recv`.
    listener.eager_reconnect(false);
    listener.ignore_pool_close_event(true);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

fn next_backoff(delay: Duration) -> Duration {
    if delay.is_zero() {
        MIN_BACKOFF
    } else {
        (delay * 2).min(MAX_BACKOFF)
    }
}

/// `delay` plus up to a quarter more, so nodes that lost the database
/// together do not all come back in the same instant.
fn jittered(delay: Duration) -> Duration {
    let quarter = delay.as_millis() as u64 / 4;
    delay + Duration::from_millis(rand::random_range(0..=quarter))
}

/// Dispatches notifications until the connection is lost (the reason) or
/// `shutdown` (`None`).
async fn listen<M: Message + DeserializeOwned>(
    listener: &mut PgListener,
    registry: &Registry<M>,
    shutdown: &CancellationToken,
) -> Option<String> {
    let mut probe =
        tokio::time::interval_at(tokio::time::Instant::now() + PROBE_EVERY, PROBE_EVERY);
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return None,
            n = listener.try_recv() => n,
            _ = probe.tick() => {
                match tokio::time::timeout(PROBE_TIMEOUT, sqlx::query("SELECT 1").execute(&mut *listener)).await {
                    Ok(Ok(_)) => continue,
                    Ok(Err(e)) => return Some(e.to_string()),
                    Err(_) => return Some(format!("no answer to a probe within {PROBE_TIMEOUT:?}")),
                }
            }
        };
        match next {
            Ok(Some(n)) => match serde_json::from_str::<M>(n.payload()) {
                Ok(view) => {
                    registry.dispatch(view);
                }
                Err(e) => warn!(error = %e, "bus: unreadable notification"),
            },
            Ok(None) => return Some("the server closed the connection".into()),
            Err(e) => return Some(e.to_string()),
        }
    }
}

/// Re-reads every topic with a listener on this node after a (re)connect.
async fn reread_listened<M: Message>(registry: Arc<Registry<M>>, source: Arc<dyn Source<M>>) {
    let done = super::catch_up::reread_listened(&registry, source.as_ref()).await;
    info!(
        scenes = done.topics,
        pushed = done.pushed,
        unread = done.unread,
        "bus: re-read the listened scenes after (re)connecting"
    );
}

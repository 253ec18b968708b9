//! What the hub does on its own ([`Sweeper`]): expiring overdue scenes (and
//! telling their browsers), deleting what is past its retention, in the
//! sweeper's loop until shutdown; and saying whether the database takes
//! writes ([`DbReadiness`]).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sea_orm::DbErr;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{FlowEvent, FlowObserver, exchanges, publish, report};
use crate::avatars::AvatarStore;
use crate::clock::now_ms;
use crate::db::Db;
use crate::live::{Live, LiveSettings};
use crate::push::Bus;
use crate::ratelimit::RateLimits;
use crate::scene::code_images::CodeImages;
use crate::scene::{SceneStore, SceneView, State};
use crate::tickets::TicketStore;

/// Rows another room keeps that the sweeper deletes on its purge rounds
/// (the OpenID Connect grants and tokens).
pub trait Purge: Send + Sync {
    /// What is purged, for the log.
    fn what(&self) -> &'static str;

    /// Deletes what is past its life, in batches of `batch`; returns rows
    /// deleted.
    fn purge(&self, batch: u64) -> BoxFuture<'_, Result<u64, DbErr>>;
}

/// Marks overdue scenes expired (pushing `expired`) and deletes old rows.
pub struct Sweeper {
    /// The settings in force (`[scene]` and `[housekeeping]` change only
    /// with a restart).
    settings: LiveSettings,
    db: Db,
    scenes: SceneStore,
    code_images: CodeImages,
    tickets: TicketStore,
    avatars: AvatarStore,
    bus: Arc<dyn Bus<SceneView>>,
    observer: Option<FlowObserver>,
    /// The rate limits, whose idle counters each purge round drops.
    limits: Live<RateLimits>,
    /// What other rooms purge on the same rounds.
    others: Vec<Arc<dyn Purge>>,
}

impl Sweeper {
    /// Sweeps `db` (its scenes through `scenes`), telling each expiry on
    /// `bus` and to `observer`.
    pub fn new(
        settings: LiveSettings,
        db: Db,
        scenes: SceneStore,
        bus: Arc<dyn Bus<SceneView>>,
        observer: Option<FlowObserver>,
        limits: Live<RateLimits>,
    ) -> Self {
        Self {
            scenes,
            code_images: CodeImages::new(db.clone()),
            tickets: TicketStore::new(db.clone()),
            avatars: AvatarStore::new(db.clone()),
            settings,
            db,
            bus,
            observer,
            limits,
            others: Vec::new(),
        }
    }

    /// Also purges `other` on each purge round, after the flow's rows.
    pub fn purging(mut self, other: Arc<dyn Purge>) -> Self {
        self.others.push(other);
        self
    }

    /// Every `scene.sweep_interval_ms`, marks overdue scenes expired and,
    /// every `housekeeping.interval_secs`, deletes rows older than the
    /// retention, in batches; returns when `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        let settings = self.settings.get();
        let mut tick =
            tokio::time::interval(Duration::from_millis(settings.scene.sweep_interval_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let housekeeping = &settings.housekeeping;
        let purge_every = Duration::from_secs(housekeeping.interval_secs);
        let retention_ms = housekeeping.retention_secs as i64 * 1000;
        let mut last_purge: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.expire_overdue().await {
                warn!(error = %e, "expiry sweep failed");
            }
            if last_purge.is_none_or(|t| t.elapsed() >= purge_every) {
                last_purge = Some(tokio::time::Instant::now());
                self.limits.load().shrink();
                match self.purge(retention_ms, housekeeping.batch).await {
                    Ok(0) => {}
                    Ok(n) => info!(rows = n, "housekeeping deleted old rows"),
                    Err(e) => warn!(error = %e, "housekeeping failed"),
                }
                for other in &self.others {
                    if let Err(e) = other.purge(housekeeping.batch).await {
                        warn!(error = %e, "{} housekeeping failed", other.what());
                    }
                }
            }
        }
    }

    /// Marks overdue scenes expired and tells their browsers; returns how many.
    async fn expire_overdue(&self) -> Result<usize, DbErr> {
        let mut total = 0;
        for _ in 0..20 {
            let ids = self.scenes.expire_overdue(now_ms(), 500).await?;
            let n = ids.len();
            for id in ids {
                info!(scene_id = %id, "scene expired");
                report(&self.observer, FlowEvent::Ended(State::Expired));
                publish(&*self.bus, SceneView::plain(id, State::Expired)).await;
            }
            total += n;
            if n < 500 {
                break;
            }
        }
        Ok(total)
    }

    /// Deletes scenes, code images and tickets older than `retention_ms`,
    /// code exchanges past their 5 minutes, avatars no user shows once
    /// their scene is done with them (within an hour), and logins older than
    /// `housekeeping.login_history_days` (all of them at 0), in batches;
    /// returns rows deleted.
    async fn purge(&self, retention_ms: i64, batch: u64) -> Result<u64, DbErr> {
        let now = now_ms();
        let cutoff = now - retention_ms;
        let logins_cutoff =
            now.saturating_sub(self.settings.load().housekeeping.login_history_ms());
        let mut total = 0;
        for _ in 0..100 {
            let n = self.scenes.purge_before(cutoff, batch).await?
                + self.code_images.purge_before(cutoff, batch).await?
                + self.tickets.purge_before(cutoff, batch).await?
                + exchanges::purge_before(&self.db, now, batch).await?
                + self.avatars.purge_unreferenced(now, batch).await?
                + crate::login_history::purge_before(self.db.write(), logins_cutoff, batch).await?;
            total += n;
            if n == 0 {
                break;
            }
        }
        Ok(total)
    }
}

/// Whether the database answers reads and takes writes (readiness), and
/// nothing more of it.
#[derive(Clone)]
pub struct DbReadiness(Db);

impl DbReadiness {
    /// Checks `db`.
    pub fn new(db: Db) -> Self {
        Self(db)
    }

    /// Whether the database answers reads and takes writes.
    pub async fn check(&self) -> Result<(), DbErr> {
        self.0.check_ready().await
    }
}

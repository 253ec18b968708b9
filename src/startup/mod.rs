//! Building the hub (binds, connects, migrates) apart from running it, so
//! tests can build on port 0 and read the port. [`Application::build`] is
//! the sequence; `steps` holds each step, `serve` the HTTP server.

mod reload;
mod serve;
mod steps;

pub use reload::{ReloadOutcome, Reloader};

use std::net::SocketAddr;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};

use actix_web::dev::Server;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::Settings;
use crate::db::Db;
use crate::keys::ServerKey;
use crate::live::{Live, LiveSettings};
use crate::login::{
    Avatars, BrowserScenes, DbReadiness, PhoneFlow, Redeemer, SceneSource, Sweeper,
};
use crate::push::{Registry, Source};
use crate::ratelimit::RateLimits;
use crate::scene::{SceneStore, SceneView};
use crate::sealed::Sealer;
use crate::state::AppState;
use crate::telemetry::metrics;
use crate::tickets::TicketMinter;
use serve::serve;
use steps::{
    Listeners, background_tasks, bus, flow_observer, oidc_provider, open_database, wechat_api,
    wechat_client,
};

/// A built hub: listening, migrated, ready to run.
pub struct Application {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    server: Server,
    state: AppState,
    background: Vec<JoinHandle<()>>,
    reloader: Arc<Reloader>,
    db: Db,
}

impl Application {
    /// Binds `server.bind` (port 0 picks a free port), opens the database,
    /// applies migrations when configured, and wires everything.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listeners = Listeners::bind(&settings)?;
        let (addr, metrics_addr) = (listeners.addr, listeners.metrics_addr);
        let geoip = Live::new(
            settings
                .geoip
                .database
                .as_deref()
                .map(crate::geoip::GeoIp::open)
                .transpose()?,
        );
        let db = open_database(&settings).await?;
        let key = Arc::new(ServerKey::of(&settings.server)?);
        let sealer = Sealer::new(&key);
        // The one store of scenes the services share (each clone shares the
        // database and the sealer).
        let scene_store = SceneStore::new(db.clone(), sealer.clone());
        let (api_base, simulator) = wechat_api(&settings, addr)?;
        let metrics_handle = metrics::install();
        let wechat = wechat_client(&settings, api_base, &db, &sealer)?;
        let registry = Arc::new(Registry::default());
        let shutdown = CancellationToken::new();
        let source: Arc<dyn Source<SceneView>> = Arc::new(SceneSource::new(scene_store.clone()));
        let (bus, bus_health, listener_task) =
            bus(&settings, addr, &db, &source, &registry, &shutdown);
        let webhook_wake = crate::webhooks::Wake::default();
        let limits = Live::new(RateLimits::new(&settings.rate_limit));
        let settings = LiveSettings::new(settings);
        let observer = Some(flow_observer(&settings, webhook_wake.clone()));
        let scenes = Arc::new(BrowserScenes::new(
            settings.clone(),
            db.clone(),
            scene_store.clone(),
            wechat.clone(),
            observer.clone(),
        ));
        let redeemer = Arc::new(Redeemer::new(settings.clone(), db.clone(), key.clone()));
        let oidc = oidc_provider(&settings, &db, sealer, &redeemer).await?;
        let sweeper = Sweeper::new(
            settings.clone(),
            db.clone(),
            scene_store.clone(),
            bus.clone(),
            observer.clone(),
            limits.clone(),
        )
        .purging(oidc.clone());
        let state = AppState {
            phone: Arc::new(PhoneFlow::new(
                settings.clone(),
                db.clone(),
                wechat,
                key.clone(),
                bus,
                observer,
                geoip.clone(),
            )),
            avatars: Arc::new(Avatars::new(settings.clone(), db.clone(), scene_store)),
            minter: TicketMinter::new(key),
            database: DbReadiness::new(db.clone()),
            scenes: scenes.clone(),
            redeemer,
            oidc,
            settings: settings.clone(),
            registry,
            limits: limits.clone(),
            shutdown,
            simulator,
            open_sockets: Arc::new(AtomicI64::new(0)),
            sockets: TaskTracker::new(),
            metrics: metrics_handle,
            bus_health,
        };
        let server = serve(listeners, &state)?;
        let mut background: Vec<_> = listener_task.into_iter().collect();
        background.extend(background_tasks(&state, source, sweeper));
        let reloader = Arc::new(Reloader {
            settings: settings.clone(),
            limits,
            geoip,
            scenes,
            simulator: state.simulator.clone(),
            webhooks: reload::WebhookWorker {
                settings: settings.clone(),
                db: db.clone(),
                wake: webhook_wake,
                shutdown: state.shutdown.clone(),
                task: Mutex::new(None),
            },
        });
        reloader.webhooks.start_if_needed(&settings.load())?;
        let now = settings.load();
        info!(%addr, public_url = %now.server.public_url, mode = ?now.wechat.mode, "scanlogin listening");
        Ok(Self {
            addr,
            metrics_addr,
            server,
            state,
            background,
            reloader,
            db,
        })
    }

    /// What applies a new configuration to the running hub (SIGHUP).
    pub fn reloader(&self) -> Arc<Reloader> {
        self.reloader.clone()
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `/metrics` is served when `server.metrics_bind` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The hub's rate limits (to see what housekeeping keeps of them).
    pub fn rate_limits(&self) -> Arc<RateLimits> {
        self.state.limits.get()
    }

    /// What the hub has asked of its database so far (statements, commits).
    pub fn db_stats(&self) -> crate::db::Stats {
        self.db.stats().clone()
    }

    /// Who listens to which scene on this node (WebSockets and waiting
    /// long-polls): tests wait on it for a request to have arrived.
    pub fn push_registry(&self) -> Arc<crate::push::Registry<crate::scene::SceneView>> {
        self.state.registry.clone()
    }

    /// The avatar decoding slots (tests hold them to see an upload refused
    /// as busy).
    pub fn avatar_decode_slots(&self) -> Arc<tokio::sync::Semaphore> {
        self.state.avatars.decode_slots()
    }

    /// The token that stops the hub when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then stops cleanly:
    /// the listener stops accepting, sockets close with 1012, in-flight
    /// requests finish (bounded by `server.shutdown_timeout_secs`), the
    /// background tasks end, and the database pool closes last.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.state.shutdown.cancel();
        let worker = self.reloader.take_webhook_worker();
        for task in self.background.into_iter().chain(worker) {
            let _ = task.await;
        }
        if let Err(e) = self.db.close().await {
            warn!(error = %e, "closing the database pool failed");
        }
        info!("scanlogin stopped");
        result
    }
}

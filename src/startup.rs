//! Building the hub (binds, connects, migrates) apart from running it, so
//! tests can build on port 0 and read the port.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use actix_http::{HttpService, Request, h1};
use actix_service::{
    IntoServiceFactory, ServiceFactoryExt as _, fn_factory, fn_service, map_config,
};
use actix_web::dev::{AppConfig, Server};
use actix_web::{App, middleware};
use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};
use url::Url;

use crate::config::{Settings, WechatMode};
use crate::db::Db;
use crate::keys::ServerKey;
use crate::login::{FlowEvent, FlowObserver, Login, SceneSource};
use crate::oidc::Oidc;
use crate::push::{Bus, BusHealth, LocalBus, Registry, pg_bus};
use crate::ratelimit::RateLimits;
use crate::scene::{SceneView, State};
use crate::sealed::Sealer;
use crate::state::AppState;
use crate::telemetry::metrics;
use crate::wechat::WechatClient;
use crate::wechat::client::{CallObserver, http_client};
use crate::wechat::simulator::Simulator;

/// A built hub: listening, migrated, ready to run.
pub struct Application {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    server: Server,
    state: AppState,
    background: Vec<JoinHandle<()>>,
    db: Db,
}

impl Application {
    /// Binds `server.bind` (port 0 picks a free port), opens the database,
    /// applies migrations when configured, and wires everything.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        let listener = TcpListener::bind(settings.server.bind)
            .with_context(|| format!("cannot bind {}", settings.server.bind))?;
        let addr = listener.local_addr()?;
        let metrics_listener = match settings.server.metrics_bind {
            Some(bind) => Some(
                TcpListener::bind(bind)
                    .with_context(|| format!("cannot bind server.metrics_bind {bind}"))?,
            ),
            None => None,
        };
        let metrics_addr = match &metrics_listener {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let db = crate::db::open(&settings.database)
            .await
            .context("cannot open the database")?;
        if settings.database.migrate_on_start {
            crate::db::migrate(db.write())
                .await
                .context("migrations failed")?;
        }
        let key = server_key(&settings)?;
        let sealer = Sealer::new(&key);
        let http = http_client(
            Duration::from_millis(settings.wechat.timeout_ms),
            Duration::from_millis(settings.wechat.connect_timeout_ms),
        )?;
        let (api_base, simulator) = match settings.wechat.mode {
            WechatMode::Live => (settings.wechat.api_base.clone(), None),
            WechatMode::Simulator => {
                let mut local = addr;
                if local.ip().is_unspecified() {
                    local.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                let base = Url::parse(&format!("http://{local}/sim/wechat/"))?;
                let sim = Arc::new(Simulator::new(
                    &settings.apps,
                    settings.server.public_url.as_str(),
                ));
                (base, Some(sim))
            }
        };
        let metrics_handle = metrics::install();
        let wechat_observer: CallObserver = Arc::new(metrics::wechat_call);
        let wechat = Arc::new(WechatClient::new(
            http,
            api_base,
            &settings.apps,
            db.clone(),
            sealer.clone(),
            Some(wechat_observer),
            crate::flight::wait_for_wechat(Duration::from_millis(settings.wechat.timeout_ms)),
        ));
        let registry = Arc::new(Registry::default());
        let shutdown = CancellationToken::new();
        let mut background = Vec::new();
        let (bus, bus_health): (Arc<dyn Bus<SceneView>>, _) =
            if crate::db::is_sqlite(settings.database.url.expose_secret()) {
                let bus = Arc::new(LocalBus::new(registry.clone()));
                (bus, Arc::new(BusHealth::always_up()))
            } else {
                let health = Arc::new(BusHealth::starting(Duration::from_secs(
                    settings.database.listener_grace_secs,
                )));
                let url = settings.database.listen_url.as_ref();
                let setup = pg_bus::ListenerSetup {
                    url: url
                        .unwrap_or(&settings.database.url)
                        .expose_secret()
                        .to_owned(),
                    application_name: format!("scanlogin listener {addr}"),
                    registry: registry.clone(),
                    source: Arc::new(SceneSource::new(db.clone(), &key)),
                    health: health.clone(),
                };
                background.push(pg_bus::spawn_listener(setup, shutdown.clone()));
                (Arc::new(pg_bus::PgBus::new(db.write().clone())), health)
            };
        let webhook_wake = crate::webhooks::Wake::default();
        let wake = webhook_wake.clone();
        let flow_observer: FlowObserver = Arc::new(move |event| {
            // Confirms and cancels queue webhook events in their transaction.
            if matches!(event, FlowEvent::Ended(State::Confirmed | State::Cancelled)) {
                wake.notify();
            }
            match event {
                FlowEvent::Created => metrics::scene_created(),
                FlowEvent::Ended(outcome) => metrics::scene_ended(outcome),
                FlowEvent::ConfirmPushed(secs) => metrics::confirm_to_push(secs),
            }
        });
        let login = Arc::new(Login::new(
            settings.clone(),
            db.clone(),
            wechat,
            key,
            bus,
            Some(flow_observer),
        ));
        let oidc = Arc::new(Oidc::new(
            settings.clone(),
            db.clone(),
            sealer,
            login.clone(),
        ));
        oidc.keys()
            .ensure()
            .await
            .context("cannot make or read the OpenID Connect signing key")?;
        let state = AppState {
            oidc,
            settings: settings.clone(),
            login,
            registry,
            limits: Arc::new(RateLimits::new(&settings.rate_limit)),
            shutdown: shutdown.clone(),
            simulator,
            open_sockets: Arc::new(AtomicI64::new(0)),
            sockets: TaskTracker::new(),
            metrics: metrics_handle,
            bus_health,
        };
        let server = serve(listener, addr, metrics_listener, &state)?;
        background.push(tokio::spawn(sweeper(state.clone())));
        background.push(crate::webhooks::worker::spawn(
            settings.clone(),
            db.clone(),
            webhook_wake,
            shutdown.clone(),
        )?);
        info!(%addr, public_url = %settings.server.public_url, mode = ?settings.wechat.mode, "scanlogin listening");
        Ok(Self {
            addr,
            metrics_addr,
            server,
            state,
            background,
            db,
        })
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
        for task in self.background {
            let _ = task.await;
        }
        if let Err(e) = self.db.close().await {
            warn!(error = %e, "closing the database pool failed");
        }
        info!("scanlogin stopped");
        result
    }
}

/// The HTTP server on `listener`: actix-web's app for requests, and
/// WebSocket upgrades taken out of the HTTP/1 dispatcher (actix-http's
/// upgrade hook, which actix-web's `HttpServer` does not expose) so an open
/// socket keeps no HTTP buffers (`http::socket`). Timeouts are actix-web's
/// defaults.
fn serve(
    listener: TcpListener,
    addr: SocketAddr,
    metrics_listener: Option<TcpListener>,
    state: &AppState,
) -> std::io::Result<Server> {
    let settings = &state.settings;
    let stop = state.shutdown.clone();
    let sockets = state.sockets.clone();
    let grace = Duration::from_secs(settings.server.shutdown_timeout_secs);
    let metrics_state = actix_web::web::Data::new(state.clone());
    let state = state.clone();
    let mut builder = Server::build()
        .shutdown_timeout(settings.server.shutdown_timeout_secs)
        .shutdown_signal(async move {
            stop.cancelled().await;
            // Each session sees the same token and sends 1012; the workers
            // (whose threads run the sessions) stop once they have.
            sockets.close();
            let _ = tokio::time::timeout(grace, sockets.wait()).await;
        })
        .listen("scanlogin", listener, move || {
            let app_state = state.clone();
            let app = App::new()
                .wrap(crate::http::problem_bodies())
                .wrap(middleware::from_fn(crate::http::throttle::throttle))
                .wrap(middleware::from_fn(crate::http::observe::observe))
                .configure(crate::http::configure(app_state))
                .into_factory()
                .map_err(|err| err.error_response());
            let upgrade_state = state.clone();
            let upgrade = fn_factory(move || {
                let state = upgrade_state.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(fn_service(
                        move |(req, framed): (
                            Request,
                            actix_codec::Framed<TcpStream, h1::Codec>,
                        )| {
                            crate::http::socket::upgrade(state.clone(), req, framed)
                        },
                    ))
                }
            });
            HttpService::build()
                .client_request_timeout(Duration::from_secs(5))
                .client_disconnect_timeout(Duration::from_secs(1))
                // Small frames (a push right after `waiting`, the close after
                // `confirmed`) must not wait for the peer's delayed ACK.
                .tcp_nodelay(true)
                .local_addr(addr)
                .upgrade(upgrade)
                // Nothing here reads the config's host or address (links are
                // built from `server.public_url`).
                .finish(map_config(app, |_| AppConfig::default()))
                .tcp()
        })?;
    if let Some(metrics_listener) = metrics_listener {
        builder = builder.listen("scanlogin-metrics", metrics_listener, move || {
            let app = App::new()
                .app_data(metrics_state.clone())
                .wrap(crate::http::problem_bodies())
                .configure(crate::http::configure_metrics)
                .into_factory()
                .map_err(|err| err.error_response());
            HttpService::build()
                .client_request_timeout(Duration::from_secs(5))
                .finish(map_config(app, |_| AppConfig::default()))
                .tcp()
        })?;
    }
    if settings.server.workers > 0 {
        builder = builder.workers(settings.server.workers);
    }
    Ok(builder.run())
}

/// Marks overdue scenes expired (pushing `expired`) and, every
/// `housekeeping.interval_secs`, deletes rows older than the retention, in
/// batches; stops with the shutdown token.
async fn sweeper(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_millis(
        state.settings.scene.sweep_interval_ms,
    ));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let housekeeping = &state.settings.housekeeping;
    let purge_every = Duration::from_secs(housekeeping.interval_secs);
    let retention_ms = housekeeping.retention_secs as i64 * 1000;
    let mut last_purge: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Err(e) = state.login.expire_overdue().await {
            warn!(error = %e, "expiry sweep failed");
        }
        if last_purge.is_none_or(|t| t.elapsed() >= purge_every) {
            last_purge = Some(tokio::time::Instant::now());
            state.limits.shrink();
            match state.login.purge(retention_ms, housekeeping.batch).await {
                Ok(0) => {}
                Ok(n) => info!(rows = n, "housekeeping deleted old rows"),
                Err(e) => warn!(error = %e, "housekeeping failed"),
            }
            if let Err(e) = state.oidc.purge(housekeeping.batch).await {
                warn!(error = %e, "OpenID Connect housekeeping failed");
            }
        }
    }
}

/// The server key: `server.secret_key`, else the key file (made on first start).
pub fn server_key(settings: &Settings) -> anyhow::Result<ServerKey> {
    Ok(match &settings.server.secret_key {
        Some(k) => ServerKey::from_secret(k),
        None => ServerKey::load_or_create(&settings.server.secret_key_file).with_context(|| {
            format!(
                "cannot read or create server.secret_key_file {}",
                settings.server.secret_key_file.display()
            )
        })?,
    })
}

//! The steps of [`Application::build`](super::Application::build), in order.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;
use url::Url;

use crate::config::{Settings, WechatMode};
use crate::db::Db;
use crate::live::LiveSettings;
use crate::login::{FlowEvent, FlowObserver, Redeemer, Sweeper};
use crate::oidc::Oidc;
use crate::push::{Bus, BusHealth, LocalBus, Registry, Source, pg_bus};
use crate::scene::{SceneView, State};
use crate::sealed::Sealer;
use crate::simulator::Simulator;
use crate::state::AppState;
use crate::telemetry::metrics;
use crate::wechat::WechatClient;
use crate::wechat::client::{CallObserver, http_client};

/// The hub's listener and, when `server.metrics_bind` is set, the metrics
/// one, bound before anything else starts.
pub(super) struct Listeners {
    pub main: TcpListener,
    pub addr: SocketAddr,
    pub metrics: Option<TcpListener>,
    pub metrics_addr: Option<SocketAddr>,
}

impl Listeners {
    pub fn bind(settings: &Settings) -> anyhow::Result<Self> {
        let main = match inherited_listener()? {
            Some(listener) => listener,
            None => TcpListener::bind(settings.server.bind)
                .with_context(|| format!("cannot bind {}", settings.server.bind))?,
        };
        let addr = main.local_addr()?;
        let metrics = match settings.server.metrics_bind {
            Some(bind) => Some(
                TcpListener::bind(bind)
                    .with_context(|| format!("cannot bind server.metrics_bind {bind}"))?,
            ),
            None => None,
        };
        let metrics_addr = match &metrics {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        Ok(Self {
            main,
            addr,
            metrics,
            metrics_addr,
        })
    }
}

/// The listening socket handed over by systemd socket activation (or a
/// parent doing the same, as the tests do), used instead of binding
/// `server.bind`: fd 3 when `LISTEN_PID` is this process and `LISTEN_FDS`
/// is 1 (sd_listen_fds(3)). `None` when nothing was handed over.
fn inherited_listener() -> anyhow::Result<Option<TcpListener>> {
    let passed = sd_notify::listen_fds()
        .context("LISTEN_FDS/LISTEN_PID (socket activation)")?
        .len();
    match passed {
        0 => Ok(None),
        1 => {
            let listener = listenfd::ListenFd::from_env()
                .take_tcp_listener(0)
                .context("the socket passed as fd 3 (LISTEN_FDS) is not a TCP socket")?
                .context("no socket at fd 3 (LISTEN_FDS)")?;
            info!("using the listening socket passed by socket activation, not server.bind");
            Ok(Some(listener))
        }
        n => anyhow::bail!("{n} sockets passed (LISTEN_FDS): scanlogin takes exactly one"),
    }
}

/// Opens the database and, when configured, applies the migrations.
pub(super) async fn open_database(settings: &Settings) -> anyhow::Result<Db> {
    if settings.database.migrate_on_start {
        crate::db::migrate_database(&settings.database)
            .await
            .context("migrations failed")?;
    }
    crate::db::open(&settings.database)
        .await
        .context("cannot open the database")
}

/// Where the WeChat client calls: WeChat (`wechat.api_base`), or, in
/// simulator mode, the simulator this hub serves itself at `/sim/wechat/`.
pub(super) fn wechat_api(
    settings: &Settings,
    addr: SocketAddr,
) -> anyhow::Result<(Url, Option<Arc<Simulator>>)> {
    Ok(match settings.wechat.mode {
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
    })
}

/// The WeChat client (its calls counted in the metrics).
pub(super) fn wechat_client(
    settings: &Settings,
    api_base: Url,
    db: &Db,
    sealer: &Sealer,
) -> anyhow::Result<Arc<WechatClient>> {
    let http = http_client(
        Duration::from_millis(settings.wechat.timeout_ms),
        Duration::from_millis(settings.wechat.connect_timeout_ms),
    )?;
    let observer: CallObserver = Arc::new(metrics::wechat_call);
    Ok(Arc::new(WechatClient::new(
        http,
        api_base,
        &settings.apps,
        db.clone(),
        sealer.clone(),
        Some(observer),
        crate::flight::wait_for_wechat(Duration::from_millis(settings.wechat.timeout_ms)),
    )))
}

/// The bus that carries scene changes between nodes.
type SceneBus = Arc<dyn Bus<SceneView>>;

/// The bus between nodes: in-process on SQLite (one node), else PostgreSQL
/// `NOTIFY`, whose listener task this starts.
pub(super) fn bus(
    settings: &Settings,
    addr: SocketAddr,
    db: &Db,
    source: &Arc<dyn Source<SceneView>>,
    registry: &Arc<Registry<SceneView>>,
    shutdown: &CancellationToken,
) -> (SceneBus, Arc<BusHealth>, Option<JoinHandle<()>>) {
    let Some(pool) = db.postgres().cloned() else {
        let bus = Arc::new(LocalBus::new(registry.clone()));
        return (bus, Arc::new(BusHealth::always_up()), None);
    };
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
        source: source.clone(),
        health: health.clone(),
    };
    let listener = pg_bus::spawn_listener(setup, shutdown.clone());
    let bus = Arc::new(pg_bus::PgBus::new(pool));
    (bus, health, Some(listener))
}

/// What the flow's events do: wake the webhook worker and feed the metrics.
pub(super) fn flow_observer(settings: &LiveSettings, wake: crate::webhooks::Wake) -> FlowObserver {
    // Confirms, cancels and account deletions queue webhook events in their
    // transaction, only for clients with a webhook in the settings in force:
    // without any, there is nothing to wake for.
    let live = settings.clone();
    Arc::new(move |event| {
        let queued = matches!(
            event,
            FlowEvent::Ended(State::Confirmed | State::Cancelled) | FlowEvent::UserDeleted
        );
        if queued && any_webhook(&live.load()) {
            wake.notify();
        }
        match event {
            FlowEvent::Created => metrics::scene_created(),
            FlowEvent::Ended(outcome) => metrics::scene_ended(outcome),
            FlowEvent::ConfirmPushed(secs) => metrics::confirm_to_push(secs),
            FlowEvent::UserDeleted => {}
        }
    })
}

/// The OpenID Connect provider, with its signing key made or read.
pub(super) async fn oidc_provider(
    settings: &LiveSettings,
    db: &Db,
    sealer: Sealer,
    redeemer: &Arc<Redeemer>,
) -> anyhow::Result<Arc<Oidc>> {
    let oidc = Arc::new(Oidc::new(
        settings.clone(),
        db.clone(),
        sealer,
        redeemer.clone(),
    ));
    oidc.keys()
        .ensure()
        .await
        .context("cannot make or read the OpenID Connect signing key")?;
    Ok(oidc)
}

/// The tasks beside the server: the sweeper and the catch-up of what the
/// bus missed. (The webhook worker starts apart, only when a client has a
/// webhook: without one no event is queued, and the worker would only poll
/// an empty outbox; see `reload::WebhookWorker`.)
pub(super) fn background_tasks(
    state: &AppState,
    source: Arc<dyn Source<SceneView>>,
    sweeper: Sweeper,
) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(sweeper.run(state.shutdown.clone())),
        crate::push::catch_up::spawn(
            state.registry.clone(),
            source,
            Duration::from_millis(state.settings.load().scene.catch_up_ms),
            state.shutdown.clone(),
        ),
    ]
}

/// Whether any client has a webhook.
pub(super) fn any_webhook(settings: &Settings) -> bool {
    settings.clients.iter().any(|c| c.webhook_url.is_some())
}

//! The one shared state, built once by
//! [`Application::build`](crate::startup::Application::build) and cloned
//! into every worker of the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::live::{Live, LiveSettings};
use crate::login::{Avatars, BrowserScenes, DbReadiness, PhoneFlow, Redeemer};
use crate::oidc::Oidc;
use crate::push::{BusHealth, Registry};
use crate::ratelimit::RateLimits;
use crate::scene::SceneView;
use crate::simulator::Simulator;
use crate::tickets::TicketMinter;

/// Cheap handles to the services a handler calls, and to what the edge
/// itself needs.
#[derive(Clone)]
pub struct AppState {
    /// The settings in force (a reload swaps them).
    pub settings: LiveSettings,
    /// Scenes for browsers: new scenes, code images, views.
    pub scenes: Arc<BrowserScenes>,
    /// The phone's flow: scan, confirm, cancel, logins inside the
    /// mini-program, the person's account.
    pub phone: Arc<PhoneFlow>,
    /// Avatars the phone uploads, and serving them.
    pub avatars: Arc<Avatars>,
    /// Site backends' client credentials and ticket redemption.
    pub redeemer: Arc<Redeemer>,
    /// The ticket a browser is shown with `confirmed`.
    pub minter: TicketMinter,
    pub registry: Arc<Registry<SceneView>>,
    /// The rate limits (a reload that changes `[rate_limit]` swaps them).
    pub limits: Live<RateLimits>,
    pub shutdown: CancellationToken,
    pub simulator: Option<Arc<Simulator>>,
    pub open_sockets: Arc<AtomicI64>,
    /// The WebSocket sessions, which outlive their HTTP connection; shutdown
    /// waits for them to send their close frames.
    pub sockets: TaskTracker,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Whether this node hears the other nodes (readiness).
    pub bus_health: Arc<BusHealth>,
    /// Whether the database takes writes (readiness).
    pub database: DbReadiness,
    /// The OpenID Connect provider.
    pub oidc: Arc<Oidc>,
}

/// Counts an open socket while alive.
pub struct OpenSocket(Arc<AtomicI64>);

impl AppState {
    /// Marks a socket open until the returned guard drops.
    pub fn open_socket(&self) -> OpenSocket {
        self.open_sockets.fetch_add(1, Ordering::Relaxed);
        OpenSocket(self.open_sockets.clone())
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

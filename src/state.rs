//! The one shared state, built once before the server starts and cloned
//! into each worker's app (`startup::serve`).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::geoip::GeoIp;
use crate::live::{Live, LiveSettings};
use crate::login::Login;
use crate::oidc::Oidc;
use crate::push::{BusHealth, Registry};
use crate::ratelimit::RateLimits;
use crate::scene::SceneView;
use crate::simulator::Simulator;

/// Cheap handles to everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    /// The settings in force (a reload swaps them).
    pub settings: LiveSettings,
    pub login: Arc<Login>,
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
    /// The OpenID Connect provider.
    pub oidc: Arc<Oidc>,
    /// The `[geoip]` city database, when configured (swapped by a reload).
    pub geoip: Live<Option<GeoIp>>,
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

//! Operator endpoints: liveness and readiness.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::Fault;
use crate::http::error::ApiError;
use crate::state::AppState;

/// The answer of `/healthz` and `/readyz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` (`/healthz`) or `ready` (`/readyz`).
    #[schema(pattern = "^(ok|ready)$")]
    pub status: &'static str,
}

/// `GET /healthz`: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness: the process answers",
    responses(
        (status = 200, description = "Up", body = Health),
        (status = 429, description = "`rate_limited` (per client IP)"),
    )
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let handle = state
        .metrics
        .as_ref()
        .ok_or_else(|| ApiError::Fault(Fault::unavailable("metrics recorder not installed")))?;
    let open = state
        .open_sockets
        .load(std::sync::atomic::Ordering::Relaxed);
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::telemetry::metrics::render(handle, open)))
}

/// How long readiness may take before the node counts as not ready.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /readyz`: the database answers reads and takes writes, in time, and,
/// with several nodes, this node's bus listener has not been disconnected
/// for longer than its grace.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness: the database answers reads and takes writes within 2 s (and, with \
        several nodes, the bus listener is connected)",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 429, description = "`rate_limited` (per client IP)"),
        (status = 503, description = "`unavailable`"),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.bus_health.ready().map_err(|down| {
        ApiError::Fault(Fault::unavailable(format!(
            "bus listener disconnected for {down:?}"
        )))
    })?;
    tokio::time::timeout(READY_WITHIN, state.database.check())
        .await
        .map_err(|_| ApiError::Fault(Fault::unavailable("database: no answer within 2 s")))?
        .map_err(|e| ApiError::Fault(Fault::unavailable("database").because(e)))?;
    Ok(HttpResponse::Ok().json(Health { status: "ready" }))
}

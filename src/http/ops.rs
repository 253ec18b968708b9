//! Operator endpoints: liveness and readiness.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// `GET /healthz`: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let handle = state
        .metrics
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("metrics recorder not installed".into()))?;
    let open = state
        .open_sockets
        .load(std::sync::atomic::Ordering::Relaxed);
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::telemetry::metrics::render(handle, open)))
}

/// How long readiness may take before the node counts as not ready.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /readyz`: the database answers reads and takes writes, in time.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    tokio::time::timeout(READY_WITHIN, state.login.ready())
        .await
        .map_err(|_| ApiError::Unavailable("database: no answer within 2 s".into()))?
        .map_err(|e| ApiError::Unavailable(format!("database: {e}")))?;
    Ok(HttpResponse::Ok().json(json!({"status": "ready"})))
}

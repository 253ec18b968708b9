//! Operator endpoints: liveness and readiness.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// `GET /healthz`: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: the database answers.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state
        .login
        .ready()
        .await
        .map_err(|e| ApiError::Unavailable(format!("database: {e}")))?;
    Ok(HttpResponse::Ok().json(json!({"status": "ready"})))
}

//! The site-backend API: redeem a ticket with HTTP Basic client credentials.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct RedeemBody {
    ticket: String,
}

/// `(client_id, client_secret)` from `Authorization: Basic ...`.
fn basic(req: &HttpRequest) -> Result<(String, String), ApiError> {
    const MISSING: ApiError =
        ApiError::Unauthorized("HTTP Basic client_id:client_secret is required");
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(MISSING)?;
    let encoded = value.strip_prefix("Basic ").ok_or(MISSING)?;
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| MISSING)?;
    let text = String::from_utf8(decoded).map_err(|_| MISSING)?;
    let (id, secret) = text.split_once(':').ok_or(MISSING)?;
    Ok((id.to_owned(), secret.to_owned()))
}

/// `POST /api/v1/tickets/redeem`
pub async fn redeem(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<RedeemBody>,
) -> Result<HttpResponse, ApiError> {
    let (client_id, secret) = basic(&req)?;
    let answer = state
        .login
        .redeem(&client_id, &secret, &body.ticket)
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(answer))
}

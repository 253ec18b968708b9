//! The mini-program API: scan, confirm, cancel.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::client_ip::client_ip;
use crate::error::ApiError;
use crate::login::{ConfirmInput, MpAuth, ProfileInput};
use crate::ratelimit::RateLimits;
use crate::scene::SceneId;
use crate::state::AppState;

/// Mini-program calls are limited per phone IP and per scene (a scene id
/// that does not parse is refused later without any work).
fn throttle(req: &HttpRequest, state: &AppState, scene_id: &str) -> Result<(), ApiError> {
    let ip = client_ip(req, &state.settings.server.trusted_proxies);
    RateLimits::by_ip(&state.limits.mp, ip)?;
    if let Some(id) = SceneId::parse(scene_id) {
        state.limits.mp_scene.check(&id.to_string())?;
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct ScanBody {
    scene_id: String,
    code: String,
    app_id: Option<String>,
}

/// `POST /api/v1/mp/scan`
pub async fn scan(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<ScanBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    throttle(&req, &state, &b.scene_id)?;
    if b.code.is_empty() {
        return Err(ApiError::InvalidRequest("code is required".into()));
    }
    let answer = state
        .login
        .scan(&b.scene_id, &b.code, b.app_id.as_deref())
        .await?;
    Ok(HttpResponse::Ok().json(answer))
}

#[derive(Deserialize)]
pub struct InsideLoginBody {
    code: String,
    app_id: Option<String>,
}

/// `POST /api/v1/mp/login`: a login inside the mini-program itself; the
/// same `user_id` a website login gives, and an ID token (`aud` = app id).
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<InsideLoginBody>,
) -> Result<HttpResponse, ApiError> {
    let ip = client_ip(&req, &state.settings.server.trusted_proxies);
    RateLimits::by_ip(&state.limits.mp, ip)?;
    let b = body.into_inner();
    if b.code.is_empty() {
        return Err(ApiError::InvalidRequest("code is required".into()));
    }
    let person = state
        .login
        .inside_login(&b.code, b.app_id.as_deref())
        .await?;
    let (id_token, expires_in) = state.oidc.inside_id_token(&person).await?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({
            "user_id": person.user_id,
            "id_token": id_token,
            "expires_in": expires_in,
        })))
}

fn auth(mp_token: Option<String>, code: Option<String>) -> Result<MpAuth, ApiError> {
    match (
        mp_token.filter(|t| !t.is_empty()),
        code.filter(|c| !c.is_empty()),
    ) {
        (Some(t), None) => Ok(MpAuth::Token(t)),
        (None, Some(c)) => Ok(MpAuth::Code(c)),
        _ => Err(ApiError::InvalidRequest(
            "give exactly one of mp_token and code".into(),
        )),
    }
}

#[derive(Deserialize)]
pub struct ConfirmBody {
    scene_id: String,
    mp_token: Option<String>,
    code: Option<String>,
    app_id: Option<String>,
    encrypted_data: Option<String>,
    iv: Option<String>,
    raw_data: Option<String>,
    signature: Option<String>,
    profile: Option<ProfileInput>,
    phone_code: Option<String>,
}

/// `POST /api/v1/mp/confirm`
pub async fn confirm(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<ConfirmBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    throttle(&req, &state, &b.scene_id)?;
    let auth = auth(b.mp_token, b.code)?;
    let input = ConfirmInput {
        encrypted_data: b.encrypted_data,
        iv: b.iv,
        raw_data: b.raw_data,
        signature: b.signature,
        profile: b.profile,
        phone_code: b.phone_code,
    };
    let (state_now, user_id) = state
        .login
        .confirm(&b.scene_id, auth, b.app_id.as_deref(), input)
        .await?;
    Ok(HttpResponse::Ok().json(json!({"state": state_now, "user_id": user_id})))
}

#[derive(Deserialize)]
pub struct CancelBody {
    scene_id: String,
    mp_token: Option<String>,
    code: Option<String>,
    app_id: Option<String>,
}

/// `POST /api/v1/mp/cancel`
pub async fn cancel(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<CancelBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    throttle(&req, &state, &b.scene_id)?;
    let auth = auth(b.mp_token, b.code)?;
    let state_now = state
        .login
        .cancel(&b.scene_id, auth, b.app_id.as_deref())
        .await?;
    Ok(HttpResponse::Ok().json(json!({"state": state_now})))
}

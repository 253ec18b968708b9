//! The browser API: create a scene, fetch its code, long-poll its events.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::client_ip::client_ip;
use crate::error::ApiError;
use crate::login::{BrowserInfo, rfc3339};
use crate::ratelimit::RateLimits;
use crate::scene::State;
use crate::state::AppState;

/// Longest long-poll wait, in seconds.
const MAX_WAIT_SECS: u64 = 30;

#[derive(Deserialize)]
pub struct CreateScene {
    client_id: String,
}

/// The `Origin` header: `None` when absent (not a browser). One that is
/// not visible ASCII, or more than one, is refused (a browser never sends
/// either, so treating them as "no Origin" would let a script pass as a
/// server).
pub(crate) fn origin(headers: &header::HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut all = headers.get_all(header::ORIGIN);
    let Some(first) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(ApiError::OriginNotAllowed("several Origin headers".into()));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| ApiError::OriginNotAllowed("an Origin that is not ASCII".into()))
}

/// `POST /api/v1/scenes`
pub async fn create_scene(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<CreateScene>,
) -> Result<HttpResponse, ApiError> {
    let ip = client_ip(&req, &state.settings.server.trusted_proxies);
    RateLimits::by_ip(&state.limits.scenes, ip)?;
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let browser = BrowserInfo {
        ip: ip.map(|i| i.to_string()).unwrap_or_default(),
        user_agent,
    };
    let scene = state
        .login
        .create_scene(&body.client_id, origin(req.headers())?, browser)
        .await?;
    let base = state
        .settings
        .server
        .public_url
        .as_str()
        .trim_end_matches('/');
    let ws_base = base.replacen("http", "ws", 1);
    let id = &scene.scene_id;
    let expires_in = ((scene.expires_at - crate::keys::now_ms()) / 1000).max(0);
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "scene_id": id,
            "browser_token": scene.browser_token,
            "state": State::Waiting,
            "expires_at": rfc3339(scene.expires_at),
            "expires_in": expires_in,
            "qrcode_url": format!("{base}/api/v1/scenes/{id}/qrcode"),
            "ws_url": format!("{ws_base}/api/v1/scenes/{id}/ws"),
            "events_url": format!("{base}/api/v1/scenes/{id}/events"),
            "app_id": scene.app_id,
        })))
}

/// `GET /api/v1/scenes/{scene_id}/qrcode`
pub async fn qrcode(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ip = client_ip(&req, &state.settings.server.trusted_proxies);
    RateLimits::by_ip(&state.limits.qrcodes, ip)?;
    let img = state.login.qrcode(&path).await?;
    Ok(HttpResponse::Ok()
        .content_type(img.content_type)
        .insert_header((
            header::CACHE_CONTROL,
            format!("private, max-age={}", state.settings.scene.ttl_secs),
        ))
        .body(img.bytes))
}

#[derive(Deserialize)]
pub struct EventsQuery {
    after: Option<String>,
    wait: Option<u64>,
}

fn bearer(req: &HttpRequest) -> Result<&str, ApiError> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::InvalidToken(
            "Authorization: Bearer <browser_token> is required",
        ))
}

/// `GET /api/v1/scenes/{scene_id}/events?after=STATE&wait=SECONDS`
pub async fn events(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let after = match query.after.as_deref() {
        None => None,
        Some(s) => Some(
            State::parse(s)
                .ok_or_else(|| ApiError::InvalidRequest(format!("after: unknown state {s:?}")))?,
        ),
    };
    let wait = Duration::from_secs(query.wait.unwrap_or(0).min(MAX_WAIT_SECS));
    let ip = client_ip(&req, &state.settings.server.trusted_proxies);
    RateLimits::by_ip(&state.limits.polls, ip)?;
    let token = bearer(&req)?;
    let origin = origin(req.headers())?;
    // Listen before reading, so a change between the two is not missed.
    let mut sub = state.registry.subscribe(&path);
    let mut view = state.login.browser_view(&path, token, origin).await?;
    if after == Some(view.state) && !view.state.is_final() && !wait.is_zero() {
        tokio::select! {
            _ = sub.recv() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = state.shutdown.cancelled() => {}
        }
        view = state.login.browser_view_unchecked(&path).await?;
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(state.login.browser_event(&view)))
}

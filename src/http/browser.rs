//! The browser API: create a scene, fetch its code, long-poll its events.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::events::BrowserEvent;
use super::extract::{Bearer, ClientAddr, RequestOrigin};
use super::scene_id;
use crate::clock::rfc3339;
use crate::http::error::ApiError;
use crate::login::BrowserInfo;
use crate::login::LoginError;
use crate::scene::State;
use crate::state::AppState;

/// Longest long-poll wait, in seconds.
const MAX_WAIT_SECS: u64 = 30;

/// The body of `POST /api/v1/scenes`.
#[derive(Deserialize, ToSchema)]
pub struct CreateScene {
    /// The website (client) the login is for.
    client_id: String,
    /// Only the hub's own OpenID Connect authorize page sends this: its
    /// pending authorization's handle. The scene becomes the one that page
    /// shows, and only its ticket completes that authorization.
    #[serde(default)]
    #[schema(nullable = false)]
    authorize_handle: Option<String>,
}

/// The answer to `POST /api/v1/scenes`. URLs are absolute, built from the
/// configured public URL.
#[derive(Serialize, ToSchema)]
pub struct SceneCreated {
    /// 32 lowercase hex characters.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub scene_id: String,
    /// This browser's secret for the WebSocket auth frame and `events`:
    /// never put it in a URL.
    pub browser_token: String,
    /// `waiting`.
    pub state: State,
    /// When the scene expires (RFC 3339).
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// Seconds until `expires_at`.
    pub expires_in: i64,
    /// The code image.
    #[schema(format = "uri")]
    pub qrcode_url: String,
    /// The scene's WebSocket (`ws:` or `wss:`).
    #[schema(format = "uri")]
    pub ws_url: String,
    /// The long-poll fallback.
    #[schema(format = "uri")]
    pub events_url: String,
    /// The mini-program whose code the scene shows (`null` when no app has
    /// quota left).
    #[schema(required = true)]
    pub app_id: Option<String>,
}

/// `POST /api/v1/scenes`
#[utoipa::path(
    post,
    path = "/api/v1/scenes",
    tag = "browser",
    summary = "Create a scene (one login attempt shown as one code)",
    description = "Called by the widget. The `Origin` header, when present, must be one of \
        the client's `allowed_origins`. Rate limited per client IP (IPv6 per /64 and per /48).",
    request_body = CreateScene,
    responses(
        (status = 201, description = "The new scene", body = SceneCreated),
        (status = 400, description = "`invalid_request` or `unknown_client`"),
        (status = 403, description = "`origin_not_allowed`"),
        (status = 413, description = "`invalid_request`: body larger than 16 KiB"),
        (status = 415, description = "`invalid_request`: not `application/json`"),
        (status = 429, description = "`rate_limited`"),
        (status = 503, description = "`unavailable`"),
    )
)]
pub async fn create_scene(
    req: HttpRequest,
    state: web::Data<AppState>,
    addr: ClientAddr,
    body: web::Json<CreateScene>,
    origin: Result<RequestOrigin, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let origin = origin?;
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let browser = BrowserInfo {
        ip: addr.text(),
        user_agent,
    };
    let handle = body.authorize_handle.as_deref();
    if let Some(h) = handle
        && !state.oidc.page_pending(h, &body.client_id).await?
    {
        return Err(ApiError::InvalidRequest(
            "authorize_handle: no pending login request of this client".into(),
        ));
    }
    let scene = state
        .scenes
        .create_scene(&body.client_id, origin.as_deref(), browser)
        .await?;
    if let Some(h) = handle {
        state
            .oidc
            .show_scene(h, &body.client_id, scene.scene_id.as_str())
            .await?;
    }
    let settings = state.settings.load();
    let base = settings.server.public_url.as_str().trim_end_matches('/');
    let ws_base = base.replacen("http", "ws", 1);
    let id = &scene.scene_id;
    let expires_in = ((scene.expires_at - crate::clock::now_ms()) / 1000).max(0);
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(SceneCreated {
            qrcode_url: format!("{base}/api/v1/scenes/{id}/qrcode"),
            ws_url: format!("{ws_base}/api/v1/scenes/{id}/ws"),
            events_url: format!("{base}/api/v1/scenes/{id}/events"),
            scene_id: scene.scene_id.to_string(),
            browser_token: scene.browser_token,
            state: State::Waiting,
            expires_at: rfc3339(scene.expires_at),
            expires_in,
            app_id: scene.app_id,
        }))
}

/// `GET /api/v1/scenes/{scene_id}/qrcode`
#[utoipa::path(
    get,
    path = "/api/v1/scenes/{scene_id}/qrcode",
    tag = "browser",
    summary = "The scene's mini-program code image",
    description = "WeChat is asked at most once per scene; the image is cached for the scene's life.",
    params(("scene_id" = String, Path, description = "32 lowercase hex characters")),
    responses(
        (status = 200, description = "The code image", content(
            (Vec<u8> = "image/png"),
            (Vec<u8> = "image/jpeg"),
        )),
        (status = 404, description = "`scene_not_found`"),
        (status = 410, description = "`scene_expired`"),
        (status = 429, description = "`rate_limited`"),
        (status = 502, description = "`wechat_error`, with WeChat's `errcode` and `errmsg`"),
        (status = 503, description = "`unavailable`"),
    )
)]
pub async fn qrcode(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let img = state.scenes.qrcode(&scene_id(&path)?).await?;
    // What WeChat labelled anything else (an SVG, HTML) never reaches a
    // browser under the hub's origin, also from an image cached before.
    let content_type = match img.content_type.as_str() {
        t @ ("image/png" | "image/jpeg") => t.to_owned(),
        other => {
            return Err(ApiError::Flow(LoginError::Wechat {
                errcode: -1,
                errmsg: format!("WeChat answered {other:?}, not a PNG or JPEG image"),
            }));
        }
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((
            header::CACHE_CONTROL,
            format!("private, max-age={}", state.settings.load().scene.ttl_secs),
        ))
        .body(img.bytes))
}

/// The query of `GET /api/v1/scenes/{scene_id}/events`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The state the browser already knows: the answer waits while the
    /// scene is still in it.
    #[param(value_type = Option<State>)]
    after: Option<String>,
    /// How long to wait for a change, in seconds (at most 30).
    #[param(maximum = 30)]
    wait: Option<u64>,
}

/// `GET /api/v1/scenes/{scene_id}/events?after=STATE&wait=SECONDS`
#[utoipa::path(
    get,
    path = "/api/v1/scenes/{scene_id}/events",
    tag = "browser",
    summary = "The scene's current state event (long-poll fallback of the WebSocket)",
    description = "When the state still equals `after`, waits up to `wait` seconds for a change.",
    params(("scene_id" = String, Path, description = "32 lowercase hex characters"), EventsQuery),
    security(("browser_token" = [])),
    responses(
        (status = 200, description = "The state event", body = BrowserEvent),
        (status = 400, description = "`invalid_request`"),
        (status = 401, description = "`invalid_token`: missing or wrong browser token"),
        (status = 403, description = "`origin_not_allowed`"),
        (status = 404, description = "`scene_not_found`"),
        (status = 429, description = "`rate_limited`"),
        (status = 503, description = "`unavailable`"),
    )
)]
pub async fn events(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<EventsQuery>,
    token: Option<Bearer>,
    origin: Result<RequestOrigin, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let after = match query.after.as_deref() {
        None => None,
        Some(s) => Some(
            State::parse(s)
                .ok_or_else(|| ApiError::InvalidRequest(format!("after: unknown state {s:?}")))?,
        ),
    };
    let wait = Duration::from_secs(query.wait.unwrap_or(0).min(MAX_WAIT_SECS));
    let Some(Bearer(token)) = token else {
        return Err(ApiError::Flow(LoginError::InvalidToken(
            "Authorization: Bearer <browser_token> is required",
        )));
    };
    let origin = origin?;
    // Listen before reading, so a change between the two is not missed.
    let id = scene_id(&path)?;
    let mut sub = state.registry.subscribe(id.as_str());
    let mut view = state
        .scenes
        .browser_view(&id, &token, origin.as_deref())
        .await?;
    if after == Some(view.state) && !view.state.is_final() && !wait.is_zero() {
        let shown = view.state;
        let deadline = tokio::time::sleep(wait);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                // A push of a state this poll already has (a bus resync
                // re-sends what it reads) does not end the wait.
                pushed = sub.recv() => if !shown.is_behind(pushed.state) { continue },
                _ = &mut deadline => {}
                _ = state.shutdown.cancelled() => {}
            }
            break;
        }
        view = state.scenes.scene_view(&id).await?;
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(BrowserEvent::of(&view, &state.minter)))
}

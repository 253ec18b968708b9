//! Avatars: the mini-program uploads the `chooseAvatar` file
//! (`POST /api/v1/mp/avatar`), browsers and sites load it
//! (`GET /api/v1/avatars/{id}`).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde::Serialize;
use utoipa::ToSchema;

use super::client_ip::client_ip;
use crate::avatars::MAX_AVATAR_BYTES;
use crate::http::error::ApiError;
use crate::login::LoginError;
use crate::ratelimit::RateLimits;
use crate::state::AppState;

fn too_large() -> ApiError {
    ApiError::BadRequestStatus {
        status: actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
        detail: format!("an avatar is at most {MAX_AVATAR_BYTES} bytes"),
    }
}

/// The bearer token of `Authorization`, if well-formed.
fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= 256)
        .then_some(token)
}

/// The answer to `POST /api/v1/mp/avatar`.
#[derive(Serialize, ToSchema)]
pub struct AvatarUploaded {
    /// `{public_url}/api/v1/avatars/{id}`, served by the hub: send it as
    /// `profile.avatar_url` with `confirm`.
    #[schema(format = "uri")]
    pub avatar_url: String,
}

/// `POST /api/v1/mp/avatar`: the image bytes, `Authorization: Bearer <mp_token>`.
#[utoipa::path(
    post,
    path = "/api/v1/mp/avatar",
    tag = "mini-program",
    summary = "Upload the avatar chosen with `chooseAvatar`",
    description = "The body is the image file itself (at most 1 MiB); the hub re-encodes it \
        as PNG. Authenticated by the scan's `mp_token` as `Authorization: Bearer`.",
    request_body(content(
        (Vec<u8> = "image/png"),
        (Vec<u8> = "image/jpeg"),
        (Vec<u8> = "image/webp"),
    )),
    security(("mp_token" = [])),
    responses(
        (status = 201, description = "Stored", body = AvatarUploaded),
        (status = 400, description = "`invalid_request`: empty, or not a decodable image"),
        (status = 401, description = "`invalid_token`: missing or wrong `mp_token`"),
        (status = 413, description = "`invalid_request`: larger than 1 MiB"),
        (status = 415, description = "`invalid_request`: not `image/png`, `image/jpeg` or `image/webp`"),
        (status = 429, description = "`rate_limited` (the mini-program limit per phone IP)"),
        (status = 503, description = "`unavailable` (too many decodes at once, or the database)"),
    )
)]
pub async fn upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    mut body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let ip = client_ip(&req, &state.settings.server.trusted_proxies);
    RateLimits::by_ip(&state.limits.mp, ip)?;
    let Some(token) = bearer(&req).map(str::to_owned) else {
        return Err(ApiError::Flow(LoginError::InvalidToken(
            "Authorization: Bearer <mp_token> is required",
        )));
    };
    state.login.check_avatar_token(&token).await?;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_AVATAR_BYTES as u64) {
        return Err(too_large());
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    crate::avatars::format_of(&content_type).map_err(|e| ApiError::BadRequestStatus {
        status: actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        detail: e.to_string(),
    })?;
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(MAX_AVATAR_BYTES as u64) as usize);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::InvalidRequest(format!("body: {e}")))?;
        if bytes.len() + chunk.len() > MAX_AVATAR_BYTES {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.is_empty() {
        return Err(ApiError::InvalidRequest("the body is empty".into()));
    }
    let url = state.login.upload_avatar(&content_type, bytes).await?;
    Ok(HttpResponse::Created().json(AvatarUploaded { avatar_url: url }))
}

/// `GET /api/v1/avatars/{id}`: the stored PNG, cacheable for a year (an id
/// never names other bytes).
#[utoipa::path(
    get,
    path = "/api/v1/avatars/{id}",
    tag = "browser",
    summary = "An uploaded avatar",
    params(("id" = String, Path, description = "The id in the `avatar_url`")),
    responses(
        (status = 200, description = "The image (immutable; cacheable for a year)", content(
            (Vec<u8> = "image/png"),
        )),
        (status = 404, description = "`invalid_request`: no such avatar"),
        (status = 503, description = "`unavailable`"),
    )
)]
pub async fn serve(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let avatar = state.login.avatar(&id).await?;
    let content_type = HeaderValue::from_str(&avatar.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, "default-src 'none'"))
        .body(avatar.bytes))
}

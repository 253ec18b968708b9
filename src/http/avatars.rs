//! Avatars: the mini-program uploads the `chooseAvatar` file
//! (`POST /api/v1/mp/avatar`), browsers and sites load it
//! (`GET /api/v1/avatars/{id}`).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{Bearer, ClientAddr};
use crate::avatars::MAX_AVATAR_BYTES;
use crate::http::error::ApiError;
use crate::login::LoginError;
use crate::state::AppState;

fn too_large() -> ApiError {
    ApiError::BadRequestStatus {
        status: actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
        detail: format!("an avatar is at most {MAX_AVATAR_BYTES} bytes"),
    }
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
        as PNG. Authenticated by the scan's `mp_token` as `Authorization: Bearer`. A scene \
        holds one avatar: another upload replaces it (the earlier URL then answers 404). An \
        avatar no user shows is deleted once its scene ends, at most an hour after the upload. \
        Each phone IP has a byte budget (`rate_limit.avatar_bytes_per_hour`).",
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
        (status = 429, description = "`rate_limited` (the mini-program limit per phone IP, or \
            the avatar byte budget per phone IP)"),
        (status = 503, description = "`unavailable` (too many decodes at once, or the database)"),
    )
)]
pub async fn upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    addr: ClientAddr,
    token: Option<Bearer>,
    mut body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let Some(Bearer(token)) = token else {
        return Err(ApiError::Flow(LoginError::InvalidToken(
            "Authorization: Bearer <mp_token> is required",
        )));
    };
    let slot = state.avatars.check_token(&token).await?;
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
    // The address's byte budget pays for the larger of what came and what
    // is kept: what came before any decoding, the rest before storing.
    let received = bytes.len();
    state
        .limits
        .load()
        .avatar_bytes
        .check_n(addr.0, byte_units(received))?;
    let png = state.avatars.reencode(&content_type, bytes).await?;
    if png.len() > received {
        state
            .limits
            .load()
            .avatar_bytes
            .check_n(addr.0, byte_units(png.len() - received))?;
    }
    let url = state.avatars.store(&slot, png).await?;
    Ok(HttpResponse::Created().json(AvatarUploaded { avatar_url: url }))
}

/// A byte count as budget units (uploads are at most 1 MiB).
fn byte_units(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
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
        (status = 404, description = "`invalid_request`: no such avatar (or one replaced or deleted)"),
        (status = 429, description = "`rate_limited` (per client IP, `other_per_minute`)"),
        (status = 503, description = "`unavailable`"),
    )
)]
pub async fn serve(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let avatar = state.avatars.get(&id).await?;
    let content_type = HeaderValue::from_str(&avatar.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, "default-src 'none'"))
        .body(avatar.bytes))
}

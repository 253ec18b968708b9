//! The mini-program API: scan, confirm, cancel, and the login inside the
//! mini-program itself.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::ClientAddr;
use super::scene_id;
use crate::http::error::ApiError;
use crate::login::{ConfirmInput, MpAuth, ProfileInput, ScanAnswer};
use crate::scene::{SceneId, State};
use crate::state::AppState;

/// Mini-program calls are limited per phone IP (`http::throttle`) and,
/// once the body names the scene, per scene (a scene id that does not parse
/// is refused later without any work).
fn per_scene(state: &AppState, scene_id: &str) -> Result<(), ApiError> {
    if let Some(id) = SceneId::parse(scene_id) {
        state.limits.load().mp_scene.check(&id.to_string())?;
    }
    Ok(())
}

/// The body of `POST /api/v1/mp/scan`.
#[derive(Deserialize, ToSchema)]
pub struct ScanBody {
    /// The `scene` parameter the mini-program was opened with.
    scene_id: String,
    /// A fresh `wx.login` code.
    code: String,
    /// The mini-program; defaults to the first configured app.
    app_id: Option<String>,
}

/// `POST /api/v1/mp/scan`
#[utoipa::path(
    post,
    path = "/api/v1/mp/scan",
    tag = "mini-program",
    summary = "The phone scanned the code",
    description = "Exchanges `code` with WeChat (`jscode2session`), binds the scene to this \
        WeChat user and pushes `scanned` to the browser. The answer's `mp_token` is the \
        mini-program's credential for `confirm` and `cancel` (a body field, not a header). \
        A retry with the same `code` within 5 minutes gets the same answer.",
    request_body = ScanBody,
    responses(
        (status = 200, description = "Scanned; who is asking", body = ScanAnswer),
        (status = 400, description = "`invalid_request`"),
        (status = 404, description = "`scene_not_found`"),
        (status = 409, description = "`scene_taken` (another WeChat user scanned) or `scene_final`"),
        (status = 410, description = "`scene_expired`"),
        (status = 413, description = "`invalid_request`: body larger than 16 KiB"),
        (status = 415, description = "`invalid_request`: not `application/json`"),
        (status = 429, description = "`rate_limited` (per phone IP and per scene)"),
        (status = 502, description = "`wechat_error`, with WeChat's `errcode` and `errmsg`"),
        (status = 503, description = "`unavailable`"),
    )
)]
pub async fn scan(
    state: web::Data<AppState>,
    addr: ClientAddr,
    body: web::Json<ScanBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    per_scene(&state, &b.scene_id)?;
    if b.code.is_empty() {
        return Err(ApiError::InvalidRequest("code is required".into()));
    }
    let answer = state
        .phone
        .scan(
            &scene_id(&b.scene_id)?,
            &b.code,
            b.app_id.as_deref(),
            addr.0,
        )
        .await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// A login inside the mini-program.
#[derive(Deserialize, ToSchema)]
pub struct InsideLoginBody {
    /// A fresh `wx.login` code.
    code: String,
    /// The app whose `wx.login` gave the code; default: the first configured.
    app_id: Option<String>,
}

/// The answer to a login inside the mini-program.
#[derive(Serialize, ToSchema)]
pub struct InsideLoginAnswer {
    /// The hub's id for the person: the same `user.id` a website login gives.
    user_id: String,
    /// RS256 JWT (keys at `/oauth2/jwks`): `iss` the hub, `sub` = `user_id`,
    /// `aud` and `azp` = the app's `app_id`, `unionid` when known.
    id_token: String,
    /// Seconds the ID token is valid.
    expires_in: i64,
}

/// `POST /api/v1/mp/login`: a login inside the mini-program itself; the
/// same `user_id` a website login gives, and an ID token (`aud` = app id).
#[utoipa::path(
    post,
    path = "/api/v1/mp/login",
    tag = "mini-program",
    summary = "A login inside the mini-program itself",
    description = "Exchanges `code` with WeChat (once; a retry within 5 minutes gets the same \
        answer) and records the person as a website login does, so `user_id` is the redeem \
        API's `user.id` and the OIDC `sub`. `id_token` is signed like the OIDC ID token with \
        `aud` = the app's `app_id`, for the mini-program's own backend to verify with the JWKS.",
    request_body = InsideLoginBody,
    responses(
        (status = 200, description = "Logged in", body = InsideLoginAnswer),
        (status = 400, description = "`invalid_request`: no code, an unknown `app_id`, or a code already used for a scene"),
        (status = 413, description = "`invalid_request`: body larger than 16 KiB"),
        (status = 415, description = "`invalid_request`: not `application/json`"),
        (status = 429, description = "`rate_limited` (per phone IP)"),
        (status = 502, description = "`wechat_error`, with WeChat's `errcode` and `errmsg`"),
        (status = 503, description = "`unavailable`"),
    )
)]
pub async fn login(
    state: web::Data<AppState>,
    body: web::Json<InsideLoginBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    if b.code.is_empty() {
        return Err(ApiError::InvalidRequest("code is required".into()));
    }
    let person = state
        .phone
        .inside_login(&b.code, b.app_id.as_deref())
        .await?;
    let (id_token, expires_in) = state.oidc.inside_id_token(&person).await?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(InsideLoginAnswer {
            user_id: person.user_id,
            id_token,
            expires_in,
        }))
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

/// The body of `POST /api/v1/mp/confirm`: exactly one of `mp_token` and
/// `code`.
#[derive(Deserialize, ToSchema)]
pub struct ConfirmBody {
    scene_id: String,
    /// The credential from `scan` (the mini-program's auth, in the body).
    mp_token: Option<String>,
    /// A fresh `wx.login` code instead of `mp_token`: scan and confirm in one call.
    code: Option<String>,
    /// The mini-program; defaults to the first configured app.
    app_id: Option<String>,
    /// `getUserProfile`'s `encryptedData` (base64), decrypted with the session key.
    encrypted_data: Option<String>,
    /// `getUserProfile`'s `iv` (base64), with `encrypted_data`.
    iv: Option<String>,
    /// `getUserProfile`'s `rawData`, checked with `signature`.
    raw_data: Option<String>,
    /// `sha1(raw_data + session_key)`, hex.
    signature: Option<String>,
    /// Nickname and avatar when not taken from the decrypted data.
    profile: Option<ProfileInput>,
    /// The code from the `getPhoneNumber` button: the hub asks WeChat for
    /// the number and keeps it (sealed) on the user.
    phone_code: Option<String>,
}

/// The answer to `POST /api/v1/mp/confirm`.
#[derive(Serialize, ToSchema)]
pub struct ConfirmAnswer {
    /// `confirmed`.
    pub state: State,
    /// The hub's user id of the person who confirmed.
    pub user_id: String,
}

/// `POST /api/v1/mp/confirm`
#[utoipa::path(
    post,
    path = "/api/v1/mp/confirm",
    tag = "mini-program",
    summary = "The person confirms the login",
    description = "Authenticated by `mp_token` (from `scan`) or a fresh `code` in the body. \
        Optional `encrypted_data`+`iv` (AES-128-CBC with the session key; `watermark.appid` \
        must be the app) and `raw_data`+`signature` are checked. Issues the ticket and pushes \
        `confirmed` to the browser.",
    request_body = ConfirmBody,
    responses(
        (status = 200, description = "Confirmed", body = ConfirmAnswer),
        (status = 400, description = "`invalid_request`, `decrypt_failed`, `watermark_mismatch`, \
            `signature_mismatch` or `identity_mismatch`"),
        (status = 401, description = "`invalid_token`: `mp_token` does not match this scene"),
        (status = 404, description = "`scene_not_found`"),
        (status = 409, description = "`scene_taken` (another WeChat user scanned) or `scene_final`"),
        (status = 410, description = "`scene_expired`"),
        (status = 413, description = "`invalid_request`: body larger than 16 KiB"),
        (status = 415, description = "`invalid_request`: not `application/json`"),
        (status = 429, description = "`rate_limited` (per phone IP and per scene)"),
        (status = 502, description = "`wechat_error`, with WeChat's `errcode` and `errmsg`"),
        (status = 503, description = "`unavailable`"),
    )
)]
pub async fn confirm(
    state: web::Data<AppState>,
    body: web::Json<ConfirmBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    per_scene(&state, &b.scene_id)?;
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
        .phone
        .confirm(&scene_id(&b.scene_id)?, auth, b.app_id.as_deref(), input)
        .await?;
    Ok(HttpResponse::Ok().json(ConfirmAnswer {
        state: state_now,
        user_id,
    }))
}

/// The body of `POST /api/v1/mp/cancel`: exactly one of `mp_token` and
/// `code`.
#[derive(Deserialize, ToSchema)]
pub struct CancelBody {
    scene_id: String,
    /// The credential from `scan` (the mini-program's auth, in the body).
    mp_token: Option<String>,
    /// A fresh `wx.login` code instead of `mp_token`.
    code: Option<String>,
    /// The mini-program; defaults to the first configured app.
    app_id: Option<String>,
}

/// The answer to `POST /api/v1/mp/cancel`.
#[derive(Serialize, ToSchema)]
pub struct CancelAnswer {
    /// `cancelled`.
    pub state: State,
}

/// `POST /api/v1/mp/cancel`
#[utoipa::path(
    post,
    path = "/api/v1/mp/cancel",
    tag = "mini-program",
    summary = "The person refuses the login",
    description = "Authenticated by `mp_token` (from `scan`) or a fresh `code` in the body; \
        pushes `cancelled` to the browser.",
    request_body = CancelBody,
    responses(
        (status = 200, description = "Cancelled", body = CancelAnswer),
        (status = 400, description = "`invalid_request`"),
        (status = 401, description = "`invalid_token`: `mp_token` does not match this scene"),
        (status = 404, description = "`scene_not_found`"),
        (status = 409, description = "`scene_taken` (another WeChat user scanned) or `scene_final`"),
        (status = 410, description = "`scene_expired`"),
        (status = 413, description = "`invalid_request`: body larger than 16 KiB"),
        (status = 415, description = "`invalid_request`: not `application/json`"),
        (status = 429, description = "`rate_limited` (per phone IP and per scene)"),
        (status = 502, description = "`wechat_error`, with WeChat's `errcode` and `errmsg`"),
        (status = 503, description = "`unavailable`"),
    )
)]
pub async fn cancel(
    state: web::Data<AppState>,
    body: web::Json<CancelBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    per_scene(&state, &b.scene_id)?;
    let auth = auth(b.mp_token, b.code)?;
    let state_now = state
        .phone
        .cancel(&scene_id(&b.scene_id)?, auth, b.app_id.as_deref())
        .await?;
    Ok(HttpResponse::Ok().json(CancelAnswer { state: state_now }))
}

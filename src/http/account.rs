//! The person's account, for the mini-program: what the hub holds about
//! them and deleting it, each proven by a fresh `wx.login` code.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::account::AccountView;
use crate::http::error::ApiError;
use crate::state::AppState;

/// The body of `POST /api/v1/mp/account` and `/api/v1/mp/account/delete`.
#[derive(Deserialize, ToSchema)]
pub struct AccountBody {
    /// A fresh `wx.login` code: it names the person.
    code: String,
    /// The app whose `wx.login` gave the code; default: the first configured.
    app_id: Option<String>,
}

/// `POST /api/v1/mp/account`
#[utoipa::path(
    post,
    path = "/api/v1/mp/account",
    tag = "mini-program",
    summary = "What the hub holds about the person",
    description = "Exchanges `code` with WeChat like a scan does (once; a retry with the same \
        code within 5 minutes is answered again) and answers the person's profile and \
        identities, whether a phone number is kept, every client they logged in to (and \
        whether they shared their number with it) and their newest logins (at most 100, \
        newest first). Times are RFC 3339. A code used for anything else is refused.",
    request_body = AccountBody,
    responses(
        (status = 200, description = "The account", body = AccountView),
        (status = 400, description = "`invalid_request`: no code, an unknown `app_id`, or a code already used for something else"),
        (status = 404, description = "`user_not_found`: the hub holds nothing about this person"),
        (status = 413, description = "`invalid_request`: body larger than 16 KiB"),
        (status = 415, description = "`invalid_request`: not `application/json`"),
        (status = 429, description = "`rate_limited` (per phone IP)"),
        (status = 502, description = "`wechat_error`, with WeChat's `errcode` and `errmsg`"),
        (status = 503, description = "`unavailable`"),
    )
)]
pub async fn show(
    state: web::Data<AppState>,
    body: web::Json<AccountBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    if b.code.is_empty() {
        return Err(ApiError::InvalidRequest("code is required".into()));
    }
    let account = state.phone.account(&b.code, b.app_id.as_deref()).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(account))
}

/// The answer to `POST /api/v1/mp/account/delete`.
#[derive(Serialize, ToSchema)]
pub struct DeletedAnswer {
    /// Always `true`.
    deleted: bool,
    /// The id the person had; it is never given again.
    user_id: String,
}

/// `POST /api/v1/mp/account/delete`
#[utoipa::path(
    post,
    path = "/api/v1/mp/account/delete",
    tag = "mini-program",
    summary = "Delete everything the hub holds about the person",
    description = "Exchanges `code` like `mp/account` and, in one transaction, deletes the \
        person's identities, profile, phone number, avatar, phone consents, login history, \
        the clients they logged in to, their tickets (a later redeem is `invalid_ticket`), \
        OpenID Connect codes and access tokens (userinfo answers 401); queues a signed \
        `user.deleted` webhook for every client they logged in to that has a webhook. The \
        id is never given again: a later login of the same person makes a new user.",
    request_body = AccountBody,
    responses(
        (status = 200, description = "Deleted", body = DeletedAnswer),
        (status = 400, description = "`invalid_request`: no code, an unknown `app_id`, or a code already used for something else"),
        (status = 404, description = "`user_not_found`: the hub holds nothing about this person"),
        (status = 413, description = "`invalid_request`: body larger than 16 KiB"),
        (status = 415, description = "`invalid_request`: not `application/json`"),
        (status = 429, description = "`rate_limited` (per phone IP)"),
        (status = 502, description = "`wechat_error`, with WeChat's `errcode` and `errmsg`"),
        (status = 503, description = "`unavailable`"),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    body: web::Json<AccountBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    if b.code.is_empty() {
        return Err(ApiError::InvalidRequest("code is required".into()));
    }
    let user_id = state
        .phone
        .delete_account(&b.code, b.app_id.as_deref())
        .await?;
    Ok(HttpResponse::Ok().json(DeletedAnswer {
        deleted: true,
        user_id,
    }))
}

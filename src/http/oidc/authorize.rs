//! `GET /oauth2/authorize` (the authorize page) and
//! `POST /oauth2/authorize/complete` (the page ends the authorization).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use url::form_urlencoded;
use utoipa::ToSchema;

use super::page::{language, page, refusal_page};
use crate::http::error::ApiError;
use crate::http::extract::origin;
use crate::login::LoginError;
use crate::oidc::{AuthorizeRefusal, Completion};
use crate::origins;
use crate::state::AppState;

/// `GET /oauth2/authorize`
pub async fn authorize(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(req.query_string().as_bytes())
        .take(64)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let lang = language(&req);
    Ok(match state.oidc.authorize(&pairs).await {
        Ok(pending) => page(&state, &pending, lang),
        Err(AuthorizeRefusal::Redirect(to)) => HttpResponse::Found()
            .insert_header((header::LOCATION, to))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
        Err(AuthorizeRefusal::Page(why)) => refusal_page(&why, lang),
    })
}

/// What the authorize page posts when the phone has answered: `ticket`,
/// or `cancelled: true`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    /// The pending authorization's handle from the page.
    handle: String,
    /// The widget's ticket after `confirmed`.
    ticket: Option<String>,
    /// `true` after `cancelled`.
    #[serde(default)]
    cancelled: bool,
}

/// The answer to `POST /oauth2/authorize/complete`.
#[derive(Serialize, ToSchema)]
pub struct Completed {
    /// Where to send the browser: the client's `redirect_uri` with `code`
    /// (or `error=access_denied`), `state` and `iss`.
    pub redirect_to: String,
}

/// `POST /oauth2/authorize/complete` -> `{"redirect_to"}`
#[utoipa::path(
    post,
    path = "/oauth2/authorize/complete",
    tag = "openid-connect",
    summary = "The hub's authorize page ends the authorization",
    description = "Called only by the hub's own authorize page (its `Origin` must be the hub's).",
    request_body = CompleteBody,
    responses(
        (status = 200, description = "Where to send the browser", body = Completed),
        (status = 400, description = "`invalid_request`, `invalid_ticket` or `unknown_client`"),
        (status = 403, description = "`origin_not_allowed`"),
        (status = 413, description = "`invalid_request`: body larger than 16 KiB"),
        (status = 415, description = "`invalid_request`: not `application/json`"),
        (status = 429, description = "`rate_limited`"),
        (status = 503, description = "`unavailable`"),
    )
)]
pub async fn complete(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<CompleteBody>,
) -> Result<HttpResponse, ApiError> {
    let not_hub = |o: &&str| !origins::is_hub(&state.settings.load(), o);
    if let Some(o) = origin(req.headers())?.filter(not_hub) {
        return Err(ApiError::Flow(LoginError::OriginNotAllowed(o.to_owned())));
    }
    let body = body.into_inner();
    let how = match (body.ticket, body.cancelled) {
        (Some(t), false) => Completion::Ticket(t),
        (None, true) => Completion::Cancelled,
        _ => {
            return Err(ApiError::InvalidRequest(
                "send either ticket or cancelled: true".into(),
            ));
        }
    };
    let to = state.oidc.complete(&body.handle, how).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Completed { redirect_to: to }))
}

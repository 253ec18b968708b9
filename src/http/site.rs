//! The site-backend API: redeem a ticket with HTTP Basic client credentials.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{BasicCredentials, ClientAddr};
use crate::http::error::ApiError;
use crate::state::AppState;

/// The body of `POST /api/v1/tickets/redeem`.
#[derive(Deserialize, ToSchema)]
pub struct RedeemBody {
    /// The ticket the browser received with `confirmed`.
    ticket: String,
}

/// Checks a client's credentials, throttling failures per client and
/// source IP: a stranger guessing secrets is slowed down; the site's own
/// backend, from another IP, is not.
pub(crate) fn authenticate(
    req: &HttpRequest,
    state: &AppState,
    client_id: &str,
    secret: &str,
) -> Result<crate::live::ClientRef, ApiError> {
    let ip = ClientAddr::of(req).0;
    let known = state.settings.load().client(client_id).is_some();
    state.limits.load().auth_allowed(client_id, known, ip)?;
    state
        .redeemer
        .authenticate_client(client_id, secret)
        .inspect_err(|_| state.limits.load().auth_failed(client_id, known, ip))
        .map_err(ApiError::from)
}

/// `POST /api/v1/tickets/redeem`
#[utoipa::path(
    post,
    path = "/api/v1/tickets/redeem",
    tag = "site",
    summary = "Redeem a ticket for the user who logged in",
    description = "Called by the site's backend with HTTP Basic `client_id:client_secret`. \
        A ticket works once, within 60 s, only for the client the scene was made for.",
    request_body = RedeemBody,
    security(("client_basic" = [])),
    responses(
        (status = 200, description = "The user", body = crate::login::RedeemAnswer),
        (status = 400, description = "`invalid_ticket` or `invalid_request`"),
        (status = 401, description = "`unauthorized`: missing or wrong client credentials",
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"scanlogin\"`"))),
        (status = 413, description = "`invalid_request`: body larger than 16 KiB"),
        (status = 415, description = "`invalid_request`: not `application/json`"),
        (status = 429, description = "`rate_limited` (per client; failed authentication per \
            client and source IP)"),
        (status = 503, description = "`unavailable`"),
    )
)]
pub async fn redeem(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<RedeemBody>,
    credentials: Result<BasicCredentials, ApiError>,
) -> Result<HttpResponse, ApiError> {
    // A malformed body is refused before the credentials are looked at.
    let BasicCredentials { client_id, secret } = credentials?;
    let client = authenticate(&req, &state, &client_id, &secret)?;
    state.limits.load().redeems.check(&client.client_id)?;
    let answer = state.redeemer.redeem(&client, &body.ticket).await;
    crate::telemetry::metrics::client_login(&client.client_id, "ticket", answer.is_ok());
    let answer = answer?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(answer))
}

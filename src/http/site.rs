//! The site-backend API: redeem a ticket with HTTP Basic client credentials.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use utoipa::ToSchema;

use super::client_ip::client_ip;
use crate::http::error::ApiError;
use crate::login::LoginError;
use crate::state::AppState;

/// The body of `POST /api/v1/tickets/redeem`.
#[derive(Deserialize, ToSchema)]
pub struct RedeemBody {
    /// The ticket the browser received with `confirmed`.
    ticket: String,
}

/// `(client_id, client_secret)` from `Authorization: Basic ...` (RFC 7617;
/// the scheme name is case-insensitive).
pub(crate) fn basic(req: &HttpRequest) -> Result<(String, String), ApiError> {
    const MISSING: ApiError = ApiError::Flow(LoginError::Unauthorized(
        "HTTP Basic client_id:client_secret is required",
    ));
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(MISSING)?;
    let (scheme, encoded) = value.split_once(' ').ok_or(MISSING)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(MISSING);
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| MISSING)?;
    let text = String::from_utf8(decoded).map_err(|_| MISSING)?;
    let (id, secret) = text.split_once(':').ok_or(MISSING)?;
    Ok((id.to_owned(), secret.to_owned()))
}

/// Checks a client's credentials, throttling failures per client and
/// source IP: a stranger guessing secrets is slowed down; the site's own
/// backend, from another IP, is not.
pub(crate) fn authenticate<'a>(
    req: &HttpRequest,
    state: &'a AppState,
    client_id: &str,
    secret: &str,
) -> Result<&'a crate::config::ClientSettings, ApiError> {
    let ip = client_ip(req, &state.settings.server.trusted_proxies);
    let known = state.settings.client(client_id).is_some();
    state.limits.auth_allowed(client_id, known, ip)?;
    state
        .login
        .authenticate_client(client_id, secret)
        .inspect_err(|_| state.limits.auth_failed(client_id, known, ip))
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
) -> Result<HttpResponse, ApiError> {
    let (client_id, secret) = basic(&req)?;
    let client = authenticate(&req, &state, &client_id, &secret)?;
    state.limits.redeems.check(&client.client_id)?;
    let answer = state.login.redeem(client, &body.ticket).await;
    crate::telemetry::metrics::client_login(&client.client_id, "ticket", answer.is_ok());
    let answer = answer?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(answer))
}

#[cfg(test)]
mod props {
    use super::*;
    use actix_web::test::TestRequest;
    use proptest::prelude::*;

    fn with_authorization(value: &[u8]) -> HttpRequest {
        let mut req = TestRequest::default();
        if let Ok(v) = header::HeaderValue::from_bytes(value) {
            req = req.insert_header((header::AUTHORIZATION, v));
        }
        req.to_http_request()
    }

    proptest! {
        /// Any Authorization header: credentials or 401, never a panic.
        #[test]
        fn any_header_is_credentials_or_unauthorized(value in prop::collection::vec(any::<u8>(), 0..200)) {
            match basic(&with_authorization(&value)) {
                Ok(_) => {}
                Err(e) => prop_assert_eq!(e.code(), "unauthorized"),
            }
        }

        /// What a stock client sends comes back as it was, in any case of "Basic".
        #[test]
        fn credentials_round_trip(id in "[^:\\p{C}]{1,30}", secret in "\\PC{0,40}", upper: bool) {
            let scheme = if upper { "BASIC" } else { "basic" };
            let value = format!("{scheme} {}", STANDARD.encode(format!("{id}:{secret}")));
            prop_assert_eq!(basic(&with_authorization(value.as_bytes())).ok(), Some((id, secret)));
        }
    }
}

//! `POST /oauth2/token` (with the client's authentication) and
//! `GET|POST /oauth2/userinfo`.

use actix_web::http::header::{self, ContentType};
use actix_web::{HttpRequest, HttpResponse, web};
use url::form_urlencoded;

use super::error::OAuthReply;
use crate::http::error::ApiError;
use crate::http::extract::{BasicCredentials, BasicError, Bearer, ClientAddr};
use crate::live::ClientRef;
use crate::login::LoginError;
use crate::oidc::{OAuthError, TokenRequest};
use crate::state::AppState;

/// Decodes one `application/x-www-form-urlencoded` component (RFC 6749
/// 2.3.1 encodes Basic credentials that way).
fn form_decode(s: &str) -> String {
    if s.contains(['&', '=']) {
        return s.to_owned();
    }
    form_urlencoded::parse(s.as_bytes())
        .next()
        .map(|(k, _)| k.into_owned())
        .unwrap_or_default()
}

/// `(client_id, client_secret)` from `Authorization: Basic`, if sent (the
/// parts form-decoded, RFC 6749 2.3.1).
fn basic(req: &HttpRequest) -> Result<Option<(String, String)>, OAuthError> {
    match BasicCredentials::parse(req.headers()) {
        Ok(c) => Ok(Some((form_decode(&c.client_id), form_decode(&c.secret)))),
        Err(BasicError::Missing) => Ok(None),
        Err(BasicError::OtherScheme) => Err(OAuthError::InvalidClient(
            "only Basic client authentication is accepted here",
        )),
        Err(BasicError::Malformed) => Err(OAuthError::InvalidClient("malformed Basic credentials")),
    }
}

/// Checks the client's credentials as the ticket API does (failures
/// throttled per client and source IP), answering OAuth's `invalid_client`.
fn authenticate(
    req: &HttpRequest,
    state: &AppState,
    client_id: &str,
    secret: &str,
) -> Result<ClientRef, OAuthReply> {
    crate::http::site::authenticate(req, state, client_id, secret).map_err(|e| match e {
        ApiError::Flow(LoginError::Unauthorized(_)) => {
            OAuthError::InvalidClient("client authentication failed").into()
        }
        other => other.into(),
    })
}

/// `POST /oauth2/token`
#[utoipa::path(
    post,
    path = "/oauth2/token",
    tag = "openid-connect",
    summary = "Exchange an authorization code (RFC 6749 4.1.3, PKCE S256)",
    description = "Form-encoded. The client authenticates with HTTP Basic \
        (`client_secret_basic`) or with `client_id` and `client_secret` in the form \
        (`client_secret_post`), not both. A code works once, within 60 s, for its client, \
        `redirect_uri` and `code_verifier`; a reused code revokes the access token issued \
        for it. Refusals are RFC 6749 JSON (`error`, `error_description`); rate limits and \
        outages are problem documents.",
    request_body(content = super::schemas::TokenForm, content_type = "application/x-www-form-urlencoded"),
    security(("client_basic" = []), ()),
    responses(
        (status = 200, description = "The tokens", body = crate::oidc::TokenAnswer),
        (status = 400, description = "`invalid_request`, `invalid_grant` or `unsupported_grant_type`",
            body = super::error::OAuthErrorBody),
        (status = 401, description = "`invalid_client`", body = super::error::OAuthErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"scanlogin\"`"))),
        (status = 429, description = "`rate_limited` (per client; failed authentication per \
            client and source IP)"),
        (status = 503, description = "`unavailable`"),
    )
)]
pub async fn token(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthReply> {
    let form_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        )
        .into());
    }
    let mut form: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(&body).take(32) {
        if form.iter().any(|(seen, _)| *seen == k) {
            return Err(OAuthError::invalid_request(format!(
                "parameter {k} is given more than once"
            ))
            .into());
        }
        form.push((k.into_owned(), v.into_owned()));
    }
    let take = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let form_id = take("client_id");
    let form_secret = take("client_secret");
    let (id, secret) = match (basic(&req)?, form_id, form_secret) {
        (Some(_), _, Some(_)) => {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not Basic and client_secret both",
            )
            .into());
        }
        (Some((id, _)), Some(fid), None) if fid != id => {
            return Err(OAuthError::invalid_request(
                "client_id differs from the Basic credentials",
            )
            .into());
        }
        (Some(pair), _, None) => pair,
        (None, Some(id), Some(secret)) => (id, secret),
        (None, id, _) => {
            let ip = ClientAddr::of(&req).0;
            let id = id.unwrap_or_default();
            let known = state.settings.load().client(&id).is_some();
            state.limits.load().auth_allowed(&id, known, ip)?;
            state.limits.load().auth_failed(&id, known, ip);
            return Err(OAuthError::InvalidClient(
                "client authentication is required (client_secret_basic or client_secret_post)",
            )
            .into());
        }
    };
    let client = authenticate(&req, &state, &id, &secret)?;
    state.limits.load().redeems.check(&client.client_id)?;
    let request = TokenRequest {
        grant_type: take("grant_type"),
        code: take("code"),
        redirect_uri: take("redirect_uri"),
        code_verifier: take("code_verifier"),
    };
    let answer = state.oidc.token(&client, request).await;
    crate::telemetry::metrics::client_login(&client.client_id, "oidc", answer.is_ok());
    let answer = answer?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(answer))
}

/// `GET /oauth2/userinfo` with `Authorization: Bearer <access_token>`
#[utoipa::path(
    get,
    path = "/oauth2/userinfo",
    tag = "openid-connect",
    summary = "The claims of an access token's user",
    security(("access_token" = [])),
    responses(
        (status = 200, description = "The claims", body = super::schemas::UserInfo),
        (status = 401, description = "`invalid_token` (unknown, expired or revoked), or \
            `invalid_request` without a token", body = super::error::OAuthErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"scanlogin\"`, \
                with `error` when a token was given"))),
        (status = 429, description = "`rate_limited` (per client IP)"),
        (status = 503, description = "`unavailable`"),
    )
)]
pub async fn userinfo(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthReply> {
    answer_userinfo(&req, &state).await
}

/// `POST /oauth2/userinfo`: as `GET` (OpenID Connect Core 5.3.1 allows
/// both). Its own operation, as OpenAPI needs a unique `operationId`.
#[utoipa::path(
    post,
    path = "/oauth2/userinfo",
    operation_id = "userinfo_post",
    tag = "openid-connect",
    summary = "The claims of an access token's user (as GET)",
    security(("access_token" = [])),
    responses(
        (status = 200, description = "The claims", body = super::schemas::UserInfo),
        (status = 401, description = "`invalid_token` (unknown, expired or revoked), or \
            `invalid_request` without a token", body = super::error::OAuthErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"scanlogin\"`, \
                with `error` when a token was given"))),
        (status = 429, description = "`rate_limited` (per client IP)"),
        (status = 503, description = "`unavailable`"),
    )
)]
pub async fn userinfo_post(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthReply> {
    answer_userinfo(&req, &state).await
}

/// The claims of the request's bearer token.
async fn answer_userinfo(req: &HttpRequest, state: &AppState) -> Result<HttpResponse, OAuthReply> {
    let token = Bearer::parse(req.headers());
    let claims = state
        .oidc
        .userinfo(token.as_ref().map(|Bearer(t)| t.as_str()))
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type(ContentType::json())
        .body(claims))
}

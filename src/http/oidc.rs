//! OpenID Connect endpoints (thin: the work is in `crate::oidc`): discovery,
//! the authorize page and its completion, token, userinfo and JWKS.

use actix_web::http::header::{self, ContentType};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::json;
use url::form_urlencoded;
use utoipa::ToSchema;

use super::browser::origin;
use super::client_ip::client_ip;
use crate::config::ClientSettings;
use crate::http::error::ApiError;
use crate::keys::random_token;
use crate::oidc::{AuthorizeRefusal, Completion, OAuthError, PendingAuthorization, TokenRequest};
use crate::state::AppState;

/// The authorize page's template.
const PAGE: &str = include_str!("../../web/authorize.html");
/// Largest token request body.
pub const MAX_FORM: usize = 8 * 1024;

/// Registers the OpenID Connect routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/.well-known/openid-configuration").get(discovery))
        .service(web::resource("/oauth2/authorize").get(authorize))
        .service(web::resource("/oauth2/authorize/complete").post(complete))
        .service(
            web::resource("/oauth2/token")
                .app_data(web::PayloadConfig::new(MAX_FORM))
                .post(token),
        )
        .service(
            web::resource("/oauth2/userinfo")
                .get(userinfo)
                .post(userinfo),
        )
        .service(web::resource("/oauth2/jwks").get(jwks));
}

/// `GET /.well-known/openid-configuration`
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    tag = "openid-connect",
    summary = "OpenID Connect discovery",
    responses(
        (status = 200, description = "The provider's metadata", body = crate::oidc::Discovery),
        (status = 429, description = "`rate_limited` (per client IP)"),
    )
)]
pub async fn discovery(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(state.oidc.discovery())
}

/// `GET /oauth2/jwks`
#[utoipa::path(
    get,
    path = "/oauth2/jwks",
    tag = "openid-connect",
    summary = "The public keys that sign ID tokens (RFC 7517)",
    responses(
        (status = 200, description = "The JWK set", body = super::openapi::Jwks),
        (status = 429, description = "`rate_limited` (per client IP)"),
        (status = 503, description = "`unavailable`"),
    )
)]
pub async fn jwks(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let set = state.oidc.jwks().await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(set))
}

/// The person's language: `en` when the browser prefers English over
/// Chinese, else `zh-CN`.
fn language(req: &HttpRequest) -> Lang {
    let Some(accept) = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
    else {
        return Lang::Zh;
    };
    let mut best: Option<(f32, Lang)> = None;
    for part in accept.split(',').take(32) {
        let mut bits = part.split(';');
        let tag = bits.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = bits
            .find_map(|b| b.trim().strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let lang = if tag == "en" || tag.starts_with("en-") {
            Lang::En
        } else if tag == "zh" || tag.starts_with("zh-") {
            Lang::Zh
        } else {
            continue;
        };
        if best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, lang));
        }
    }
    best.map_or(Lang::Zh, |(_, l)| l)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lang {
    Zh,
    En,
}

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

/// Escapes text for HTML content and attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Headers every hub page carries: no framing, no caching, no referrer.
fn page_headers(res: &mut actix_web::HttpResponseBuilder, csp: &str) {
    res.insert_header((header::CONTENT_SECURITY_POLICY, csp.to_owned()))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
}

/// The page that shows the code for the client.
fn page(state: &AppState, p: &PendingAuthorization, lang: Lang) -> HttpResponse {
    let hub = crate::oidc::issuer(&state.settings);
    let hub_origin = state
        .settings
        .server
        .public_url
        .origin()
        .ascii_serialization();
    let ws_origin = hub_origin.replacen("http", "ws", 1);
    let back_to = url::Url::parse(&p.redirect_uri)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let name = &p.client_name;
    let (html_lang, title, heading, explain, where_, text) = match lang {
        Lang::Zh => (
            "zh-CN",
            format!("登录 {name}"),
            format!("用微信登录 {name}"),
            format!("请用微信扫描下方的小程序码，并在手机上确认。确认后你将回到 {name}。"),
            format!("登录完成后返回：{back_to}"),
            json!({
                "confirmed": "登录成功，正在返回…",
                "cancelled": "你已在手机上取消登录，正在返回…",
                "failed": "无法完成登录：",
            }),
        ),
        Lang::En => (
            "en",
            format!("Log in to {name}"),
            format!("Log in to {name} with WeChat"),
            format!(
                "Scan the code below with WeChat and confirm on your phone. You will then return to {name}."
            ),
            format!("After logging in you return to: {back_to}"),
            json!({
                "confirmed": "Logged in, returning…",
                "cancelled": "You cancelled on the phone, returning…",
                "failed": "The login could not be finished:",
            }),
        ),
    };
    let data = json!({
        "hub": hub,
        "client_id": p.client_id,
        "lang": html_lang,
        "handle": p.handle,
        "text": text,
    })
    .to_string()
    // Inside <script>: no "</script>" or "<!--" can appear.
    .replace('<', "\\u003c");
    let nonce = random_token();
    let body = PAGE
        .replace("{{lang}}", html_lang)
        .replace("{{title}}", &escape(&title))
        .replace("{{heading}}", &escape(&heading))
        .replace("{{explain}}", &escape(&explain))
        .replace("{{where}}", &escape(&where_))
        .replace("{{hub}}", &escape(&hub))
        .replace("{{nonce}}", &nonce)
        .replace("{{data}}", &data);
    // Scripts and styles run only with this response's nonce (the widget
    // gives its own <style> the nonce of the script tag that loaded it).
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         img-src 'self' {hub_origin} https: data:; connect-src 'self' {hub_origin} {ws_origin}; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    let mut res = HttpResponse::Ok();
    page_headers(&mut res, &csp);
    res.content_type(ContentType::html()).body(body)
}

/// 400: the client or its redirect URI is not known good, so the browser
/// is not sent anywhere.
fn refusal_page(why: &str, lang: Lang) -> HttpResponse {
    let (html_lang, title, lead) = match lang {
        Lang::Zh => ("zh-CN", "无法登录", "这个登录请求有误，无法继续："),
        Lang::En => ("en", "Cannot log in", "This login request is not valid:"),
    };
    let body = format!(
        "<!doctype html>\n<html lang=\"{html_lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title></head><body><main><h1>{title}</h1><p>{lead} {}</p></main></body></html>\n",
        escape(why)
    );
    let mut res = HttpResponse::BadRequest();
    page_headers(
        &mut res,
        "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    );
    res.content_type(ContentType::html()).body(body)
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
    let own = state
        .settings
        .server
        .public_url
        .origin()
        .ascii_serialization();
    if let Some(o) = origin(req.headers())?.filter(|o| *o != own) {
        return Err(ApiError::OriginNotAllowed(o.to_owned()));
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

/// `(client_id, client_secret)` from `Authorization: Basic`, if sent.
fn basic(req: &HttpRequest) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    const BAD: OAuthError = OAuthError::InvalidClient("malformed Basic credentials");
    let text = value.to_str().map_err(|_| BAD)?;
    let Some(encoded) = text
        .strip_prefix("Basic ")
        .or_else(|| text.strip_prefix("basic "))
    else {
        return Err(OAuthError::InvalidClient(
            "only Basic client authentication is accepted here",
        ));
    };
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| BAD)?;
    let text = String::from_utf8(decoded).map_err(|_| BAD)?;
    let (id, secret) = text.split_once(':').ok_or(BAD)?;
    Ok(Some((form_decode(id), form_decode(secret))))
}

/// Checks the client's credentials as the ticket API does (failures
/// throttled per client and source IP), answering OAuth's `invalid_client`.
fn authenticate<'a>(
    req: &HttpRequest,
    state: &'a AppState,
    client_id: &str,
    secret: &str,
) -> Result<&'a ClientSettings, OAuthError> {
    super::site::authenticate(req, state, client_id, secret).map_err(|e| match e {
        ApiError::Unauthorized(_) => OAuthError::InvalidClient("client authentication failed"),
        other => OAuthError::Api(other),
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
    request_body(content = super::openapi::TokenForm, content_type = "application/x-www-form-urlencoded"),
    security(("client_basic" = []), ()),
    responses(
        (status = 200, description = "The tokens", body = crate::oidc::TokenAnswer),
        (status = 400, description = "`invalid_request`, `invalid_grant` or `unsupported_grant_type`",
            body = crate::oidc::OAuthErrorBody),
        (status = 401, description = "`invalid_client`", body = crate::oidc::OAuthErrorBody,
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
) -> Result<HttpResponse, OAuthError> {
    let form_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let mut form: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(&body).take(32) {
        if form.iter().any(|(seen, _)| *seen == k) {
            return Err(OAuthError::invalid_request(format!(
                "parameter {k} is given more than once"
            )));
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
            ));
        }
        (Some((id, _)), Some(fid), None) if fid != id => {
            return Err(OAuthError::invalid_request(
                "client_id differs from the Basic credentials",
            ));
        }
        (Some(pair), _, None) => pair,
        (None, Some(id), Some(secret)) => (id, secret),
        (None, id, _) => {
            let ip = client_ip(&req, &state.settings.server.trusted_proxies);
            let id = id.unwrap_or_default();
            let known = state.settings.client(&id).is_some();
            state
                .limits
                .auth_allowed(&id, known, ip)
                .map_err(ApiError::from)?;
            state.limits.auth_failed(&id, known, ip);
            return Err(OAuthError::InvalidClient(
                "client authentication is required (client_secret_basic or client_secret_post)",
            ));
        }
    };
    let client = authenticate(&req, &state, &id, &secret)?;
    state
        .limits
        .redeems
        .check(&client.client_id)
        .map_err(ApiError::from)?;
    let request = TokenRequest {
        grant_type: take("grant_type"),
        code: take("code"),
        redirect_uri: take("redirect_uri"),
        code_verifier: take("code_verifier"),
    };
    let answer = state.oidc.token(client, request).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(answer))
}

/// `GET|POST /oauth2/userinfo` with `Authorization: Bearer <access_token>`
#[utoipa::path(
    method(get, post),
    path = "/oauth2/userinfo",
    tag = "openid-connect",
    summary = "The claims of an access token's user",
    security(("access_token" = [])),
    responses(
        (status = 200, description = "The claims", body = super::openapi::UserInfo),
        (status = 401, description = "`invalid_token` (unknown, expired or revoked), or \
            `invalid_request` without a token", body = crate::oidc::OAuthErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"scanlogin\"`, \
                with `error` when a token was given"))),
        (status = 429, description = "`rate_limited` (per client IP)"),
        (status = 503, description = "`unavailable`"),
    )
)]
pub async fn userinfo(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let claims = state.oidc.userinfo(token).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type(ContentType::json())
        .body(claims))
}

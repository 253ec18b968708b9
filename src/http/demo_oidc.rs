//! Demo only (simulator mode): a tiny OpenID Connect relying party for the
//! `demo` client, so `cargo run --release` shows the whole OIDC flow. `GET
//! /demo/oidc` sends the browser to the hub's authorize page with PKCE S256,
//! `state` and `nonce`; `GET /demo/oidc/callback` checks `state` and `iss`,
//! exchanges the code as the demo site's backend would, verifies the ID token
//! against the JWKS (RS256, `iss`, `aud`, `nonce`) and shows its claims and
//! userinfo. A real site uses a stock OIDC library instead (README).

use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::oidc::escape;
use crate::config::{DEMO_CLIENT, DEMO_OIDC_CALLBACK as CALLBACK_PATH};
use crate::error::{Chain, Fault};
use crate::http::error::ApiError;
use crate::keys::random_token;
use crate::live::ClientRef;
use crate::oidc::TokenRequest;
use crate::state::AppState;

/// Logins started and not yet back, at most.
const MAX_PENDING: usize = 1_000;
/// How long a started login may take.
const PENDING_FOR: Duration = Duration::from_secs(600);

/// A started login: its PKCE verifier and nonce, by `state`.
#[derive(Default)]
pub struct DemoRp {
    pending: DashMap<String, (String, String, Instant)>,
}

fn callback_url(state: &AppState) -> String {
    format!(
        "{}{CALLBACK_PATH}",
        state
            .settings
            .load()
            .server
            .public_url
            .as_str()
            .trim_end_matches('/')
    )
}

/// `GET /demo/oidc`: starts a login as a relying party would.
pub async fn start(
    state: web::Data<AppState>,
    rp: web::Data<DemoRp>,
) -> Result<HttpResponse, ApiError> {
    rp.pending
        .retain(|_, (_, _, started)| started.elapsed() < PENDING_FOR);
    if rp.pending.len() >= MAX_PENDING {
        return Err(ApiError::RateLimited(60));
    }
    let (login_state, nonce, verifier) = (random_token(), random_token(), random_token());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let mut to = url::Url::parse(&format!("{}/oauth2/authorize", state.oidc.issuer()))
        .map_err(|e| ApiError::from(Fault::internal("the issuer is not a URL").because(e)))?;
    to.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", DEMO_CLIENT)
        .append_pair("redirect_uri", &callback_url(&state))
        .append_pair("scope", "openid profile")
        .append_pair("state", &login_state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    rp.pending
        .insert(login_state, (verifier, nonce, Instant::now()));
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, to.to_string()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// What the hub's redirect carries.
#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

/// `GET /demo/oidc/callback`: finishes the login and shows what the site got.
pub async fn callback(
    state: web::Data<AppState>,
    rp: web::Data<DemoRp>,
    query: web::Query<Callback>,
) -> HttpResponse {
    match finish(&state, &rp, query.into_inner()).await {
        Ok(body) => page("Logged in with OpenID Connect", &body),
        Err(why) => page(
            "The login did not complete",
            &format!("<p>{}</p>", escape(&why)),
        ),
    }
}

async fn finish(state: &AppState, rp: &DemoRp, q: Callback) -> Result<String, String> {
    let (verifier, nonce, _) = q
        .state
        .and_then(|s| rp.pending.remove(&s))
        .map(|(_, v)| v)
        .ok_or("unknown or used state: start again from the demo page")?;
    if q.iss.as_deref() != Some(state.oidc.issuer().as_str()) {
        return Err("the iss parameter is not this hub's issuer".into());
    }
    if let Some(error) = q.error {
        return Err(format!("the hub answered error={error}"));
    }
    let code = q.code.ok_or("no code in the redirect")?;
    let client = ClientRef::find(state.settings.get(), DEMO_CLIENT)
        .ok_or("the demo client is not configured")?;
    let tokens = state
        .oidc
        .token(
            &client,
            TokenRequest {
                grant_type: Some("authorization_code".into()),
                code: Some(code),
                redirect_uri: Some(callback_url(state)),
                code_verifier: Some(verifier),
            },
        )
        .await
        .map_err(|e| format!("token endpoint: {e}"))?;
    let claims = verify(state, &tokens.id_token, &nonce).await?;
    let userinfo = state
        .oidc
        .userinfo(Some(&tokens.access_token))
        .await
        .map_err(|e| format!("userinfo: {e}"))?;
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let userinfo: serde_json::Value = serde_json::from_str(&userinfo).unwrap_or_default();
    Ok(format!(
        "<p>The demo site's backend exchanged the code (PKCE S256), verified the ID \
         token's RS256 signature against <code>/oauth2/jwks</code> and its <code>iss</code>, \
         <code>aud</code> and <code>nonce</code>, then called <code>/oauth2/userinfo</code>.</p>\
         <h2>ID token claims</h2><pre id=\"claims\">{}</pre>\
         <h2>userinfo</h2><pre id=\"userinfo\">{}</pre>",
        escape(&pretty(&claims)),
        escape(&pretty(&userinfo)),
    ))
}

/// The ID token's claims, once its signature, issuer, audience and nonce check.
async fn verify(
    state: &AppState,
    id_token: &str,
    nonce: &str,
) -> Result<serde_json::Value, String> {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let kid = jsonwebtoken::decode_header(id_token)
        .map_err(|e| format!("ID token header: {e}"))?
        .kid
        .ok_or("ID token without kid")?;
    let jwks = state
        .oidc
        .jwks()
        .await
        .map_err(|e| format!("JWKS: {}", Chain(&e)))?;
    let jwk = jwks
        .find(&kid)
        .ok_or("the ID token's kid is not in the JWKS")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("JWK: {e}"))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[DEMO_CLIENT]);
    validation.set_issuer(&[state.oidc.issuer()]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(id_token, &key, &validation)
        .map_err(|e| format!("ID token does not verify: {e}"))?
        .claims;
    if claims["nonce"] != nonce {
        return Err("the ID token's nonce is not the one sent".into());
    }
    Ok(claims)
}

fn page(title: &str, body: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ))
        .body(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{t}</title><style>body{{font:16px/1.5 system-ui,sans-serif;max-width:760px;\
             margin:40px auto;padding:0 16px}}pre{{background:#f6f3ee;padding:12px;\
             border-radius:8px;overflow:auto}}</style></head><body>\
             <p><strong>Demo</strong> · a tiny OpenID Connect relying party served by the hub \
             in simulator mode.</p><h1>{t}</h1>{body}<p><a href=\"/\">Back to the demo shop</a> · \
             <a href=\"/demo/oidc\">Log in again</a></p></body></html>",
            t = escape(title),
        ))
}

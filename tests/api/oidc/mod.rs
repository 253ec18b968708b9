//! The OpenID Connect provider (docs/api.md "OpenID Connect provider"): discovery,
//! JWKS, the authorize page and its completion, the token endpoint's error
//! answers, userinfo, code reuse, key rotation. The stock relying-party
//! library's end-to-end login in Chromium is in web/tests/oidc.test.js.

mod authorize;
mod keys;
mod limits;
mod tokens;

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::Response;
use reqwest::header::{CONTENT_TYPE, LOCATION};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{
    CLIENT_ID, CLIENT_SECRET, PUBLIC_URL, TestApp, WAIT, ok_json, spawn_app_with, unique,
};

pub(crate) const REDIRECT: &str = "https://site.test/callback";

pub(crate) async fn oidc_app() -> TestApp {
    spawn_app_with(|c| c.redirect_uris = vec![REDIRECT.into(), "http://127.0.0.1/cb".into()]).await
}

/// A client that shows redirects instead of following them.
fn no_follow() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(WAIT)
        .build()
        .expect("HTTP client")
}

pub(crate) struct Pkce {
    pub(crate) verifier: String,
    pub(crate) challenge: String,
}

pub(crate) fn pkce() -> Pkce {
    let verifier = format!("{}-{}", unique("verifier"), "x".repeat(40));
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

/// A good authorization request's parameters.
pub(crate) fn params(p: &Pkce, state: &str, nonce: &str) -> Vec<(String, String)> {
    [
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile"),
        ("state", state),
        ("nonce", nonce),
        ("code_challenge", &p.challenge),
        ("code_challenge_method", "S256"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn with(mut ps: Vec<(String, String)>, key: &str, value: Option<&str>) -> Vec<(String, String)> {
    ps.retain(|(k, _)| k != key);
    if let Some(v) = value {
        ps.push((key.to_owned(), v.to_owned()));
    }
    ps
}

pub(crate) async fn authorize(app: &TestApp, ps: &[(String, String)]) -> Response {
    no_follow()
        .get(app.url("/oauth2/authorize"))
        .query(ps)
        .header("Accept-Language", "en-US,en;q=0.9")
        .send()
        .await
        .expect("GET authorize")
}

/// The query of a URL as a map.
fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .expect("URL")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The JSON the authorize page hands its script.
pub(crate) async fn page_data(res: Response) -> (Value, String, String) {
    assert_eq!(res.status(), 200);
    let csp = res
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let html = res.text().await.expect("page");
    let start = html
        .find(r#"<script type="application/json" id="authorize-data">"#)
        .expect("data block");
    let rest = &html[start..];
    let json_start = rest.find('>').expect("tag end") + 1;
    let json_end = rest.find("</script>").expect("data end");
    let data: Value = serde_json::from_str(&rest[json_start..json_end]).expect("data JSON");
    (data, csp, html)
}

/// Asserts a redirect back to `REDIRECT`; returns its query.
fn redirected(res: &Response) -> HashMap<String, String> {
    assert_eq!(res.status(), 302, "expected a redirect");
    let to = res
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("Location");
    assert!(to.starts_with(REDIRECT), "{to}");
    query(to)
}

/// The hub's whole page flow as a browser and a phone play it; returns the
/// redirect's query and the confirming user's id.
pub(crate) async fn login(
    app: &TestApp,
    ps: &[(String, String)],
) -> (HashMap<String, String>, String) {
    login_as(app, ps, &unique("openid")).await
}

/// [`login`] by the WeChat user `openid`.
pub(crate) async fn login_as(
    app: &TestApp,
    ps: &[(String, String)],
    openid: &str,
) -> (HashMap<String, String>, String) {
    let (data, _, _) = page_data(authorize(app, ps).await).await;
    assert_eq!(data["client_id"], CLIENT_ID);
    // The widget on the hub's own page makes the scene from the hub's origin.
    let res = app
        .post_scene(
            &json!({"client_id": CLIENT_ID, "authorize_handle": data["handle"]}),
            Some(PUBLIC_URL),
        )
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("scene");
    let scene = crate::helpers::Scene {
        id: body["scene_id"].as_str().expect("id").to_owned(),
        browser_token: body["browser_token"].as_str().expect("token").to_owned(),
        body,
    };
    let mp_token = app.scanned(&scene.id, &app.login_code(openid)).await;
    let confirmed = ok_json(
        app.confirm(&json!({"scene_id": scene.id, "mp_token": mp_token,
            "profile": {"nickname": "Alice", "avatar_url": "https://img.test/a.png"}}))
            .await,
    )
    .await;
    let user_id = confirmed["user_id"].as_str().expect("user_id").to_owned();
    let event = ok_json(app.events(&scene, None, 0).await).await;
    let ticket = event["ticket"].as_str().expect("ticket");
    let done = complete(app, &json!({"handle": data["handle"], "ticket": ticket})).await;
    let to = ok_json(done).await["redirect_to"]
        .as_str()
        .expect("redirect_to")
        .to_owned();
    assert!(to.starts_with(REDIRECT), "{to}");
    (query(&to), user_id)
}

pub(crate) async fn complete(app: &TestApp, body: &Value) -> Response {
    app.http
        .post(app.url("/oauth2/authorize/complete"))
        .header("Origin", PUBLIC_URL)
        .json(body)
        .send()
        .await
        .expect("POST complete")
}

/// `POST /oauth2/token` with this form, by Basic when `basic` is given.
pub(crate) async fn token(
    app: &TestApp,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> Response {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut req = app
        .http
        .post(app.url("/oauth2/token"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    req.send().await.expect("POST token")
}

pub(crate) async fn exchange(app: &TestApp, code: &str, p: &Pkce) -> Response {
    token(
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &p.verifier),
        ],
        Some((CLIENT_ID, CLIENT_SECRET)),
    )
    .await
}

/// Asserts an RFC 6749 error answer.
async fn oauth_error(res: Response, status: u16, error: &str) -> Value {
    assert_eq!(res.status().as_u16(), status);
    assert_eq!(
        res.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let body: Value = res.json().await.expect("JSON error");
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    body
}

async fn userinfo(app: &TestApp, access_token: &str) -> Response {
    app.http
        .get(app.url("/oauth2/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .expect("GET userinfo")
}

async fn jwks(app: &TestApp) -> JwkSet {
    app.http
        .get(app.url("/oauth2/jwks"))
        .send()
        .await
        .expect("GET jwks")
        .json()
        .await
        .expect("JWKS")
}

/// Verifies an ID token against the hub's JWKS; returns its claims.
async fn verify(app: &TestApp, id_token: &str) -> Value {
    verify_for(app, id_token, CLIENT_ID).await
}

/// Verifies `id_token` with the hub's JWKS (RS256, `kid`, `iss`) for the
/// audience `aud`; its claims.
pub(crate) async fn verify_for(app: &TestApp, id_token: &str, aud: &str) -> Value {
    let header = jsonwebtoken::decode_header(id_token).expect("JWT header");
    assert_eq!(header.alg, Algorithm::RS256);
    let kid = header.kid.expect("kid");
    let set = jwks(app).await;
    let jwk = set.find(&kid).expect("the kid is in the JWKS");
    let key = DecodingKey::from_jwk(jwk).expect("RSA key");
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[aud]);
    v.set_issuer(&[PUBLIC_URL]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(id_token, &key, &v)
        .expect("ID token verifies")
        .claims
}

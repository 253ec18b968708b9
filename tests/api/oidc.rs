//! The OpenID Connect provider (SPEC "OpenID Connect provider"): discovery,
//! JWKS, the authorize page and its completion, the token endpoint's error
//! answers, userinfo, code reuse, key rotation. The stock relying-party
//! library's end-to-end login in Chromium is in web/tests/oidc.test.js.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::Response;
use reqwest::header::{CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{
    CLIENT_ID, CLIENT_SECRET, OTHER_CLIENT_ID, OTHER_CLIENT_SECRET, PUBLIC_URL, TestApp, WAIT,
    assert_problem, ok_json, spawn_app_with, unique,
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
    let (data, _, _) = page_data(authorize(app, ps).await).await;
    assert_eq!(data["client_id"], CLIENT_ID);
    // The widget on the hub's own page makes the scene from the hub's origin.
    let res = app
        .post_scene(&json!({"client_id": CLIENT_ID}), Some(PUBLIC_URL))
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("scene");
    let scene = crate::helpers::Scene {
        id: body["scene_id"].as_str().expect("id").to_owned(),
        browser_token: body["browser_token"].as_str().expect("token").to_owned(),
        body,
    };
    let openid = unique("openid");
    let mp_token = app.scanned(&scene.id, &app.login_code(&openid)).await;
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

#[tokio::test]
async fn discovery_lists_the_endpoints_and_capabilities() {
    let app = oidc_app().await;
    let d = ok_json(
        app.http
            .get(app.url("/.well-known/openid-configuration"))
            .send()
            .await
            .expect("GET discovery"),
    )
    .await;
    assert_eq!(d["issuer"], PUBLIC_URL);
    for (field, path) in [
        ("authorization_endpoint", "/oauth2/authorize"),
        ("token_endpoint", "/oauth2/token"),
        ("userinfo_endpoint", "/oauth2/userinfo"),
        ("jwks_uri", "/oauth2/jwks"),
    ] {
        assert_eq!(d[field], format!("{PUBLIC_URL}{path}"), "{field}");
    }
    assert_eq!(d["response_types_supported"], json!(["code"]));
    assert_eq!(d["grant_types_supported"], json!(["authorization_code"]));
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        d["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(d["id_token_signing_alg_values_supported"], json!(["RS256"]));
    assert_eq!(d["scopes_supported"], json!(["openid", "profile", "phone"]));
    assert_eq!(d["subject_types_supported"], json!(["public"]));
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
}

#[tokio::test]
async fn jwks_publishes_public_rsa_keys_only() {
    let app = oidc_app().await;
    let raw = ok_json(
        app.http
            .get(app.url("/oauth2/jwks"))
            .send()
            .await
            .expect("jwks"),
    )
    .await;
    let keys = raw["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1, "{raw}");
    let k = &keys[0];
    assert_eq!(k["kty"], "RSA");
    assert_eq!(k["alg"], "RS256");
    assert_eq!(k["use"], "sig");
    assert!(k["kid"].as_str().is_some_and(|s| !s.is_empty()), "{k}");
    let n = URL_SAFE_NO_PAD
        .decode(k["n"].as_str().expect("n"))
        .expect("n");
    assert!(n.len() >= 256, "modulus of {} bytes", n.len());
    assert_eq!(k["e"], "AQAB");
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        assert!(k.get(private).is_none(), "{private} published: {k}");
    }
}

#[tokio::test]
async fn a_login_gives_a_verified_id_token_and_userinfo() {
    let app = oidc_app().await;
    let p = pkce();
    let res = authorize(&app, &params(&p, "st-1", "n-1")).await;
    let (_, csp, html) = page_data(res).await;
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("'unsafe-eval'"), "{csp}");
    assert!(html.contains("Test site"), "the page names the client");
    assert!(
        html.contains("<html lang=\"en\">"),
        "English for an English browser"
    );
    let (q, user_id) = login(&app, &params(&p, "st-1", "n-1")).await;
    assert_eq!(q["state"], "st-1");
    assert_eq!(q["iss"], PUBLIC_URL);
    let answer = ok_json(exchange(&app, &q["code"], &p).await).await;
    assert_eq!(answer["token_type"], "Bearer");
    assert!(
        answer["expires_in"]
            .as_i64()
            .is_some_and(|s| (1..=3600).contains(&s))
    );
    assert_eq!(answer["scope"], "openid profile");
    let claims = verify(&app, answer["id_token"].as_str().expect("id_token")).await;
    assert_eq!(claims["sub"], user_id.as_str());
    assert_eq!(claims["aud"], CLIENT_ID);
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(claims["name"], "Alice");
    assert_eq!(claims["picture"], "https://img.test/a.png");
    let (iat, exp, auth_time) = (
        claims["iat"].as_i64().expect("iat"),
        claims["exp"].as_i64().expect("exp"),
        claims["auth_time"].as_i64().expect("auth_time"),
    );
    assert!(exp > iat && auth_time <= iat, "{claims}");
    let info = ok_json(userinfo(&app, answer["access_token"].as_str().expect("at")).await).await;
    assert_eq!(info["sub"], user_id.as_str());
    assert_eq!(info["name"], "Alice");
    // The same sub as the ticket API would give: the redeem's user.id.
    assert!(!user_id.is_empty());
}

#[tokio::test]
async fn the_page_follows_the_browsers_language() {
    let app = oidc_app().await;
    let p = pkce();
    for (accept, lang) in [
        (None, "zh-CN"),
        (Some("zh-CN,zh;q=0.9,en;q=0.8"), "zh-CN"),
        (Some("en-GB,en;q=0.9"), "en"),
        (Some("fr-FR,en;q=0.5,zh;q=0.4"), "en"),
    ] {
        let mut req = no_follow()
            .get(app.url("/oauth2/authorize"))
            .query(&params(&p, "s", "n"));
        if let Some(a) = accept {
            req = req.header("Accept-Language", a);
        }
        let html = req.send().await.expect("page").text().await.expect("html");
        assert!(
            html.contains(&format!("<html lang=\"{lang}\">")),
            "{accept:?}"
        );
    }
}

#[tokio::test]
async fn an_unknown_client_or_redirect_uri_gets_a_page_and_no_redirect() {
    let app = oidc_app().await;
    let p = pkce();
    let good = params(&p, "s", "n");
    for ps in [
        with(good.clone(), "client_id", Some("nobody")),
        with(good.clone(), "client_id", None),
        // A client without redirect_uris cannot use OpenID Connect.
        with(good.clone(), "client_id", Some(OTHER_CLIENT_ID)),
        with(
            good.clone(),
            "redirect_uri",
            Some("https://site.test/callback/"),
        ),
        with(
            good.clone(),
            "redirect_uri",
            Some("https://evil.test/callback"),
        ),
        with(good.clone(), "redirect_uri", None),
    ] {
        let res = authorize(&app, &ps).await;
        assert_eq!(res.status(), 400, "{ps:?}");
        assert!(res.headers().get(LOCATION).is_none(), "{ps:?}");
        let ct = res
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        assert!(ct.is_some_and(|c| c.starts_with("text/html")), "{ct:?}");
        assert!(res.headers().get("content-security-policy").is_some());
    }
}

#[tokio::test]
async fn other_mistakes_redirect_with_error_state_and_iss() {
    let app = oidc_app().await;
    let p = pkce();
    let good = params(&p, "keep-me", "n");
    let cases = [
        (
            with(good.clone(), "response_type", Some("token")),
            "unsupported_response_type",
        ),
        (with(good.clone(), "response_type", None), "invalid_request"),
        (
            with(good.clone(), "scope", Some("profile")),
            "invalid_scope",
        ),
        (with(good.clone(), "scope", None), "invalid_scope"),
        (
            with(good.clone(), "code_challenge", None),
            "invalid_request",
        ),
        (
            with(good.clone(), "code_challenge_method", None),
            "invalid_request",
        ),
        (
            with(good.clone(), "code_challenge_method", Some("plain")),
            "invalid_request",
        ),
        (
            with(good.clone(), "code_challenge", Some("short")),
            "invalid_request",
        ),
        (with(good.clone(), "prompt", Some("none")), "login_required"),
    ];
    for (ps, error) in cases {
        let q = redirected(&authorize(&app, &ps).await);
        assert_eq!(q.get("error").map(String::as_str), Some(error), "{ps:?}");
        assert_eq!(
            q.get("state").map(String::as_str),
            Some("keep-me"),
            "{ps:?}"
        );
        assert_eq!(q.get("iss").map(String::as_str), Some(PUBLIC_URL), "{ps:?}");
    }
    // A repeated parameter is invalid_request too.
    let mut twice = good.clone();
    twice.push(("scope".into(), "openid".into()));
    let q = redirected(&authorize(&app, &twice).await);
    assert_eq!(q["error"], "invalid_request");
}

#[tokio::test]
async fn cancelling_on_the_phone_sends_access_denied_back() {
    let app = oidc_app().await;
    let p = pkce();
    let (data, _, _) = page_data(authorize(&app, &params(&p, "st-c", "n")).await).await;
    let to = ok_json(complete(&app, &json!({"handle": data["handle"], "cancelled": true})).await)
        .await["redirect_to"]
        .as_str()
        .expect("redirect_to")
        .to_owned();
    let q = query(&to);
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "st-c");
    assert_eq!(q["iss"], PUBLIC_URL);
    assert!(!q.contains_key("code"));
    // The request is over: the handle does not work again.
    let again = complete(&app, &json!({"handle": data["handle"], "cancelled": true})).await;
    assert_problem(again, 400, "invalid_request").await;
}

#[tokio::test]
async fn the_hub_origin_makes_scenes_only_for_openid_clients() {
    let app = oidc_app().await;
    let res = app
        .post_scene(&json!({"client_id": OTHER_CLIENT_ID}), Some(PUBLIC_URL))
        .await;
    assert_problem(res, 403, "origin_not_allowed").await;
    let res = app
        .post_scene(&json!({"client_id": CLIENT_ID}), Some(PUBLIC_URL))
        .await;
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn a_wrong_verifier_a_wrong_redirect_or_another_client_is_invalid_grant() {
    let app = oidc_app().await;
    let p = pkce();
    let (q, _) = login(&app, &params(&p, "s", "n")).await;
    let code = q["code"].as_str();
    let other = pkce();
    oauth_error(exchange(&app, code, &other).await, 400, "invalid_grant").await;
    let wrong_redirect = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", "http://127.0.0.1/cb"),
            ("code_verifier", &p.verifier),
        ],
        Some((CLIENT_ID, CLIENT_SECRET)),
    )
    .await;
    oauth_error(wrong_redirect, 400, "invalid_grant").await;
    let other_client = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &p.verifier),
        ],
        Some((OTHER_CLIENT_ID, OTHER_CLIENT_SECRET)),
    )
    .await;
    oauth_error(other_client, 400, "invalid_grant").await;
    let unknown = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", "no-such-code"),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &p.verifier),
        ],
        Some((CLIENT_ID, CLIENT_SECRET)),
    )
    .await;
    oauth_error(unknown, 400, "invalid_grant").await;
}

#[tokio::test]
async fn a_reused_code_revokes_the_access_token() {
    let app = oidc_app().await;
    let p = pkce();
    let (q, _) = login(&app, &params(&p, "s", "n")).await;
    let first = ok_json(exchange(&app, &q["code"], &p).await).await;
    let access = first["access_token"].as_str().expect("access_token");
    ok_json(userinfo(&app, access).await).await;
    oauth_error(exchange(&app, &q["code"], &p).await, 400, "invalid_grant").await;
    let res = userinfo(&app, access).await;
    assert_eq!(res.status(), 401);
    let challenge = res
        .headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok());
    assert!(
        challenge.is_some_and(|c| c.starts_with("Bearer")),
        "{challenge:?}"
    );
}

#[tokio::test]
async fn an_expired_code_is_invalid_grant() {
    let app = oidc_app().await;
    let p = pkce();
    let (q, _) = login(&app, &params(&p, "s", "n")).await;
    let db = sea_orm::Database::connect(&app.db_url).await.expect("db");
    db.execute_unprepared("UPDATE oidc_grants SET code_expires_at = 1")
        .await
        .expect("age the code");
    let _ = db.close().await;
    oauth_error(exchange(&app, &q["code"], &p).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn client_authentication_errors() {
    let app = oidc_app().await;
    let p = pkce();
    let (q, _) = login(&app, &params(&p, "s", "n")).await;
    let code = q["code"].as_str();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", p.verifier.as_str()),
    ];
    // Wrong secret by Basic: 401 with a Basic challenge.
    let res = token(&app, &form, Some((CLIENT_ID, "wrong-secret"))).await;
    let challenge = res
        .headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert!(challenge.is_some_and(|c| c.starts_with("Basic")));
    oauth_error(res, 401, "invalid_client").await;
    // Wrong secret in the form.
    let mut by_form = form.to_vec();
    by_form.extend([("client_id", CLIENT_ID), ("client_secret", "wrong-secret")]);
    oauth_error(token(&app, &by_form, None).await, 401, "invalid_client").await;
    // Unknown client, no authentication at all.
    oauth_error(
        token(&app, &form, Some(("nobody", "x"))).await,
        401,
        "invalid_client",
    )
    .await;
    oauth_error(token(&app, &form, None).await, 401, "invalid_client").await;
    // Both methods at once.
    let mut both = form.to_vec();
    both.push(("client_secret", CLIENT_SECRET));
    oauth_error(
        token(&app, &both, Some((CLIENT_ID, CLIENT_SECRET))).await,
        400,
        "invalid_request",
    )
    .await;
    // Another grant type, a missing verifier.
    let refresh = [("grant_type", "refresh_token"), ("refresh_token", "x")];
    oauth_error(
        token(&app, &refresh, Some((CLIENT_ID, CLIENT_SECRET))).await,
        400,
        "unsupported_grant_type",
    )
    .await;
    let no_verifier = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
    ];
    oauth_error(
        token(&app, &no_verifier, Some((CLIENT_ID, CLIENT_SECRET))).await,
        400,
        "invalid_request",
    )
    .await;
    // None of the failures used the code: the right secret by form works.
    let mut good = form.to_vec();
    good.extend([("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)]);
    let answer = ok_json(token(&app, &good, None).await).await;
    assert!(answer["id_token"].is_string());
}

#[tokio::test]
async fn userinfo_refuses_a_bad_bearer_token() {
    let app = oidc_app().await;
    let res = userinfo(&app, "not-a-token").await;
    assert_eq!(res.status(), 401);
    let challenge = res
        .headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok());
    assert!(
        challenge.is_some_and(|c| c.starts_with("Bearer") && c.contains("invalid_token")),
        "{challenge:?}"
    );
    let res = app
        .http
        .get(app.url("/oauth2/userinfo"))
        .send()
        .await
        .expect("userinfo");
    assert_eq!(res.status(), 401);
    let challenge = res
        .headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok());
    assert!(
        challenge.is_some_and(|c| c.starts_with("Bearer")),
        "{challenge:?}"
    );
}

#[tokio::test]
async fn rotation_keeps_old_tokens_verifiable() {
    let app = oidc_app().await;
    let p = pkce();
    let (q, _) = login(&app, &params(&p, "s", "n")).await;
    let old = ok_json(exchange(&app, &q["code"], &p).await).await;
    let old_token = old["id_token"].as_str().expect("id_token").to_owned();
    let old_kid = jsonwebtoken::decode_header(&old_token).expect("header").kid;

    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, &app.config_toml).expect("write config");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scanlogin"))
        .arg("--config")
        .arg(&config)
        .arg("rotate-keys")
        .env_remove("RUST_LOG")
        .output();
    let out = tokio::time::timeout(WAIT * 3, out)
        .await
        .expect("rotate-keys finishes")
        .expect("rotate-keys runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let set = jwks(&app).await;
    assert_eq!(set.keys.len(), 2, "old and new key are published");
    let p2 = pkce();
    let (q2, _) = login(&app, &params(&p2, "s", "n")).await;
    let new = ok_json(exchange(&app, &q2["code"], &p2).await).await;
    let new_token = new["id_token"].as_str().expect("id_token");
    let new_kid = jsonwebtoken::decode_header(new_token).expect("header").kid;
    assert_ne!(old_kid, new_kid, "the new key signs");
    verify(&app, &old_token).await;
    verify(&app, new_token).await;
}

#[tokio::test]
async fn the_signing_key_is_sealed_at_rest() {
    let app = oidc_app().await;
    let db = sea_orm::Database::connect(&app.db_url).await.expect("db");
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT kid, private_key FROM oidc_keys",
        ))
        .await
        .expect("read keys");
    let _ = db.close().await;
    assert_eq!(rows.len(), 1, "one key made on first start");
    let sealed: String = rows[0].try_get_by_index(1).expect("private_key");
    assert!(sealed.starts_with("v1."), "sealed format");
    assert!(!sealed.contains("PRIVATE KEY"), "no PEM in the database");
}

/// Two nodes starting at once on one fresh PostgreSQL database end up with
/// one signing key, which both publish and use.
#[tokio::test]
async fn nodes_starting_together_share_one_key() {
    let Ok(admin_url) = std::env::var(crate::helpers::POSTGRES_ENV) else {
        println!("skipped: {} not set", crate::helpers::POSTGRES_ENV);
        return;
    };
    let name = format!("oidc_{}", uuid::Uuid::new_v4().simple());
    let admin = sea_orm::Database::connect(&admin_url)
        .await
        .expect("connect to PostgreSQL");
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create database");
    let mut url = url::Url::parse(&admin_url).expect("URL");
    url.set_path(&format!("/{name}"));
    let toml = format!(
        r#"
        [server]
        bind = "127.0.0.1:0"
        secret_key = "oidc-cluster-test-key-0123456789abcdef"
        [database]
        url = "{url}"
        max_connections = 4
        [wechat]
        mode = "simulator"
        [log]
        level = "warn"
        [[apps]]
        app_id = "wxoidc"
        secret = "oidc-app-secret"
        [[clients]]
        client_id = "shop"
        name = "Shop"
        client_secret = "shop-client-secret-123"
        redirect_uris = ["https://shop.test/cb"]
        "#
    );
    let settings = || scanlogin::Settings::from_sources(&toml, Vec::new()).expect("settings");
    let (a, b) = tokio::join!(
        scanlogin::Application::build(settings()),
        scanlogin::Application::build(settings())
    );
    let (a, b) = (a.expect("node A"), b.expect("node B"));
    let ports = [a.port(), b.port()];
    let stops = [a.shutdown_token(), b.shutdown_token()];
    let tasks = [
        tokio::spawn(a.run_until_stopped()),
        tokio::spawn(b.run_until_stopped()),
    ];
    let http = reqwest::Client::new();
    let mut kids = Vec::new();
    for port in ports {
        let set: Value = http
            .get(format!("http://127.0.0.1:{port}/oauth2/jwks"))
            .send()
            .await
            .expect("jwks")
            .json()
            .await
            .expect("JSON");
        let keys = set["keys"].as_array().expect("keys").clone();
        assert_eq!(keys.len(), 1, "{set}");
        kids.push(keys[0]["kid"].clone());
    }
    assert_eq!(kids[0], kids[1], "both nodes publish the same key");
    for stop in stops {
        stop.cancel();
    }
    for task in tasks {
        let _ = tokio::time::timeout(WAIT, task).await;
    }
    let _ = admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await;
    let _ = admin.close().await;
}

#[tokio::test]
async fn malformed_requests_get_clear_answers_and_change_nothing() {
    let app = oidc_app().await;
    // The page's completion: unknown handle, neither ticket nor cancel,
    // not JSON, a foreign Origin.
    let res = complete(&app, &json!({"handle": "nope", "cancelled": true})).await;
    assert_problem(res, 400, "invalid_request").await;
    let p = pkce();
    let (data, _, _) = page_data(authorize(&app, &params(&p, "s", "n")).await).await;
    let res = complete(&app, &json!({"handle": data["handle"]})).await;
    assert_problem(res, 400, "invalid_request").await;
    let res = complete(
        &app,
        &json!({"handle": data["handle"], "ticket": "forged.ticket"}),
    )
    .await;
    assert_problem(res, 400, "invalid_ticket").await;
    let res = app
        .http
        .post(app.url("/oauth2/authorize/complete"))
        .header("Origin", "https://evil.test")
        .json(&json!({"handle": data["handle"], "cancelled": true}))
        .send()
        .await
        .expect("POST complete");
    assert_problem(res, 403, "origin_not_allowed").await;
    let res = app
        .http
        .post(app.url("/oauth2/authorize/complete"))
        .header(CONTENT_TYPE, "text/plain")
        .body("handle")
        .send()
        .await
        .expect("POST complete");
    assert_eq!(res.status(), 415);
    // None of that ended the request: cancelling it still works once.
    let res = complete(&app, &json!({"handle": data["handle"], "cancelled": true})).await;
    assert_eq!(res.status(), 200);

    // The token endpoint: JSON instead of a form, a repeated parameter, a
    // body over 8 KiB.
    let res = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .json(&json!({"grant_type": "authorization_code"}))
        .send()
        .await
        .expect("POST token");
    oauth_error(res, 400, "invalid_request").await;
    let twice = [
        ("grant_type", "authorization_code"),
        ("code", "a"),
        ("code", "b"),
    ];
    oauth_error(
        token(&app, &twice, Some((CLIENT_ID, CLIENT_SECRET))).await,
        400,
        "invalid_request",
    )
    .await;
    let big = "x".repeat(9 * 1024);
    let res = token(
        &app,
        &[("code", big.as_str())],
        Some((CLIENT_ID, CLIENT_SECRET)),
    )
    .await;
    assert_eq!(res.status(), 413);
}

/// A client with `phone = true` gets the phone claims with scope `phone`.
#[tokio::test]
async fn the_phone_scope_gives_a_phone_clients_verified_number() {
    const PHONE_CLIENT: &str = "phone-site";
    const PHONE_SECRET: &str = "phone-site-secret-0123456789";
    let app = spawn_app_with(|c| {
        c.settings(|s| {
            s.clients.push(scanlogin::config::ClientSettings {
                phone: true,
                redirect_uris: vec![REDIRECT.into()],
                ..crate::helpers::client(PHONE_CLIENT, "Phone site", PHONE_SECRET)
            });
        });
    })
    .await;
    let p = pkce();
    let ps = with(
        with(params(&p, "s", "n"), "client_id", Some(PHONE_CLIENT)),
        "scope",
        Some("openid phone"),
    );
    let (data, _, _) = page_data(authorize(&app, &ps).await).await;
    let res = app
        .post_scene(&json!({"client_id": PHONE_CLIENT}), Some(PUBLIC_URL))
        .await;
    let body: Value = res.json().await.expect("scene");
    let scene = crate::helpers::Scene {
        id: body["scene_id"].as_str().expect("id").to_owned(),
        browser_token: body["browser_token"].as_str().expect("token").to_owned(),
        body,
    };
    let mp_token = app
        .scanned(&scene.id, &app.login_code(&unique("openid")))
        .await;
    app.fake.add_phone_code("oidc-pc-1", "13912345678");
    ok_json(
        app.confirm(
            &json!({"scene_id": scene.id, "mp_token": mp_token, "phone_code": "oidc-pc-1"}),
        )
        .await,
    )
    .await;
    let ticket = ok_json(app.events(&scene, None, 0).await).await["ticket"]
        .as_str()
        .expect("ticket")
        .to_owned();
    let to = ok_json(complete(&app, &json!({"handle": data["handle"], "ticket": ticket})).await)
        .await["redirect_to"]
        .as_str()
        .expect("redirect_to")
        .to_owned();
    let code = query(&to)["code"].clone();
    let answer = ok_json(
        token(
            &app,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &p.verifier),
            ],
            Some((PHONE_CLIENT, PHONE_SECRET)),
        )
        .await,
    )
    .await;
    assert_eq!(answer["scope"], "openid phone");
    let id_token = answer["id_token"].as_str().expect("id_token");
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(id_token)
        .expect("claims")
        .claims;
    assert_eq!(claims["phone_number"], "13912345678");
    assert_eq!(claims["phone_number_verified"], true);
    assert!(claims.get("name").is_none(), "no profile scope: {claims}");
    let info =
        ok_json(userinfo(&app, answer["access_token"].as_str().expect("access_token")).await).await;
    assert_eq!(info["phone_number"], "13912345678");
}

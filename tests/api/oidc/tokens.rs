//! The token endpoint and userinfo: refused grants, code reuse and
//! expiry, client authentication, bearer tokens, the phone scope.

use reqwest::header::WWW_AUTHENTICATE;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::helpers::{
    CLIENT_ID, CLIENT_SECRET, OTHER_CLIENT_ID, OTHER_CLIENT_SECRET, PUBLIC_URL, ok_json,
    spawn_app_with, unique,
};

use super::{
    REDIRECT, authorize, complete, exchange, login, oauth_error, oidc_app, page_data, params, pkce,
    query, token, userinfo, with,
};

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
        .post_scene(
            &json!({"client_id": PHONE_CLIENT, "authorize_handle": data["handle"]}),
            Some(PUBLIC_URL),
        )
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

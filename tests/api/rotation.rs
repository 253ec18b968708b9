//! Rolling a client secret (SPEC v3 "Reload and rotation"): during a
//! rotation a client's `previous_client_secret` is accepted beside its
//! `client_secret` wherever the client authenticates (ticket redeem by HTTP
//! Basic, the token endpoint by `client_secret_basic` and
//! `client_secret_post`); any other secret is refused, and only a secret
//! matching neither counts as a failed authentication.

use serde_json::{Value, json};

use crate::helpers::{
    CLIENT_ID, CLIENT_SECRET, OTHER_CLIENT_SECRET, TestApp, assert_problem, ok_json, spawn_app_with,
};
use crate::oidc::{REDIRECT, login, params, pkce, token};

const PREVIOUS_SECRET: &str = "site-previous-secret-0123456789";

/// A hub whose test client is mid-rotation, allowing `failures` failed
/// authentications a minute.
async fn rotating_app(failures: u32) -> TestApp {
    spawn_app_with(move |c| {
        c.redirect_uris = vec![REDIRECT.into()];
        c.rate_limit.auth_failures_per_minute = failures;
        c.settings(|s| {
            s.clients[0].previous_client_secret = Some(PREVIOUS_SECRET.into());
        });
    })
    .await
}

/// A confirmed scene's ticket.
async fn ticket(app: &TestApp) -> String {
    let scene = app.create_scene().await;
    let code = app.login_code(&crate::helpers::unique("o_rot"));
    ok_json(
        app.confirm(&json!({"scene_id": scene.id, "code": code}))
            .await,
    )
    .await;
    let event = ok_json(app.events(&scene, None, 0).await).await;
    event["ticket"].as_str().expect("ticket").to_owned()
}

#[tokio::test]
async fn redeem_accepts_the_new_and_the_previous_secret_and_nothing_else() {
    let app = rotating_app(2).await;
    // More successes with the previous secret than failures are allowed:
    // none of them counts as a failure.
    for _ in 0..3 {
        let t = ticket(&app).await;
        let body = ok_json(app.redeem_as(CLIENT_ID, PREVIOUS_SECRET, &t).await).await;
        assert_eq!(body["client_id"], CLIENT_ID);
    }
    let t = ticket(&app).await;
    for wrong in ["site-previous-secret-012345678", OTHER_CLIENT_SECRET] {
        let res = app.redeem_as(CLIENT_ID, wrong, &t).await;
        assert_problem(res, 401, "unauthorized").await;
    }
    // Two failures: the third attempt from this address is throttled,
    // whatever the secret.
    let res = app.redeem_as(CLIENT_ID, CLIENT_SECRET, &t).await;
    assert_eq!(res.status(), 429, "failures are still counted");
}

#[tokio::test]
async fn redeem_refuses_every_other_secret_and_the_ticket_survives() {
    let app = rotating_app(100).await;
    let t = ticket(&app).await;
    for wrong in [
        "site-previous-secret-012345678",
        "site-previous-secret-01234567890",
        OTHER_CLIENT_SECRET,
        "",
    ] {
        let res = app.redeem_as(CLIENT_ID, wrong, &t).await;
        assert_problem(res, 401, "unauthorized").await;
    }
    // Another client's id with this client's previous secret.
    let res = app
        .redeem_as(crate::helpers::OTHER_CLIENT_ID, PREVIOUS_SECRET, &t)
        .await;
    assert_problem(res, 401, "unauthorized").await;
    let body = ok_json(app.redeem_as(CLIENT_ID, CLIENT_SECRET, &t).await).await;
    assert_eq!(body["client_id"], CLIENT_ID);
}

/// Exchanges a fresh code authenticating with `secret`, by Basic or in the
/// form; the response.
async fn exchange_with(app: &TestApp, secret: &str, basic: bool) -> reqwest::Response {
    let p = pkce();
    let (q, _) = login(app, &params(&p, "s", "n")).await;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", q["code"].as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", p.verifier.as_str()),
    ];
    if basic {
        token(app, &form, Some((CLIENT_ID, secret))).await
    } else {
        form.extend([("client_id", CLIENT_ID), ("client_secret", secret)]);
        token(app, &form, None).await
    }
}

#[tokio::test]
async fn the_token_endpoint_accepts_the_new_and_the_previous_secret_both_ways() {
    let app = rotating_app(100).await;
    for basic in [true, false] {
        for secret in [CLIENT_SECRET, PREVIOUS_SECRET] {
            let answer = ok_json(exchange_with(&app, secret, basic).await).await;
            assert!(answer["id_token"].is_string(), "{answer}");
        }
        for wrong in ["site-previous-secret-012345678", OTHER_CLIENT_SECRET] {
            let res = exchange_with(&app, wrong, basic).await;
            assert_eq!(res.status(), 401, "basic: {basic}");
            let body: Value = res.json().await.expect("JSON error");
            assert_eq!(body["error"], "invalid_client", "{body}");
        }
    }
}

//! Consent and binding (SPEC v3): an authorize page completes only with the
//! ticket of the scene it showed; a used code revokes tokens only when its
//! own client presents it; an mp/login ID token names its app in `azp`.

use std::collections::HashMap;

use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::{
    APP_ID, CLIENT_ID, CLIENT_SECRET, OTHER_CLIENT_ID, OTHER_CLIENT_SECRET, PUBLIC_URL, Scene,
    TestApp, assert_problem, ok_json, spawn_app_with, unique,
};
use crate::oidc::{REDIRECT, authorize, complete, page_data, params, pkce, token};

const OTHER_REDIRECT: &str = "https://other.test/callback";

/// A hub where both test clients use OpenID Connect.
async fn two_oidc_clients() -> TestApp {
    spawn_app_with(|c| {
        c.redirect_uris = vec![REDIRECT.into()];
        c.settings(|s| {
            if let Some(other) = s
                .clients
                .iter_mut()
                .find(|c| c.client_id == OTHER_CLIENT_ID)
            {
                other.redirect_uris = vec![OTHER_REDIRECT.into()];
            }
        });
    })
    .await
}

fn scene_of(body: Value) -> Scene {
    Scene {
        id: body["scene_id"].as_str().expect("scene_id").to_owned(),
        browser_token: body["browser_token"].as_str().expect("token").to_owned(),
        body,
    }
}

/// A scene of the test client from the hub's own page (with `handle`, as
/// the authorize page's widget makes it, or without).
async fn page_scene(app: &TestApp, handle: Option<&Value>) -> Scene {
    let mut body = json!({"client_id": CLIENT_ID});
    if let Some(h) = handle {
        body["authorize_handle"] = h.clone();
    }
    let res = app.post_scene(&body, Some(PUBLIC_URL)).await;
    assert_eq!(res.status(), 201);
    scene_of(res.json().await.expect("scene"))
}

/// Scans and confirms the scene as a new person; its ticket.
async fn confirmed_ticket(app: &TestApp, scene: &Scene) -> String {
    let code = app.login_code(&unique("openid"));
    ok_json(
        app.confirm(&json!({"scene_id": scene.id, "code": code}))
            .await,
    )
    .await;
    let event = ok_json(app.events(scene, None, 0).await).await;
    event["ticket"].as_str().expect("ticket").to_owned()
}

fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .expect("URL")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn userinfo(app: &TestApp, access_token: &str) -> Response {
    app.http
        .get(app.url("/oauth2/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .expect("GET userinfo")
}

#[tokio::test]
async fn an_authorize_page_completes_only_with_the_scene_it_showed() {
    let app = two_oidc_clients().await;
    let p = pkce();
    let (data, _, _) = page_data(authorize(&app, &params(&p, "st", "n")).await).await;
    let handle = &data["handle"];
    let shown = page_scene(&app, Some(handle)).await;
    // Another scene of the same client, confirmed by someone: its ticket
    // is refused by this page, and nothing changes.
    let stray = page_scene(&app, None).await;
    let stray_ticket = confirmed_ticket(&app, &stray).await;
    let res = complete(&app, &json!({"handle": handle, "ticket": stray_ticket})).await;
    assert_problem(res, 400, "invalid_ticket").await;
    // The stray ticket was not used up...
    let redeemed = ok_json(app.redeem(&stray_ticket).await).await;
    assert_eq!(redeemed["scene_id"], stray.id.as_str(), "{redeemed}");
    // ...and the page still completes with its own scene's ticket.
    let ticket = confirmed_ticket(&app, &shown).await;
    let done = ok_json(complete(&app, &json!({"handle": handle, "ticket": ticket})).await).await;
    let to = done["redirect_to"].as_str().expect("redirect_to");
    assert!(to.starts_with(REDIRECT), "{to}");
    assert!(query_of(to).contains_key("code"), "{to}");
}

#[tokio::test]
async fn a_refreshed_code_replaces_the_scene_the_page_shows() {
    let app = two_oidc_clients().await;
    let p = pkce();
    let (data, _, _) = page_data(authorize(&app, &params(&p, "st", "n")).await).await;
    let handle = &data["handle"];
    let first = page_scene(&app, Some(handle)).await;
    let second = page_scene(&app, Some(handle)).await;
    let first_ticket = confirmed_ticket(&app, &first).await;
    let res = complete(&app, &json!({"handle": handle, "ticket": first_ticket})).await;
    assert_problem(res, 400, "invalid_ticket").await;
    let ticket = confirmed_ticket(&app, &second).await;
    ok_json(complete(&app, &json!({"handle": handle, "ticket": ticket})).await).await;
}

#[tokio::test]
async fn a_scene_names_only_a_pending_page_of_its_own_client() {
    let app = two_oidc_clients().await;
    let p = pkce();
    let (data, _, _) = page_data(authorize(&app, &params(&p, "st", "n")).await).await;
    let res = app
        .post_scene(
            &json!({"client_id": CLIENT_ID, "authorize_handle": "not-a-handle"}),
            Some(PUBLIC_URL),
        )
        .await;
    assert_problem(res, 400, "invalid_request").await;
    // The page belongs to CLIENT_ID: another client cannot attach a scene.
    let res = app
        .post_scene(
            &json!({"client_id": OTHER_CLIENT_ID, "authorize_handle": data["handle"]}),
            Some(PUBLIC_URL),
        )
        .await;
    assert_problem(res, 400, "invalid_request").await;
}

#[tokio::test]
async fn another_client_presenting_a_used_code_revokes_nothing() {
    let app = two_oidc_clients().await;
    let p = pkce();
    let (data, _, _) = page_data(authorize(&app, &params(&p, "st", "n")).await).await;
    let scene = page_scene(&app, Some(&data["handle"])).await;
    let ticket = confirmed_ticket(&app, &scene).await;
    let done =
        ok_json(complete(&app, &json!({"handle": data["handle"], "ticket": ticket})).await).await;
    let code = query_of(done["redirect_to"].as_str().expect("redirect_to"))["code"].clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", p.verifier.as_str()),
    ];
    let tokens = ok_json(token(&app, &form, Some((CLIENT_ID, CLIENT_SECRET))).await).await;
    let access = tokens["access_token"].as_str().expect("access_token");
    assert_eq!(userinfo(&app, access).await.status(), 200);
    // Another (authenticated) client presents the used code: refused, and
    // the site's token keeps working.
    let other_form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", OTHER_REDIRECT),
        ("code_verifier", p.verifier.as_str()),
    ];
    let res = token(
        &app,
        &other_form,
        Some((OTHER_CLIENT_ID, OTHER_CLIENT_SECRET)),
    )
    .await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert_eq!(userinfo(&app, access).await.status(), 200);
    // Its own client presenting it again still revokes (a stolen code).
    let res = token(&app, &form, Some((CLIENT_ID, CLIENT_SECRET))).await;
    assert_eq!(res.status(), 400);
    assert_eq!(userinfo(&app, access).await.status(), 401);
}

#[tokio::test]
async fn an_mp_login_id_token_names_its_app_as_azp() {
    let app = spawn_app_with(|_| {}).await;
    let code = app.login_code(&unique("o"));
    let body = ok_json(
        app.post_json("/api/v1/mp/login", &json!({"code": code}))
            .await,
    )
    .await;
    let claims =
        crate::oidc::verify_for(&app, body["id_token"].as_str().expect("id_token"), APP_ID).await;
    assert_eq!(claims["aud"], APP_ID);
    assert_eq!(claims["azp"], APP_ID, "{claims}");
}

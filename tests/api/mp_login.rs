//! `POST /api/v1/mp/login`: a login inside the mini-program gives the same
//! `user_id` as a website login of the same person, and an ID token the
//! mini-program's backend verifies with the hub's JWKS (`aud` = app id).

use serde_json::{Value, json};

use crate::helpers::fake_wechat::{Api, Fault};
use crate::helpers::{
    APP_ID, TestApp, assert_problem, ok_json, session_key, spawn_app, spawn_app_with, unique,
};

async fn mp_login(app: &TestApp, body: Value) -> reqwest::Response {
    app.post_json("/api/v1/mp/login", &body).await
}

#[tokio::test]
async fn the_mini_program_and_the_website_see_one_user() {
    let app = spawn_app().await;
    let openid = unique("o");
    // The person logs in on a website first...
    let scene = app.create_scene().await;
    let res = app
        .confirm(&json!({"scene_id": scene.id, "code": app.login_code(&openid)}))
        .await;
    let web_user = ok_json(res).await["user_id"]
        .as_str()
        .expect("user_id")
        .to_owned();
    // ...then opens the mini-program itself.
    let body = ok_json(mp_login(&app, json!({"code": app.login_code(&openid)})).await).await;
    assert_eq!(body["user_id"], web_user.as_str());
    let expires_in = body["expires_in"].as_i64().expect("expires_in");
    assert!((60..=3600).contains(&expires_in), "{body}");
    let claims =
        crate::oidc::verify_for(&app, body["id_token"].as_str().expect("id_token"), APP_ID).await;
    // `expires_in` is the ID token's own lifetime.
    let lifetime = claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat");
    assert_eq!(expires_in, lifetime, "{claims}");
    assert_eq!(claims["sub"], web_user.as_str());
    assert_eq!(claims["aud"], APP_ID);
    // A first-time person in the mini-program is a new user the website
    // then knows.
    let newcomer = unique("o");
    let first = ok_json(mp_login(&app, json!({"code": app.login_code(&newcomer)})).await).await;
    assert_ne!(first["user_id"], web_user.as_str());
    let scene = app.create_scene().await;
    let res = app
        .confirm(&json!({"scene_id": scene.id, "code": app.login_code(&newcomer)}))
        .await;
    assert_eq!(ok_json(res).await["user_id"], first["user_id"]);
}

#[tokio::test]
async fn a_retried_code_gets_the_same_answer_and_works_nowhere_else() {
    let app = spawn_app().await;
    let code = app.login_code(&unique("o"));
    let once = ok_json(mp_login(&app, json!({"code": code})).await).await;
    let again = ok_json(mp_login(&app, json!({"code": code})).await).await;
    assert_eq!(once["user_id"], again["user_id"]);
    assert_eq!(app.fake.calls(Api::CodeToSession), 1, "WeChat asked once");
    // The same code cannot also scan a scene.
    let scene = app.create_scene().await;
    assert_problem(app.scan(&scene.id, &code).await, 400, "invalid_request").await;
}

#[tokio::test]
async fn unionid_joins_the_mini_program_login_to_another_apps_user() {
    let second = "wxtest0000000002";
    let app = spawn_app_with(|cfg| {
        cfg.apps.push((second.into(), "second-app-secret".into()));
    })
    .await;
    let unionid = unique("u");
    let code_a = unique("code");
    app.fake.add_code_for(
        APP_ID,
        &code_a,
        &unique("oA"),
        Some(&unionid),
        &session_key(),
    );
    let code_b = unique("code");
    app.fake.add_code_for(
        second,
        &code_b,
        &unique("oB"),
        Some(&unionid),
        &session_key(),
    );
    let a = ok_json(mp_login(&app, json!({"code": code_a})).await).await;
    let b = ok_json(mp_login(&app, json!({"code": code_b, "app_id": second})).await).await;
    assert_eq!(a["user_id"], b["user_id"]);
    let claims =
        crate::oidc::verify_for(&app, b["id_token"].as_str().expect("id_token"), second).await;
    assert_eq!(claims["unionid"], unionid.as_str());
}

#[tokio::test]
async fn bad_logins_are_problems() {
    let app = spawn_app().await;
    assert_problem(mp_login(&app, json!({})).await, 400, "invalid_request").await;
    assert_problem(
        mp_login(&app, json!({"code": ""})).await,
        400,
        "invalid_request",
    )
    .await;
    assert_problem(
        mp_login(&app, json!({"code": "c".repeat(300)})).await,
        400,
        "invalid_request",
    )
    .await;
    assert_problem(
        mp_login(&app, json!({"code": "x", "app_id": "wxnope"})).await,
        400,
        "invalid_request",
    )
    .await;
    // WeChat refuses a code it never issued.
    let res = mp_login(&app, json!({"code": unique("never-issued")})).await;
    let problem = assert_problem(res, 502, "wechat_error").await;
    assert_eq!(problem["errcode"], 40029);
    // WeChat busy: still a problem, and nothing is remembered.
    let code = app.login_code(&unique("o"));
    app.fake
        .fail_next(Api::CodeToSession, Fault::Errcode(-1, "system busy"));
    assert_problem(
        mp_login(&app, json!({"code": code})).await,
        502,
        "wechat_error",
    )
    .await;
    assert_eq!(mp_login(&app, json!({"code": code})).await.status(), 200);
}

#[tokio::test]
async fn logins_inside_the_mini_program_are_throttled() {
    let app = spawn_app_with(|cfg| cfg.rate_limit.mp_per_minute = 3).await;
    for _ in 0..3 {
        let res = mp_login(&app, json!({"code": app.login_code(&unique("o"))})).await;
        assert_eq!(res.status(), 200);
    }
    let res = mp_login(&app, json!({"code": app.login_code(&unique("o"))})).await;
    assert_problem(res, 429, "rate_limited").await;
}

//! `/sim/api/*` (the simulated phone's calls, the hub's own kind of
//! endpoint) refuses bad input with RFC 9457 problems, not `{"errmsg"}`;
//! `/sim/wechat/*` (WeChat's API as the hub's client calls it) keeps
//! WeChat's JSON errors.

use serde_json::{Value, json};

use crate::helpers::{assert_problem, ok_json, spawn_app_with};

#[tokio::test]
async fn the_simulated_phone_refuses_bad_input_with_problems() {
    let app = spawn_app_with(|c| c.simulator = true).await;
    let long = "x".repeat(65);
    for path in ["/sim/api/login", "/sim/api/phone", "/sim/api/userinfo"] {
        for user in ["", "   ", long.as_str()] {
            let res = app.post_json(path, &json!({"user": user})).await;
            let body = assert_problem(res, 400, "invalid_request").await;
            assert!(body.get("errmsg").is_none(), "{path}: {body}");
        }
        let res = app
            .post_json(path, &json!({"user": "alice", "app_id": "wxnosuchapp"}))
            .await;
        assert_problem(res, 400, "invalid_request").await;
    }
    let res = app
        .post_json(
            "/sim/api/quota",
            &json!({"app_id": "wxnosuchapp", "calls": 1}),
        )
        .await;
    assert_problem(res, 400, "invalid_request").await;
    let res = app
        .post_json("/sim/api/quota", &json!({"calls": 101}))
        .await;
    assert_problem(res, 400, "invalid_request").await;
    // A person who never logged in has no session to make a profile with.
    let res = app
        .post_json("/sim/api/userinfo", &json!({"user": "nobody-yet"}))
        .await;
    assert_problem(res, 404, "invalid_request").await;
    // With a session the profile comes (the 404 was about the person).
    ok_json(
        app.post_json("/sim/api/login", &json!({"user": "nobody-yet"}))
            .await,
    )
    .await;
    let info = ok_json(
        app.post_json("/sim/api/userinfo", &json!({"user": "nobody-yet"}))
            .await,
    )
    .await;
    assert!(info["encrypted_data"].is_string(), "{info}");
}

#[tokio::test]
async fn the_simulated_wechat_api_keeps_wechats_errors() {
    let app = spawn_app_with(|c| c.simulator = true).await;
    let res = app
        .http
        .get(app.url(
            "/sim/wechat/sns/jscode2session?appid=wxnosuchapp&secret=x&js_code=y&grant_type=authorization_code",
        ))
        .send()
        .await
        .expect("jscode2session");
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("application/json")),
        "{res:?}"
    );
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(body["errcode"], 40013, "{body}");
    let res = app
        .post_json(
            "/sim/wechat/cgi-bin/stable_token",
            &json!({"grant_type": "nope"}),
        )
        .await;
    assert_eq!(ok_json(res).await["errcode"], 40002);
}

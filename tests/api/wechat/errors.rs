//! WeChat failing: every error is a 502 `wechat_error` with WeChat's
//! `errcode`/`errmsg`, nothing changes, and a token error refreshes once.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::fake_wechat::{Api, Fault, fake_image};
use crate::helpers::{assert_problem, ok_json, session_key, spawn_app, unique};

#[tokio::test]
async fn code_image_errors_are_502_and_not_cached() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let cases = [
        (Fault::Errcode(-1, "system error"), -1),
        (
            Fault::Errcode(45009, "reach max api daily quota limit"),
            45009,
        ),
        (Fault::Errcode(41030, "invalid page"), 41030),
        (Fault::Garbage, -1),
    ];
    for (i, (fault, errcode)) in cases.into_iter().enumerate() {
        app.fake.fail_next(Api::CodeImage, fault);
        let body = assert_problem(app.qrcode(&scene.id).await, 502, "wechat_error").await;
        assert_eq!(body["errcode"], errcode, "{body}");
        assert!(body["errmsg"].is_string(), "{body}");
        assert_eq!(app.fake.calls(Api::CodeImage), i + 1);
    }
    // The failures were not cached: the next request asks again and succeeds.
    let res = app.qrcode(&scene.id).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert_eq!(
        res.bytes().await.expect("bytes").as_ref(),
        fake_image(&scene.id)
    );
    assert_eq!(app.fake.calls(Api::CodeImage), 5);
    assert_eq!(app.state_of(&scene).await, "waiting");
}

#[tokio::test]
async fn errmsg_is_passed_through() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    app.fake.fail_next(
        Api::CodeImage,
        Fault::Errcode(45009, "reach max api daily quota limit"),
    );
    let body = assert_problem(app.qrcode(&scene.id).await, 502, "wechat_error").await;
    assert_eq!(body["errcode"], 45009);
    assert_eq!(body["errmsg"], "reach max api daily quota limit");
}

#[tokio::test]
async fn code_image_timeout_is_502_within_the_timeout() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    app.fake
        .fail_next(Api::CodeImage, Fault::Delay(Duration::from_secs(12)));
    let started = Instant::now();
    let body = assert_problem(app.qrcode(&scene.id).await, 502, "wechat_error").await;
    let took = started.elapsed();
    // The 1.5 s timeout, not WeChat's 12 s (room for a loaded machine).
    assert!(took < Duration::from_secs(9), "{took:?}");
    assert!(body["errcode"].is_i64(), "{body}");
    assert!(body["errmsg"].is_string(), "{body}");
    assert_eq!(app.qrcode(&scene.id).await.status(), 200);
}

#[tokio::test]
async fn token_error_40001_refreshes_once_and_retries() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    app.fake.fail_next(
        Api::CodeImage,
        Fault::Errcode(
            40001,
            "invalid credential, access_token is invalid or not latest",
        ),
    );
    let res = app.qrcode(&scene.id).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert_eq!(
        res.bytes().await.expect("bytes").as_ref(),
        fake_image(&scene.id)
    );
    assert_eq!(app.fake.calls(Api::StableToken), 2, "token fetched again");
    assert_eq!(app.fake.calls(Api::CodeImage), 2, "call retried once");
    // Never by killing the token for everyone.
    for req in app.fake.token_requests() {
        assert_ne!(req["force_refresh"], true, "{req}");
    }
}

#[tokio::test]
async fn token_errors_twice_in_a_row_give_up_after_one_retry() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    app.fake.fail_next(
        Api::CodeImage,
        Fault::Errcode(42001, "access_token expired"),
    );
    app.fake.fail_next(
        Api::CodeImage,
        Fault::Errcode(40014, "invalid access_token"),
    );
    let body = assert_problem(app.qrcode(&scene.id).await, 502, "wechat_error").await;
    assert_eq!(body["errcode"], 40014);
    assert_eq!(app.fake.calls(Api::CodeImage), 2);
}

#[tokio::test]
async fn stable_token_failures_are_502() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    app.fake
        .fail_next(Api::StableToken, Fault::Errcode(40125, "invalid appsecret"));
    let body = assert_problem(app.qrcode(&scene.id).await, 502, "wechat_error").await;
    assert_eq!(body["errcode"], 40125);
    assert_eq!(app.fake.calls(Api::CodeImage), 0);
    app.fake.fail_next(Api::StableToken, Fault::Garbage);
    let body = assert_problem(app.qrcode(&scene.id).await, 502, "wechat_error").await;
    assert_eq!(body["errcode"], -1);
    assert_eq!(app.qrcode(&scene.id).await.status(), 200);
}

#[tokio::test]
async fn code_exchange_errors_are_502_and_change_nothing() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let mut ws = app.ws_connect(&scene).await;
    assert_eq!(ws.next_event().await["state"], "waiting");

    // 40029: a code WeChat does not know.
    let body = assert_problem(
        app.scan(&scene.id, "no-such-code").await,
        502,
        "wechat_error",
    )
    .await;
    assert_eq!(body["errcode"], 40029);
    assert!(body["errmsg"].is_string());
    let cases = [
        (Fault::Errcode(-1, "system error"), -1),
        (Fault::Errcode(45011, "api minute-quota reach limit"), 45011),
        (Fault::Garbage, -1),
        // A success without openid is a failure.
        (
            Fault::Json(r#"{"session_key": "AAAAAAAAAAAAAAAAAAAAAA=="}"#),
            -1,
        ),
    ];
    for (fault, errcode) in cases {
        app.fake.fail_next(Api::CodeToSession, fault);
        let code = app.login_code("o_unlucky");
        let body = assert_problem(app.scan(&scene.id, &code).await, 502, "wechat_error").await;
        assert_eq!(body["errcode"], errcode, "{body}");
        assert_eq!(app.state_of(&scene).await, "waiting");
    }
    // Confirm and cancel with a code fail the same way.
    app.fake
        .fail_next(Api::CodeToSession, Fault::Errcode(-1, "system error"));
    let code = app.login_code("o_unlucky");
    let res = app
        .confirm(&json!({"scene_id": scene.id, "code": code}))
        .await;
    assert_problem(res, 502, "wechat_error").await;
    app.fake
        .fail_next(Api::CodeToSession, Fault::Errcode(-1, "system error"));
    let code = app.login_code("o_unlucky");
    let res = app
        .cancel(&json!({"scene_id": scene.id, "code": code}))
        .await;
    assert_problem(res, 502, "wechat_error").await;
    assert_eq!(app.state_of(&scene).await, "waiting");

    // The browser heard nothing of all that; a good scan then works.
    let code = app.login_code("o_lucky");
    app.scanned(&scene.id, &code).await;
    assert_eq!(ws.next_event().await["state"], "scanned");
}

#[tokio::test]
async fn code_exchange_timeout_is_502_and_changes_nothing() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let mp_token = app.scanned(&scene.id, &app.login_code("o_patient")).await;
    app.fake
        .fail_next(Api::CodeToSession, Fault::Delay(Duration::from_secs(12)));
    let started = Instant::now();
    let code = app.login_code("o_patient");
    let res = app
        .confirm(&json!({"scene_id": scene.id, "code": code}))
        .await;
    let body = assert_problem(res, 502, "wechat_error").await;
    // The 1.5 s timeout, not WeChat's 12 s (room for a loaded machine).
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    assert!(body["errcode"].is_i64());
    assert_eq!(app.state_of(&scene).await, "scanned");
    ok_json(app.confirm_token(&scene.id, &mp_token).await).await;
}

#[tokio::test]
async fn a_failed_exchange_is_not_remembered() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let code = unique("code");
    app.fake.add_code(&code, "o_again", None, &session_key());
    app.fake
        .fail_next(Api::CodeToSession, Fault::Errcode(-1, "system error"));
    assert_problem(app.scan(&scene.id, &code).await, 502, "wechat_error").await;
    // WeChat was busy and did not spend the code: the retry asks again.
    let body = ok_json(app.scan(&scene.id, &code).await).await;
    assert_eq!(body["state"], "scanned");
    assert_eq!(app.fake.calls(Api::CodeToSession), 2);
}

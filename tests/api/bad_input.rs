//! Bad input: always an RFC 9457 problem with a stable code, never a 500,
//! never a change; and the rate limit.

use serde_json::json;

use crate::helpers::{CLIENT_ID, ORIGIN, assert_problem, ok_json, spawn_app, spawn_app_with};

#[tokio::test]
async fn malformed_json_and_wrong_types() {
    let app = spawn_app().await;
    for path in [
        "/api/v1/scenes",
        "/api/v1/mp/scan",
        "/api/v1/mp/confirm",
        "/api/v1/mp/cancel",
    ] {
        for body in ["{", "[]", "null", "{\"client_id\": 5}", "\u{0}\u{1}"] {
            let res = app
                .http
                .post(app.url(path))
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .expect("POST");
            assert_problem(res, 400, "invalid_request").await;
        }
    }
    let res = app
        .http
        .post(app.url("/api/v1/tickets/redeem"))
        .basic_auth(CLIENT_ID, Some(crate::helpers::CLIENT_SECRET))
        .header("Content-Type", "application/json")
        .body("{\"ticket\": ")
        .send()
        .await
        .expect("POST");
    assert_problem(res, 400, "invalid_request").await;
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = spawn_app().await;
    for (path, ctype) in [
        ("/api/v1/scenes", Some("text/plain")),
        ("/api/v1/scenes", Some("application/x-www-form-urlencoded")),
        ("/api/v1/scenes", None),
        ("/api/v1/mp/scan", Some("text/plain")),
        (
            "/api/v1/mp/confirm",
            Some("multipart/form-data; boundary=x"),
        ),
    ] {
        let mut req = app
            .http
            .post(app.url(path))
            .body(json!({"client_id": CLIENT_ID}).to_string());
        if let Some(c) = ctype {
            req = req.header("Content-Type", c);
        }
        let res = req.send().await.expect("POST");
        assert_problem(res, 415, "invalid_request").await;
    }
}

#[tokio::test]
async fn oversized_body_is_413() {
    let app = spawn_app().await;
    let huge = json!({"client_id": CLIENT_ID, "pad": "x".repeat(64 * 1024)});
    for path in ["/api/v1/scenes", "/api/v1/mp/confirm"] {
        let res = app.post_json(path, &huge).await;
        assert_problem(res, 413, "invalid_request").await;
    }
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let app = spawn_app().await;
    for path in [
        "/nope",
        "/api/v1/nope",
        "/api/v2/scenes",
        "/api/v1/scenes/x/y/z",
    ] {
        let res = app.http.get(app.url(path)).send().await.expect("GET");
        assert_problem(res, 404, "invalid_request").await;
    }
    let res = app
        .http
        .delete(app.url("/api/v1/tickets/redeem"))
        .send()
        .await
        .expect("DELETE");
    assert_problem(res, 405, "invalid_request").await;
    let res = app
        .http
        .get(app.url("/api/v1/mp/scan"))
        .send()
        .await
        .expect("GET");
    assert_problem(res, 405, "invalid_request").await;
}

#[tokio::test]
async fn malformed_scene_ids() {
    let app = spawn_app().await;
    let real = app.create_scene().await;
    for id in [
        "abc",
        "ABCDEF0123456789ABCDEF0123456789",
        "0123456789abcdef0123456789abcdeg",
        "0123456789abcdef0123456789abcdef0",
        "%2e%2e",
        "' OR 1=1 --",
    ] {
        if !id.contains('%') {
            // (a client resolves `%2e%2e` as `..` before sending)
            let body = assert_problem(app.qrcode(id).await, 404, "scene_not_found").await;
            assert!(body["detail"].is_string(), "{id}");
        }
        let res = app.scan(id, &app.login_code("o_x")).await;
        assert_problem(res, 404, "scene_not_found").await;
        let res = app.confirm(&json!({"scene_id": id, "mp_token": "t"})).await;
        assert_problem(res, 404, "scene_not_found").await;
        let res = app.cancel(&json!({"scene_id": id, "mp_token": "t"})).await;
        assert_problem(res, 404, "scene_not_found").await;
    }
    // A well-formed id that does not exist.
    let ghost = "0123456789abcdef0123456789abcdef";
    assert_problem(app.qrcode(ghost).await, 404, "scene_not_found").await;
    let res = app
        .http
        .get(app.url(&format!("/api/v1/scenes/{ghost}/events")))
        .bearer_auth(&real.browser_token)
        .send()
        .await
        .expect("events");
    assert_problem(res, 404, "scene_not_found").await;
    assert_eq!(app.state_of(&real).await, "waiting");
}

#[tokio::test]
async fn missing_fields() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let code = app.login_code("o_m");
    for (path, body) in [
        ("/api/v1/scenes", json!({})),
        ("/api/v1/mp/scan", json!({"scene_id": scene.id})),
        ("/api/v1/mp/scan", json!({"code": code})),
        ("/api/v1/mp/scan", json!({"scene_id": scene.id, "code": ""})),
        ("/api/v1/mp/confirm", json!({"scene_id": scene.id})),
        (
            "/api/v1/mp/confirm",
            json!({"scene_id": scene.id, "mp_token": "", "code": ""}),
        ),
        (
            "/api/v1/mp/confirm",
            json!({"scene_id": scene.id, "mp_token": "t", "code": code}),
        ),
        ("/api/v1/mp/cancel", json!({"scene_id": scene.id})),
        ("/api/v1/mp/confirm", json!({"mp_token": "t"})),
    ] {
        let res = app.post_json(path, &body).await;
        assert_problem(res, 400, "invalid_request").await;
    }
    // An unknown app id.
    let res = app
        .post_json(
            "/api/v1/mp/scan",
            &json!({"scene_id": scene.id, "code": code, "app_id": "wxnobody"}),
        )
        .await;
    assert_problem(res, 400, "invalid_request").await;
    // Nothing was asked of WeChat, nothing changed, and the code still works.
    assert_eq!(
        app.fake
            .calls(crate::helpers::fake_wechat::Api::CodeToSession),
        0
    );
    assert_eq!(app.state_of(&scene).await, "waiting");
    ok_json(app.scan(&scene.id, &code).await).await;
}

#[tokio::test]
async fn unknown_client() {
    let app = spawn_app().await;
    let res = app
        .post_scene(&json!({"client_id": "nobody"}), Some(ORIGIN))
        .await;
    assert_problem(res, 400, "unknown_client").await;
    let res = app.post_scene(&json!({"client_id": ""}), None).await;
    assert_problem(res, 400, "unknown_client").await;
}

#[tokio::test]
async fn bad_long_poll_parameters() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    for query in ["after=sleeping", "wait=abc", "wait=-1"] {
        let res = app
            .http
            .get(app.url(&format!("/api/v1/scenes/{}/events?{query}", scene.id)))
            .bearer_auth(&scene.browser_token)
            .send()
            .await
            .expect("events");
        assert_problem(res, 400, "invalid_request").await;
    }
    // Basic instead of Bearer.
    let res = app
        .http
        .get(app.url(&format!("/api/v1/scenes/{}/events", scene.id)))
        .basic_auth("x", Some(&scene.browser_token))
        .send()
        .await
        .expect("events");
    assert_problem(res, 401, "invalid_token").await;
    // A wait beyond 30 s is capped, not refused: with after=scanned it returns at once.
    let res = app
        .http
        .get(app.url(&format!(
            "/api/v1/scenes/{}/events?after=scanned&wait=99999999",
            scene.id
        )))
        .bearer_auth(&scene.browser_token)
        .send()
        .await
        .expect("events");
    assert_eq!(ok_json(res).await["state"], "waiting");
}

#[tokio::test]
async fn rate_limit_is_429_with_retry_after() {
    let app = spawn_app_with(|cfg| {
        cfg.rate_limit.scenes_per_minute = 2;
        cfg.rate_limit.burst = 3;
    })
    .await;
    for _ in 0..3 {
        app.create_scene().await;
    }
    let res = app
        .post_scene(&json!({"client_id": CLIENT_ID}), Some(ORIGIN))
        .await;
    let retry_after: u64 = res
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_problem(res, 429, "rate_limited").await;
    // A made-up X-Forwarded-For does not buy a new allowance.
    let res = app
        .http
        .post(app.url("/api/v1/scenes"))
        .header("Origin", ORIGIN)
        .header("X-Forwarded-For", "198.51.100.7")
        .json(&json!({"client_id": CLIENT_ID}))
        .send()
        .await
        .expect("create");
    assert_problem(res, 429, "rate_limited").await;
    // The other endpoints are not limited by it.
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .expect("healthz")
            .status(),
        200
    );
}

//! Malformed and arbitrary input at every endpoint: a problem with the
//! right code, never a 5xx, and nothing changed.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{CLIENT_ID, CLIENT_SECRET, ORIGIN, assert_problem, spawn_app};

use super::row_counts;

#[tokio::test]
async fn malformed_input_at_every_endpoint_is_a_problem_and_changes_nothing() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let db = app.db().await;
    let before = row_counts(&db).await;
    let id = &scene.id;
    let long = "x".repeat(20_000);
    // (method, path, body, content type, expected status, expected code)
    let cases: Vec<(Method, String, String, &str, u16, &str)> = vec![
        (
            Method::POST,
            "/api/v1/scenes".into(),
            "{".into(),
            "application/json",
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/scenes".into(),
            "[]".into(),
            "application/json",
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/scenes".into(),
            r#"{"client_id":1}"#.into(),
            "application/json",
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/scenes".into(),
            r#"{"client_id":"nope"}"#.into(),
            "application/json",
            400,
            "unknown_client",
        ),
        (
            Method::POST,
            "/api/v1/scenes".into(),
            format!(r#"{{"client_id":"{long}"}}"#),
            "application/json",
            413,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/scenes".into(),
            r#"{"client_id":"site"}"#.into(),
            "text/plain",
            415,
            "invalid_request",
        ),
        (
            Method::GET,
            "/api/v1/scenes/not-a-scene/qrcode".into(),
            String::new(),
            "",
            404,
            "scene_not_found",
        ),
        (
            Method::GET,
            format!("/api/v1/scenes/{}/qrcode", "0".repeat(32)),
            String::new(),
            "",
            404,
            "scene_not_found",
        ),
        (
            Method::GET,
            format!("/api/v1/scenes/{id}/events"),
            String::new(),
            "",
            401,
            "invalid_token",
        ),
        (
            Method::GET,
            format!("/api/v1/scenes/{id}/events?after=bogus"),
            String::new(),
            "",
            400,
            "invalid_request",
        ),
        (
            Method::GET,
            format!("/api/v1/scenes/{id}/events?wait=-1"),
            String::new(),
            "",
            400,
            "invalid_request",
        ),
        (
            Method::GET,
            format!("/api/v1/scenes/{id}/ws"),
            String::new(),
            "",
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/mp/scan".into(),
            "{}".into(),
            "application/json",
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/mp/scan".into(),
            format!(r#"{{"scene_id":"{id}","code":""}}"#),
            "application/json",
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/mp/scan".into(),
            format!(r#"{{"scene_id":"{id}","code":"{}"}}"#, "c".repeat(300)),
            "application/json",
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/mp/scan".into(),
            format!(r#"{{"scene_id":"{id}","code":"junk","app_id":"wxnope"}}"#),
            "application/json",
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/mp/scan".into(),
            r#"{"scene_id":"../../etc","code":"junk"}"#.into(),
            "application/json",
            404,
            "scene_not_found",
        ),
        (
            Method::POST,
            "/api/v1/mp/confirm".into(),
            format!(r#"{{"scene_id":"{id}"}}"#),
            "application/json",
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/mp/confirm".into(),
            format!(r#"{{"scene_id":"{id}","mp_token":"a","code":"b"}}"#),
            "application/json",
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/mp/confirm".into(),
            format!(r#"{{"scene_id":"{id}","mp_token":"forged"}}"#),
            "application/json",
            401,
            "invalid_token",
        ),
        (
            Method::POST,
            "/api/v1/mp/cancel".into(),
            format!(r#"{{"scene_id":"{id}","mp_token":"forged"}}"#),
            "application/json",
            401,
            "invalid_token",
        ),
        (
            Method::POST,
            "/api/v1/mp/cancel".into(),
            "\u{0}".into(),
            "application/json",
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/tickets/redeem".into(),
            r#"{"ticket":"x"}"#.into(),
            "application/json",
            401,
            "unauthorized",
        ),
        (
            Method::DELETE,
            "/api/v1/scenes".into(),
            String::new(),
            "",
            405,
            "invalid_request",
        ),
        (
            Method::GET,
            "/nope".into(),
            String::new(),
            "",
            404,
            "invalid_request",
        ),
        (
            Method::POST,
            "/demo/redeem".into(),
            r#"{"ticket":"x"}"#.into(),
            "application/json",
            404,
            "invalid_request",
        ),
        (
            Method::POST,
            "/sim/api/login".into(),
            r#"{"user":"mallory"}"#.into(),
            "application/json",
            404,
            "invalid_request",
        ),
    ];
    for (method, path, body, content_type, status, code) in cases {
        let mut req = app
            .http
            .request(method.clone(), app.url(&path))
            .header("Origin", ORIGIN);
        if !content_type.is_empty() {
            req = req.header("Content-Type", content_type).body(body.clone());
        }
        let res = req.send().await.expect("request");
        assert!(
            res.status().as_u16() < 500,
            "{method} {path}: {}",
            res.status()
        );
        let problem = assert_problem(res, status, code).await;
        assert!(
            !problem.to_string().contains(&scene.browser_token),
            "{method} {path}"
        );
    }
    // The junk codes above reached WeChat at most... not at all: every one
    // was refused before an exchange.
    assert_eq!(
        app.fake
            .calls(crate::helpers::fake_wechat::Api::CodeToSession),
        0
    );
    assert_eq!(row_counts(&db).await, before, "nothing was stored");
    assert_eq!(app.state_of(&scene).await, "waiting");
}

/// Any JSON value (or none) a client could send.
fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,40}".prop_map(Value::from),
        "[0-9a-f]{32}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("client_id".to_owned()),
                    Just("scene_id".to_owned()),
                    Just("code".to_owned()),
                    Just("mp_token".to_owned()),
                    Just("ticket".to_owned()),
                    Just("profile".to_owned()),
                    Just("encrypted_data".to_owned()),
                    Just("iv".to_owned()),
                    "[a-z_]{1,12}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[tokio::test]
async fn arbitrary_json_bodies_never_fail_the_hub() {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;
    let app = spawn_app().await;
    let db = app.db().await;
    let before = row_counts(&db).await;
    let mut runner = TestRunner::deterministic();
    let strategy = any_json();
    let endpoints = [
        "/api/v1/mp/scan",
        "/api/v1/mp/confirm",
        "/api/v1/mp/cancel",
        "/api/v1/tickets/redeem",
    ];
    for case in 0..64 {
        let body = strategy.new_tree(&mut runner).expect("a value").current();
        for path in endpoints {
            let res = app
                .http
                .post(app.url(path))
                .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
                .json(&body)
                .send()
                .await
                .expect("request");
            let (status, code) = refusal(res).await;
            assert!(
                matches!(
                    (status, code.as_str()),
                    (400, "invalid_request" | "invalid_ticket") | (404, "scene_not_found")
                ),
                "case {case} {path} {body}: {status} {code}"
            );
        }
        // Scene creation: a made-up client is refused, a real one is not
        // what any_json makes.
        let res = app.post_scene(&body, Some(ORIGIN)).await;
        let (status, code) = refusal(res).await;
        assert!(
            matches!(
                (status, code.as_str()),
                (400, "invalid_request" | "unknown_client")
            ),
            "case {case} scenes {body}: {status} {code}"
        );
    }
    assert_eq!(row_counts(&db).await, before, "nothing was stored");
}

/// A refusal's status and problem `code` (the body must be a problem
/// whose `status` is the answer's).
async fn refusal(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let kind = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        kind.starts_with("application/problem+json"),
        "{status} {kind}"
    );
    let problem: Value = res.json().await.expect("problem JSON");
    assert_eq!(problem["status"], status, "{problem}");
    let code = problem["code"].as_str().expect("a code").to_owned();
    (status, code)
}

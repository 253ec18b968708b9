//! Every path is rate limited (issue 21, hole 6): avatars, unknown paths
//! under `/api/` and anywhere, plain requests to the socket path, and
//! stray `Upgrade` requests, which the upgrade hook takes before the app.

use serde_json::Value;

use crate::helpers::{assert_problem, spawn_app_with};

use super::retry_after;

/// `n` GETs of `path`; their statuses.
async fn statuses(app: &crate::helpers::TestApp, path: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        let res = app.http.get(app.url(path)).send().await.expect("GET");
        out.push(res.status().as_u16());
    }
    out
}

#[tokio::test]
async fn avatars_are_throttled_per_address() {
    let app = spawn_app_with(|cfg| cfg.rate_limit.other_per_minute = 3).await;
    let path = "/api/v1/avatars/0123456789abcdef0123456789abcdef";
    assert_eq!(statuses(&app, path, 3).await, [404, 404, 404]);
    let res = app.http.get(app.url(path)).send().await.expect("GET");
    assert!(retry_after(&res) >= 1);
    assert_problem(res, 429, "rate_limited").await;
}

#[tokio::test]
async fn unknown_paths_under_api_are_throttled_per_address() {
    let app = spawn_app_with(|cfg| cfg.rate_limit.other_per_minute = 3).await;
    assert_eq!(
        statuses(&app, "/api/v1/no/such/thing", 3).await,
        [404, 404, 404]
    );
    let res = app
        .http
        .get(app.url("/api/v2/scenes"))
        .send()
        .await
        .expect("GET");
    assert_problem(res, 429, "rate_limited").await;
}

#[tokio::test]
async fn plain_requests_to_the_socket_path_count_as_upgrades() {
    let app = spawn_app_with(|cfg| cfg.rate_limit.sockets_per_minute = 2).await;
    let scene = app.create_scene().await;
    let path = format!("/api/v1/scenes/{}/ws", scene.id);
    assert_eq!(statuses(&app, &path, 2).await, [400, 400]);
    let res = app.http.get(app.url(&path)).send().await.expect("GET");
    assert_problem(res, 429, "rate_limited").await;
}

/// A raw request with `Upgrade: websocket` to `path`, without the rest of
/// a WebSocket handshake; (status, problem).
async fn stray_upgrade(app: &crate::helpers::TestApp, path: &str) -> (u16, Value) {
    let (status, body) = app
        .raw_http(&format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        ))
        .await;
    let problem: Value = serde_json::from_str(&body).expect("a problem document");
    (status, problem)
}

#[tokio::test]
async fn stray_upgrades_to_any_path_are_throttled() {
    let app = spawn_app_with(|cfg| cfg.rate_limit.other_per_minute = 3).await;
    for path in ["/healthz", "/nope", "/api/v1/avatars/x"] {
        let (status, problem) = stray_upgrade(&app, path).await;
        assert_eq!(status, 404, "{path}: {problem}");
    }
    let (status, problem) = stray_upgrade(&app, "/anything").await;
    assert_eq!(status, 429, "{problem}");
    assert_eq!(problem["code"], "rate_limited");
}

#[tokio::test]
async fn broken_handshakes_on_the_socket_path_take_upgrades_too() {
    let app = spawn_app_with(|cfg| cfg.rate_limit.sockets_per_minute = 2).await;
    let scene = app.create_scene().await;
    let path = format!("/api/v1/scenes/{}/ws", scene.id);
    for _ in 0..2 {
        let (status, problem) = stray_upgrade(&app, &path).await;
        assert_eq!(status, 400, "{problem}");
        assert_eq!(problem["code"], "invalid_request");
    }
    let (status, problem) = stray_upgrade(&app, &path).await;
    assert_eq!(status, 429, "{problem}");
    assert_eq!(problem["code"], "rate_limited");
}

#[tokio::test]
async fn malformed_basic_credentials_count_as_failed_authentications() {
    let app = spawn_app_with(|cfg| cfg.rate_limit.auth_failures_per_minute = 3).await;
    let mut statuses = Vec::new();
    for scheme in [
        "Basic %%%notbase64",
        "Digest x",
        "Basic Zm9v",
        "Basic",
        "Bearer x",
    ] {
        let res = app
            .http
            .post(app.url("/api/v1/tickets/redeem"))
            .header("Authorization", scheme)
            .json(&serde_json::json!({"ticket": "x"}))
            .send()
            .await
            .expect("redeem");
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    // The client's own backend, with its secret, is not locked out.
    let res = app.redeem("not-a-ticket").await;
    assert_problem(res, 400, "invalid_ticket").await;
}

#[tokio::test]
async fn redeems_without_credentials_fall_under_the_address_ceiling() {
    let app = spawn_app_with(|cfg| cfg.rate_limit.other_per_minute = 3).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let res = app
            .http
            .post(app.url("/api/v1/tickets/redeem"))
            .json(&serde_json::json!({"ticket": "x"}))
            .send()
            .await
            .expect("redeem");
        statuses.push(res.status().as_u16());
    }
    // No credentials is how some clients ask for the challenge: 401, not
    // a failure, but not without limit either.
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    // The site's backend, sending its credentials, is limited per client.
    let res = app.redeem("not-a-ticket").await;
    assert_problem(res, 400, "invalid_ticket").await;
}

//! The WebSocket's close codes, expiry, and the `Origin` checks (with CORS);
//! a socket that goes silent in `silence`.

mod silence;

use std::time::Duration;

use serde_json::json;
use tokio_tungstenite::tungstenite;

use crate::helpers::{
    Ending, ORIGIN, OTHER_ORIGIN, Scene, assert_problem, ok_json, spawn_app, spawn_app_with,
};

#[tokio::test]
async fn expiry_is_pushed_then_the_socket_closes() {
    // Long enough for the connect below on a loaded machine.
    let app = spawn_app_with(|cfg| cfg.ttl_secs = 5).await;
    let scene = app.create_scene().await;
    let expires_in = scene.body["expires_in"].as_i64().expect("expires_in");
    assert!((4..=5).contains(&expires_in), "{}", scene.body);
    // A long-poll waiting on `waiting` is answered by the expiry.
    let poll = app.spawn_long_poll(&scene, "waiting", 10);
    let mut ws = app.ws_connect(&scene).await;
    assert_eq!(ws.next_event().await["state"], "waiting");
    let (events, ending) = ws.closing(Duration::from_secs(15)).await;
    assert_eq!(
        events,
        vec![json!({"type": "state", "scene_id": scene.id, "state": "expired"})]
    );
    assert_eq!(ending, Ending::Closed(1000));
    let res = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .expect("the poll returns at the expiry")
        .expect("task")
        .expect("request");
    assert_eq!(ok_json(res).await["state"], "expired");

    // Connecting to an expired scene: told so, closed with 4410.
    let mut late = app.ws_connect(&scene).await;
    let (events, ending) = late.closing(Duration::from_secs(5)).await;
    assert_eq!(ending, Ending::Closed(4410));
    assert!(events.iter().all(|e| e["state"] == "expired"), "{events:?}");
    assert_eq!(app.state_of(&scene).await, "expired");

    // The phone is told it is gone, and nothing changes.
    let res = app.scan(&scene.id, &app.login_code("o_late")).await;
    assert_problem(res, 410, "scene_expired").await;
    assert_problem(app.qrcode(&scene.id).await, 410, "scene_expired").await;
    assert_eq!(app.state_of(&scene).await, "expired");
}

#[tokio::test]
async fn a_scanned_scene_expires_too() {
    // Long enough for create, scan and connect on a loaded machine.
    let app = spawn_app_with(|cfg| cfg.ttl_secs = 5).await;
    let scene = app.create_scene().await;
    let mp_token = app.scanned(&scene.id, &app.login_code("o_slow")).await;
    let mut ws = app.ws_connect(&scene).await;
    assert_eq!(ws.next_event().await["state"], "scanned");
    let (events, ending) = ws.closing(Duration::from_secs(15)).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["state"], "expired");
    assert_eq!(ending, Ending::Closed(1000));
    let res = app.confirm_token(&scene.id, &mp_token).await;
    assert_problem(res, 410, "scene_expired").await;
}

#[tokio::test]
async fn unknown_scene_closes_4404() {
    let app = spawn_app().await;
    let ghost = Scene {
        id: "0123456789abcdef0123456789abcdef".into(),
        browser_token: "whatever".into(),
        body: json!({}),
    };
    let mut ws = app.ws_connect(&ghost).await;
    assert_eq!(
        ws.close_code(Duration::from_secs(5)).await,
        Ending::Closed(4404)
    );
    // A malformed scene id is no scene either.
    let ghost = Scene {
        id: "not-a-scene".into(),
        ..ghost
    };
    let mut ws = app.ws_connect(&ghost).await;
    assert_eq!(
        ws.close_code(Duration::from_secs(5)).await,
        Ending::Closed(4404)
    );
}

#[tokio::test]
async fn wrong_browser_token_closes_4401() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let other = app.create_scene().await;
    // Another scene's real token is still the wrong token.
    let wrong = Scene {
        browser_token: other.browser_token.clone(),
        ..scene.clone()
    };
    let mut ws = app.ws_connect(&wrong).await;
    assert_eq!(
        ws.close_code(Duration::from_secs(5)).await,
        Ending::Closed(4401)
    );
    // A first frame that is not an auth frame.
    let mut ws = app
        .ws_connect_raw(&scene.id, Some(ORIGIN))
        .await
        .expect("upgrade");
    ws.send_json(&json!({"type": "hello"})).await;
    assert_eq!(
        ws.close_code(Duration::from_secs(5)).await,
        Ending::Closed(4401)
    );
    // Long-poll refuses the wrong token as well.
    let res = app
        .http
        .get(app.url(&format!("/api/v1/scenes/{}/events", scene.id)))
        .bearer_auth(&other.browser_token)
        .send()
        .await
        .expect("events");
    assert_problem(res, 401, "invalid_token").await;
    let res = app
        .http
        .get(app.url(&format!("/api/v1/scenes/{}/events", scene.id)))
        .send()
        .await
        .expect("events");
    assert_problem(res, 401, "invalid_token").await;
    // The right token still works.
    let mut ws = app.ws_connect(&scene).await;
    assert_eq!(ws.next_event().await["state"], "waiting");
}

#[tokio::test]
async fn no_auth_frame_closes_4401_after_ten_seconds() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let started = std::time::Instant::now();
    let mut ws = app
        .ws_connect_raw(&scene.id, Some(ORIGIN))
        .await
        .expect("upgrade");
    let ending = ws.close_code(Duration::from_secs(20)).await;
    assert_eq!(ending, Ending::Closed(4401));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(15),
        "{took:?}"
    );
}

#[tokio::test]
async fn foreign_origin_is_refused() {
    let app = spawn_app().await;
    let res = app
        .post_scene(&json!({"client_id": "site"}), Some("http://evil.test"))
        .await;
    assert!(res.headers().get("access-control-allow-origin").is_none());
    assert_problem(res, 403, "origin_not_allowed").await;
    // Another client's origin is foreign to this client.
    let res = app
        .post_scene(&json!({"client_id": "site"}), Some(OTHER_ORIGIN))
        .await;
    assert_problem(res, 403, "origin_not_allowed").await;

    let scene = app.create_scene().await;
    match app
        .ws_connect_raw(&scene.id, Some("http://evil.test"))
        .await
    {
        Err(tungstenite::Error::Http(res)) => assert_eq!(res.status().as_u16(), 403),
        Err(e) => panic!("expected a 403, got {e}"),
        Ok(_) => panic!("the upgrade from a foreign origin succeeded"),
    }
    // The refused upgrade's body, read whole: the problem and its code.
    let head = upgrade_head("GET", &format!("/api/v1/scenes/{}/ws", scene.id))
        .replace("\r\n\r\n", "\r\nOrigin: http://evil.test\r\n\r\n");
    let (status, body) = app.raw_http(&head).await;
    assert_eq!(status, 403, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("problem JSON");
    assert_eq!(v["code"], "origin_not_allowed", "{body}");
    assert_eq!(v["status"], 403, "{body}");
    match app.ws_connect_raw(&scene.id, Some(OTHER_ORIGIN)).await {
        Err(tungstenite::Error::Http(res)) => assert_eq!(res.status().as_u16(), 403),
        Err(e) => panic!("expected a 403, got {e}"),
        Ok(_) => panic!("the upgrade from another client's origin succeeded"),
    }
    // Long-poll from a foreign origin.
    let res = app
        .http
        .get(app.url(&format!("/api/v1/scenes/{}/events", scene.id)))
        .header("Origin", "http://evil.test")
        .bearer_auth(&scene.browser_token)
        .send()
        .await
        .expect("events");
    assert_problem(res, 403, "origin_not_allowed").await;
    assert_eq!(app.state_of(&scene).await, "waiting");
}

#[tokio::test]
async fn allowed_origin_gets_cors_headers() {
    let app = spawn_app().await;
    let res = app
        .post_scene(&json!({"client_id": "site"}), Some(ORIGIN))
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["access-control-allow-origin"], ORIGIN);
    let scene_id = res.json::<serde_json::Value>().await.expect("JSON")["scene_id"]
        .as_str()
        .expect("id")
        .to_owned();

    // Preflights for the create call and for the long-poll with Authorization.
    let res = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/scenes"))
        .header("Origin", ORIGIN)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .expect("preflight");
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(res.headers()["access-control-allow-origin"], ORIGIN);
    let methods = res.headers()["access-control-allow-methods"]
        .to_str()
        .expect("ascii")
        .to_ascii_uppercase();
    assert!(methods.contains("POST"), "{methods}");

    let res = app
        .http
        .request(
            reqwest::Method::OPTIONS,
            app.url(&format!("/api/v1/scenes/{scene_id}/events")),
        )
        .header("Origin", ORIGIN)
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .expect("preflight");
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(res.headers()["access-control-allow-origin"], ORIGIN);
    let headers = res.headers()["access-control-allow-headers"]
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    assert!(headers.contains("authorization"), "{headers}");

    // A foreign preflight is not allowed (no wildcard).
    let res = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/scenes"))
        .header("Origin", "http://evil.test")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .expect("preflight");
    let allow = res.headers().get("access-control-allow-origin");
    assert!(
        allow.is_none_or(|v| v != "*" && v != "http://evil.test"),
        "{allow:?}"
    );
}

#[tokio::test]
async fn plain_get_on_the_socket_path_is_a_problem_not_a_crash() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let res = app
        .http
        .get(app.url(&format!("/api/v1/scenes/{}/ws", scene.id)))
        .send()
        .await
        .expect("GET");
    assert_problem(res, 400, "invalid_request").await;
    let body = ok_json(app.events(&scene, None, 0).await).await;
    assert_eq!(body["state"], "waiting");
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1012() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let mut ws = app.ws_connect(&scene).await;
    assert_eq!(ws.next_event().await["state"], "waiting");
    // The socket is the scene's one listener; the long-poll subscribes as
    // soon as its request is in the handler, and from then on the stop
    // below answers it (the handler waits on the shutdown token too).
    assert_eq!(app.registry.listeners(), 1);
    let poll = app.spawn_long_poll(&scene, "waiting", 30);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.registry.listeners() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the long-poll did not reach the hub within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.stop();
    let (events, ending) = ws.closing(Duration::from_secs(10)).await;
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(ending, Ending::Closed(1012));
    // A waiting long-poll is let go too, with the current state, well
    // before its 30 s.
    let res = tokio::time::timeout(Duration::from_secs(15), poll)
        .await
        .expect("the poll ends at shutdown")
        .expect("task")
        .expect("the poll is answered, not cut off");
    assert_eq!(ok_json(res).await["state"], "waiting");
}

#[tokio::test]
async fn oversized_frame_ends_the_socket_not_the_hub() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let mut ws = app
        .ws_connect_raw(&scene.id, Some(ORIGIN))
        .await
        .expect("upgrade");
    let huge = json!({"type": "auth", "browser_token": "x".repeat(64 * 1024)});
    ws.send_json(&huge).await;
    // Refused from its header, well before the 10 s auth timeout.
    let ending = ws.close_code(Duration::from_secs(5)).await;
    assert_eq!(ending, Ending::Closed(1009));
    // The hub is fine, and the scene too.
    let mut ws = app.ws_connect(&scene).await;
    assert_eq!(ws.next_event().await["state"], "waiting");
}

#[tokio::test]
async fn server_pings_every_twenty_seconds_and_the_socket_lives_on() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let mut ws = app.ws_connect(&scene).await;
    assert_eq!(ws.next_event().await["state"], "waiting");
    let started = std::time::Instant::now();
    ws.next_ping(Duration::from_secs(25)).await;
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(18), "{took:?}");
    // Answered (tungstenite pongs by itself): the socket still carries events.
    app.scanned(&scene.id, &app.login_code("o_ping")).await;
    assert_eq!(ws.next_event().await["state"], "scanned");
}

/// A WebSocket upgrade request head for `path` with `method`.
pub(crate) fn upgrade_head(method: &str, path: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
}

#[tokio::test]
async fn upgrades_elsewhere_get_problems() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let ws_path = format!("/api/v1/scenes/{}/ws", scene.id);
    for (method, path, status) in [
        ("GET", "/healthz", 404),
        ("GET", "/api/v1/scenes", 404),
        ("GET", "/api/v1/scenes//ws", 404),
        ("POST", ws_path.as_str(), 405),
    ] {
        let (got, body) = app.raw_http(&upgrade_head(method, path)).await;
        assert_eq!(got, status, "{method} {path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("problem JSON");
        assert_eq!(v["code"], "invalid_request", "{body}");
        assert_eq!(v["status"], status, "{body}");
    }
    // A broken handshake on the right path.
    let bad = upgrade_head("GET", &ws_path)
        .replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
    let (got, body) = app.raw_http(&bad).await;
    assert_eq!(got, 400, "{body}");
    assert!(body.contains("invalid_request"), "{body}");
    // None of it touched the scene.
    let mut ws = app.ws_connect(&scene).await;
    assert_eq!(ws.next_event().await["state"], "waiting");
}

#[tokio::test]
async fn fragmented_auth_and_client_pings_are_understood() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let mut ws = app
        .ws_connect_raw(&scene.id, Some(ORIGIN))
        .await
        .expect("upgrade");
    let auth = json!({"type": "auth", "browser_token": scene.browser_token}).to_string();
    ws.send_fragmented(&auth, 3).await;
    assert_eq!(ws.next_event().await["state"], "waiting");
    ws.ping_pong(b"are you there").await;
    let code = app.login_code("o_frag");
    let res = app
        .confirm(&json!({"scene_id": scene.id, "code": code}))
        .await;
    assert_eq!(ok_json(res).await["state"], "confirmed");
    assert_eq!(ws.next_event().await["state"], "confirmed");
}

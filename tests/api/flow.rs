//! Whole logins: over the WebSocket, over long-poll, with a browser that comes
//! late or reconnects, and one person across two apps.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    APP_ID, CLIENT_ID, Ending, ORIGIN, PUBLIC_URL, Scene, TestApp, ok_json, session_key, spawn_app,
    spawn_app_with, unique,
};

/// Checks the full redeem answer of docs/api.md and returns it.
pub async fn assert_redeems(app: &TestApp, scene: &Scene, ticket: &str, openid: &str) -> Value {
    let body = ok_json(app.redeem(ticket).await).await;
    assert_eq!(body["scene_id"], scene.id.as_str(), "{body}");
    assert_eq!(body["client_id"], CLIENT_ID, "{body}");
    let confirmed_at = body["confirmed_at"].as_str().expect("confirmed_at");
    chrono::DateTime::parse_from_rfc3339(confirmed_at).expect("confirmed_at is RFC 3339");
    let user = &body["user"];
    assert!(user["id"].as_str().is_some_and(|s| !s.is_empty()), "{body}");
    for key in ["unionid", "nickname", "avatar_url"] {
        assert!(user.get(key).is_some(), "user.{key} missing: {body}");
    }
    assert_eq!(
        user["identities"],
        json!([{"app_id": APP_ID, "openid": openid}]),
        "{body}"
    );
    body
}

#[tokio::test]
async fn scene_answer_has_the_shape_of_the_spec() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let b = &scene.body;
    let id = scene.id.as_str();
    assert_eq!(id.len(), 32, "{b}");
    assert!(
        id.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)),
        "{b}"
    );
    assert!(scene.browser_token.len() >= 32, "{b}");
    assert_eq!(b["state"], "waiting");
    let expires_in = b["expires_in"].as_i64().expect("expires_in");
    assert!((295..=300).contains(&expires_in), "{b}");
    let expires_at = chrono::DateTime::parse_from_rfc3339(b["expires_at"].as_str().expect("at"))
        .expect("expires_at is RFC 3339");
    let left = expires_at.timestamp() - chrono::Utc::now().timestamp();
    assert!((290..=301).contains(&left), "{b}");
    assert_eq!(
        b["qrcode_url"],
        format!("{PUBLIC_URL}/api/v1/scenes/{id}/qrcode")
    );
    assert_eq!(b["ws_url"], format!("ws://hub.test/api/v1/scenes/{id}/ws"));
    assert_eq!(
        b["events_url"],
        format!("{PUBLIC_URL}/api/v1/scenes/{id}/events")
    );
    // The browser's secret is never in a URL.
    for url in ["qrcode_url", "ws_url", "events_url"] {
        assert!(!b[url].as_str().unwrap_or("").contains(&scene.browser_token));
    }
    // Two scenes never share an id or a token.
    let other = app.create_scene().await;
    assert_ne!(other.id, scene.id);
    assert_ne!(other.browser_token, scene.browser_token);
}

#[tokio::test]
async fn login_over_websocket() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let mut ws = app.ws_connect(&scene).await;
    assert_eq!(
        ws.next_event().await,
        json!({"type": "state", "scene_id": scene.id, "state": "waiting"})
    );

    let code = unique("code");
    app.fake
        .add_code(&code, "o_alice", Some("u_alice"), &session_key());
    let scan = ok_json(app.scan(&scene.id, &code).await).await;
    assert_eq!(scan["state"], "scanned");
    assert_eq!(
        scan["client"],
        json!({"id": CLIENT_ID, "name": "Test site", "origin": ORIGIN, "wants_phone": false})
    );
    assert_eq!(scan["browser"]["ip"], "127.0.0.1", "{scan}");
    assert!(scan["browser"]["user_agent"].is_string(), "{scan}");
    assert_eq!(scan["expires_at"], scene.body["expires_at"], "{scan}");
    let mp_token = scan["mp_token"].as_str().expect("mp_token");
    assert_eq!(
        ws.next_event().await,
        json!({"type": "state", "scene_id": scene.id, "state": "scanned"})
    );

    let confirmed = ok_json(
        app.confirm(&json!({
            "scene_id": scene.id, "mp_token": mp_token,
            "profile": {"nickname": "Alice", "avatar_url": "https://img.example/a.png"},
        }))
        .await,
    )
    .await;
    assert_eq!(confirmed["state"], "confirmed");
    let user_id = confirmed["user_id"].as_str().expect("user_id");

    let event = ws.next_event().await;
    assert_eq!(event["type"], "state");
    assert_eq!(event["scene_id"], scene.id.as_str());
    assert_eq!(event["state"], "confirmed");
    assert_eq!(
        event["user"],
        json!({"nickname": "Alice", "avatar_url": "https://img.example/a.png"})
    );
    let ticket = event["ticket"].as_str().expect("ticket").to_owned();
    assert_eq!(
        ws.close_code(Duration::from_secs(5)).await,
        Ending::Closed(1000)
    );

    let body = assert_redeems(&app, &scene, &ticket, "o_alice").await;
    assert_eq!(body["user"]["id"], user_id);
    assert_eq!(body["user"]["unionid"], "u_alice");
    assert_eq!(body["user"]["nickname"], "Alice");
    assert_eq!(body["user"]["avatar_url"], "https://img.example/a.png");
}

#[tokio::test]
async fn login_over_long_poll() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    assert_eq!(
        ok_json(app.events(&scene, None, 0).await).await,
        json!({"type": "state", "scene_id": scene.id, "state": "waiting"})
    );

    // A poll waiting for a change from `waiting` is answered by the scan.
    let poll = app.spawn_long_poll(&scene, "waiting", 10);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !poll.is_finished(),
        "the poll must wait while nothing changes"
    );
    let code = app.login_code("o_bob");
    let mp_token = app.scanned(&scene.id, &code).await;
    let res = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .expect("the poll returns at the scan")
        .expect("task")
        .expect("request");
    assert_eq!(
        ok_json(res).await,
        json!({"type": "state", "scene_id": scene.id, "state": "scanned"})
    );

    let poll = app.spawn_long_poll(&scene, "scanned", 10);
    tokio::time::sleep(Duration::from_millis(200)).await;
    ok_json(app.confirm_token(&scene.id, &mp_token).await).await;
    let res = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .expect("the poll returns at the confirm")
        .expect("task")
        .expect("request");
    let event = ok_json(res).await;
    assert_eq!(event["state"], "confirmed", "{event}");
    assert_eq!(event["user"], json!({"nickname": null, "avatar_url": null}));
    let ticket = event["ticket"].as_str().expect("ticket");
    assert_redeems(&app, &scene, ticket, "o_bob").await;
}

#[tokio::test]
async fn long_poll_returns_after_its_wait_when_nothing_changes() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let started = std::time::Instant::now();
    let event = ok_json(app.events(&scene, Some("waiting"), 1).await).await;
    let took = started.elapsed();
    assert_eq!(event["state"], "waiting");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // A different `after` is answered at once.
    let started = std::time::Instant::now();
    let event = ok_json(app.events(&scene, Some("scanned"), 10).await).await;
    assert_eq!(event["state"], "waiting");
    // At once, not after its 10 s wait (a loaded machine may take seconds).
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn browser_that_connects_after_the_confirm_gets_its_ticket() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let code = app.login_code("o_late");
    let mp_token = app.scanned(&scene.id, &code).await;
    ok_json(
        app.confirm(&json!({"scene_id": scene.id, "mp_token": mp_token,
            "profile": {"nickname": "Late"}}))
            .await,
    )
    .await;

    let mut ws = app.ws_connect(&scene).await;
    let (events, ending) = ws.closing(Duration::from_secs(5)).await;
    assert_eq!(ending, Ending::Closed(1000));
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["state"], "confirmed");
    assert_eq!(events[0]["user"]["nickname"], "Late");
    let ticket = events[0]["ticket"].as_str().expect("ticket");
    // Long-poll tells the same ticket.
    let polled = ok_json(app.events(&scene, Some("scanned"), 5).await).await;
    assert_eq!(polled["ticket"], ticket);
    assert_redeems(&app, &scene, ticket, "o_late").await;
}

#[tokio::test]
async fn reconnecting_browser_is_told_the_current_state() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let mut first = app.ws_connect(&scene).await;
    assert_eq!(first.next_event().await["state"], "waiting");
    drop(first);

    let code = app.login_code("o_carol");
    let mp_token = app.scanned(&scene.id, &code).await;
    let mut second = app.ws_connect(&scene).await;
    assert_eq!(
        second.next_event().await,
        json!({"type": "state", "scene_id": scene.id, "state": "scanned"})
    );
    // ... and keeps receiving changes.
    ok_json(app.confirm_token(&scene.id, &mp_token).await).await;
    let event = second.next_event().await;
    assert_eq!(event["state"], "confirmed");
    assert!(event["ticket"].is_string());
    assert_eq!(
        second.close_code(Duration::from_secs(5)).await,
        Ending::Closed(1000)
    );
}

#[tokio::test]
async fn two_browsers_on_one_scene_both_hear_the_confirm() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let mut a = app.ws_connect(&scene).await;
    let mut b = app.ws_connect(&scene).await;
    assert_eq!(a.next_event().await["state"], "waiting");
    assert_eq!(b.next_event().await["state"], "waiting");
    let code = app.login_code("o_dan");
    ok_json(
        app.confirm(&json!({"scene_id": scene.id, "code": code}))
            .await,
    )
    .await;
    let ea = a.next_event().await;
    let eb = b.next_event().await;
    assert_eq!(ea["state"], "confirmed");
    assert_eq!(ea["ticket"], eb["ticket"]);
}

#[tokio::test]
async fn cancel_is_pushed_and_final() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let mut ws = app.ws_connect(&scene).await;
    assert_eq!(ws.next_event().await["state"], "waiting");
    let code = app.login_code("o_erin");
    let mp_token = app.scanned(&scene.id, &code).await;
    assert_eq!(ws.next_event().await["state"], "scanned");
    let res = app
        .cancel(&json!({"scene_id": scene.id, "mp_token": mp_token}))
        .await;
    assert_eq!(ok_json(res).await, json!({"state": "cancelled"}));
    let (events, ending) = ws.closing(Duration::from_secs(5)).await;
    assert_eq!(ending, Ending::Closed(1000));
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0],
        json!({"type": "state", "scene_id": scene.id, "state": "cancelled"})
    );
    // Final: a confirm now is refused and the state stays.
    let res = app.confirm_token(&scene.id, &mp_token).await;
    crate::helpers::assert_problem(res, 409, "scene_final").await;
    assert_eq!(app.state_of(&scene).await, "cancelled");
}

#[tokio::test]
async fn single_step_confirm_with_a_code_from_waiting() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let mut ws = app.ws_connect(&scene).await;
    assert_eq!(ws.next_event().await["state"], "waiting");
    let code = app.login_code("o_fay");
    let res = app
        .confirm(&json!({"scene_id": scene.id, "code": code, "profile": {"nickname": "Fay"}}))
        .await;
    let body = ok_json(res).await;
    assert_eq!(body["state"], "confirmed");
    let event = ws.next_event().await;
    assert_eq!(event["state"], "confirmed", "{event}");
    let ticket = event["ticket"].as_str().expect("ticket");
    let redeemed = assert_redeems(&app, &scene, ticket, "o_fay").await;
    assert_eq!(redeemed["user"]["id"], body["user_id"]);
    assert_eq!(redeemed["user"]["nickname"], "Fay");
}

#[tokio::test]
async fn unionid_joins_two_apps_into_one_user() {
    const APP_B: &str = "wxtest0000000002";
    let app = spawn_app_with(|cfg| cfg.apps.push((APP_B.into(), "second-app-secret".into()))).await;

    let first = app.create_scene().await;
    let code_a = unique("code");
    app.fake
        .add_code_for(APP_ID, &code_a, "o_in_a", Some("u_same"), &session_key());
    let a = ok_json(
        app.confirm(&json!({"scene_id": first.id, "code": code_a}))
            .await,
    )
    .await;
    let event = ok_json(app.events(&first, None, 0).await).await;
    let one = ok_json(app.redeem(event["ticket"].as_str().expect("ticket")).await).await;
    assert_eq!(
        one["user"]["identities"],
        json!([{"app_id": APP_ID, "openid": "o_in_a"}])
    );

    let second = app.create_scene_in(APP_B).await;
    let code_b = unique("code");
    app.fake
        .add_code_for(APP_B, &code_b, "o_in_b", Some("u_same"), &session_key());
    let b = ok_json(
        app.confirm(&json!({"scene_id": second.id, "code": code_b, "app_id": APP_B}))
            .await,
    )
    .await;
    assert_eq!(a["user_id"], b["user_id"], "one person, one user id");
    let event = ok_json(app.events(&second, None, 0).await).await;
    let two = ok_json(
        app.redeem_in(APP_B, event["ticket"].as_str().expect("ticket"))
            .await,
    )
    .await;
    assert_eq!(two["user"]["id"], a["user_id"]);
    assert_eq!(two["user"]["unionid"], "u_same");
    let mut ids: Vec<(String, String)> = two["user"]["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .map(|i| {
            (
                i["app_id"].as_str().unwrap_or("").to_owned(),
                i["openid"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        vec![
            (APP_ID.to_owned(), "o_in_a".to_owned()),
            (APP_B.to_owned(), "o_in_b".to_owned())
        ]
    );

    // A third person without unionid in app B is someone else.
    let third = app.create_scene_in(APP_B).await;
    let code_c = unique("code");
    app.fake
        .add_code_for(APP_B, &code_c, "o_other", None, &session_key());
    let c = ok_json(
        app.confirm(&json!({"scene_id": third.id, "code": code_c, "app_id": APP_B}))
            .await,
    )
    .await;
    assert_ne!(c["user_id"], a["user_id"]);
}

#[tokio::test]
async fn same_person_twice_is_the_same_user() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let scene = app.create_scene().await;
        let code = app.login_code("o_repeat");
        let body = ok_json(
            app.confirm(&json!({"scene_id": scene.id, "code": code}))
                .await,
        )
        .await;
        ids.push(body["user_id"].clone());
    }
    assert_eq!(ids[0], ids[1]);
}

#[tokio::test]
async fn phone_is_shown_the_real_browser_and_secrets_are_not_cached() {
    let app = spawn_app().await;
    // X-Forwarded-For from an untrusted peer is not believed.
    let res = app
        .http
        .post(app.url("/api/v1/scenes"))
        .header("Origin", ORIGIN)
        .header("User-Agent", "TestBrowser/1.0 (scanlogin tests)")
        .header("X-Forwarded-For", "203.0.113.9")
        .json(&json!({"client_id": CLIENT_ID}))
        .send()
        .await
        .expect("create");
    assert_eq!(res.status(), 201);
    let cache = res.headers()["cache-control"].to_str().expect("ascii");
    assert!(cache.contains("no-store"), "{cache}");
    let body: Value = res.json().await.expect("JSON");
    let scene = Scene {
        id: body["scene_id"].as_str().expect("id").to_owned(),
        browser_token: body["browser_token"].as_str().expect("token").to_owned(),
        body,
    };
    let res = app.events(&scene, None, 0).await;
    let cache = res.headers()["cache-control"].to_str().expect("ascii");
    assert!(cache.contains("no-store"), "{cache}");
    let scan = ok_json(app.scan(&scene.id, &app.login_code("o_viewer")).await).await;
    assert_eq!(
        scan["browser"],
        json!({"kind": "browser", "ip": "127.0.0.1", "user_agent": "TestBrowser/1.0 (scanlogin tests)"})
    );
    // The phone never sees the browser's secret.
    assert!(!scan.to_string().contains(&scene.browser_token));
}

#[tokio::test]
async fn final_states_never_change() {
    let app = spawn_app().await;
    // confirmed
    let scene = app.create_scene().await;
    let code = app.login_code("o_final");
    let mp_token = app.scanned(&scene.id, &code).await;
    ok_json(app.confirm_token(&scene.id, &mp_token).await).await;
    let res = app.scan(&scene.id, &app.login_code("o_final")).await;
    crate::helpers::assert_problem(res, 409, "scene_final").await;
    let res = app
        .cancel(&json!({"scene_id": scene.id, "mp_token": mp_token}))
        .await;
    crate::helpers::assert_problem(res, 409, "scene_final").await;
    let code = app.login_code("o_final");
    let res = app
        .cancel(&json!({"scene_id": scene.id, "code": code}))
        .await;
    crate::helpers::assert_problem(res, 409, "scene_final").await;
    let res = app.scan(&scene.id, &app.login_code("o_someone")).await;
    assert_eq!(res.status(), 409);
    assert_eq!(app.state_of(&scene).await, "confirmed");

    // cancelled (single step, with a code)
    let scene = app.create_scene().await;
    let code = app.login_code("o_final");
    let res = app
        .cancel(&json!({"scene_id": scene.id, "code": code}))
        .await;
    assert_eq!(ok_json(res).await["state"], "cancelled");
    let code = app.login_code("o_final");
    let res = app
        .confirm(&json!({"scene_id": scene.id, "code": code}))
        .await;
    crate::helpers::assert_problem(res, 409, "scene_final").await;
    let res = app.scan(&scene.id, &app.login_code("o_final")).await;
    crate::helpers::assert_problem(res, 409, "scene_final").await;
    assert_eq!(app.state_of(&scene).await, "cancelled");
    let event = ok_json(app.events(&scene, None, 0).await).await;
    assert!(event.get("ticket").is_none(), "{event}");
}

#[tokio::test]
async fn scenes_of_another_client_redeem_only_there() {
    let app = spawn_app().await;
    let res = app
        .post_scene(
            &json!({"client_id": crate::helpers::OTHER_CLIENT_ID}),
            Some(crate::helpers::OTHER_ORIGIN),
        )
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("JSON");
    let scene = Scene {
        id: body["scene_id"].as_str().expect("id").to_owned(),
        browser_token: body["browser_token"].as_str().expect("token").to_owned(),
        body,
    };
    let scan = ok_json(app.scan(&scene.id, &app.login_code("o_o")).await).await;
    assert_eq!(scan["client"]["id"], crate::helpers::OTHER_CLIENT_ID);
    assert_eq!(scan["client"]["name"], "Other site");
    assert_eq!(scan["client"]["origin"], crate::helpers::OTHER_ORIGIN);
    let mp_token = scan["mp_token"].as_str().expect("mp_token");
    ok_json(app.confirm_token(&scene.id, mp_token).await).await;
    let event = ok_json(app.events(&scene, None, 0).await).await;
    let ticket = event["ticket"].as_str().expect("ticket");
    crate::helpers::assert_problem(app.redeem(ticket).await, 400, "invalid_ticket").await;
    let body = ok_json(
        app.redeem_as(
            crate::helpers::OTHER_CLIENT_ID,
            crate::helpers::OTHER_CLIENT_SECRET,
            ticket,
        )
        .await,
    )
    .await;
    assert_eq!(body["client_id"], crate::helpers::OTHER_CLIENT_ID);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_the_browsers() {
    let app = spawn_app_with(|cfg| {
        cfg.trusted_proxies = vec!["127.0.0.1".into()];
        cfg.rate_limit.scenes_per_minute = 1;
        cfg.rate_limit.burst = 1;
    })
    .await;
    let create = |forwarded: &'static str| {
        app.http
            .post(app.url("/api/v1/scenes"))
            .header("Origin", ORIGIN)
            .header("X-Forwarded-For", forwarded)
            .json(&json!({"client_id": CLIENT_ID}))
            .send()
    };
    // The proxy (127.0.0.1, trusted) appends what it saw; a client-made
    // entry to its left is not the browser's address.
    let res = create("198.51.100.1, 203.0.113.20").await.expect("create");
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("JSON");
    let scene_id = body["scene_id"].as_str().expect("id").to_owned();
    let scan = ok_json(app.scan(&scene_id, &app.login_code("o_proxied")).await).await;
    assert_eq!(scan["browser"]["ip"], "203.0.113.20");
    // The rate limit counts per forwarded address: that browser is spent,
    // another one behind the same proxy is not.
    crate::helpers::assert_problem(
        create("203.0.113.20").await.expect("create"),
        429,
        "rate_limited",
    )
    .await;
    assert_eq!(create("203.0.113.21").await.expect("create").status(), 201);
}

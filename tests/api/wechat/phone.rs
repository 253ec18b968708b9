//! Phone numbers: `phone_code` on confirm, kept sealed on the user, shown
//! only to clients with `phone = true`; WeChat refusing leaves the scene
//! scanned.

use scanlogin::config::ClientSettings;
use sea_orm::{ConnectionTrait, EntityTrait, Statement};
use serde_json::{Value, json};

use crate::helpers::fake_wechat::{Api, Fault};
use crate::helpers::{
    CLIENT_ID, Scene, TestApp, assert_problem, client, ok_json, spawn_app_with, unique,
};

const PHONE_CLIENT: &str = "phone-site";
const PHONE_SECRET: &str = "phone-site-secret-0123456789";
const PHONE_ORIGIN: &str = "http://phone.test";

/// A hub with a third client that asks for phone numbers.
async fn phone_hub() -> TestApp {
    spawn_app_with(|c| c.settings(|s| s.clients.push(phone_client()))).await
}

/// A third client that asks for phone numbers.
fn phone_client() -> ClientSettings {
    ClientSettings {
        allowed_origins: vec![PHONE_ORIGIN.into()],
        phone: true,
        ..client(PHONE_CLIENT, "Phone site", PHONE_SECRET)
    }
}

async fn scene_for(app: &TestApp, client_id: &str, origin: &str) -> Scene {
    let res = app
        .post_scene(&json!({"client_id": client_id}), Some(origin))
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("JSON");
    Scene {
        id: body["scene_id"].as_str().expect("scene_id").to_owned(),
        browser_token: body["browser_token"].as_str().expect("token").to_owned(),
        body,
    }
}

/// Scans, checks `client.wants_phone`, returns the mp token.
async fn scan_expecting(app: &TestApp, scene: &Scene, openid: &str, wants_phone: bool) -> String {
    let body = ok_json(app.scan(&scene.id, &app.login_code(openid)).await).await;
    assert_eq!(body["client"]["wants_phone"], wants_phone, "{body}");
    body["mp_token"].as_str().expect("mp_token").to_owned()
}

async fn ticket_of(app: &TestApp, scene: &Scene) -> String {
    let body = ok_json(app.events(scene, None, 0).await).await;
    assert_eq!(body["state"], "confirmed", "{body}");
    body["ticket"].as_str().expect("ticket").to_owned()
}

#[tokio::test]
async fn phone_number_goes_to_phone_clients_only_and_is_sealed() {
    let app = phone_hub().await;
    let openid = unique("o_phone");

    // A client with `phone = true`: the phone is asked, the number redeemed.
    let scene = scene_for(&app, PHONE_CLIENT, PHONE_ORIGIN).await;
    let mp_token = scan_expecting(&app, &scene, &openid, true).await;
    app.fake.add_phone_code("pc-1", "13912345678");
    let confirmed = ok_json(
        app.confirm(&json!({"scene_id": scene.id, "mp_token": mp_token, "phone_code": "pc-1"}))
            .await,
    )
    .await;
    let user_id = confirmed["user_id"].as_str().expect("user_id").to_owned();
    assert_eq!(app.fake.calls(Api::PhoneNumber), 1);
    let ticket = ticket_of(&app, &scene).await;
    let redeemed = ok_json(app.redeem_as(PHONE_CLIENT, PHONE_SECRET, &ticket).await).await;
    assert_eq!(redeemed["user"]["id"], user_id.as_str());
    assert_eq!(
        redeemed["user"]["phone_number"], "13912345678",
        "{redeemed}"
    );
    // The browser's event does not carry it.
    let event = ok_json(app.events(&scene, None, 0).await).await;
    assert!(!event.to_string().contains("13912345678"), "{event}");

    // In the database the number is sealed, bound to the user's row.
    let db = app.db().await;
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT phone_number FROM users WHERE id = '{user_id}'"),
        ))
        .await
        .expect("query")
        .expect("user row");
    let stored: String = row.try_get_by_index(0).expect("phone_number");
    assert!(stored.starts_with("v1."), "{stored}");
    assert!(!stored.contains("13912345678"), "{stored}");

    // The same person logs in to a client without `phone`: not asked, not shown.
    let scene = scene_for(&app, CLIENT_ID, crate::helpers::ORIGIN).await;
    let mp_token = scan_expecting(&app, &scene, &openid, false).await;
    ok_json(app.confirm_token(&scene.id, &mp_token).await).await;
    let ticket = ticket_of(&app, &scene).await;
    let redeemed = ok_json(app.redeem(&ticket).await).await;
    assert_eq!(redeemed["user"]["id"], user_id.as_str());
    assert!(redeemed["user"].get("phone_number").is_none(), "{redeemed}");
    assert!(!redeemed.to_string().contains("13912345678"), "{redeemed}");
}

#[tokio::test]
async fn bad_phone_code_is_502_and_the_scene_stays_scanned() {
    let app = phone_hub().await;
    let scene = scene_for(&app, PHONE_CLIENT, PHONE_ORIGIN).await;
    let mp_token = scan_expecting(&app, &scene, &unique("o_bad"), true).await;
    let body = assert_problem(
        app.confirm(&json!({"scene_id": scene.id, "mp_token": mp_token, "phone_code": "nope"}))
            .await,
        502,
        "wechat_error",
    )
    .await;
    assert_eq!(body["errcode"], 40029, "{body}");
    assert_eq!(app.state_of(&scene).await, "scanned");
    // An empty or oversized code is the phone's mistake: 400, nothing asked.
    for code in [String::new(), "x".repeat(300)] {
        assert_problem(
            app.confirm(&json!({"scene_id": scene.id, "mp_token": mp_token, "phone_code": code}))
                .await,
            400,
            "invalid_request",
        )
        .await;
    }
    assert_eq!(app.fake.calls(Api::PhoneNumber), 1);
    assert_eq!(app.state_of(&scene).await, "scanned");
    // WeChat failing otherwise (busy, garbage) is 502 too, still scanned.
    app.fake
        .fail_next(Api::PhoneNumber, Fault::Errcode(-1, "system error"));
    app.fake.add_phone_code("pc-ok", "13800000001");
    assert_problem(
        app.confirm(&json!({"scene_id": scene.id, "mp_token": mp_token, "phone_code": "pc-ok"}))
            .await,
        502,
        "wechat_error",
    )
    .await;
    app.fake.fail_next(Api::PhoneNumber, Fault::Garbage);
    assert_problem(
        app.confirm(&json!({"scene_id": scene.id, "mp_token": mp_token, "phone_code": "pc-ok"}))
            .await,
        502,
        "wechat_error",
    )
    .await;
    assert_eq!(app.state_of(&scene).await, "scanned");
    // The person may still confirm.
    ok_json(
        app.confirm(&json!({"scene_id": scene.id, "mp_token": mp_token, "phone_code": "pc-ok"}))
            .await,
    )
    .await;
    assert_eq!(app.state_of(&scene).await, "confirmed");
}

#[tokio::test]
async fn phone_call_refreshes_a_refused_token_once() {
    // SPEC v3: only a client with `phone = true` may be sent a phone_code.
    let app = phone_hub().await;
    let scene = scene_for(&app, PHONE_CLIENT, PHONE_ORIGIN).await;
    let mp_token = app
        .scanned(&scene.id, &app.login_code(&unique("o_tok")))
        .await;
    let tokens_before = app.fake.calls(Api::StableToken);
    app.fake.fail_next(
        Api::PhoneNumber,
        Fault::Errcode(40001, "invalid credential"),
    );
    app.fake.add_phone_code("pc-tok", "13800000002");
    ok_json(
        app.confirm(&json!({"scene_id": scene.id, "mp_token": mp_token, "phone_code": "pc-tok"}))
            .await,
    )
    .await;
    assert_eq!(app.fake.calls(Api::PhoneNumber), 2);
    // No code image was asked for: one token to start, one after the refusal.
    assert_eq!(app.fake.calls(Api::StableToken), tokens_before + 2);
    // The retried call gave the number, shared with this client.
    let ticket = ticket_of(&app, &scene).await;
    let redeemed = ok_json(app.redeem_as(PHONE_CLIENT, PHONE_SECRET, &ticket).await).await;
    assert_eq!(
        redeemed["user"]["phone_number"], "13800000002",
        "{redeemed}"
    );
}

#[tokio::test]
async fn webhook_payloads_never_carry_the_phone_number() {
    // The outbox keeps payloads in plain text, so the number stays out of
    // them even for a client with `phone = true`: it redeems the ticket.
    let secret = format!("whsec_{}", base64_of(&[7u8; 32]));
    let app = spawn_app_with(|c| {
        c.settings(move |s| {
            s.clients.push(ClientSettings {
                webhook_url: Some("http://127.0.0.1:9/hook".parse().expect("URL")),
                webhook_secret: Some(secret.into()),
                ..phone_client()
            });
        });
    })
    .await;
    let scene = scene_for(&app, PHONE_CLIENT, PHONE_ORIGIN).await;
    let mp_token = scan_expecting(&app, &scene, &unique("o_hook"), true).await;
    app.fake.add_phone_code("pc-hook", "13700000003");
    ok_json(
        app.confirm(&json!({"scene_id": scene.id, "mp_token": mp_token, "phone_code": "pc-hook"}))
            .await,
    )
    .await;
    let db = app.db().await;
    let events = entity::webhook_events::Entity::find()
        .all(&db)
        .await
        .expect("events");
    assert_eq!(events.len(), 1, "one login.confirmed event");
    let payload: Value = serde_json::from_str(&events[0].payload).expect("JSON payload");
    assert_eq!(payload["type"], "login.confirmed");
    assert!(payload["data"]["user"]["id"].is_string(), "{payload}");
    assert!(!events[0].payload.contains("13700000003"), "{payload}");
    assert!(
        payload["data"]["user"].get("phone_number").is_none(),
        "{payload}"
    );
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

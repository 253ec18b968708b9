//! `wechat.mode = "simulator"`: a whole login against the hub's built-in
//! WeChat, with codes from `/sim/api/login`.

use std::time::Duration;

use scanlogin::simulator::{sim_openid, sim_unionid};
use serde_json::{Value, json};

use crate::helpers::fake_wechat::Api;
use crate::helpers::{APP_ID, Ending, TestApp, ok_json, spawn_app, spawn_app_with};

async fn sim_code(app: &TestApp, user: &str) -> String {
    let res = app
        .post_json("/sim/api/login", &json!({"user": user}))
        .await;
    let body = ok_json(res).await;
    body["code"].as_str().expect("code").to_owned()
}

#[tokio::test]
async fn one_login_against_the_simulator() {
    let app = spawn_app_with(|cfg| cfg.simulator = true).await;
    let scene = app.create_scene().await;

    let res = app.qrcode(&scene.id).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    let png = res.bytes().await.expect("bytes");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png.len() > 100);

    let mut ws = app.ws_connect(&scene).await;
    assert_eq!(ws.next_event().await["state"], "waiting");
    let code = sim_code(&app, "alice").await;
    let mp_token = app.scanned(&scene.id, &code).await;
    assert_eq!(ws.next_event().await["state"], "scanned");

    // The simulated phone's encrypted profile, made with alice's session key.
    let info = ok_json(
        app.post_json(
            "/sim/api/userinfo",
            &json!({"user": "alice", "nickname": "Alice Sim", "avatar_url": "https://img.example/sim.png"}),
        )
        .await,
    )
    .await;
    let res = app
        .confirm(&json!({"scene_id": scene.id, "mp_token": mp_token,
            "encrypted_data": info["encrypted_data"], "iv": info["iv"],
            "raw_data": info["raw_data"], "signature": info["signature"]}))
        .await;
    assert_eq!(ok_json(res).await["state"], "confirmed");
    let event = ws.next_event().await;
    assert_eq!(event["state"], "confirmed");
    assert_eq!(event["user"]["nickname"], "Alice Sim");
    assert_eq!(
        ws.close_code(Duration::from_secs(5)).await,
        Ending::Closed(1000)
    );

    let ticket = event["ticket"].as_str().expect("ticket");
    let body: Value = ok_json(app.redeem(ticket).await).await;
    assert_eq!(body["user"]["unionid"], sim_unionid("alice"));
    assert_eq!(
        body["user"]["identities"],
        json!([{"app_id": APP_ID, "openid": sim_openid(APP_ID, "alice")}])
    );
    // The fake was never involved.
    assert_eq!(app.fake.calls(Api::StableToken), 0);
    assert_eq!(app.fake.calls(Api::CodeToSession), 0);

    // Simulator codes work once at the simulator; the hub remembers the first.
    let code = sim_code(&app, "bob").await;
    let scene = app.create_scene().await;
    let one = ok_json(
        app.confirm(&json!({"scene_id": scene.id, "code": code}))
            .await,
    )
    .await;
    let two = ok_json(
        app.confirm(&json!({"scene_id": scene.id, "code": code}))
            .await,
    )
    .await;
    assert_eq!(one, two);
}

#[tokio::test]
async fn simulator_routes_are_absent_in_live_mode() {
    let app = spawn_app().await;
    let res = app
        .post_json("/sim/api/login", &json!({"user": "alice"}))
        .await;
    assert_eq!(res.status(), 404);
}

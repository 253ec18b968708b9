//! The built-in simulator plays the new WeChat paths too: phone numbers for
//! its pretend users and quota errors on demand.

use scanlogin::simulator::sim_phone;
use serde_json::json;

use crate::helpers::{TestApp, assert_problem, ok_json, spawn_app_with, unique};

async fn sim(app: &TestApp, path: &str, body: serde_json::Value) -> serde_json::Value {
    ok_json(app.post_json(path, &body).await).await
}

#[tokio::test]
async fn the_simulator_gives_phone_numbers_for_its_users() {
    let app = spawn_app_with(|c| {
        c.simulator = true;
        c.settings(|s| {
            s.clients.push(scanlogin::config::ClientSettings {
                allowed_origins: vec!["http://phone.test".into()],
                phone: true,
                ..crate::helpers::client("phone-site", "Phone site", "phone-site-secret-0123456789")
            });
        });
    })
    .await;
    let res = app
        .post_scene(
            &json!({"client_id": "phone-site"}),
            Some("http://phone.test"),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: serde_json::Value = res.json().await.expect("JSON");
    let scene_id = created["scene_id"].as_str().expect("scene_id");
    let code = sim(&app, "/sim/api/login", json!({"user": "dora"})).await["code"]
        .as_str()
        .expect("code")
        .to_owned();
    let scanned = ok_json(app.scan(scene_id, &code).await).await;
    assert_eq!(scanned["client"]["wants_phone"], true);
    let mp_token = scanned["mp_token"].as_str().expect("mp_token");
    let phone_code = sim(&app, "/sim/api/phone", json!({"user": "dora"})).await["code"]
        .as_str()
        .expect("code")
        .to_owned();
    // A made-up code is refused by the simulator as by WeChat.
    assert_problem(
        app.confirm(&json!({"scene_id": scene_id, "mp_token": mp_token, "phone_code": "made-up"}))
            .await,
        502,
        "wechat_error",
    )
    .await;
    ok_json(
        app.confirm(&json!({"scene_id": scene_id, "mp_token": mp_token, "phone_code": phone_code}))
            .await,
    )
    .await;
    let events = ok_json(
        app.http
            .get(app.url(&format!("/api/v1/scenes/{scene_id}/events")))
            .bearer_auth(created["browser_token"].as_str().expect("token"))
            .send()
            .await
            .expect("events"),
    )
    .await;
    let redeemed = ok_json(
        app.redeem_as(
            "phone-site",
            "phone-site-secret-0123456789",
            events["ticket"].as_str().expect("ticket"),
        )
        .await,
    )
    .await;
    assert_eq!(redeemed["user"]["phone_number"], sim_phone("dora"));
    assert!(sim_phone("dora").starts_with("13") && sim_phone("dora").len() == 11);
}

#[tokio::test]
async fn the_simulator_answers_quota_errors_on_demand() {
    let (a, b) = (unique("wxsima"), unique("wxsimb"));
    let app = spawn_app_with(|c| {
        c.simulator = true;
        c.apps = vec![(a.clone(), "sa".into()), (b.clone(), "sb".into())];
    })
    .await;
    let set = sim(&app, "/sim/api/quota", json!({"app_id": a, "calls": 1})).await;
    assert_eq!(set, json!({"app_id": a, "calls": 1}));
    let scene = app.create_scene().await;
    assert_eq!(scene.body["app_id"], a.as_str());
    assert_eq!(app.qrcode(&scene.id).await.status(), 200);
    // App A's quota is spent: the next scene shows app B's code.
    let next = app.create_scene().await;
    assert_eq!(next.body["app_id"], b.as_str());
    // Every app out of quota: 502.
    sim(&app, "/sim/api/quota", json!({"app_id": b, "calls": 1})).await;
    let body = assert_problem(app.qrcode(&next.id).await, 502, "wechat_error").await;
    assert_eq!(body["errcode"], 45009);
    let res = app
        .post_json("/sim/api/quota", &json!({"app_id": "wxnope", "calls": 1}))
        .await;
    assert_eq!(res.status(), 400);
}

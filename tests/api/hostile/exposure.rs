//! What an attacker could grow or read: metrics labels, origins, secrets
//! at rest.

use reqwest::Method;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::helpers::{
    CLIENT_ID, ORIGIN, Scene, assert_problem, ok_json, session_key, spawn_app, spawn_app_with,
    unique,
};

use super::row_counts;

#[tokio::test]
async fn made_up_methods_do_not_grow_the_metrics() {
    let app = spawn_app().await;
    for i in 0..200 {
        let method = Method::from_bytes(format!("X{i}Y").as_bytes()).expect("method");
        let res = app
            .http
            .request(method, app.url("/healthz"))
            .send()
            .await
            .expect("request");
        assert_problem(res, 405, "invalid_request").await;
    }
    let text = crate::helpers::get_text(&app.http, app.url("/metrics")).await;
    assert!(!text.contains("X7Y"), "a made-up method became a label");
    assert!(text.contains("method=\"other\""), "{text}");
}

#[tokio::test]
async fn metrics_can_live_on_their_own_address() {
    // Port 0: the hub binds its own and says which (on another loopback
    // address, as `127.0.0.1:0` is the hub's own bind and must differ).
    let app = spawn_app_with(|cfg| cfg.metrics_bind = Some("127.0.0.2:0".into())).await;
    let metrics = app.metrics_addr.expect("metrics address");
    assert_ne!(metrics.port(), 0);
    let public = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_problem(public, 404, "invalid_request").await;
    let private = app
        .http
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(private.status(), 200);
    assert!(
        private
            .text()
            .await
            .expect("text")
            .contains("scanlogin_open_sockets")
    );
}

#[tokio::test]
async fn an_origin_that_is_not_ascii_is_refused_not_ignored() {
    let app = spawn_app().await;
    let db = app.db().await;
    let before = row_counts(&db).await;
    let res = app
        .http
        .post(app.url("/api/v1/scenes"))
        .header(
            "Origin",
            reqwest::header::HeaderValue::from_bytes(b"http://site.test\xff").expect("header"),
        )
        .json(&json!({"client_id": CLIENT_ID}))
        .send()
        .await
        .expect("create");
    assert_problem(res, 403, "origin_not_allowed").await;
    assert_eq!(row_counts(&db).await, before);
}

#[tokio::test]
async fn a_scene_made_without_origin_is_shown_to_the_phone_as_a_server() {
    let app = spawn_app().await;
    // What a QRLJacking script does: no browser, no Origin.
    let res = app.post_scene(&json!({"client_id": CLIENT_ID}), None).await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("JSON");
    let scene_id = body["scene_id"].as_str().expect("id");
    let scan = ok_json(app.scan(scene_id, &app.login_code(&unique("o"))).await).await;
    assert_eq!(scan["client"]["origin"], Value::Null, "{scan}");
    assert_eq!(scan["browser"]["kind"], "server", "{scan}");
    // A page's scene says where it came from.
    let page = app.create_scene().await;
    let scan = ok_json(app.scan(&page.id, &app.login_code(&unique("o"))).await).await;
    assert_eq!(scan["client"]["origin"], ORIGIN);
    assert_eq!(scan["browser"]["kind"], "browser");
}

#[tokio::test]
async fn session_keys_and_access_tokens_are_sealed_at_rest() {
    let app = spawn_app().await;
    let scene: Scene = app.create_scene().await;
    let code = unique("code");
    let key = session_key();
    app.fake.add_code(&code, &unique("o"), None, &key);
    app.scanned(&scene.id, &code).await;
    // The code image made the hub fetch and store an access token.
    assert_eq!(app.qrcode(&scene.id).await.status(), 200);
    let db = app.db().await;
    let dump = |sql: &'static str| {
        let db = &db;
        async move {
            db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
                .await
                .expect("query")
                .into_iter()
                .map(|r| r.try_get::<Option<String>>("", "v").expect("v"))
                .collect::<Vec<_>>()
        }
    };
    let scene_keys = dump("SELECT session_key AS v FROM scenes").await;
    let exchange_keys = dump("SELECT session_key AS v FROM code_exchanges").await;
    let tokens = dump("SELECT access_token AS v FROM wechat_tokens").await;
    assert_eq!(tokens.len(), 1);
    let handed_out = app.fake.token_requests().len();
    assert!(handed_out >= 1);
    for sealed in scene_keys
        .iter()
        .chain(&exchange_keys)
        .chain(&tokens)
        .flatten()
    {
        assert!(sealed.starts_with("v1."), "{sealed}");
        assert!(!sealed.contains(&key));
    }
    assert!(
        scene_keys.iter().flatten().count() == 1 && exchange_keys.len() == 1,
        "{scene_keys:?} {exchange_keys:?}"
    );
    // Sealed keys still work: a signed profile is checked with the key.
    let mp_token = app.scanned(&scene.id, &code).await;
    let raw = r#"{"nickName":"Sealed"}"#;
    let signature = {
        use sha1::Digest;
        hex::encode(sha1::Sha1::digest(format!("{raw}{key}").as_bytes()))
    };
    let res = app
        .confirm(&json!({"scene_id": scene.id, "mp_token": mp_token,
            "raw_data": raw, "signature": signature}))
        .await;
    assert_eq!(ok_json(res).await["state"], "confirmed");
    // A final scene keeps no session key at all.
    assert!(
        dump("SELECT session_key AS v FROM scenes")
            .await
            .iter()
            .all(Option::is_none)
    );
}

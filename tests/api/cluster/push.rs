//! Pushes between nodes, also across a lost LISTEN connection, and
//! readiness while the listener cannot reconnect.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::WAIT;
use crate::helpers::tcp_proxy::TcpProxy;

use super::{
    ClusterDb, Node, NodeOptions, confirm, create_scene, fake_wechat, next_state,
    next_state_within, post, scan, socket,
};

#[tokio::test]
async fn a_browser_on_node_a_hears_a_confirm_through_node_b() {
    let Some(db) = ClusterDb::create().await else {
        return;
    };
    let db_url = db.url.clone();

    let a = Node::start(&db_url).await;
    let b = Node::start(&db_url).await;
    let scene = post(a.url("/api/v1/scenes"), json!({"client_id": "shop"})).await;
    let id = scene["scene_id"].as_str().expect("scene_id");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://127.0.0.1:{}/api/v1/scenes/{id}/ws",
        a.port
    ))
    .await
    .expect("ws to node A");
    ws.send(Message::text(
        json!({"type": "auth", "browser_token": scene["browser_token"]}).to_string(),
    ))
    .await
    .expect("auth");
    assert_eq!(next_state(&mut ws).await["state"], "waiting");

    // The phone talks to node B only (its own simulator hands out the code).
    let code = post(b.url("/sim/api/login"), json!({"user": "zoe"})).await["code"].clone();
    let scan = post(
        b.url("/api/v1/mp/scan"),
        json!({"scene_id": id, "code": code}),
    )
    .await;
    assert_eq!(next_state(&mut ws).await["state"], "scanned");
    post(
        b.url("/api/v1/mp/confirm"),
        json!({"scene_id": id, "mp_token": scan["mp_token"], "profile": {"nickname": "Zoe"}}),
    )
    .await;
    let confirmed = next_state(&mut ws).await;
    assert_eq!(confirmed["state"], "confirmed");
    assert_eq!(confirmed["user"]["nickname"], "Zoe");

    // The ticket pushed by node A redeems on node B: same key, same database.
    let res = reqwest::Client::new()
        .post(b.url("/api/v1/tickets/redeem"))
        .basic_auth("shop", Some("shop-client-secret-123"))
        .json(&json!({"ticket": confirmed["ticket"]}))
        .send()
        .await
        .expect("redeem");
    assert_eq!(res.status(), 200);

    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_push_sent_while_the_listener_reconnects_arrives_at_once() {
    let Some(db) = ClusterDb::create().await else {
        return;
    };
    let fake = fake_wechat().await;
    let a = Node::start_with(&db.url, NodeOptions::live(&fake)).await;
    let b = Node::start_with(&db.url, NodeOptions::live(&fake)).await;
    let old = db.wait_listening(&b, None).await;
    // Two scanned scenes whose browsers wait on node B.
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let (id, token) = create_scene(&a).await;
        let mut ws = socket(&b, &id, &token).await;
        let mp_token = scan(&a, &fake, &id).await;
        assert_eq!(next_state(&mut ws).await["state"], "scanned");
        waiting.push((id, mp_token, ws));
    }
    // Node B's LISTEN backend ends; the phones confirm through node A at
    // once, while B reconnects.
    db.terminate(old).await;
    for (id, mp_token, _) in &waiting {
        confirm(&a, id, mp_token).await;
    }
    // The reconnect's back-off alone may take 1.25 s; 8 s allows a loaded
    // machine and still comes before the sockets' 20 s catch-up from the
    // database, so only the resync after the reconnect can deliver in time.
    for (_, _, ws) in &mut waiting {
        let event = next_state_within(ws, Duration::from_secs(8)).await;
        assert_eq!(event["state"], "confirmed", "{event}");
    }
    let new = db.wait_listening(&b, Some(old)).await;
    assert_ne!(new, old, "node B listens on a new connection");
}

#[tokio::test]
async fn a_push_sent_during_a_one_second_outage_arrives_right_after_it() {
    let Some(db) = ClusterDb::create().await else {
        return;
    };
    let fake = fake_wechat().await;
    let proxy = TcpProxy::start(db.server_addr()).await;
    let a = Node::start_with(&db.url, NodeOptions::live(&fake)).await;
    let b = Node::start_with(
        &db.url,
        NodeOptions {
            listen_url: Some(db.url_via(proxy.port())),
            ..NodeOptions::live(&fake)
        },
    )
    .await;
    db.wait_listening(&b, None).await;
    let (id, token) = create_scene(&a).await;
    let mut ws = socket(&b, &id, &token).await;
    let mp_token = scan(&a, &fake, &id).await;
    assert_eq!(next_state(&mut ws).await["state"], "scanned");

    // For about a second node B cannot reach PostgreSQL to listen; the phone
    // confirms through node A meanwhile.
    proxy.cut();
    confirm(&a, &id, &mp_token).await;
    let heard = tokio::time::timeout(Duration::from_secs(1), ws.next()).await;
    assert!(heard.is_err(), "nothing can reach node B: {heard:?}");
    proxy.restore();
    // Within the time a loaded machine needs, still well before the
    // socket's 20 s catch-up from the database.
    let event = next_state_within(&mut ws, Duration::from_secs(8)).await;
    assert_eq!(event["state"], "confirmed", "{event}");
}

#[tokio::test]
async fn readyz_fails_while_the_listener_cannot_reconnect_past_the_grace() {
    let Some(db) = ClusterDb::create().await else {
        return;
    };
    let fake = fake_wechat().await;
    let proxy = TcpProxy::start(db.server_addr()).await;
    let node = Node::start_with(
        &db.url,
        NodeOptions {
            listen_url: Some(db.url_via(proxy.port())),
            grace_secs: Some(1),
            ..NodeOptions::live(&fake)
        },
    )
    .await;
    db.wait_listening(&node, None).await;
    let http = reqwest::Client::new();
    let readyz = || async {
        let res = http.get(node.url("/readyz")).send().await.expect("readyz");
        let status = res.status().as_u16();
        let content_type = res.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .to_owned();
        (
            status,
            content_type,
            res.json::<Value>().await.unwrap_or(Value::Null),
        )
    };
    assert_eq!(readyz().await.0, 200);

    proxy.cut();
    let cut = Instant::now();
    let (body, content_type) = loop {
        let (status, content_type, body) = readyz().await;
        if status == 503 {
            break (body, content_type);
        }
        assert_eq!(status, 200, "{body}");
        assert!(cut.elapsed() < WAIT, "readyz never failed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        cut.elapsed() >= Duration::from_secs(1),
        "failed within the grace: {:?}",
        cut.elapsed()
    );
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["code"], "unavailable", "{body}");
    assert_eq!(body["status"], 503);

    proxy.restore();
    let restored = Instant::now();
    while readyz().await.0 != 200 {
        assert!(restored.elapsed() < WAIT, "readyz never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

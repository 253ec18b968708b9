//! Several nodes on one PostgreSQL database push to each other's sockets.
//! Runs when `SCANLOGIN_TEST_POSTGRES_URL` names a PostgreSQL server
//! (`.ci/run` sets it); otherwise says it was skipped.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use scanlogin::{Application, Settings};

struct Node {
    port: u16,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Node {
    async fn start(db_url: &str) -> Node {
        let toml = format!(
            r#"
            [server]
            bind = "127.0.0.1:0"
            secret_key = "cluster-test-key-0123456789abcdef0123456789"
            [database]
            url = "{db_url}"
            max_connections = 4
            [wechat]
            mode = "simulator"
            [rate_limit]
            scenes_per_minute = 10000
            burst = 1000
            [log]
            level = "warn"
            [[apps]]
            app_id = "wxcluster"
            secret = "cluster-app-secret"
            [[clients]]
            client_id = "shop"
            name = "Shop"
            client_secret = "shop-client-secret-123"
            allowed_origins = ["http://site.test"]
            "#
        );
        let settings = Settings::from_sources(&toml, Vec::new()).expect("settings");
        let app = Application::build(settings).await.expect("build node");
        let (port, stop) = (app.port(), app.shutdown_token());
        let task = tokio::spawn(app.run_until_stopped());
        Node { port, stop, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(15), self.task).await;
    }
}

async fn post(url: String, body: Value) -> Value {
    let (status, answer) = crate::process::post(url, body).await;
    assert!((200..300).contains(&status), "{status}: {answer}");
    answer
}

async fn next_state(
    ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("pushed within 5 s");
        if let Some(Ok(Message::Text(t))) = msg {
            return serde_json::from_str(&t).expect("json");
        }
        assert!(matches!(msg, Some(Ok(_))), "socket ended: {msg:?}");
    }
}

#[tokio::test]
async fn a_browser_on_node_a_hears_a_confirm_through_node_b() {
    let Ok(admin_url) = std::env::var("SCANLOGIN_TEST_POSTGRES_URL") else {
        println!("skipped: SCANLOGIN_TEST_POSTGRES_URL not set");
        return;
    };
    let name = format!("cluster_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(&admin_url)
        .await
        .expect("connect to PostgreSQL");
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create database");
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .expect("url with a database");
    let db_url = format!("{base}/{name}");

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
    let _ = admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await;
}

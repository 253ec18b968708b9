//! Issue 10's figures, measured by hand on one machine (loopback only,
//! bounded; ignored by `cargo test`):
//!
//! ```sh
//! SCANLOGIN_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo test --test api cluster_measure -- --ignored --nocapture --test-threads 1
//! ```
//!
//! Two nodes in this process on one fresh PostgreSQL database, live mode
//! against the tests' fake WeChat. Prints: the gap-to-delivery time of a
//! confirm sent right after the nodes' LISTEN backends were terminated, and
//! after a ~1 s outage (the database refusing connections to this database
//! while the listeners are cut off); WeChat code calls per scene under 4
//! concurrent code GETs on each node; the cross-node push p50/p99 (confirm
//! through node B, socket on node A). It uses only what every version of
//! the hub has (the listeners are found by their `LISTEN` query or their
//! `application_name`), so the same file measures the code before issue 10.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::fake_wechat::{Api, FakeWechat};
use crate::helpers::{session_key, unique};
use scanlogin::{Application, Settings};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const APP_ID: &str = "wxmeasure";
const APP_SECRET: &str = "measure-app-secret";
/// Longest wait for one push (the socket heartbeat is 20 s).
const PUSH_LIMIT: Duration = Duration::from_secs(30);

struct Node {
    port: u16,
    stop: tokio_util::sync::CancellationToken,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start(db_url: &str, fake: &FakeWechat) -> Node {
    let toml = format!(
        r#"
        [server]
        bind = "127.0.0.1:0"
        secret_key = "measure-key-0123456789abcdef0123456789abcdef"
        [database]
        url = "{db_url}"
        max_connections = 8
        [wechat]
        mode = "live"
        api_base = "{base}"
        timeout_ms = 5000
        [rate_limit]
        scenes_per_minute = 100000
        burst = 100000
        [log]
        level = "warn"
        [[apps]]
        app_id = "{APP_ID}"
        secret = "{APP_SECRET}"
        [[clients]]
        client_id = "shop"
        name = "Shop"
        client_secret = "shop-client-secret-123"
        allowed_origins = ["http://site.test"]
        "#,
        base = fake.url()
    );
    // Every per-IP limit off where the version has them (all of this comes
    // from 127.0.0.1); a version without them refuses the keys.
    let unlimited = toml.replace(
        "burst = 100000",
        "burst = 100000\nqrcodes_per_minute = 0\nsockets_per_minute = 0\npolls_per_minute = 0\n\
         mp_per_minute = 0\nmp_per_scene_per_minute = 0\nother_per_minute = 0",
    );
    let settings = Settings::from_sources(&unlimited, Vec::new())
        .or_else(|_| Settings::from_sources(&toml, Vec::new()))
        .expect("settings");
    let app = Application::build(settings).await.expect("build node");
    let node = Node {
        port: app.port(),
        stop: app.shutdown_token(),
    };
    tokio::spawn(app.run_until_stopped());
    node
}

impl Node {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

async fn post(url: String, body: Value) -> Value {
    let (status, answer) = crate::process::post(url, body).await;
    assert!((200..300).contains(&status), "{status}: {answer}");
    answer
}

async fn next_state(ws: &mut Ws, limit: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.ok()?;
        match msg {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).ok(),
            Some(Ok(_)) => continue,
            _ => return None,
        }
    }
}

/// A scanned scene: created on `home`, its socket on `home`, scanned through `phone`.
async fn scanned_scene(home: &Node, phone: &Node, fake: &FakeWechat) -> (String, String, Ws) {
    let scene = post(home.url("/api/v1/scenes"), json!({"client_id": "shop"})).await;
    let id = scene["scene_id"].as_str().expect("id").to_owned();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://127.0.0.1:{}/api/v1/scenes/{id}/ws",
        home.port
    ))
    .await
    .expect("ws");
    ws.send(Message::text(
        json!({"type": "auth", "browser_token": scene["browser_token"]}).to_string(),
    ))
    .await
    .expect("auth");
    assert_eq!(
        next_state(&mut ws, PUSH_LIMIT).await.expect("waiting")["state"],
        "waiting"
    );
    let code = unique("code");
    fake.add_code(&code, &unique("o_m"), None, &session_key());
    let scan = post(
        phone.url("/api/v1/mp/scan"),
        json!({"scene_id": id, "code": code}),
    )
    .await;
    assert_eq!(
        next_state(&mut ws, PUSH_LIMIT).await.expect("scanned")["state"],
        "scanned"
    );
    let mp_token = scan["mp_token"].as_str().expect("mp_token").to_owned();
    (id, mp_token, ws)
}

async fn confirm(node: &Node, id: &str, mp_token: &str) {
    post(
        node.url("/api/v1/mp/confirm"),
        json!({"scene_id": id, "mp_token": mp_token, "profile": {"nickname": "M"}}),
    )
    .await;
}

const LISTENERS: &str = "datname = $1 AND (query ILIKE 'LISTEN%' \
                         OR application_name LIKE 'scanlogin listener%')";

async fn listeners(admin: &DatabaseConnection, db: &str) -> i64 {
    let row = admin
        .query_one_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            format!("SELECT count(*) AS n FROM pg_stat_activity WHERE {LISTENERS}"),
            [db.into()],
        ))
        .await
        .expect("count")
        .expect("row");
    row.try_get::<i64>("", "n").expect("n")
}

/// Waits (bounded) until both nodes listen.
async fn both_listening(admin: &DatabaseConnection, db: &str) {
    let started = Instant::now();
    while listeners(admin, db).await < 2 {
        assert!(started.elapsed() < PUSH_LIMIT, "listeners never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn terminate_listeners(admin: &DatabaseConnection, db: &str) {
    admin
        .execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {LISTENERS}"),
            [db.into()],
        ))
        .await
        .expect("terminate");
}

async fn allow_connections(admin: &DatabaseConnection, db: &str, allow: bool) {
    admin
        .execute_unprepared(&format!(
            "ALTER DATABASE \"{db}\" WITH ALLOW_CONNECTIONS {allow}"
        ))
        .await
        .expect("alter database");
}

/// Lets the listeners listen for a while before the next cut: a trial is a
/// drop after a settled connection, not one of a flapping series (which the
/// hub answers with back-off).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::test]
#[ignore = "measurement, run by hand (see the module documentation)"]
async fn cluster_measure() {
    // Dropped (connections and all) when the guard goes, also on a panic.
    let Some(db) = crate::cluster::ClusterDb::create().await else {
        return;
    };
    let drops: usize = env_or("DROPS", 5);
    let outages: usize = env_or("OUTAGES", 3);
    let code_scenes: usize = env_or("CODE_SCENES", 20);
    let logins: usize = env_or("LOGINS", 200);

    let (admin, name) = (&db.admin, db.name.as_str());
    let url = url::Url::parse(&db.url).expect("url");
    let fake = FakeWechat::start(&[(APP_ID.into(), APP_SECRET.into())]).await;
    let a = start(url.as_str(), &fake).await;
    let b = start(url.as_str(), &fake).await;
    both_listening(admin, name).await;

    // 1. LISTEN backends terminated, confirm at once (socket on B, phone on A).
    let mut gaps = Vec::new();
    for _ in 0..drops {
        settle().await;
        let (id, mp_token, mut ws) = scanned_scene(&b, &a, &fake).await;
        terminate_listeners(admin, name).await;
        let sent = Instant::now();
        confirm(&a, &id, &mp_token).await;
        let event = next_state(&mut ws, PUSH_LIMIT).await;
        let took = sent.elapsed();
        assert_eq!(event.expect("pushed")["state"], "confirmed");
        gaps.push(ms(took));
        both_listening(admin, name).await;
    }
    println!("listener drop: confirm-to-socket ms per trial: {gaps:.1?}");

    // 2. ~1 s outage: the listeners are cut off and the database refuses
    //    new connections for a second; the confirm is sent during it.
    let mut after_outage = Vec::new();
    let mut from_confirm = Vec::new();
    for _ in 0..outages {
        settle().await;
        let (id, mp_token, mut ws) = scanned_scene(&b, &a, &fake).await;
        allow_connections(admin, name, false).await;
        terminate_listeners(admin, name).await;
        let sent = Instant::now();
        confirm(&a, &id, &mp_token).await;
        tokio::time::sleep(Duration::from_secs(1).saturating_sub(sent.elapsed())).await;
        allow_connections(admin, name, true).await;
        let ended = Instant::now();
        let event = next_state(&mut ws, PUSH_LIMIT).await;
        assert_eq!(event.expect("pushed")["state"], "confirmed");
        after_outage.push(ms(ended.elapsed()));
        from_confirm.push(ms(sent.elapsed()));
        both_listening(admin, name).await;
    }
    println!("1 s outage: outage-end-to-socket ms per trial: {after_outage:.1?}");
    println!("1 s outage: confirm-to-socket ms per trial: {from_confirm:.1?}");

    // 3. Four code GETs on each node at once, per scene.
    let http = reqwest::Client::new();
    let mut calls = Vec::new();
    for _ in 0..code_scenes {
        let scene = post(a.url("/api/v1/scenes"), json!({"client_id": "shop"})).await;
        let id = scene["scene_id"].as_str().expect("id").to_owned();
        let before = fake.calls(Api::CodeImage);
        let requests = (0..8).map(|i| {
            let node = if i % 2 == 0 { &a } else { &b };
            http.get(node.url(&format!("/api/v1/scenes/{id}/qrcode")))
                .send()
        });
        for res in futures_util::future::join_all(requests).await {
            assert_eq!(res.expect("qrcode").status(), 200);
        }
        calls.push(fake.calls(Api::CodeImage) - before);
    }
    println!(
        "WeChat code calls per scene ({code_scenes} scenes, 4 GETs on each node at once): {calls:?}"
    );

    // 4. Cross-node push: socket on A, confirm through B.
    let mut lat = Vec::new();
    for _ in 0..logins {
        let (id, mp_token, mut ws) = scanned_scene(&a, &b, &fake).await;
        let sent = Instant::now();
        let pushed = async {
            let event = next_state(&mut ws, PUSH_LIMIT).await;
            (event, sent.elapsed())
        };
        let (_, (event, took)) = tokio::join!(confirm(&b, &id, &mp_token), pushed);
        lat.push(ms(took));
        assert_eq!(event.expect("pushed")["state"], "confirmed");
    }
    lat.sort_by(f64::total_cmp);
    println!(
        "cross-node push ({logins} logins, confirm on B to socket on A): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        lat[lat.len() - 1]
    );

    drop((a, b));
}

fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

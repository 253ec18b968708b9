//! Several nodes on one PostgreSQL database push to each other's sockets,
//! also across a lost LISTEN connection, and ask WeChat once for what must
//! be asked once. Runs when `SCANLOGIN_TEST_POSTGRES_URL` names a PostgreSQL
//! server (`.ci/run` sets it); otherwise says it was skipped.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use sea_orm::{ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, Statement};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::fake_wechat::{Api, FakeWechat, Fault, fake_image};
use crate::helpers::{POSTGRES_ENV, WAIT, session_key, unique};
use crate::tcp_proxy::TcpProxy;
use scanlogin::{Application, Settings};

/// The app every test node serves (the fake WeChat knows it too).
const APP_ID: &str = "wxcluster";
const APP_SECRET: &str = "cluster-app-secret";

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A fresh database on the server of `SCANLOGIN_TEST_POSTGRES_URL`, dropped
/// (connections and all) when this is dropped, also when a test panics.
pub(crate) struct ClusterDb {
    /// The database's URL.
    pub url: String,
    /// A connection to the server's admin database.
    pub admin: DatabaseConnection,
    admin_url: String,
    name: String,
}

impl ClusterDb {
    /// `None` (and a line saying the test was skipped) without a server.
    pub async fn create() -> Option<Self> {
        let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
            println!("skipped: {POSTGRES_ENV} not set");
            return None;
        };
        let name = format!("cluster_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(&admin_url)
            .await
            .expect("connect to PostgreSQL");
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create database");
        let mut url = url::Url::parse(&admin_url).expect("a URL");
        url.set_path(&format!("/{name}"));
        Some(Self {
            url: url.to_string(),
            admin,
            admin_url,
            name,
        })
    }

    /// Where the server listens (for a proxy in front of it).
    pub fn server_addr(&self) -> SocketAddr {
        let url = url::Url::parse(&self.url).expect("a URL");
        let host = url.host_str().expect("a host");
        let port = url.port().unwrap_or(5432);
        std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .expect("resolve the server")
            .next()
            .expect("an address")
    }

    /// This database's URL through 127.0.0.1:`port`.
    pub fn url_via(&self, port: u16) -> String {
        let mut url = url::Url::parse(&self.url).expect("a URL");
        url.set_host(Some("127.0.0.1")).expect("host");
        url.set_port(Some(port)).expect("port");
        url.to_string()
    }

    /// The backend of `node`'s bus listener, once it listens.
    pub async fn listener_pid(&self, node: &Node) -> Option<i32> {
        let row = self
            .admin
            .query_one_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
                [self.name.clone().into(), node.listener_name().into()],
            ))
            .await
            .expect("pg_stat_activity");
        row.map(|r| r.try_get::<i32>("", "pid").expect("pid"))
    }

    /// Waits until `node`'s listener listens (and is not `old`).
    pub async fn wait_listening(&self, node: &Node, old: Option<i32>) -> i32 {
        let started = Instant::now();
        loop {
            if let Some(pid) = self.listener_pid(node).await
                && Some(pid) != old
            {
                return pid;
            }
            assert!(started.elapsed() < WAIT, "the listener never listened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Ends backend `pid`, as an administrator or a failover would.
    pub async fn terminate(&self, pid: i32) {
        self.admin
            .execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pg_terminate_backend($1)",
                [pid.into()],
            ))
            .await
            .expect("pg_terminate_backend");
    }
}

impl Drop for ClusterDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop cannot await and this runtime is busy: a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let _ = tokio::time::timeout(WAIT, async {
                    if let Ok(db) = Database::connect(&admin_url).await {
                        let _ = db
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                            ))
                            .await;
                        let _ = db.close().await;
                    }
                })
                .await;
            });
        })
        .join();
    }
}

/// What a test node differs in.
#[derive(Default)]
pub(crate) struct NodeOptions {
    /// Live mode against this fake WeChat (else the built-in simulator).
    pub wechat: Option<String>,
    /// `database.listen_url`.
    pub listen_url: Option<String>,
    /// `database.listener_grace_secs`.
    pub grace_secs: Option<u64>,
}

impl NodeOptions {
    /// Live mode against `fake`.
    pub fn live(fake: &FakeWechat) -> Self {
        Self {
            wechat: Some(fake.url()),
            ..Self::default()
        }
    }
}

/// A fake WeChat that knows the nodes' app.
pub(crate) async fn fake_wechat() -> FakeWechat {
    FakeWechat::start(&[(APP_ID.into(), APP_SECRET.into())]).await
}

/// A hub node in this process.
pub(crate) struct Node {
    pub port: u16,
    stop: tokio_util::sync::CancellationToken,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Node {
    async fn start(db_url: &str) -> Node {
        Self::start_with(db_url, NodeOptions::default()).await
    }

    /// Starts a node on `db_url` (same key and clients as every other node).
    pub async fn start_with(db_url: &str, o: NodeOptions) -> Node {
        let wechat = match &o.wechat {
            Some(base) => format!(
                "mode = \"live\"\napi_base = \"{base}\"\ntimeout_ms = 1500\nconnect_timeout_ms = 1000"
            ),
            None => "mode = \"simulator\"".into(),
        };
        let mut database = String::new();
        if let Some(listen) = &o.listen_url {
            database.push_str(&format!("listen_url = \"{listen}\"\n"));
        }
        if let Some(grace) = o.grace_secs {
            database.push_str(&format!("listener_grace_secs = {grace}\n"));
        }
        let toml = format!(
            r#"
            [server]
            bind = "127.0.0.1:0"
            secret_key = "cluster-test-key-0123456789abcdef0123456789"
            [database]
            url = "{db_url}"
            max_connections = 4
            {database}
            [wechat]
            {wechat}
            [rate_limit]
            scenes_per_minute = 10000
            burst = 1000
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
            "#
        );
        let settings = Settings::from_sources(&toml, Vec::new()).expect("settings");
        let app = Application::build(settings).await.expect("build node");
        let (port, stop) = (app.port(), app.shutdown_token());
        let task = Some(tokio::spawn(app.run_until_stopped()));
        Node { port, stop, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The `application_name` of this node's bus listener.
    pub fn listener_name(&self) -> String {
        format!("scanlogin listener 127.0.0.1:{}", self.port)
    }

    async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub(crate) async fn post(url: String, body: Value) -> Value {
    let (status, answer) = crate::process::post(url, body).await;
    assert!((200..300).contains(&status), "{status}: {answer}");
    answer
}

async fn next_state(
    ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> Value {
    next_state_within(ws, Duration::from_secs(5)).await
}

/// The next state event, which must come within `limit`.
pub(crate) async fn next_state_within(
    ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
    limit: Duration,
) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("pushed within {limit:?}"));
        if let Some(Ok(Message::Text(t))) = msg {
            return serde_json::from_str(&t).expect("json");
        }
        assert!(matches!(msg, Some(Ok(_))), "socket ended: {msg:?}");
    }
}

/// A scene made on `node`: (id, browser token).
pub(crate) async fn create_scene(node: &Node) -> (String, String) {
    let scene = post(node.url("/api/v1/scenes"), json!({"client_id": "shop"})).await;
    (
        scene["scene_id"].as_str().expect("scene_id").to_owned(),
        scene["browser_token"].as_str().expect("token").to_owned(),
    )
}

/// A socket on `node` for the scene, past its first (`waiting`) event.
pub(crate) async fn socket(node: &Node, id: &str, token: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://127.0.0.1:{}/api/v1/scenes/{id}/ws",
        node.port
    ))
    .await
    .expect("ws");
    ws.send(Message::text(
        json!({"type": "auth", "browser_token": token}).to_string(),
    ))
    .await
    .expect("auth");
    assert_eq!(next_state(&mut ws).await["state"], "waiting");
    ws
}

/// The phone scans through `node` (live mode); its `mp_token`.
pub(crate) async fn scan(node: &Node, fake: &FakeWechat, id: &str) -> String {
    let code = unique("code");
    fake.add_code(&code, &unique("o_cl"), None, &session_key());
    let scan = post(
        node.url("/api/v1/mp/scan"),
        json!({"scene_id": id, "code": code}),
    )
    .await;
    scan["mp_token"].as_str().expect("mp_token").to_owned()
}

/// The phone confirms through `node`.
pub(crate) async fn confirm(node: &Node, id: &str, mp_token: &str) {
    post(
        node.url("/api/v1/mp/confirm"),
        json!({"scene_id": id, "mp_token": mp_token, "profile": {"nickname": "Zoe"}}),
    )
    .await;
}

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
    for (_, _, ws) in &mut waiting {
        let event = next_state_within(ws, Duration::from_secs(2)).await;
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
    let event = next_state_within(&mut ws, Duration::from_secs(2)).await;
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

#[tokio::test]
async fn concurrent_code_requests_on_two_nodes_ask_wechat_once() {
    let Some(db) = ClusterDb::create().await else {
        return;
    };
    let fake = fake_wechat().await;
    let a = Node::start_with(&db.url, NodeOptions::live(&fake)).await;
    let b = Node::start_with(&db.url, NodeOptions::live(&fake)).await;
    let (id, _) = create_scene(&a).await;
    // A slow WeChat keeps the first call in flight while the others arrive.
    fake.fail_next(Api::CodeImage, Fault::Delay(Duration::from_millis(300)));
    let http = reqwest::Client::new();
    let requests = (0..8).map(|i| {
        let node = if i % 2 == 0 { &a } else { &b };
        http.get(node.url(&format!("/api/v1/scenes/{id}/qrcode")))
            .send()
    });
    let answers = tokio::time::timeout(WAIT, futures_util::future::join_all(requests))
        .await
        .expect("all answered");
    let expected = fake_image(&id);
    for res in answers {
        let res = res.expect("qrcode");
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.bytes().await.expect("bytes").as_ref(),
            expected.as_slice()
        );
    }
    assert_eq!(
        fake.calls(Api::CodeImage),
        1,
        "one WeChat call for the scene"
    );
    assert_eq!(fake.calls(Api::StableToken), 1, "one token for both nodes");
}

#[tokio::test]
async fn two_nodes_fetching_the_first_token_at_once_ask_wechat_once() {
    let Some(db) = ClusterDb::create().await else {
        return;
    };
    let fake = fake_wechat().await;
    let a = Node::start_with(&db.url, NodeOptions::live(&fake)).await;
    let b = Node::start_with(&db.url, NodeOptions::live(&fake)).await;
    let (one, _) = create_scene(&a).await;
    let (two, _) = create_scene(&b).await;
    // A slow stable_token keeps the first fetch in flight while the other
    // node needs a token too.
    fake.fail_next(Api::StableToken, Fault::Delay(Duration::from_millis(300)));
    let http = reqwest::Client::new();
    let (ra, rb) = tokio::time::timeout(
        WAIT,
        futures_util::future::join(
            http.get(a.url(&format!("/api/v1/scenes/{one}/qrcode")))
                .send(),
            http.get(b.url(&format!("/api/v1/scenes/{two}/qrcode")))
                .send(),
        ),
    )
    .await
    .expect("both answered");
    assert_eq!(ra.expect("node A").status(), 200);
    assert_eq!(rb.expect("node B").status(), 200);
    assert_eq!(fake.calls(Api::StableToken), 1, "one token for both nodes");
    assert_eq!(fake.calls(Api::CodeImage), 2);
}

//! Several nodes on one PostgreSQL database push to each other's sockets,
//! also across a lost LISTEN connection, and ask WeChat once for what must
//! be asked once. Runs when `SCANLOGIN_TEST_POSTGRES_URL` names a PostgreSQL
//! server (`.ci/run` sets it and requires it); otherwise reports the skip.

mod measure;
mod push;
mod wechat;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use sea_orm::{ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, Statement};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::fake_wechat::FakeWechat;
use crate::helpers::{ORIGIN, WAIT, client, hub_settings, session_key, unique};
use scanlogin::Application;
use scanlogin::config::ClientSettings;
use secrecy::SecretString;

/// The app every test node serves (the fake WeChat knows it too).
const APP_ID: &str = "wxcluster";
const APP_SECRET: &str = "cluster-app-secret";
/// The secret key every node shares.
const NODE_KEY: &str = "cluster-test-key-0123456789abcdef0123456789";

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
    /// The database's name.
    pub name: String,
}

impl ClusterDb {
    /// `None` (the skip reported, see `helpers::required`) without a server.
    pub async fn create() -> Option<Self> {
        let admin_url = crate::helpers::required::postgres_url()?;
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
        let settings = hub_settings(db_url, o.wechat.as_deref(), |c| {
            c.apps = vec![(APP_ID.into(), APP_SECRET.into())];
            c.settings(move |s| {
                s.server.secret_key = Some(SecretString::from(NODE_KEY));
                s.database.max_connections = 4;
                s.database.listen_url = o.listen_url.map(SecretString::from);
                if let Some(grace) = o.grace_secs {
                    s.database.listener_grace_secs = grace;
                }
                s.log.level = "warn".into();
                s.clients = vec![ClientSettings {
                    allowed_origins: vec![ORIGIN.into()],
                    ..client("shop", "Shop", "shop-client-secret-123")
                }];
            });
        });
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

//! `spawn_app()`: a hub of its own per test (port 0, fresh database, own
//! secret key, own fake WeChat), and typed helpers that keep tests short.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::{SinkExt, StreamExt};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Response, StatusCode};
use scanlogin::config::RateLimitSettings;
use scanlogin::{Application, Settings};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::fake_wechat::FakeWechat;

/// The first (default) app of every test hub.
pub const APP_ID: &str = "wxtest0000000001";
pub const APP_SECRET: &str = "test-app-secret";
/// The client tests act as, and its one allowed origin.
pub const CLIENT_ID: &str = "site";
pub const CLIENT_SECRET: &str = "site-secret-0123456789";
pub const ORIGIN: &str = "http://site.test";
/// A second client, for "another client's ticket".
pub const OTHER_CLIENT_ID: &str = "other";
pub const OTHER_CLIENT_SECRET: &str = "other-secret-0123456789";
pub const OTHER_ORIGIN: &str = "http://other.test";
/// Where the hub says it lives (URLs in answers are built from it).
pub const PUBLIC_URL: &str = "http://hub.test";
/// Env var naming a PostgreSQL server for the `postgres` tests.
pub const POSTGRES_ENV: &str = "SCANLOGIN_TEST_POSTGRES_URL";

/// Every wait in a test is bounded by this unless it says otherwise.
pub const WAIT: Duration = Duration::from_secs(10);

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
});

/// Which database a test hub uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestDb {
    /// A fresh SQLite file in the test's temporary folder.
    Sqlite,
    /// A fresh database on the server named by `SCANLOGIN_TEST_POSTGRES_URL`.
    Postgres,
}

/// What a test may change about its hub before it starts.
#[derive(Debug, Clone)]
pub struct TestConfig {
    pub ttl_secs: u64,
    pub timeout_ms: u64,
    /// `[rate_limit]`; every limit is high unless a test lowers it.
    pub rate_limit: RateLimitSettings,
    /// `server.metrics_bind`.
    pub metrics_bind: Option<String>,
    /// `database.busy_timeout_ms`.
    pub busy_timeout_ms: u64,
    /// `(app_id, secret)`; the first is the default app.
    pub apps: Vec<(String, String)>,
    /// Use the hub's built-in simulator instead of the fake.
    pub simulator: bool,
    /// `housekeeping.interval_secs` (retention is its minimum, one hour).
    pub housekeeping_secs: u64,
    /// Proxies whose `X-Forwarded-For` the hub believes.
    pub trusted_proxies: Vec<String>,
    pub db: TestDb,
    /// OpenID Connect `redirect_uris` of the test client (none by default).
    pub redirect_uris: Vec<String>,
    /// TOML appended to the configuration (more `[[clients]]`, `[[apps]]`).
    pub extra_toml: String,
    /// TOML lines added to every `[[apps]]` entry (e.g. `is_hyaline = true`).
    pub app_extra: String,
}

impl Default for TestConfig {
    fn default() -> Self {
        Self {
            ttl_secs: 300,
            timeout_ms: 1500,
            rate_limit: generous_limits(),
            metrics_bind: None,
            busy_timeout_ms: 5_000,
            apps: vec![(APP_ID.into(), APP_SECRET.into())],
            simulator: false,
            housekeeping_secs: 60,
            trusted_proxies: Vec::new(),
            db: default_db(),
            redirect_uris: Vec::new(),
            extra_toml: String::new(),
            app_extra: String::new(),
        }
    }
}

/// Limits no ordinary test reaches (one address plays every browser and
/// phone), still switched on so every request passes through them.
pub fn generous_limits() -> RateLimitSettings {
    RateLimitSettings {
        scenes_per_minute: 100_000,
        burst: 100_000,
        qrcodes_per_minute: 100_000,
        sockets_per_minute: 100_000,
        polls_per_minute: 100_000,
        mp_per_minute: 100_000,
        mp_per_scene_per_minute: 100_000,
        redeems_per_minute: 100_000,
        auth_failures_per_minute: 100_000,
        other_per_minute: 100_000,
    }
}

/// SQLite, unless `SCANLOGIN_TEST_DB=postgres` asks to run every test on
/// PostgreSQL (with `SCANLOGIN_TEST_POSTGRES_URL` set).
fn default_db() -> TestDb {
    match std::env::var("SCANLOGIN_TEST_DB").as_deref() {
        Ok("postgres") => TestDb::Postgres,
        _ => TestDb::Sqlite,
    }
}

/// A running hub and everything a test needs to talk to it.
pub struct TestApp {
    pub port: u16,
    /// `http://127.0.0.1:{port}`.
    pub address: String,
    pub http: reqwest::Client,
    pub fake: FakeWechat,
    /// The URL of the hub's database (to look at rows directly).
    pub db_url: String,
    /// The hub's whole configuration (for commands run against its database).
    pub config_toml: String,
    _stop: StopGuard,
    _tmp: tempfile::TempDir,
}

/// Stops the hub (and drops a per-test PostgreSQL database) when the test ends,
/// also when it panics.
struct StopGuard {
    token: CancellationToken,
    pg_cleanup: Option<(String, String)>,
}

impl Drop for StopGuard {
    fn drop(&mut self) {
        self.token.cancel();
        let Some((admin_url, name)) = self.pg_cleanup.take() else {
            return;
        };
        // Drop cannot await, and the test's runtime is busy running this drop:
        // use a thread with a runtime of its own. FORCE ends the connections
        // the stopping hub may still hold.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let _ = tokio::time::timeout(WAIT, async {
                    if let Ok(db) = sea_orm::Database::connect(&admin_url).await {
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

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// A hub with the default test configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A hub whose configuration `change` adjusts first.
pub async fn spawn_app_with(change: impl FnOnce(&mut TestConfig)) -> TestApp {
    LazyLock::force(&TRACING);
    let mut cfg = TestConfig::default();
    change(&mut cfg);
    let fake = FakeWechat::start(&cfg.apps).await;
    let tmp = tempfile::tempdir().expect("temporary folder");
    let (db_url, pg_cleanup) = match cfg.db {
        TestDb::Sqlite => (
            format!("sqlite://{}", tmp.path().join("hub.db").display()),
            None,
        ),
        TestDb::Postgres => {
            let (url, admin, name) = fresh_postgres_database().await;
            (url, Some((admin, name)))
        }
    };
    let toml_text = config_toml(&cfg, &db_url, &fake.url());
    let settings = Settings::from_sources(&toml_text, Vec::<(String, String)>::new())
        .unwrap_or_else(|e| panic!("test configuration refused: {e}\n{toml_text}"));
    let app = Application::build(settings).await.expect("hub builds");
    let port = app.port();
    let token = app.shutdown_token();
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(40))
        .build()
        .expect("HTTP client");
    TestApp {
        port,
        address: format!("http://127.0.0.1:{port}"),
        http,
        fake,
        db_url,
        config_toml: toml_text,
        _stop: StopGuard { token, pg_cleanup },
        _tmp: tmp,
    }
}

fn config_toml(cfg: &TestConfig, db_url: &str, fake_url: &str) -> String {
    let mode = if cfg.simulator { "simulator" } else { "live" };
    let mut apps = String::new();
    for (id, secret) in &cfg.apps {
        apps.push_str(&format!(
            "[[apps]]\napp_id = \"{id}\"\nsecret = \"{secret}\"\npage = \"pages/scanlogin/index\"\nenv_version = \"release\"\n{}\n\n",
            cfg.app_extra
        ));
    }
    // Every app after the first has a client whose scenes show its code.
    let mut app_clients = String::new();
    for (id, _) in cfg.apps.iter().skip(1) {
        app_clients.push_str(&format!(
            "[[clients]]\nclient_id = \"{}\"\nname = \"Site of {id}\"\nclient_secret = \"{}\"\n\
             allowed_origins = [\"{ORIGIN}\"]\napp_id = \"{id}\"\n\n",
            app_client(id).0,
            app_client(id).1,
        ));
    }
    format!(
        r#"
[server]
bind = "127.0.0.1:0"
public_url = "{PUBLIC_URL}"
secret_key = "{key}"
workers = 2
shutdown_timeout_secs = 1
trusted_proxies = {proxies:?}
{metrics_bind}

[database]
url = "{db_url}"
max_connections = 8
migrate_on_start = true
busy_timeout_ms = {busy}

[wechat]
mode = "{mode}"
api_base = "{fake_url}"
timeout_ms = {timeout}
connect_timeout_ms = 1000

[scene]
ttl_secs = {ttl}
sweep_interval_ms = 100

[rate_limit]
{limits}

[housekeeping]
retention_secs = 3600
interval_secs = {housekeeping}

{apps}
[[clients]]
client_id = "{CLIENT_ID}"
name = "Test site"
client_secret = "{CLIENT_SECRET}"
allowed_origins = ["{ORIGIN}"]
redirect_uris = {redirect_uris:?}

[[clients]]
client_id = "{OTHER_CLIENT_ID}"
name = "Other site"
client_secret = "{OTHER_CLIENT_SECRET}"
allowed_origins = ["{OTHER_ORIGIN}"]

{app_clients}
{extra}
"#,
        extra = cfg.extra_toml,
        key = random_hex(24),
        timeout = cfg.timeout_ms,
        ttl = cfg.ttl_secs,
        limits = toml::to_string(&cfg.rate_limit).expect("limits as TOML"),
        metrics_bind = cfg
            .metrics_bind
            .as_ref()
            .map(|b| format!("metrics_bind = \"{b}\""))
            .unwrap_or_default(),
        busy = cfg.busy_timeout_ms,
        housekeeping = cfg.housekeeping_secs,
        proxies = cfg.trusted_proxies,
        redirect_uris = cfg.redirect_uris,
    )
}

/// `(client_id, client_secret)` of the test client whose scenes show the
/// code of `app_id` (an app after the first).
pub fn app_client(app_id: &str) -> (String, String) {
    (
        format!("site-{app_id}"),
        format!("secret-of-{app_id}-0123456789"),
    )
}

/// Creates `t_<uuid>` on the server of `SCANLOGIN_TEST_POSTGRES_URL`; returns
/// (its URL, the admin URL, its name).
async fn fresh_postgres_database() -> (String, String, String) {
    let admin = std::env::var(POSTGRES_ENV).expect("SCANLOGIN_TEST_POSTGRES_URL is set");
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let db = sea_orm::Database::connect(&admin)
        .await
        .expect("connect to SCANLOGIN_TEST_POSTGRES_URL");
    db.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create the test database");
    let _ = db.close().await;
    let mut url = url::Url::parse(&admin).expect("SCANLOGIN_TEST_POSTGRES_URL is a URL");
    url.set_path(&format!("/{name}"));
    (url.to_string(), admin, name)
}

/// A scene as its browser holds it.
#[derive(Debug, Clone)]
pub struct Scene {
    pub id: String,
    pub browser_token: String,
    /// The whole 201 answer.
    pub body: Value,
}

static NEXT: AtomicU64 = AtomicU64::new(1);

/// A unique name for codes and openids within this test binary.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        NEXT.fetch_add(1, Ordering::Relaxed),
        random_hex(4)
    )
}

/// A random 16-byte session key, base64.
pub fn session_key() -> String {
    use rand::RngCore;
    let mut k = [0u8; 16];
    rand::rng().fill_bytes(&mut k);
    STANDARD.encode(k)
}

/// Checks an RFC 9457 answer: status, content type, the five fields and
/// `code`; returns the body.
pub async fn assert_problem(res: Response, status: u16, code: &str) -> Value {
    let got = res.status();
    let content_type = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = res.text().await.expect("problem body");
    assert_eq!(got.as_u16(), status, "status; body: {text}");
    assert!(
        content_type.starts_with("application/problem+json"),
        "content type {content_type:?}; body: {text}"
    );
    let body: Value = serde_json::from_str(&text).expect("problem body is JSON");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["type"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(body["detail"].as_str().is_some(), "{body}");
    body
}

/// GETs `url` and returns its text (any status): `/metrics` and the like.
pub async fn get_text(http: &reqwest::Client, url: String) -> String {
    http.get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .text()
        .await
        .expect("text body")
}

/// Reads a 200 JSON answer, failing with the body otherwise.
pub async fn ok_json(res: Response) -> Value {
    let status = res.status();
    let text = res.text().await.expect("body");
    assert_eq!(status, StatusCode::OK, "body: {text}");
    serde_json::from_str(&text).expect("JSON body")
}

impl TestApp {
    /// Stops the hub now, as SIGTERM would (the test keeps its handles).
    pub fn stop(&self) {
        self._stop.token.cancel();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// `POST /api/v1/scenes` with this body and `Origin` (if any).
    pub async fn post_scene(&self, body: &Value, origin: Option<&str>) -> Response {
        let mut req = self.http.post(self.url("/api/v1/scenes")).json(body);
        if let Some(o) = origin {
            req = req.header("Origin", o);
        }
        req.send().await.expect("POST /api/v1/scenes")
    }

    /// A new scene for the test client, from its allowed origin.
    pub async fn create_scene(&self) -> Scene {
        let res = self
            .post_scene(&json!({"client_id": CLIENT_ID}), Some(ORIGIN))
            .await;
        let status = res.status();
        let text = res.text().await.expect("body");
        assert_eq!(status, StatusCode::CREATED, "body: {text}");
        let body: Value = serde_json::from_str(&text).expect("JSON");
        Scene {
            id: body["scene_id"].as_str().expect("scene_id").to_owned(),
            browser_token: body["browser_token"]
                .as_str()
                .expect("browser_token")
                .to_owned(),
            body,
        }
    }

    /// A new scene of the client of `app_id` (see [`app_client`]).
    pub async fn create_scene_in(&self, app_id: &str) -> Scene {
        let res = self
            .post_scene(&json!({"client_id": app_client(app_id).0}), Some(ORIGIN))
            .await;
        let status = res.status();
        let text = res.text().await.expect("body");
        assert_eq!(status, StatusCode::CREATED, "body: {text}");
        let body: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(body["app_id"], app_id, "{body}");
        Scene {
            id: body["scene_id"].as_str().expect("scene_id").to_owned(),
            browser_token: body["browser_token"]
                .as_str()
                .expect("browser_token")
                .to_owned(),
            body,
        }
    }

    /// Redeems a ticket of a scene made by [`Self::create_scene_in`].
    pub async fn redeem_in(&self, app_id: &str, ticket: &str) -> Response {
        let (id, secret) = app_client(app_id);
        self.redeem_as(&id, &secret, ticket).await
    }

    /// A fresh `wx.login` code for `openid` (random session key, no unionid).
    pub fn login_code(&self, openid: &str) -> String {
        let code = unique("code");
        self.fake.add_code(&code, openid, None, &session_key());
        code
    }

    /// `POST /api/v1/mp/scan`.
    pub async fn scan(&self, scene_id: &str, code: &str) -> Response {
        self.post_json(
            "/api/v1/mp/scan",
            &json!({"scene_id": scene_id, "code": code}),
        )
        .await
    }

    /// Scans successfully and returns the `mp_token`.
    pub async fn scanned(&self, scene_id: &str, code: &str) -> String {
        let body = ok_json(self.scan(scene_id, code).await).await;
        assert_eq!(body["state"], "scanned", "{body}");
        body["mp_token"].as_str().expect("mp_token").to_owned()
    }

    /// `POST /api/v1/mp/confirm` with any body.
    pub async fn confirm(&self, body: &Value) -> Response {
        self.post_json("/api/v1/mp/confirm", body).await
    }

    /// Confirms with the scan's `mp_token`.
    pub async fn confirm_token(&self, scene_id: &str, mp_token: &str) -> Response {
        self.confirm(&json!({"scene_id": scene_id, "mp_token": mp_token}))
            .await
    }

    /// `POST /api/v1/mp/cancel` with any body.
    pub async fn cancel(&self, body: &Value) -> Response {
        self.post_json("/api/v1/mp/cancel", body).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// Redeems as the test client.
    pub async fn redeem(&self, ticket: &str) -> Response {
        self.redeem_as(CLIENT_ID, CLIENT_SECRET, ticket).await
    }

    /// Redeems with these HTTP Basic credentials.
    pub async fn redeem_as(&self, client_id: &str, secret: &str, ticket: &str) -> Response {
        self.http
            .post(self.url("/api/v1/tickets/redeem"))
            .basic_auth(client_id, Some(secret))
            .json(&json!({"ticket": ticket}))
            .send()
            .await
            .expect("POST redeem")
    }

    /// `GET events` (long-poll) with the scene's browser token.
    pub async fn events(&self, scene: &Scene, after: Option<&str>, wait: u64) -> Response {
        let mut url = format!("/api/v1/scenes/{}/events?wait={wait}", scene.id);
        if let Some(a) = after {
            url.push_str(&format!("&after={a}"));
        }
        self.http
            .get(self.url(&url))
            .bearer_auth(&scene.browser_token)
            .send()
            .await
            .expect("GET events")
    }

    /// A long-poll for a change from `after`, running in the background.
    pub fn spawn_long_poll(
        &self,
        scene: &Scene,
        after: &str,
        wait: u64,
    ) -> tokio::task::JoinHandle<reqwest::Result<Response>> {
        let request = self
            .http
            .get(self.url(&format!(
                "/api/v1/scenes/{}/events?after={after}&wait={wait}",
                scene.id
            )))
            .bearer_auth(&scene.browser_token);
        tokio::spawn(request.send())
    }

    /// The scene's current state as its browser is told (no waiting).
    pub async fn state_of(&self, scene: &Scene) -> String {
        let body = ok_json(self.events(scene, None, 0).await).await;
        body["state"].as_str().expect("state").to_owned()
    }

    /// `GET qrcode`.
    pub async fn qrcode(&self, scene_id: &str) -> Response {
        self.http
            .get(self.url(&format!("/api/v1/scenes/{scene_id}/qrcode")))
            .send()
            .await
            .expect("GET qrcode")
    }

    /// Opens the scene's WebSocket (no auth frame yet), optionally with an Origin.
    pub async fn ws_connect_raw(
        &self,
        scene_id: &str,
        origin: Option<&str>,
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let url = format!("ws://127.0.0.1:{}/api/v1/scenes/{scene_id}/ws", self.port);
        let mut req = url.into_client_request().expect("WebSocket request");
        if let Some(o) = origin {
            req.headers_mut()
                .insert("Origin", HeaderValue::from_str(o).expect("origin"));
        }
        let (stream, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
            .await
            .expect("WebSocket connect timed out")?;
        Ok(Ws { stream })
    }

    /// Opens the scene's WebSocket from the allowed origin and authenticates.
    /// Sends `request` (a raw HTTP/1.1 head) on a new connection and reads
    /// the answer until the hub closes it: (status, body).
    pub async fn raw_http(&self, request: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect");
        conn.write_all(request.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        tokio::time::timeout(WAIT, conn.read_to_end(&mut answer))
            .await
            .expect("the hub did not close in time")
            .expect("read");
        let answer = String::from_utf8(answer).expect("UTF-8 answer");
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    pub async fn ws_connect(&self, scene: &Scene) -> Ws {
        let mut ws = self
            .ws_connect_raw(&scene.id, Some(ORIGIN))
            .await
            .expect("WebSocket upgrade");
        ws.send_json(&json!({"type": "auth", "browser_token": scene.browser_token}))
            .await;
        ws
    }

    /// A connection to the hub's database, to look at or age rows.
    pub async fn db(&self) -> DatabaseConnection {
        let url = if self.db_url.starts_with("sqlite:") {
            format!("{}?mode=rw", self.db_url)
        } else {
            self.db_url.clone()
        };
        sea_orm::Database::connect(url)
            .await
            .expect("open the hub's database")
    }
}

/// A browser's WebSocket.
pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a socket ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// A close frame with this code.
    Closed(u16),
    /// The connection ended without a close frame.
    Dropped,
}

impl Ws {
    /// Sends `text` as one message split into `parts` frames (a first text
    /// frame and continuations), as a client may.
    pub async fn send_fragmented(&mut self, text: &str, parts: usize) {
        use tokio_tungstenite::tungstenite::protocol::frame::Frame;
        use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
        let bytes = text.as_bytes();
        let size = bytes.len().div_ceil(parts.max(1)).max(1);
        let chunks: Vec<&[u8]> = bytes.chunks(size).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let op = if i == 0 { Data::Text } else { Data::Continue };
            let frame = Frame::message(chunk.to_vec(), OpCode::Data(op), i + 1 == chunks.len());
            tokio::time::timeout(WAIT, self.stream.send(Message::Frame(frame)))
                .await
                .expect("send timed out")
                .expect("send");
        }
    }

    /// Sends a ping; the next non-event frame must be its pong.
    pub async fn ping_pong(&mut self, payload: &[u8]) {
        tokio::time::timeout(
            WAIT,
            self.stream.send(Message::Ping(payload.to_vec().into())),
        )
        .await
        .expect("send timed out")
        .expect("send");
        let msg = tokio::time::timeout(WAIT, self.stream.next())
            .await
            .expect("no pong in time");
        match msg {
            Some(Ok(Message::Pong(p))) => assert_eq!(&p[..], payload),
            other => panic!("expected a pong, got {other:?}"),
        }
    }

    pub async fn send_json(&mut self, v: &Value) {
        tokio::time::timeout(WAIT, self.stream.send(Message::text(v.to_string())))
            .await
            .expect("send timed out")
            .expect("send");
    }

    /// The next JSON text frame (pings are skipped); panics on a close.
    pub async fn next_event(&mut self) -> Value {
        self.next_event_within(WAIT).await
    }

    pub async fn next_event_within(&mut self, limit: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("no WebSocket event in time");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(t.as_str()).expect("event is JSON");
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected an event, got {other:?}"),
            }
        }
    }

    /// Waits for a ping from the server (events are not expected meanwhile).
    pub async fn next_ping(&mut self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        for _ in 0..16 {
            let msg = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("no ping in time");
            match msg {
                Some(Ok(Message::Ping(_))) => return,
                Some(Ok(Message::Pong(_))) => continue,
                other => panic!("expected a ping, got {other:?}"),
            }
        }
        panic!("too many frames before a ping");
    }

    /// Reads until the server closes; returns the close code. Events that
    /// arrive first are returned too.
    pub async fn closing(&mut self, limit: Duration) -> (Vec<Value>, Ending) {
        let deadline = tokio::time::Instant::now() + limit;
        let mut events = Vec::new();
        for _ in 0..64 {
            let msg = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("the server did not close in time");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    events.push(serde_json::from_str(t.as_str()).expect("event is JSON"));
                }
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
                    return (events, Ending::Closed(code));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return (events, Ending::Dropped),
            }
        }
        panic!("too many frames before the close");
    }

    /// The close code, when nothing but a close may come.
    pub async fn close_code(&mut self, limit: Duration) -> Ending {
        let (events, ending) = self.closing(limit).await;
        assert!(
            events.is_empty(),
            "unexpected events before close: {events:?}"
        );
        ending
    }
}

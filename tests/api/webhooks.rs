//! Signed webhooks: each hub here runs in simulator mode with the client
//! `site` pointing its `webhook_url` at a loopback receiver that records every
//! delivery and answers from a script. Signatures are checked with the npm
//! `standardwebhooks` package (web/tests/webhook_verify.js), not with our own
//! code; that check is skipped with a note where node or the package is
//! missing, unless `SCANLOGIN_REQUIRE_BROWSER` is set, as in CI.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use entity::webhook_events;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use scanlogin::{Application, Settings};

const SITE: &str = "site";
const SITE_SECRET: &str = "site-client-secret-0123";
const OTHER: &str = "other";
const OTHER_SECRET: &str = "other-client-secret-0123";
/// Every wait here is bounded by this unless it says otherwise.
const WAIT: Duration = Duration::from_secs(15);

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Delivery {
    id: String,
    timestamp: String,
    signature: String,
    content_type: String,
    body: String,
    /// What the receiver answered.
    status: u16,
    /// How long the receiver waited before answering.
    delay: Duration,
    at: Instant,
}

#[derive(Default)]
struct Script {
    /// Answers to give first, in order; then `then`.
    answers: VecDeque<u16>,
    then: u16,
    /// Waits before the first answers, in order; then none.
    delays: VecDeque<Duration>,
    seen: Vec<Delivery>,
}

/// A loopback webhook receiver.
struct Receiver {
    port: u16,
    script: Arc<Mutex<Script>>,
    handle: actix_web::dev::ServerHandle,
}

fn header(req: &HttpRequest, name: &str) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    script: web::Data<Arc<Mutex<Script>>>,
) -> HttpResponse {
    let (status, delay) = {
        let mut s = script.lock().expect("script lock");
        let status = s.answers.pop_front().unwrap_or(s.then);
        let delay = s.delays.pop_front().unwrap_or_default();
        s.seen.push(Delivery {
            id: header(&req, "webhook-id"),
            timestamp: header(&req, "webhook-timestamp"),
            signature: header(&req, "webhook-signature"),
            content_type: header(&req, "content-type"),
            body: String::from_utf8_lossy(&body).into_owned(),
            status,
            delay,
            at: Instant::now(),
        });
        (status, delay)
    };
    tokio::time::sleep(delay).await;
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status")).finish()
}

impl Receiver {
    /// Listens on `port` (0: any) and answers `answers`, then `then`.
    fn start(port: u16, answers: &[u16], then: u16) -> Receiver {
        let script = Arc::new(Mutex::new(Script {
            answers: answers.iter().copied().collect(),
            then,
            delays: VecDeque::new(),
            seen: Vec::new(),
        }));
        let data = web::Data::new(script.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", port))
        .expect("bind the receiver");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver {
            port,
            script,
            handle,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn seen(&self) -> Vec<Delivery> {
        self.script.lock().expect("script lock").seen.clone()
    }

    /// The next answers wait this long first.
    fn delay_answers(&self, delays: &[Duration]) {
        self.script.lock().expect("script lock").delays = delays.iter().copied().collect();
    }

    fn answer_from_now(&self, status: u16) {
        self.script.lock().expect("script lock").then = status;
    }

    /// Waits until at least `n` deliveries arrived.
    async fn wait_for(&self, n: usize) -> Vec<Delivery> {
        let deadline = Instant::now() + WAIT;
        loop {
            let seen = self.seen();
            if seen.len() >= n {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} deliveries within {WAIT:?}: {seen:?}",
                seen.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A fresh `whsec_` secret.
fn new_secret() -> String {
    use rand::RngCore;
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("whsec_{}", STANDARD.encode(key))
}

/// How a test hub is set up.
struct HubConfig {
    db_url: String,
    /// `site`'s webhook URL and secret; `other` never has one.
    webhook: Option<(String, String)>,
    timeout_ms: u64,
    retry_first_ms: u64,
    retry_max_ms: u64,
    retry_for_secs: u64,
}

impl HubConfig {
    fn new(db_url: &str, webhook_url: &str, secret: &str) -> Self {
        Self {
            db_url: db_url.to_owned(),
            webhook: Some((webhook_url.to_owned(), secret.to_owned())),
            timeout_ms: 2000,
            retry_first_ms: 200,
            retry_max_ms: 800,
            retry_for_secs: 3600,
        }
    }

    fn toml(&self) -> String {
        let webhook = match &self.webhook {
            Some((url, secret)) => {
                format!("webhook_url = \"{url}\"\nwebhook_secret = \"{secret}\"")
            }
            None => String::new(),
        };
        format!(
            r#"
[server]
bind = "127.0.0.1:0"
public_url = "http://hub.test"
secret_key = "webhook-tests-key-0123456789abcdef0123456789"
workers = 2
shutdown_timeout_secs = 1
[database]
url = "{db}"
max_connections = 4
[wechat]
mode = "simulator"
[rate_limit]
scenes_per_minute = 10000
burst = 1000
[log]
level = "warn"
[housekeeping]
retention_secs = 3600
interval_secs = 1
[webhooks]
timeout_ms = {timeout}
retry_first_ms = {first}
retry_max_ms = {max}
retry_for_secs = {window}
poll_interval_ms = 200
[[apps]]
app_id = "wxhooks000000001"
secret = "hooks-app-secret"
[[clients]]
client_id = "{SITE}"
name = "Site"
client_secret = "{SITE_SECRET}"
{webhook}
[[clients]]
client_id = "{OTHER}"
name = "Other"
client_secret = "{OTHER_SECRET}"
"#,
            db = self.db_url,
            timeout = self.timeout_ms,
            first = self.retry_first_ms,
            max = self.retry_max_ms,
            window = self.retry_for_secs,
        )
    }
}

/// A hub running in this process.
struct Hub {
    port: u16,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    http: reqwest::Client,
}

impl Hub {
    async fn start(cfg: &HubConfig) -> Hub {
        let text = cfg.toml();
        let settings = Settings::from_sources(&text, Vec::new())
            .unwrap_or_else(|e| panic!("settings refused: {e}\n{text}"));
        let app = Application::build(settings).await.expect("hub builds");
        let (port, stop) = (app.port(), app.shutdown_token());
        let task = tokio::spawn(app.run_until_stopped());
        let http = reqwest::Client::builder()
            .timeout(WAIT)
            .build()
            .expect("client");
        Hub {
            port,
            stop,
            task,
            http,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Stops the hub as SIGTERM would and waits until it has stopped.
    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the hub stops in time")
            .expect("hub task")
            .expect("hub ran");
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let res = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("post");
        let status = res.status();
        let body: Value = res.json().await.expect("JSON answer");
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// A new scene for `client`: (scene_id, browser_token).
    async fn scene(&self, client: &str) -> (String, String) {
        let body = self
            .post("/api/v1/scenes", json!({"client_id": client}))
            .await;
        (
            body["scene_id"].as_str().expect("scene_id").to_owned(),
            body["browser_token"]
                .as_str()
                .expect("browser_token")
                .to_owned(),
        )
    }

    async fn code(&self, user: &str) -> String {
        let body = self.post("/sim/api/login", json!({"user": user})).await;
        body["code"].as_str().expect("code").to_owned()
    }

    /// Logs `user` in on a new scene of `client` (one-step confirm); returns
    /// (scene_id, browser_token).
    async fn confirmed_login(&self, client: &str, user: &str) -> (String, String) {
        let (scene, token) = self.scene(client).await;
        let code = self.code(user).await;
        let body = self
            .post(
                "/api/v1/mp/confirm",
                json!({"scene_id": scene, "code": code, "profile": {"nickname": user}}),
            )
            .await;
        assert_eq!(body["state"], "confirmed", "{body}");
        (scene, token)
    }

    /// A new scene of `client` cancelled on the phone; returns its id.
    async fn cancelled_login(&self, client: &str, user: &str) -> String {
        let (scene, _) = self.scene(client).await;
        let code = self.code(user).await;
        let body = self
            .post(
                "/api/v1/mp/cancel",
                json!({"scene_id": scene, "code": code}),
            )
            .await;
        assert_eq!(body["state"], "cancelled", "{body}");
        scene
    }

    /// The browser's ticket, redeemed by `site`: the redeem answer.
    async fn redeem(&self, scene: &str, token: &str) -> Value {
        let event: Value = self
            .http
            .get(self.url(&format!("/api/v1/scenes/{scene}/events")))
            .bearer_auth(token)
            .send()
            .await
            .expect("events")
            .json()
            .await
            .expect("event JSON");
        let ticket = event["ticket"].as_str().expect("ticket");
        let res = self
            .http
            .post(self.url("/api/v1/tickets/redeem"))
            .basic_auth(SITE, Some(SITE_SECRET))
            .json(&json!({"ticket": ticket}))
            .send()
            .await
            .expect("redeem");
        assert_eq!(res.status(), 200);
        res.json().await.expect("redeem JSON")
    }
}

/// A SQLite file in `dir`.
fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("hub.db").display())
}

async fn open_db(db_url: &str) -> DatabaseConnection {
    let url = if db_url.starts_with("sqlite:") {
        format!("{db_url}?mode=rw")
    } else {
        db_url.to_owned()
    };
    sea_orm::Database::connect(url)
        .await
        .expect("open the hub's database")
}

async fn events_of(db: &DatabaseConnection, client: &str) -> Vec<webhook_events::Model> {
    webhook_events::Entity::find()
        .filter(webhook_events::Column::ClientId.eq(client))
        .all(db)
        .await
        .expect("read webhook_events")
}

/// Waits until `client` has `n` events, all in `state`.
async fn wait_states(
    db: &DatabaseConnection,
    client: &str,
    state: &str,
    n: usize,
) -> Vec<webhook_events::Model> {
    let deadline = Instant::now() + WAIT;
    loop {
        let rows = events_of(db, client).await;
        if rows.len() == n && rows.iter().all(|r| r.state == state) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "not {n} {state} events within {WAIT:?}: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `client`'s only event is in `state`.
async fn wait_state(db: &DatabaseConnection, client: &str, state: &str) -> webhook_events::Model {
    wait_states(db, client, state, 1).await.remove(0)
}

/// Runs each delivery (and the extra `(headers, body)` pairs) through the
/// npm `standardwebhooks` verifier; `None` when it cannot run here.
async fn stock_verify(secret: &str, items: &[(Value, String)]) -> Option<Vec<Value>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let node = tokio::process::Command::new("node")
        .arg("--version")
        .output()
        .await;
    let reason = if !node.is_ok_and(|o| o.status.success()) {
        Some("node is not on PATH")
    } else if !root.join("web/node_modules/standardwebhooks").is_dir() {
        Some("web/node_modules/standardwebhooks is missing (run `npm ci` in web/)")
    } else {
        None
    };
    if let Some(reason) = reason {
        assert!(
            std::env::var_os("SCANLOGIN_REQUIRE_BROWSER").is_none(),
            "the stock webhook verifier is required (SCANLOGIN_REQUIRE_BROWSER) but cannot run: {reason}"
        );
        println!("standardwebhooks verification skipped: {reason}");
        return None;
    }
    let input = tempfile::NamedTempFile::new().expect("temp file");
    let deliveries: Vec<Value> = items
        .iter()
        .map(|(headers, body)| json!({"headers": headers, "body": body}))
        .collect();
    std::fs::write(
        input.path(),
        json!({"secret": secret, "deliveries": deliveries}).to_string(),
    )
    .expect("write the deliveries");
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("node")
            .arg(root.join("web/tests/webhook_verify.js"))
            .arg(input.path())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("node finishes within 60 s")
    .expect("run node");
    assert!(
        out.status.success(),
        "webhook_verify.js failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("verifier output is JSON"))
}

fn headers_of(d: &Delivery) -> Value {
    json!({"webhook-id": d.id, "webhook-timestamp": d.timestamp, "webhook-signature": d.signature})
}

/// Every delivery verifies with the stock library and yields its body; a
/// tampered copy of the first does not.
async fn assert_verified(secret: &str, deliveries: &[Delivery]) {
    let mut items: Vec<(Value, String)> = deliveries
        .iter()
        .map(|d| (headers_of(d), d.body.clone()))
        .collect();
    let tampered = deliveries[0]
        .body
        .replace("\"scene_id\":\"", "\"scene_id\":\"0");
    assert_ne!(tampered, deliveries[0].body);
    items.push((headers_of(&deliveries[0]), tampered));
    let Some(results) = stock_verify(secret, &items).await else {
        return;
    };
    assert_eq!(results.len(), items.len(), "{results:?}");
    for (d, r) in deliveries.iter().zip(&results) {
        assert_eq!(r["ok"], true, "standardwebhooks refused {d:?}: {r}");
        let body: Value = serde_json::from_str(&d.body).expect("JSON body");
        assert_eq!(r["payload"], body);
    }
    assert_eq!(
        results[deliveries.len()]["ok"],
        false,
        "a tampered body must not verify"
    );
}

#[tokio::test]
async fn confirmed_and_cancelled_logins_arrive_signed_and_a_stock_verifier_accepts_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(0, &[], 204);
    let secret = new_secret();
    let db_url = sqlite_url(dir.path());
    let hub = Hub::start(&HubConfig::new(&db_url, &receiver.url(), &secret)).await;
    let db = open_db(&db_url).await;

    let (scene, token) = hub.confirmed_login(SITE, "alice").await;
    let confirmed_at = Instant::now();
    // Written in the confirm's own transaction: there as soon as it answers.
    let rows = events_of(&db, SITE).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].event_type, "login.confirmed");
    let first = receiver.wait_for(1).await.remove(0);
    let latency = first.at.duration_since(confirmed_at);
    println!("first attempt {latency:?} after the confirm answered");
    assert!(
        latency < Duration::from_secs(5),
        "the first attempt took {latency:?}"
    );
    assert_eq!(first.status, 204);
    assert_eq!(first.id, rows[0].id);
    assert!(first.id.starts_with("msg_"), "{}", first.id);
    assert!(first.content_type.starts_with("application/json"));
    let ts: i64 = first.timestamp.parse().expect("Unix seconds");
    assert!((ts - chrono::Utc::now().timestamp()).abs() < 60, "{ts}");
    assert!(first.signature.starts_with("v1,"), "{}", first.signature);

    let body: Value = serde_json::from_str(&first.body).expect("JSON body");
    assert_eq!(body["type"], "login.confirmed");
    chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().expect("timestamp"))
        .expect("RFC 3339 timestamp");
    let redeemed = hub.redeem(&scene, &token).await;
    assert_eq!(body["data"]["scene_id"], scene.as_str());
    assert_eq!(body["data"]["client_id"], SITE);
    assert_eq!(
        body["data"]["user"], redeemed["user"],
        "user as redeem answers it"
    );
    assert_eq!(body["data"]["confirmed_at"], redeemed["confirmed_at"]);
    assert_eq!(body["data"]["user"]["nickname"], "alice");

    let cancelled = hub.cancelled_login(SITE, "bob").await;
    let second = receiver.wait_for(2).await.remove(1);
    let body: Value = serde_json::from_str(&second.body).expect("JSON body");
    assert_eq!(body["type"], "login.cancelled");
    assert_eq!(body["data"]["scene_id"], cancelled.as_str());
    assert_eq!(body["data"]["client_id"], SITE);
    assert!(body["data"].get("user").is_none(), "{body}");
    assert!(body["data"].get("confirmed_at").is_none(), "{body}");
    assert_ne!(second.id, first.id);

    assert_verified(&secret, &[first, second]).await;
    wait_states(&db, SITE, "delivered", 2).await;
    hub.stop().await;
}

#[tokio::test]
async fn failed_answers_are_retried_with_the_same_id_and_never_after_a_2xx() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(0, &[500, 500, 503], 204);
    let secret = new_secret();
    let db_url = sqlite_url(dir.path());
    let hub = Hub::start(&HubConfig::new(&db_url, &receiver.url(), &secret)).await;
    let db = open_db(&db_url).await;

    hub.confirmed_login(SITE, "carol").await;
    let seen = receiver.wait_for(4).await;
    let row = wait_state(&db, SITE, "delivered").await;
    assert_eq!(row.attempts, 4);
    assert_eq!(row.last_status, Some(204));
    let statuses: Vec<u16> = seen.iter().map(|d| d.status).collect();
    assert_eq!(statuses, [500, 500, 503, 204]);
    assert!(
        seen.iter().all(|d| d.id == row.id),
        "one webhook-id: {seen:?}"
    );
    assert!(seen.iter().all(|d| d.body == seen[0].body), "one body");
    let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].at - w[0].at).collect();
    println!(
        "observed retry gaps (first 200 ms, doubling, max 800 ms, jitter down to half): {gaps:?}"
    );
    // Each delay is at least half its nominal value: 100, 200, 400 ms.
    for (gap, least) in gaps.iter().zip([100, 200, 400]) {
        assert!(*gap >= Duration::from_millis(least), "{gaps:?}");
    }
    // Nothing more after the 2xx, for longer than the longest delay.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(receiver.seen().len(), 4, "{:?}", receiver.seen());
    assert_verified(&secret, &seen).await;

    let metrics = crate::helpers::get_text(&hub.http, hub.url("/metrics")).await;
    for name in [
        "scanlogin_webhook_attempts_total{result=\"non_2xx\"}",
        "scanlogin_webhook_attempts_total{result=\"2xx\"}",
        "scanlogin_webhook_deliveries_total{outcome=\"delivered\"}",
        "scanlogin_webhook_oldest_pending_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn a_hub_restarted_while_the_receiver_is_down_delivers_once_both_are_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let secret = new_secret();
    let db_url = sqlite_url(dir.path());
    let mut cfg = HubConfig::new(&db_url, &url, &secret);
    // The retry after the failed attempt is scheduled 15 to 30 s later.
    cfg.retry_first_ms = 30_000;
    cfg.retry_max_ms = 60_000;
    let hub = Hub::start(&cfg).await;
    let db = open_db(&db_url).await;

    hub.confirmed_login(SITE, "dave").await;
    // The receiver is down: wait until an attempt failed on this hub.
    let deadline = Instant::now() + WAIT;
    let failed = loop {
        let rows = events_of(&db, SITE).await;
        if let [row] = rows.as_slice()
            && row.last_error.is_some()
        {
            break row.clone();
        }
        assert!(Instant::now() < deadline, "no failed attempt: {rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(failed.state, "pending");
    hub.stop().await;

    let receiver = Receiver::start(port, &[], 204);
    let hub = Hub::start(&cfg).await;
    let seen = receiver.wait_for(1).await;
    let row = wait_state(&db, SITE, "delivered").await;
    assert_eq!(row.id, failed.id);
    // A restarted hub sends what is pending without waiting for its schedule.
    let delivered_at = row.delivered_at.expect("delivered_at");
    assert!(
        delivered_at < failed.next_attempt_at,
        "delivered at {delivered_at}, scheduled for {}",
        failed.next_attempt_at
    );
    // Still exactly one delivery a while later.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let seen_after = receiver.seen();
    assert_eq!(seen_after.len(), 1, "{seen_after:?}");
    assert_eq!(seen[0].id, failed.id);
    assert_eq!(seen[0].status, 204);
    println!(
        "delivered after the restart on attempt {} (earlier attempts found the receiver down)",
        row.attempts
    );
    assert_verified(&secret, &seen).await;
    hub.stop().await;
}

#[tokio::test]
async fn no_event_for_a_client_without_a_webhook() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(0, &[], 204);
    let db_url = sqlite_url(dir.path());
    let hub = Hub::start(&HubConfig::new(&db_url, &receiver.url(), &new_secret())).await;
    let db = open_db(&db_url).await;

    hub.confirmed_login(OTHER, "erin").await;
    hub.cancelled_login(OTHER, "frank").await;
    assert!(events_of(&db, OTHER).await.is_empty());
    // The worker runs: `site`'s login arrives, and only it.
    hub.confirmed_login(SITE, "erin").await;
    let seen = receiver.wait_for(1).await;
    wait_state(&db, SITE, "delivered").await;
    let all = webhook_events::Entity::find()
        .all(&db)
        .await
        .expect("read webhook_events");
    assert_eq!(all.len(), 1, "{all:?}");
    let body: Value = serde_json::from_str(&seen[0].body).expect("JSON body");
    assert_eq!(body["data"]["client_id"], SITE);
    assert_eq!(receiver.seen().len(), 1);
    hub.stop().await;
}

#[tokio::test]
async fn events_fail_after_their_retry_window_and_the_cli_requeues_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(0, &[], 500);
    let db_url = sqlite_url(dir.path());
    let mut cfg = HubConfig::new(&db_url, &receiver.url(), &new_secret());
    cfg.retry_for_secs = 1;
    let hub = Hub::start(&cfg).await;
    let db = open_db(&db_url).await;

    hub.confirmed_login(SITE, "gina").await;
    let failed = wait_state(&db, SITE, "failed").await;
    assert_eq!(failed.last_status, Some(500));
    let tries = receiver.seen().len();
    assert!(tries >= 2, "retried before failing: {tries}");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(receiver.seen().len(), tries, "a failed event is not sent");

    let config = dir.path().join("config.toml");
    std::fs::write(&config, cfg.toml()).expect("write config");
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_scanlogin"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .expect("run scanlogin")
    };
    let unknown = cli(&["webhooks", "retry", "msg_unknown"]);
    assert!(!unknown.status.success());
    receiver.answer_from_now(204);
    let out = cli(&["webhooks", "retry", &failed.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 webhook event(s) re-queued"));
    let delivered = wait_state(&db, SITE, "delivered").await;
    assert_eq!(delivered.id, failed.id);
    let seen = receiver.seen();
    assert_eq!(seen.last().map(|d| d.status), Some(204));
    assert!(seen.iter().all(|d| d.id == failed.id));
    let none_left = cli(&["webhooks", "retry", "--failed"]);
    assert!(String::from_utf8_lossy(&none_left.stdout).contains("0 webhook event(s) re-queued"));
    hub.stop().await;
}

#[tokio::test]
async fn delivered_events_are_purged_after_the_retention_and_failed_ones_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(0, &[204], 500);
    let db_url = sqlite_url(dir.path());
    let mut cfg = HubConfig::new(&db_url, &receiver.url(), &new_secret());
    cfg.retry_for_secs = 1;
    let hub = Hub::start(&cfg).await;
    let db = open_db(&db_url).await;

    hub.confirmed_login(SITE, "hana").await;
    let delivered = wait_state(&db, SITE, "delivered").await;
    hub.cancelled_login(SITE, "hana").await;
    let deadline = Instant::now() + WAIT;
    let failed = loop {
        let rows = events_of(&db, SITE).await;
        if let Some(row) = rows.iter().find(|r| r.state == "failed") {
            break row.clone();
        }
        assert!(Instant::now() < deadline, "no failed event: {rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let two_hours_ago = chrono::Utc::now().timestamp_millis() - 2 * 3600 * 1000;
    webhook_events::Entity::update_many()
        .col_expr(
            webhook_events::Column::DeliveredAt,
            sea_orm::sea_query::Expr::value(two_hours_ago),
        )
        .col_expr(
            webhook_events::Column::CreatedAt,
            sea_orm::sea_query::Expr::value(two_hours_ago),
        )
        .filter(webhook_events::Column::Id.eq(delivered.id.as_str()))
        .exec(&db)
        .await
        .expect("age the delivered event");
    webhook_events::Entity::update_many()
        .col_expr(
            webhook_events::Column::CreatedAt,
            sea_orm::sea_query::Expr::value(two_hours_ago),
        )
        .filter(webhook_events::Column::Id.eq(failed.id.as_str()))
        .exec(&db)
        .await
        .expect("age the failed event");
    let deadline = Instant::now() + WAIT;
    loop {
        let rows = events_of(&db, SITE).await;
        if rows.iter().all(|r| r.id != delivered.id) {
            assert_eq!(rows.len(), 1, "{rows:?}");
            assert_eq!(rows[0].id, failed.id, "the failed event is kept");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old delivered event is still there"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    hub.stop().await;
}

#[tokio::test]
async fn check_config_refuses_a_bad_secret_and_warns_about_plain_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db_url = sqlite_url(dir.path());
    let run = |url: &str, secret: &str| {
        let config = dir.path().join("check.toml");
        std::fs::write(&config, HubConfig::new(&db_url, url, secret).toml()).expect("write");
        std::process::Command::new(env!("CARGO_BIN_EXE_scanlogin"))
            .arg("--config")
            .arg(&config)
            .arg("check-config")
            .output()
            .expect("run scanlogin check-config")
    };
    let short = format!("whsec_{}", STANDARD.encode([9u8; 16]));
    for bad in [short.as_str(), "not-a-whsec-secret-at-all", "whsec_%%%"] {
        let out = run("https://hooks.example/in", bad);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("clients[0].webhook_secret"), "{err}");
        assert!(!err.contains(bad), "the secret is not echoed: {err}");
    }
    let good = new_secret();
    let out = run("http://hooks.example/in", &good);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("warning: clients[0].webhook_url: not https"),
        "{said}"
    );
    assert!(!said.contains(&good[6..]), "{said}");
    let out = run("http://127.0.0.1:9/in", &good);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("webhook_url"), "loopback is fine: {said}");
}

/// A fresh database on the server of `SCANLOGIN_TEST_POSTGRES_URL`, dropped
/// when the guard goes; `None` (with a note) when the variable is unset.
struct PgDb {
    admin: String,
    name: String,
    url: String,
}

impl PgDb {
    async fn create() -> Option<PgDb> {
        use sea_orm::ConnectionTrait;
        let Ok(admin) = std::env::var(crate::helpers::POSTGRES_ENV) else {
            println!("skipped: {} not set", crate::helpers::POSTGRES_ENV);
            return None;
        };
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let db = sea_orm::Database::connect(&admin)
            .await
            .expect("connect to PostgreSQL");
        db.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create the test database");
        let _ = db.close().await;
        let mut url = url::Url::parse(&admin).expect("a URL");
        url.set_path(&format!("/{name}"));
        Some(PgDb {
            admin,
            name,
            url: url.to_string(),
        })
    }

    async fn drop_now(self) {
        use sea_orm::ConnectionTrait;
        if let Ok(db) = sea_orm::Database::connect(&self.admin).await {
            let _ = db
                .execute_unprepared(&format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.name
                ))
                .await;
            let _ = db.close().await;
        }
    }
}

#[tokio::test]
async fn two_nodes_on_postgres_send_each_event_once() {
    let Some(pg) = PgDb::create().await else {
        return;
    };
    // The first answers fail, so retries are due on both nodes at once.
    let receiver = Receiver::start(0, &[500; 12], 204);
    let secret = new_secret();
    let cfg = HubConfig::new(&pg.url, &receiver.url(), &secret);
    let a = Hub::start(&cfg).await;
    let b = Hub::start(&cfg).await;
    let db = open_db(&pg.url).await;
    let logins = 12;
    for i in 0..logins {
        let node = if i % 2 == 0 { &a } else { &b };
        node.confirmed_login(SITE, &format!("pg{i}")).await;
    }
    let rows = wait_states(&db, SITE, "delivered", logins).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let seen = receiver.seen();
    let ok: Vec<&Delivery> = seen.iter().filter(|d| d.status == 204).collect();
    assert_eq!(ok.len(), logins, "one 2xx per event: {seen:?}");
    let mut ids: Vec<&str> = ok.iter().map(|d| d.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), logins);
    let attempts: i32 = rows.iter().map(|r| r.attempts).sum();
    assert_eq!(
        attempts as usize,
        seen.len(),
        "every attempt was counted once"
    );
    println!("{} attempts for {logins} events on two nodes", seen.len());
    let _ = db.close().await;
    a.stop().await;
    b.stop().await;
    pg.drop_now().await;
}

#[tokio::test]
async fn an_answer_slower_than_the_timeout_is_retried_and_logins_do_not_wait_for_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(0, &[], 204);
    receiver.delay_answers(&[Duration::from_secs(5)]);
    let secret = new_secret();
    let db_url = sqlite_url(dir.path());
    let mut cfg = HubConfig::new(&db_url, &receiver.url(), &secret);
    cfg.timeout_ms = 500;
    let hub = Hub::start(&cfg).await;
    let db = open_db(&db_url).await;

    hub.confirmed_login(SITE, "ivan").await;
    let hanging = receiver.wait_for(1).await.remove(0);
    assert_eq!(hanging.delay, Duration::from_secs(5));
    // While that attempt hangs, logins go on.
    hub.confirmed_login(SITE, "judy").await;
    hub.cancelled_login(SITE, "ken").await;
    let rows = wait_states(&db, SITE, "delivered", 3).await;
    let seen = receiver.seen();
    let first: Vec<&Delivery> = seen.iter().filter(|d| d.id == hanging.id).collect();
    assert_eq!(
        first.len(),
        2,
        "the timed-out attempt was retried: {seen:?}"
    );
    assert_eq!(first[1].delay, Duration::ZERO);
    let gap = first[1].at - first[0].at;
    assert!(
        gap >= Duration::from_millis(500),
        "retried only after the timeout: {gap:?}"
    );
    let row = rows.iter().find(|r| r.id == hanging.id).expect("row");
    assert_eq!(row.attempts, 2);
    assert_eq!(seen.len(), 4, "one attempt each for the others: {seen:?}");
    let metrics = crate::helpers::get_text(&hub.http, hub.url("/metrics")).await;
    assert!(
        metrics.contains("scanlogin_webhook_attempts_total{result=\"timeout\"}"),
        "{metrics}"
    );
    hub.stop().await;
}

#[tokio::test]
async fn the_webhook_secret_is_never_in_the_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(0, &[500], 204);
    let secret = new_secret();
    let port = free_port();
    let text = HubConfig::new(&sqlite_url(dir.path()), &receiver.url(), &secret)
        .toml()
        .replace(
            "bind = \"127.0.0.1:0\"",
            &format!("bind = \"127.0.0.1:{port}\""),
        )
        .replace("level = \"warn\"", "level = \"debug\"\nformat = \"json\"");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, text).expect("write config");
    let log_path = dir.path().join("out.log");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_scanlogin"))
        .arg("--config")
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(std::fs::File::create(&log_path).expect("log file"))
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start scanlogin");
    let http = reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .expect("client");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + WAIT;
    while !http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(Instant::now() < deadline, "the hub did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let post = |path: &str, body: Value| {
        let req = http.post(format!("{base}{path}")).json(&body);
        async move {
            let res = req.send().await.expect("post");
            assert!(res.status().is_success(), "{}", res.status());
            res.json::<Value>().await.expect("JSON")
        }
    };
    let scene = post("/api/v1/scenes", json!({"client_id": SITE})).await;
    let code = post("/sim/api/login", json!({"user": "lena"})).await;
    post(
        "/api/v1/mp/confirm",
        json!({"scene_id": scene["scene_id"], "code": code["code"]}),
    )
    .await;
    let seen = receiver.wait_for(2).await;
    assert_eq!(seen[1].status, 204);
    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("the hub exits in time")
        .expect("exit status");
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(&log_path).expect("log");
    assert!(log.contains("webhook delivered"), "{log}");
    assert!(
        !log.contains(&secret[6..]),
        "the log holds the webhook secret"
    );
    assert!(!log.contains("whsec_"), "the log holds a webhook secret");
}

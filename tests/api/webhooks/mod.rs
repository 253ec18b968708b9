//! Signed webhooks: each hub here runs in simulator mode with the client
//! `site` pointing its `webhook_url` at a loopback receiver that records every
//! delivery and answers from a script. Signatures are checked with the npm
//! `standardwebhooks` package (web/tests/webhook_verify.js), not with our own
//! code; that check is skipped with a note where node or the package is
//! missing, unless `SCANLOGIN_REQUIRE_BROWSER` is set, as in CI.

mod delivery;
mod metrics;
mod operations;
mod postgres;
mod receiver;
mod reload;
mod rotation;
mod user_deleted;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use entity::webhook_events;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use scanlogin::config::WebhookSettings;
use scanlogin::{Application, Settings};
use secrecy::SecretString;
use url::Url;

use crate::helpers::{client, config_file, hub_settings};

const SITE: &str = "site";
const SITE_SECRET: &str = "site-client-secret-0123";
const OTHER: &str = "other";
const OTHER_SECRET: &str = "other-client-secret-0123";
/// The secret key of every hub here (a restarted hub opens what it sealed).
const HUB_KEY: &str = "webhook-tests-key-0123456789abcdef0123456789";
/// Every wait here is bounded by this unless it says otherwise.
const WAIT: Duration = Duration::from_secs(15);

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
    /// `site`'s `previous_webhook_secret`, during a rotation.
    previous_secret: Option<String>,
    timeout_ms: u64,
    retry_first_ms: u64,
    retry_max_ms: u64,
    retry_for_secs: u64,
    /// How often the worker looks for due events besides being woken.
    poll_interval_ms: u64,
}

impl HubConfig {
    fn new(db_url: &str, webhook_url: &str, secret: &str) -> Self {
        Self {
            db_url: db_url.to_owned(),
            webhook: Some((webhook_url.to_owned(), secret.to_owned())),
            previous_secret: None,
            timeout_ms: 2000,
            retry_first_ms: 200,
            retry_max_ms: 800,
            retry_for_secs: 3600,
            poll_interval_ms: 200,
        }
    }

    /// The hub's typed settings.
    fn settings(&self) -> Settings {
        let mut settings = hub_settings(&self.db_url, None, |c| {
            c.apps = vec![("wxhooks000000001".into(), "hooks-app-secret".into())];
            c.housekeeping_secs = 1;
        });
        settings.server.secret_key = Some(SecretString::from(HUB_KEY));
        settings.database.max_connections = 4;
        settings.log.level = "warn".into();
        settings.webhooks = WebhookSettings {
            timeout_ms: self.timeout_ms,
            retry_first_ms: self.retry_first_ms,
            retry_max_ms: self.retry_max_ms,
            retry_for_secs: self.retry_for_secs,
            poll_interval_ms: self.poll_interval_ms,
            ..WebhookSettings::default()
        };
        let mut site = client(SITE, "Site", SITE_SECRET);
        if let Some((url, secret)) = &self.webhook {
            site.webhook_url = Some(Url::parse(url).expect("a webhook URL"));
            site.webhook_secret = Some(SecretString::from(secret.as_str()));
        }
        site.previous_webhook_secret = self.previous_secret.as_deref().map(SecretString::from);
        settings.clients = vec![site, client(OTHER, "Other", OTHER_SECRET)];
        settings
    }

    /// The same settings as a configuration file, for the binary.
    fn toml(&self) -> String {
        config_file(&self.settings())
    }
}

/// A hub under test: in this process, or the `scanlogin` binary.
struct Hub {
    port: u16,
    running: Running,
    http: reqwest::Client,
}

enum Running {
    /// Shares the process-wide metrics registry with every other in-process
    /// hub.
    InProcess {
        stop: tokio_util::sync::CancellationToken,
        task: tokio::task::JoinHandle<std::io::Result<()>>,
    },
    /// A `scanlogin serve` process: its `/metrics` counts only its own work.
    Binary {
        child: tokio::process::Child,
        log: PathBuf,
    },
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .expect("client")
}

impl Hub {
    async fn start(cfg: &HubConfig) -> Hub {
        let settings = cfg.settings();
        let problems = settings.problems();
        assert!(
            problems.is_empty(),
            "settings refused: {}\n{settings:?}",
            problems.join("\n")
        );
        Self::run(Application::build(settings).await.expect("hub builds"))
    }

    /// Runs a built hub.
    fn run(app: Application) -> Hub {
        let (port, stop) = (app.port(), app.shutdown_token());
        let task = tokio::spawn(app.run_until_stopped());
        Hub {
            port,
            running: Running::InProcess { stop, task },
            http: http_client(),
        }
    }

    /// Runs `scanlogin serve` with `cfg`'s settings as changed by `change`,
    /// its configuration file and log (stdout) in `dir`, on a port it binds
    /// itself (0) and names in its log; returns once it is ready. The child
    /// keeps only [`crate::process::kept_env`] and is killed if the test
    /// panics.
    async fn start_binary(cfg: &HubConfig, dir: &Path, change: impl FnOnce(&mut Settings)) -> Hub {
        let mut settings = cfg.settings();
        settings.server.bind = SocketAddr::from(([127, 0, 0, 1], 0));
        // The "scanlogin listening" line is at info.
        settings.log.level = "info".into();
        change(&mut settings);
        let config = dir.join("hub.toml");
        std::fs::write(&config, config_file(&settings)).expect("write config");
        let log = dir.join("hub.out");
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_scanlogin"))
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env_clear()
            .envs(crate::process::kept_env())
            .stdout(std::fs::File::create(&log).expect("log file"))
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start scanlogin");
        let deadline = Instant::now() + WAIT;
        let port = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(port) = crate::process::listening_port(&text) {
                break port;
            }
            assert!(
                child.try_wait().expect("wait").is_none(),
                "the hub exited:\n{text}"
            );
            assert!(Instant::now() < deadline, "the hub never listened:\n{text}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let hub = Hub {
            port,
            running: Running::Binary { child, log },
            http: http_client(),
        };
        while !hub
            .http
            .get(hub.url("/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(Instant::now() < deadline, "the hub did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        hub
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Stops the hub (the binary by SIGTERM) and waits until it has stopped
    /// cleanly; returns the binary's log (empty for an in-process hub).
    async fn stop(self) -> String {
        match self.running {
            Running::InProcess { stop, task } => {
                stop.cancel();
                tokio::time::timeout(WAIT, task)
                    .await
                    .expect("the hub stops in time")
                    .expect("hub task")
                    .expect("hub ran");
                String::new()
            }
            Running::Binary { mut child, log } => {
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
                let text = std::fs::read_to_string(&log).expect("log");
                assert!(status.success(), "{status}:\n{text}");
                text
            }
        }
    }

    /// The hub's `/metrics` text.
    async fn scrape(&self) -> String {
        crate::helpers::get_text(&self.http, self.url("/metrics")).await
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

//! Starting a test hub (its fake WeChat, its fresh database, the hub
//! itself on port 0) and stopping it when the test ends.

use std::sync::LazyLock;
use std::time::Duration;

use scanlogin::Application;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use tokio_util::sync::CancellationToken;

use super::config::{TestConfig, TestDb};
use super::config_file::config_file;
use super::{POSTGRES_ENV, WAIT};
use crate::helpers::fake_wechat::FakeWechat;

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

/// A running hub and everything a test needs to talk to it.
pub struct TestApp {
    pub port: u16,
    /// `http://127.0.0.1:{port}`.
    pub address: String,
    pub http: reqwest::Client,
    pub fake: FakeWechat,
    /// The URL of the hub's database (to look at rows directly).
    pub db_url: String,
    /// The hub's settings as a configuration file (for commands run against
    /// its database).
    pub config_toml: String,
    /// What the hub has asked of its database so far.
    pub db_stats: scanlogin::db::Stats,
    /// The hub's rate limits (as built; a reload may replace them).
    pub limits: std::sync::Arc<scanlogin::ratelimit::RateLimits>,
    /// What a SIGHUP calls: reloads a configuration file into the hub.
    pub reloader: std::sync::Arc<scanlogin::startup::Reloader>,
    /// Where `/metrics` is served when `metrics_bind` is set (the port the
    /// hub holds, also for port 0).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Who listens to which scene (WebSockets, waiting long-polls).
    pub registry: std::sync::Arc<scanlogin::push::Registry<scanlogin::scene::SceneView>>,
    /// The avatar decoding slots (hold them all to see an upload refused as
    /// busy).
    pub avatar_decode_slots: std::sync::Arc<tokio::sync::Semaphore>,
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
    let settings = cfg.build(&db_url, &fake.url());
    let config_toml = config_file(&settings);
    let app = Application::build(settings).await.expect("hub builds");
    let port = app.port();
    let metrics_addr = app.metrics_addr();
    let token = app.shutdown_token();
    let db_stats = app.db_stats();
    let limits = app.rate_limits();
    let registry = app.push_registry();
    let avatar_decode_slots = app.avatar_decode_slots();
    let reloader = app.reloader();
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
        config_toml,
        db_stats,
        limits,
        reloader,
        metrics_addr,
        registry,
        avatar_decode_slots,
        _stop: StopGuard { token, pg_cleanup },
        _tmp: tmp,
    }
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

impl TestApp {
    /// Stops the hub now, as SIGTERM would (the test keeps its handles).
    pub fn stop(&self) {
        self._stop.token.cancel();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
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

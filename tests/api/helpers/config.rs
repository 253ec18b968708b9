//! The test hub's configuration: what a test may change ([`TestConfig`])
//! and the typed [`Settings`] built from it.

use std::net::SocketAddr;

use scanlogin::Settings;
use scanlogin::config::{
    AppSettings, ClientSettings, DatabaseSettings, HousekeepingSettings, LogSettings,
    RateLimitSettings, SceneSettings, ServerSettings, WebhookSettings, WechatMode, WechatSettings,
};
use secrecy::SecretString;
use url::Url;

use super::{
    APP_ID, APP_SECRET, CLIENT_ID, CLIENT_SECRET, ORIGIN, OTHER_CLIENT_ID, OTHER_CLIENT_SECRET,
    OTHER_ORIGIN, PUBLIC_URL, random_hex,
};

/// Which database a test hub uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestDb {
    /// A fresh SQLite file in the test's temporary folder.
    Sqlite,
    /// A fresh database on the server named by `SCANLOGIN_TEST_POSTGRES_URL`.
    Postgres,
}

/// A typed change a test makes to its hub's settings.
type Change = Box<dyn FnOnce(&mut Settings)>;

/// What a test may change about its hub before it starts.
pub struct TestConfig {
    pub ttl_secs: u64,
    pub timeout_ms: u64,
    /// `rate_limit`; every limit is high unless a test lowers it.
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
    /// Changes made last, in order (more clients, app options).
    changes: Vec<Change>,
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
            changes: Vec::new(),
        }
    }
}

impl TestConfig {
    /// Changes the built settings directly, after everything above is set
    /// (e.g. `s.clients.push(...)`, options on every app).
    pub fn settings(&mut self, change: impl FnOnce(&mut Settings) + 'static) {
        self.changes.push(Box::new(change));
    }

    /// The hub's settings: the test defaults, this configuration, then the
    /// changes; panics when the hub would refuse them.
    pub(super) fn build(self, db_url: &str, fake_url: &str) -> Settings {
        let mode = if self.simulator {
            WechatMode::Simulator
        } else {
            WechatMode::Live
        };
        let mut settings = Settings {
            server: ServerSettings {
                bind: SocketAddr::from(([127, 0, 0, 1], 0)),
                public_url: Url::parse(PUBLIC_URL).expect("PUBLIC_URL is a URL"),
                secret_key: Some(SecretString::from(random_hex(24))),
                workers: 2,
                shutdown_timeout_secs: 1,
                trusted_proxies: self
                    .trusted_proxies
                    .iter()
                    .map(|p| p.parse().expect("a trusted proxy is an IP address"))
                    .collect(),
                metrics_bind: self
                    .metrics_bind
                    .as_deref()
                    .map(|b| b.parse().expect("metrics_bind is host:port")),
                ..ServerSettings::default()
            },
            database: DatabaseSettings {
                url: SecretString::from(db_url),
                max_connections: 8,
                migrate_on_start: true,
                busy_timeout_ms: self.busy_timeout_ms,
                ..DatabaseSettings::default()
            },
            wechat: WechatSettings {
                mode,
                api_base: Url::parse(fake_url).expect("the fake's URL"),
                timeout_ms: self.timeout_ms,
                connect_timeout_ms: 1000,
                // PUBLIC_URL is a made-up name, not loopback: a simulator
                // hub needs the operator's say-so (the hub binds loopback).
                simulator_on_network: self.simulator,
            },
            scene: SceneSettings {
                ttl_secs: self.ttl_secs,
                sweep_interval_ms: 100,
                ..SceneSettings::default()
            },
            rate_limit: self.rate_limit,
            log: LogSettings::default(),
            housekeeping: HousekeepingSettings {
                retention_secs: 3600,
                interval_secs: self.housekeeping_secs,
                ..HousekeepingSettings::default()
            },
            apps: self
                .apps
                .iter()
                .map(|(id, secret)| app(id, secret))
                .collect(),
            clients: vec![
                ClientSettings {
                    allowed_origins: vec![ORIGIN.into()],
                    redirect_uris: self.redirect_uris,
                    ..client(CLIENT_ID, "Test site", CLIENT_SECRET)
                },
                ClientSettings {
                    allowed_origins: vec![OTHER_ORIGIN.into()],
                    ..client(OTHER_CLIENT_ID, "Other site", OTHER_CLIENT_SECRET)
                },
            ],
            webhooks: WebhookSettings::default(),
            geoip: Default::default(),
        };
        // Every app after the first has a client whose scenes show its code.
        for (id, _) in self.apps.iter().skip(1) {
            let (client_id, secret) = app_client(id);
            settings.clients.push(ClientSettings {
                allowed_origins: vec![ORIGIN.into()],
                app_id: Some(id.clone()),
                ..client(&client_id, &format!("Site of {id}"), &secret)
            });
        }
        for change in self.changes {
            change(&mut settings);
        }
        // What `Settings::from_sources` checks. (It also fits a `demo`
        // client to the hub's own origin; test hubs have none.)
        let problems = settings.problems();
        assert!(
            problems.is_empty(),
            "test configuration refused: {}\n{settings:?}",
            problems.join("\n")
        );
        settings
    }
}

/// The typed settings of a test hub on `db_url`, as `spawn_app_with` builds
/// them after `change`, without starting it: for tests that start several
/// hubs on one database, or one hub twice. `fake_wechat` is the fake's URL
/// (live mode); `None` runs the hub's built-in simulator.
pub fn hub_settings(
    db_url: &str,
    fake_wechat: Option<&str>,
    change: impl FnOnce(&mut TestConfig),
) -> Settings {
    let mut cfg = TestConfig {
        simulator: fake_wechat.is_none(),
        ..TestConfig::default()
    };
    change(&mut cfg);
    let api_base = match fake_wechat {
        Some(url) => url.to_owned(),
        None => WechatSettings::default().api_base.to_string(),
    };
    cfg.build(db_url, &api_base)
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
        avatar_bytes_per_hour: u32::MAX,
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

/// An app as the test hub configures it (the hub's defaults otherwise).
fn app(app_id: &str, secret: &str) -> AppSettings {
    AppSettings {
        app_id: app_id.into(),
        secret: SecretString::from(secret),
        page: "pages/scanlogin/index".into(),
        env_version: "release".into(),
        check_path: true,
        width: 430,
        auto_color: false,
        line_color: None,
        is_hyaline: false,
    }
}

/// A client with only what must be given; a test sets the rest with
/// `ClientSettings { phone: true, ..client(...) }`.
pub fn client(client_id: &str, name: &str, secret: &str) -> ClientSettings {
    ClientSettings {
        client_id: client_id.into(),
        name: name.into(),
        client_secret: SecretString::from(secret),
        previous_client_secret: None,
        allowed_origins: Vec::new(),
        webhook_url: None,
        redirect_uris: Vec::new(),
        webhook_secret: None,
        previous_webhook_secret: None,
        app_id: None,
        phone: false,
    }
}

/// `(client_id, client_secret)` of the test client whose scenes show the
/// code of `app_id` (an app after the first).
pub fn app_client(app_id: &str) -> (String, String) {
    (
        format!("site-{app_id}"),
        format!("secret-of-{app_id}-0123456789"),
    )
}

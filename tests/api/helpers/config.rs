//! The test hub's configuration: what a test may change ([`TestConfig`]),
//! the typed [`Settings`] built from it, and [`config_file`], which writes
//! those settings as TOML for commands run as the real binary.

use std::net::SocketAddr;

use scanlogin::Settings;
use scanlogin::config::{
    AppSettings, ClientSettings, DatabaseSettings, HousekeepingSettings, LogFormat, LogSettings,
    RateLimitSettings, SceneSettings, ServerSettings, WebhookSettings, WechatMode, WechatSettings,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
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
                ..WechatSettings::default()
            },
            scene: SceneSettings {
                ttl_secs: self.ttl_secs,
                sweep_interval_ms: 100,
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
        let problems = settings.problems();
        assert!(
            problems.is_empty(),
            "test configuration refused: {}\n{settings:?}",
            problems.join("\n")
        );
        settings
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
        allowed_origins: Vec::new(),
        webhook_url: None,
        redirect_uris: Vec::new(),
        webhook_secret: None,
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

/// `settings` as a configuration file the binary reads back as the same
/// settings (for commands run against a test hub's database).
pub fn config_file(settings: &Settings) -> String {
    let s = settings;
    let mut server = json!({
        "bind": s.server.bind,
        "public_url": s.server.public_url,
        "workers": s.server.workers,
        "secret_key_file": s.server.secret_key_file,
        "trusted_proxies": s.server.trusted_proxies,
        "shutdown_timeout_secs": s.server.shutdown_timeout_secs,
    });
    set(
        &mut server,
        "secret_key",
        s.server.secret_key.as_ref().map(expose),
    );
    set(
        &mut server,
        "metrics_bind",
        s.server.metrics_bind.map(|b| json!(b)),
    );
    let mut database = json!({
        "url": s.database.url.expose_secret(),
        "max_connections": s.database.max_connections,
        "migrate_on_start": s.database.migrate_on_start,
        "listener_grace_secs": s.database.listener_grace_secs,
        "busy_timeout_ms": s.database.busy_timeout_ms,
    });
    set(
        &mut database,
        "listen_url",
        s.database.listen_url.as_ref().map(expose),
    );
    let mode = match s.wechat.mode {
        WechatMode::Live => "live",
        WechatMode::Simulator => "simulator",
    };
    let apps: Vec<Value> = s.apps.iter().map(app_entry).collect();
    let clients: Vec<Value> = s.clients.iter().map(client_entry).collect();
    let file = json!({
        "server": server,
        "database": database,
        "wechat": {
            "mode": mode,
            "simulator_on_network": s.wechat.simulator_on_network,
            "api_base": s.wechat.api_base,
            "timeout_ms": s.wechat.timeout_ms,
            "connect_timeout_ms": s.wechat.connect_timeout_ms,
        },
        "scene": {
            "ttl_secs": s.scene.ttl_secs,
            "sweep_interval_ms": s.scene.sweep_interval_ms,
        },
        "rate_limit": s.rate_limit,
        "log": {
            "format": match s.log.format {
                LogFormat::Human => "human",
                LogFormat::Json => "json",
            },
            "level": s.log.level,
        },
        "housekeeping": {
            "retention_secs": s.housekeeping.retention_secs,
            "batch": s.housekeeping.batch,
            "interval_secs": s.housekeeping.interval_secs,
        },
        "webhooks": {
            "timeout_ms": s.webhooks.timeout_ms,
            "retry_first_ms": s.webhooks.retry_first_ms,
            "retry_max_ms": s.webhooks.retry_max_ms,
            "retry_for_secs": s.webhooks.retry_for_secs,
            "poll_interval_ms": s.webhooks.poll_interval_ms,
            "concurrency": s.webhooks.concurrency,
        },
        "apps": apps,
        "clients": clients,
    });
    toml::to_string(&file).expect("the settings as TOML")
}

fn app_entry(a: &AppSettings) -> Value {
    let mut entry = json!({
        "app_id": a.app_id,
        "secret": a.secret.expose_secret(),
        "page": a.page,
        "env_version": a.env_version,
        "check_path": a.check_path,
        "width": a.width,
        "auto_color": a.auto_color,
        "is_hyaline": a.is_hyaline,
    });
    set(&mut entry, "line_color", a.line_color.map(|c| json!(c)));
    entry
}

fn client_entry(c: &ClientSettings) -> Value {
    let mut entry = json!({
        "client_id": c.client_id,
        "name": c.name,
        "client_secret": c.client_secret.expose_secret(),
        "allowed_origins": c.allowed_origins,
        "redirect_uris": c.redirect_uris,
        "phone": c.phone,
    });
    set(
        &mut entry,
        "webhook_url",
        c.webhook_url.as_ref().map(|u| json!(u)),
    );
    set(
        &mut entry,
        "webhook_secret",
        c.webhook_secret.as_ref().map(expose),
    );
    set(&mut entry, "app_id", c.app_id.as_ref().map(|a| json!(a)));
    entry
}

fn expose(secret: &SecretString) -> Value {
    json!(secret.expose_secret())
}

/// Sets `key` when there is a value: TOML has no null.
fn set(table: &mut Value, key: &str, value: Option<Value>) {
    if let (Some(map), Some(value)) = (table.as_object_mut(), value) {
        map.insert(key.into(), value);
    }
}

#[test]
fn the_config_file_holds_the_same_settings() {
    let mut cfg = TestConfig {
        apps: vec![("wxa".into(), "sa".into()), ("wxb".into(), "sb".into())],
        trusted_proxies: vec!["127.0.0.1".into()],
        metrics_bind: Some("127.0.0.1:9".into()),
        redirect_uris: vec!["https://site.test/cb".into()],
        simulator: true,
        ..TestConfig::default()
    };
    cfg.settings(|s| {
        s.apps[0].line_color = Some(scanlogin::config::LineColor { r: 7, g: 8, b: 9 });
        s.clients.push(ClientSettings {
            webhook_url: Some(Url::parse("http://127.0.0.1:9/hook").expect("URL")),
            webhook_secret: Some(SecretString::from(format!("whsec_{}", "A".repeat(32)))),
            phone: true,
            ..client("hooked", "Hooked", "hooked-secret-0123456789")
        });
    });
    let built = cfg.build("sqlite://hub.db", "http://127.0.0.1:9/");
    let text = config_file(&built);
    let read = Settings::from_sources(&text, Vec::new())
        .unwrap_or_else(|e| panic!("the file is refused: {e}\n{text}"));
    assert_eq!(format!("{read:?}"), format!("{built:?}"), "{text}");
    let secrets = |s: &Settings| {
        let mut all = vec![
            s.database.url.expose_secret().to_owned(),
            s.server
                .secret_key
                .as_ref()
                .map(|k| k.expose_secret().to_owned())
                .unwrap_or_default(),
        ];
        all.extend(s.apps.iter().map(|a| a.secret.expose_secret().to_owned()));
        for c in &s.clients {
            all.push(c.client_secret.expose_secret().to_owned());
            all.extend(
                c.webhook_secret
                    .as_ref()
                    .map(|w| w.expose_secret().to_owned()),
            );
        }
        all
    };
    assert_eq!(secrets(&read), secrets(&built));
}

//! The `[server]`, `[database]`, `[wechat]`, `[scene]`, `[rate_limit]`,
//! `[housekeeping]`, `[log]`, `[webhooks]` and `[geoip]` sections with their
//! defaults.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

/// `[server]`: where the hub listens and how it names itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    /// Base of every URL the API hands out.
    pub public_url: Url,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Key for tickets and mp tokens (at least 32 characters). Several nodes
    /// sharing a database must share it. When absent, `secret_key_file` is used.
    pub secret_key: Option<SecretString>,
    /// File holding the key; created with a random key on first start.
    pub secret_key_file: PathBuf,
    /// Proxies whose `X-Forwarded-For` is believed (for rate limits and the IP
    /// shown on the phone).
    pub trusted_proxies: Vec<IpAddr>,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_timeout_secs: u64,
    /// When set, `/metrics` is served on this address only (an operators'
    /// network) instead of the public one.
    pub metrics_bind: Option<SocketAddr>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: Url::parse("http://127.0.0.1:8080").expect("literal URL"),
            workers: 0,
            secret_key: None,
            secret_key_file: PathBuf::from("data/secret.key"),
            trusted_proxies: Vec::new(),
            shutdown_timeout_secs: 10,
            metrics_bind: None,
        }
    }
}

/// `[database]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` or `postgres://...`; may hold a password, so secret.
    pub url: SecretString,
    pub max_connections: u32,
    /// Apply pending migrations when `serve` starts.
    pub migrate_on_start: bool,
    /// PostgreSQL: where the bus listener connects for `LISTEN` when not
    /// `url` (e.g. PostgreSQL itself while `url` goes through a pooler in
    /// transaction mode, which cannot `LISTEN`).
    pub listen_url: Option<SecretString>,
    /// PostgreSQL: how long the bus listener may be disconnected before
    /// `/readyz` fails.
    pub listener_grace_secs: u64,
    /// How long a SQLite statement waits for another writer's lock before
    /// the request is answered 503 `unavailable`.
    pub busy_timeout_ms: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("sqlite://data/scanlogin.db"),
            max_connections: 8,
            migrate_on_start: true,
            listen_url: None,
            listener_grace_secs: 10,
            busy_timeout_ms: 5_000,
        }
    }
}

/// Whether the hub talks to WeChat or to its own simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WechatMode {
    Live,
    Simulator,
}

/// `[wechat]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WechatSettings {
    pub mode: WechatMode,
    /// Lets the simulator (anyone logs in as anyone) serve on a non-loopback
    /// `server.bind` or `server.public_url`. Off: `serve` and `check-config`
    /// refuse such a config.
    pub simulator_on_network: bool,
    /// Base URL of WeChat's API (live mode).
    pub api_base: Url,
    /// Whole-request timeout for one WeChat call.
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
}

impl Default for WechatSettings {
    fn default() -> Self {
        Self {
            mode: WechatMode::Live,
            simulator_on_network: false,
            api_base: Url::parse("https://api.weixin.qq.com").expect("literal URL"),
            timeout_ms: 5_000,
            connect_timeout_ms: 2_000,
        }
    }
}

/// `[scene]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SceneSettings {
    pub ttl_secs: u64,
    /// How often overdue scenes are marked expired.
    pub sweep_interval_ms: u64,
    /// How often this node re-reads the scenes its browsers wait on (one
    /// query per 500) and pushes a change its bus missed.
    pub catch_up_ms: u64,
}

impl Default for SceneSettings {
    fn default() -> Self {
        Self {
            ttl_secs: 300,
            sweep_interval_ms: 500,
            catch_up_ms: 20_000,
        }
    }
}

/// `[rate_limit]`: requests per minute on every public endpoint. IPv6
/// clients are counted per /64 and per /48 (which gets 8 times a /64's
/// allowance), both applying. Each limit lets its whole minute's worth
/// through at once (except scenes, whose burst is `burst`); 0 turns a limit
/// off (`check-config` warns).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Scene creations per client IP.
    pub scenes_per_minute: u32,
    /// Scene creations one IP may make at once.
    pub burst: u32,
    /// Code images per client IP.
    pub qrcodes_per_minute: u32,
    /// WebSocket upgrades per client IP.
    pub sockets_per_minute: u32,
    /// Long-polls per client IP.
    pub polls_per_minute: u32,
    /// Mini-program calls (scan, confirm, cancel) per phone IP.
    pub mp_per_minute: u32,
    /// Mini-program calls per scene.
    pub mp_per_scene_per_minute: u32,
    /// Ticket redemptions per client.
    pub redeems_per_minute: u32,
    /// Failed client authentications per client and source IP; past it,
    /// that IP is refused for that client (others are not).
    pub auth_failures_per_minute: u32,
    /// Any other request (pages, widget, health, avatars, unknown paths)
    /// per client IP.
    pub other_per_minute: u32,
    /// Avatar bytes stored per phone IP and hour (the larger of the upload
    /// and its re-encoded PNG); past it, uploads are refused.
    pub avatar_bytes_per_hour: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            scenes_per_minute: 120,
            burst: 60,
            qrcodes_per_minute: 240,
            sockets_per_minute: 240,
            polls_per_minute: 600,
            mp_per_minute: 120,
            mp_per_scene_per_minute: 30,
            redeems_per_minute: 1_200,
            auth_failures_per_minute: 10,
            other_per_minute: 1_200,
            avatar_bytes_per_hour: 64 * 1024 * 1024,
        }
    }
}

impl RateLimitSettings {
    /// Every limit with its key name, for checks and warnings.
    pub fn named(&self) -> [(&'static str, u32); 11] {
        [
            ("scenes_per_minute", self.scenes_per_minute),
            ("burst", self.burst),
            ("qrcodes_per_minute", self.qrcodes_per_minute),
            ("sockets_per_minute", self.sockets_per_minute),
            ("polls_per_minute", self.polls_per_minute),
            ("mp_per_minute", self.mp_per_minute),
            ("mp_per_scene_per_minute", self.mp_per_scene_per_minute),
            ("redeems_per_minute", self.redeems_per_minute),
            ("auth_failures_per_minute", self.auth_failures_per_minute),
            ("other_per_minute", self.other_per_minute),
            ("avatar_bytes_per_hour", self.avatar_bytes_per_hour),
        ]
    }
}

/// `[housekeeping]`: deleting old rows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HousekeepingSettings {
    /// Scenes, code images and tickets older than this are deleted.
    pub retention_secs: u64,
    /// Rows deleted per statement.
    pub batch: u64,
    /// Seconds between housekeeping runs.
    pub interval_secs: u64,
    /// Days each confirmed login is kept in the login history; 0 keeps
    /// none (nothing is recorded).
    pub login_history_days: u64,
}

impl HousekeepingSettings {
    /// Whether confirmed logins are recorded at all.
    pub fn keeps_login_history(&self) -> bool {
        self.login_history_days > 0
    }

    /// How long a login is kept, in milliseconds.
    pub fn login_history_ms(&self) -> i64 {
        i64::try_from(self.login_history_days)
            .unwrap_or(i64::MAX)
            .saturating_mul(86_400_000)
    }
}

impl Default for HousekeepingSettings {
    fn default() -> Self {
        Self {
            retention_secs: 7 * 24 * 3600,
            batch: 500,
            interval_secs: 60,
            login_history_days: 90,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// `EnvFilter` directives; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info,sqlx=warn,sea_orm=warn".into(),
        }
    }
}

/// `[webhooks]`: delivering login events to the clients' `webhook_url`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Whole-request timeout of one delivery attempt.
    pub timeout_ms: u64,
    /// Delay before the first retry; each later one doubles up to
    /// `retry_max_ms`, and each is jittered down by up to half.
    pub retry_first_ms: u64,
    /// Longest delay between two attempts.
    pub retry_max_ms: u64,
    /// How long a failing event is retried before it is marked failed.
    pub retry_for_secs: u64,
    /// How often each node looks for due events (a login wakes it at once).
    pub poll_interval_ms: u64,
    /// Deliveries in flight at once on one node.
    pub concurrency: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            timeout_ms: 10_000,
            retry_first_ms: 5_000,
            retry_max_ms: 3_600_000,
            retry_for_secs: 86_400,
            poll_interval_ms: 1_000,
            concurrency: 16,
        }
    }
}

/// `[geoip]`: where browsers are, for the phone (off by default).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeoipSettings {
    /// A MaxMind DB (`.mmdb`) city database (GeoLite2-City, DB-IP City Lite,
    /// ...), which the operator downloads. When set, the scan answer's
    /// `browser` has `location` and `far_from_phone`.
    pub database: Option<PathBuf>,
}

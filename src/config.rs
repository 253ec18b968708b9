//! Typed settings: defaults, then the TOML file, then `SCANLOGIN__SECTION__KEY`
//! environment variables (environment wins). Unknown keys are refused with the
//! key's path; secrets are `SecretString`s whose `Debug` prints `[REDACTED]`.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

/// The client whose demo page the hub serves at `/`.
pub const DEMO_CLIENT: &str = "demo";

/// Where the demo's OpenID Connect relying party (simulator mode) is sent
/// back; registered for the `demo` client in simulator mode.
pub const DEMO_OIDC_CALLBACK: &str = "/demo/oidc/callback";

/// Prefix of environment variables that override the file.
pub const ENV_PREFIX: &str = "SCANLOGIN__";

/// Everything scanlogin can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub database: DatabaseSettings,
    #[serde(default)]
    pub wechat: WechatSettings,
    #[serde(default)]
    pub scene: SceneSettings,
    #[serde(default)]
    pub rate_limit: RateLimitSettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub housekeeping: HousekeepingSettings,
    #[serde(default)]
    pub apps: Vec<AppSettings>,
    #[serde(default)]
    pub clients: Vec<ClientSettings>,
    #[serde(default)]
    pub webhooks: WebhookSettings,
}

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
    /// `server.bind`. Off: `serve` and `check-config` refuse such a config.
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
}

impl Default for SceneSettings {
    fn default() -> Self {
        Self {
            ttl_secs: 300,
            sweep_interval_ms: 500,
        }
    }
}

/// `[rate_limit]`: requests per minute on every public endpoint. IPv6
/// clients are counted per /64. Each limit lets its whole minute's worth
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
    /// Any other request (pages, widget, health) per client IP.
    pub other_per_minute: u32,
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
        }
    }
}

impl RateLimitSettings {
    /// Every limit with its key name, for checks and warnings.
    pub fn named(&self) -> [(&'static str, u32); 10] {
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
}

impl Default for HousekeepingSettings {
    fn default() -> Self {
        Self {
            retention_secs: 7 * 24 * 3600,
            batch: 500,
            interval_secs: 60,
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

/// `[[apps]]`: one mini-program.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    pub app_id: String,
    pub secret: SecretString,
    #[serde(default = "default_page")]
    pub page: String,
    #[serde(default = "default_env_version")]
    pub env_version: String,
    #[serde(default = "default_true")]
    pub check_path: bool,
    #[serde(default = "default_width")]
    pub width: u32,
    /// `getwxacodeunlimit`'s `auto_color`: WeChat picks the line colour.
    #[serde(default)]
    pub auto_color: bool,
    /// `getwxacodeunlimit`'s `line_color` (used when `auto_color` is off).
    #[serde(default)]
    pub line_color: Option<LineColor>,
    /// `getwxacodeunlimit`'s `is_hyaline`: a transparent background.
    #[serde(default)]
    pub is_hyaline: bool,
}

/// An RGB colour, `{ r = 0, g = 0, b = 0 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LineColor {
    pub r: u8,
    pub g: u8,
    pub b: u8,
}

fn default_page() -> String {
    "pages/scanlogin/index".into()
}
fn default_env_version() -> String {
    "release".into()
}
fn default_true() -> bool {
    true
}
fn default_width() -> u32 {
    430
}

/// `[[clients]]`: one website.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    pub client_id: String,
    pub name: String,
    pub client_secret: SecretString,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    #[serde(default)]
    pub webhook_url: Option<Url>,
    /// Where OpenID Connect may send the browser back (exact match); a
    /// client without any cannot use OpenID Connect.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// `whsec_` + base64 of at least 24 random bytes; signs the webhooks.
    #[serde(default)]
    pub webhook_secret: Option<SecretString>,
    /// The `[[apps]]` entry whose mini-program code this client's scenes
    /// show (default: the first); on a quota error the next app's is shown.
    #[serde(default)]
    pub app_id: Option<String>,
    /// Whether this client is given the person's phone number (redeem's
    /// `user.phone_number`); the phone then offers to share it.
    #[serde(default)]
    pub phone: bool,
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

/// A configuration that cannot be used, with one line per mistake.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ConfigError(pub Vec<String>);

impl Settings {
    /// Reads `path` (which must exist), then applies `SCANLOGIN__...` variables
    /// from the process environment, then checks the result.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(vec![format!("{}: cannot read: {e}", path.display())]))?;
        Self::from_sources(&text, std::env::vars())
    }

    /// Builds settings from TOML text and `(name, value)` environment pairs.
    pub fn from_sources(
        toml_text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut root: toml::Value = toml::from_str::<toml::Table>(toml_text)
            .map(toml::Value::Table)
            .map_err(|e| ConfigError(vec![format!("config file: {}", e.message())]))?;
        let mut vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        vars.sort();
        for (name, value) in vars {
            let path: Vec<String> = name[ENV_PREFIX.len()..]
                .split("__")
                .map(|s| s.to_ascii_lowercase())
                .collect();
            overlay(&mut root, &path, &value)
                .map_err(|e| ConfigError(vec![format!("{name}: {e}")]))?;
        }
        let mut settings: Settings = serde_path_to_error::deserialize(root).map_err(|e| {
            let key = e.path().to_string();
            ConfigError(vec![format!("{key}: {}", e.into_inner().message())])
        })?;
        settings.fit_demo_to_the_hub();
        let problems = settings.problems();
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError(problems))
        }
    }

    /// Mistakes that make the configuration unusable, one line each, naming the key.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let live = self.wechat.mode == WechatMode::Live;
        if !matches!(self.server.public_url.scheme(), "http" | "https") {
            out.push("server.public_url: must be an http or https URL".into());
        }
        if !(1..=86_400).contains(&self.scene.ttl_secs) {
            out.push(format!(
                "scene.ttl_secs: {} is out of range 1..=86400",
                self.scene.ttl_secs
            ));
        }
        if !(50..=60_000).contains(&self.scene.sweep_interval_ms) {
            out.push("scene.sweep_interval_ms: must be within 50..=60000".into());
        }
        if self.rate_limit.scenes_per_minute > 0 && self.rate_limit.burst == 0 {
            out.push("rate_limit.burst: must be at least 1 while scenes are limited".into());
        }
        if let Some(why) = self.simulator_exposed() {
            out.push(why);
        }
        if self.server.metrics_bind == Some(self.server.bind) {
            out.push("server.metrics_bind: must differ from server.bind".into());
        }
        if self.housekeeping.retention_secs < 3600 {
            out.push("housekeeping.retention_secs: at least 3600 (an hour)".into());
        }
        if self.housekeeping.batch == 0 || self.housekeeping.interval_secs == 0 {
            out.push("housekeeping: batch and interval_secs must be at least 1".into());
        }
        if self.database.max_connections == 0 {
            out.push("database.max_connections: must be at least 1".into());
        }
        let url = self.database.url.expose_secret();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            out.push("database.url: must start with sqlite:, postgres:// or postgresql://".into());
        }
        if let Some(listen) = &self.database.listen_url {
            let listen = listen.expose_secret();
            if !(listen.starts_with("postgres://") || listen.starts_with("postgresql://"))
                || url.starts_with("sqlite:")
            {
                out.push(
                    "database.listen_url: a postgres:// URL, with a postgres:// database.url"
                        .into(),
                );
            }
        }
        if !(1..=3600).contains(&self.database.listener_grace_secs) {
            out.push("database.listener_grace_secs: must be within 1..=3600".into());
        }
        if let Some(key) = &self.server.secret_key
            && key.expose_secret().len() < 32
        {
            out.push("server.secret_key: must be at least 32 characters".into());
        }
        if self.apps.is_empty() {
            out.push("apps: at least one [[apps]] entry is required".into());
        }
        let mut app_ids = HashSet::new();
        for (i, app) in self.apps.iter().enumerate() {
            if app.app_id.is_empty() {
                out.push(format!("apps[{i}].app_id: must not be empty"));
            }
            if !app_ids.insert(app.app_id.as_str()) {
                out.push(format!(
                    "apps[{i}].app_id: duplicate app id {:?}",
                    app.app_id
                ));
            }
            if live && app.secret.expose_secret().is_empty() {
                out.push(format!("apps[{i}].secret: required in live mode"));
            }
            if app.page.starts_with('/') || app.page.contains('?') || app.page.is_empty() {
                out.push(format!(
                    "apps[{i}].page: a page path without leading '/' or query"
                ));
            }
            if !matches!(app.env_version.as_str(), "release" | "trial" | "develop") {
                out.push(format!(
                    "apps[{i}].env_version: one of release, trial, develop"
                ));
            }
            if !(280..=1280).contains(&app.width) {
                out.push(format!(
                    "apps[{i}].width: {} is out of range 280..=1280",
                    app.width
                ));
            }
        }
        if self.clients.is_empty() {
            out.push("clients: at least one [[clients]] entry is required".into());
        }
        let mut client_ids = HashSet::new();
        for (i, client) in self.clients.iter().enumerate() {
            if client.client_id.is_empty() {
                out.push(format!("clients[{i}].client_id: must not be empty"));
            }
            if !client_ids.insert(client.client_id.as_str()) {
                out.push(format!(
                    "clients[{i}].client_id: duplicate client id {:?}",
                    client.client_id
                ));
            }
            if client.client_secret.expose_secret().is_empty() {
                out.push(format!("clients[{i}].client_secret: must not be empty"));
            }
            for origin in &client.allowed_origins {
                if let Err(why) = check_origin(origin) {
                    out.push(format!("clients[{i}].allowed_origins: {origin:?} {why}"));
                }
            }
            for uri in &client.redirect_uris {
                if let Err(why) = crate::oidc::check_redirect_uri(uri) {
                    out.push(format!("clients[{i}].redirect_uris: {uri:?} {why}"));
                }
            }
            if let Some(app) = &client.app_id
                && !app_ids.contains(app.as_str())
            {
                out.push(format!(
                    "clients[{i}].app_id: {app:?} is not an [[apps]] entry"
                ));
            }
        }
        out.extend(crate::webhooks::settings_problems(self));
        out
    }

    /// Why the simulator may not serve here: it lets anyone log in as
    /// anyone, so it binds loopback only unless the operator says otherwise.
    fn simulator_exposed(&self) -> Option<String> {
        let exposed = self.wechat.mode == WechatMode::Simulator
            && !self.wechat.simulator_on_network
            && !self.server.bind.ip().is_loopback();
        exposed.then(|| {
            format!(
                "wechat.simulator_on_network: the simulator lets anyone log in as anyone; \
                 server.bind {} is not a loopback address (bind 127.0.0.1, use mode = \"live\", \
                 or set wechat.simulator_on_network = true)",
                self.server.bind
            )
        })
    }

    /// Advice that does not stop `serve`.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.wechat.mode == WechatMode::Simulator {
            out.push(
                "wechat.mode: simulator; anyone who reaches the hub can log in as anyone \
                 (/sim and /demo are served). Use mode = \"live\" in production"
                    .into(),
            );
        }
        for (key, value) in self.rate_limit.named() {
            if value == 0 && key != "burst" {
                out.push(format!("rate_limit.{key}: 0 turns this limit off"));
            }
        }
        if self.wechat.mode == WechatMode::Live && self.server.public_url.scheme() == "http" {
            out.push(
                "server.public_url: plain http in live mode; browsers and WeChat expect https"
                    .into(),
            );
        }
        for (i, client) in self.clients.iter().enumerate() {
            if (1..16).contains(&client.client_secret.expose_secret().len()) {
                out.push(format!(
                    "clients[{i}].client_secret: shorter than 16 characters; use a long random secret"
                ));
            }
            for uri in &client.redirect_uris {
                if crate::oidc::is_plain_http_off_loopback(uri) {
                    out.push(format!(
                        "clients[{i}].redirect_uris: {uri:?} is plain http off loopback; codes would travel unencrypted"
                    ));
                }
            }
        }
        out.extend(crate::webhooks::settings_warnings(self));
        out
    }

    /// The demo page is served by the hub itself, so the `demo` client always
    /// allows the hub's own origin (wherever `public_url` points) and, in
    /// simulator mode, the callback of the demo's OpenID Connect relying party.
    fn fit_demo_to_the_hub(&mut self) {
        let own = self.server.public_url.origin().ascii_serialization();
        let callback = format!(
            "{}{DEMO_OIDC_CALLBACK}",
            self.server.public_url.as_str().trim_end_matches('/')
        );
        let simulator = self.wechat.mode == WechatMode::Simulator;
        if let Some(demo) = self.clients.iter_mut().find(|c| c.client_id == DEMO_CLIENT) {
            if !demo.allows_origin(&own) {
                demo.allowed_origins.push(own);
            }
            // The demo's relying party (simulator mode only) comes back here.
            if simulator && !demo.redirect_uris.contains(&callback) {
                demo.redirect_uris.push(callback);
            }
        }
    }

    /// The app used when a request names none: the first configured.
    pub fn app(&self, app_id: Option<&str>) -> Option<&AppSettings> {
        match app_id {
            None => self.apps.first(),
            Some(id) => self.apps.iter().find(|a| a.app_id == id),
        }
    }

    /// The client with this id.
    pub fn client(&self, client_id: &str) -> Option<&ClientSettings> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }

    /// Whether any client allows this origin (used for CORS).
    pub fn any_client_allows(&self, origin: &str) -> bool {
        self.clients.iter().any(|c| c.allows_origin(origin))
    }
}

impl ClientSettings {
    /// Whether `origin` (an `Origin` header value) is one of this client's.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|o| o.trim_end_matches('/') == origin)
    }
}

/// An origin is `scheme://host[:port]` with no path, query or fragment.
fn check_origin(origin: &str) -> Result<(), &'static str> {
    let url = Url::parse(origin).map_err(|_| "is not a URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must use http or https");
    }
    if url.host_str().is_none() {
        return Err("has no host");
    }
    if url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
        || origin.trim_end_matches('/').len() + 1 < origin.len()
    {
        return Err("must be scheme://host[:port] without a path");
    }
    Ok(())
}

/// Sets `path` in `root` to `raw`. Numeric segments index arrays
/// (`SCANLOGIN__APPS__0__SECRET`). A value replacing a string stays a string;
/// otherwise it is read as a TOML value when it parses as one.
fn overlay(root: &mut toml::Value, path: &[String], raw: &str) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut node = root;
    for seg in parents {
        node = child(node, seg, true)?;
    }
    let is_string = matches!(child(node, last, false), Ok(toml::Value::String(_)));
    let value = if is_string {
        toml::Value::String(raw.to_owned())
    } else {
        toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
    };
    *child(node, last, true)? = value;
    Ok(())
}

fn child<'a>(
    node: &'a mut toml::Value,
    seg: &str,
    create: bool,
) -> Result<&'a mut toml::Value, String> {
    if seg.is_empty() {
        return Err("empty key segment".into());
    }
    match node {
        toml::Value::Array(items) => {
            let i: usize = seg
                .parse()
                .map_err(|_| format!("{seg:?} is not an index"))?;
            if i == items.len() && create {
                items.push(toml::Value::Table(toml::Table::new()));
            }
            items
                .get_mut(i)
                .ok_or_else(|| format!("index {i} is past the end of the list"))
        }
        toml::Value::Table(table) => {
            if !table.contains_key(seg) {
                if !create {
                    return Err("absent".into());
                }
                let fresh = if seg.parse::<usize>().is_ok() {
                    toml::Value::Table(toml::Table::new())
                } else if matches!(seg, "apps" | "clients") {
                    toml::Value::Array(Vec::new())
                } else {
                    toml::Value::Table(toml::Table::new())
                };
                table.insert(seg.to_owned(), fresh);
            }
            table.get_mut(seg).ok_or_else(|| "absent".into())
        }
        _ => Err(format!("cannot set {seg:?} inside a plain value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        [[apps]]
        app_id = "wxtest"
        secret = "s"
        [[clients]]
        client_id = "demo"
        name = "Demo"
        client_secret = "0123456789abcdef"
        allowed_origins = ["http://127.0.0.1:8080"]
    "#;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_wins_and_indexes_lists() {
        let s = Settings::from_sources(
            BASE,
            env(&[
                ("SCANLOGIN__SCENE__TTL_SECS", "60"),
                ("SCANLOGIN__APPS__0__SECRET", "from-env"),
                ("SCANLOGIN__SERVER__BIND", "127.0.0.1:9000"),
                ("OTHER", "ignored"),
            ]),
        )
        .expect("valid");
        assert_eq!(s.scene.ttl_secs, 60);
        assert_eq!(s.apps[0].secret.expose_secret(), "from-env");
        assert_eq!(s.server.bind.port(), 9000);
    }

    #[test]
    fn a_client_app_must_be_configured_and_colors_are_rgb() {
        let text = format!(
            "{BASE}\n[[clients]]\nclient_id = \"b\"\nname = \"B\"\nclient_secret = \"0123456789abcdef\"\napp_id = \"wxnope\"\n"
        );
        let err = Settings::from_sources(&text, env(&[])).unwrap_err();
        assert!(err.to_string().contains("clients[1].app_id"), "{err}");
        let text = BASE.replace(
            "secret = \"s\"",
            "secret = \"s\"\nline_color = { r = 1, g = 2, b = 300 }",
        );
        assert!(Settings::from_sources(&text, env(&[])).is_err());
        let text = BASE.replace(
            "secret = \"s\"",
            "secret = \"s\"\nline_color = { r = 1, g = 2, b = 3 }\nis_hyaline = true",
        );
        let s = Settings::from_sources(&text, env(&[])).expect("valid");
        assert_eq!(s.apps[0].line_color, Some(LineColor { r: 1, g: 2, b: 3 }));
        assert!(s.apps[0].is_hyaline && !s.apps[0].auto_color);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err =
            Settings::from_sources(BASE, env(&[("SCANLOGIN__SERVER__BINDX", "1")])).unwrap_err();
        assert!(err.to_string().contains("server"), "{err}");
        assert!(err.to_string().contains("bindx"), "{err}");
        let err =
            Settings::from_sources(&format!("{BASE}\n[scene]\nttl = 3\n"), env(&[])).unwrap_err();
        assert!(err.to_string().contains("ttl"), "{err}");
    }

    #[test]
    fn impossible_values_are_named() {
        let err =
            Settings::from_sources(BASE, env(&[("SCANLOGIN__SCENE__TTL_SECS", "0")])).unwrap_err();
        assert!(err.to_string().starts_with("scene.ttl_secs"), "{err}");
        let dup = format!(
            "{BASE}\n[[clients]]\nclient_id = \"demo\"\nname = \"x\"\nclient_secret = \"0123456789abcdef\"\nallowed_origins = [\"http://x/path\"]\n"
        );
        let err = Settings::from_sources(&dup, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("clients[1].client_id: duplicate"), "{err}");
        assert!(err.contains("clients[1].allowed_origins"), "{err}");
    }

    #[test]
    fn the_demo_client_allows_the_hubs_own_origin() {
        let s = Settings::from_sources(
            BASE,
            env(&[("SCANLOGIN__SERVER__PUBLIC_URL", "http://127.0.0.1:18080")]),
        )
        .expect("valid");
        assert!(
            s.client("demo")
                .expect("demo")
                .allows_origin("http://127.0.0.1:18080")
        );
        assert!(
            s.client("demo")
                .expect("demo")
                .allows_origin("http://127.0.0.1:8080")
        );
        assert!(
            !s.client("demo")
                .expect("demo")
                .allows_origin("http://127.0.0.1:18081")
        );
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let s = Settings::from_sources(BASE, env(&[])).expect("valid");
        let shown = format!("{s:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
    }
}

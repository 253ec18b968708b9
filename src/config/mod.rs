//! Typed settings: defaults, then the TOML file, then `SCANLOGIN__SECTION__KEY`
//! environment variables (environment wins). Unknown keys are refused with the
//! key's path; secrets are `SecretString`s whose `Debug` prints `[REDACTED]`.
//!
//! The sections' types are in [`sections`] and [`clients`], reading them in
//! `load`, and what makes a configuration unusable (or merely unwise) in
//! [`checks`]. This module imports no other part of the crate.

pub mod checks;
pub mod clients;
mod load;
mod reload;
pub mod sections;

#[cfg(test)]
pub(crate) mod fixtures;

use serde::Deserialize;

pub use self::checks::oidc::{check_redirect_uri, is_plain_http_off_loopback};
pub use self::checks::webhooks::{
    MIN_WEBHOOK_SECRET_BYTES, WEBHOOK_SECRET_PREFIX, webhook_secret_bytes,
};
pub use self::clients::{AppSettings, ClientSettings, LineColor};
pub use self::sections::{
    DatabaseSettings, GeoipSettings, HousekeepingSettings, LogFormat, LogSettings,
    RateLimitSettings, SceneSettings, ServerSettings, WebhookSettings, WechatMode, WechatSettings,
};

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
    #[serde(default)]
    pub geoip: GeoipSettings,
}

/// A configuration that cannot be used, with one line per mistake.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ConfigError(pub Vec<String>);

impl Settings {
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
}

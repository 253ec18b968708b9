//! The `[[apps]]` (mini-programs) and `[[clients]]` (websites) entries.

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

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

impl ClientSettings {
    /// Whether `origin` (an `Origin` header value) is one of this client's.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|o| o.trim_end_matches('/') == origin)
    }
}

//! The `[[apps]]` (mini-programs) and `[[clients]]` (websites) entries.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::keys::secrets_equal;

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
    /// The secret before the latest rotation, accepted beside
    /// `client_secret` while the site's backends move over.
    #[serde(default)]
    pub previous_client_secret: Option<SecretString>,
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
    /// The webhook secret before the latest rotation (same format): each
    /// delivery is then signed with both, so the site can roll its verifier.
    #[serde(default)]
    pub previous_webhook_secret: Option<SecretString>,
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

    /// Whether `presented` is this client's secret or, during a rotation,
    /// its previous one. Both are compared, in constant time, whatever the
    /// first gives: the time taken does not tell which one matched.
    pub fn secret_matches(&self, presented: &str) -> bool {
        let current = secrets_equal(presented, self.client_secret.expose_secret());
        let previous = self
            .previous_client_secret
            .as_ref()
            .is_some_and(|p| secrets_equal(presented, p.expose_secret()));
        current | previous
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;
    use crate::config::fixtures::{BASE, env};

    fn settings(previous: Option<&str>) -> Result<Settings, crate::config::ConfigError> {
        let previous = previous
            .map(|p| format!("previous_client_secret = \"{p}\"\n"))
            .unwrap_or_default();
        let text = format!(
            "{BASE}\n[[clients]]\nclient_id = \"shop\"\nname = \"Shop\"\n\
             client_secret = \"shop-new-secret-0123456789\"\n{previous}"
        );
        Settings::from_sources(&text, env(&[]))
    }

    #[test]
    fn the_previous_secret_is_accepted_beside_the_secret_and_hidden() {
        let s = settings(Some("shop-old-secret-0123456789")).expect("valid");
        let shop = s.client("shop").expect("shop");
        assert!(shop.secret_matches("shop-new-secret-0123456789"));
        assert!(shop.secret_matches("shop-old-secret-0123456789"));
        for wrong in [
            "",
            "shop-old-secret-012345678",
            "shop-new-secret-0123456789 ",
        ] {
            assert!(!shop.secret_matches(wrong), "{wrong:?}");
        }
        assert!(
            !format!("{s:?}").contains("shop-old-secret"),
            "redacted in Debug"
        );
        let s = settings(None).expect("valid");
        let shop = s.client("shop").expect("shop");
        assert!(!shop.secret_matches("shop-old-secret-0123456789"));
        assert!(!shop.secret_matches(""));
    }

    #[test]
    fn an_empty_previous_secret_is_refused_and_a_short_one_warned_about() {
        let err = settings(Some("")).expect_err("empty").to_string();
        assert!(
            err.contains("previous_client_secret: must not be empty"),
            "{err}"
        );
        let s = settings(Some("short")).expect("valid");
        assert!(
            s.warnings()
                .iter()
                .any(|w| w.contains("previous_client_secret: shorter than 16")),
            "{:?}",
            s.warnings()
        );
    }
}

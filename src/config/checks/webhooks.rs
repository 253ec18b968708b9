//! The webhook keys: each client's `webhook_url` and `webhook_secret`, and
//! the `[webhooks]` section. What a webhook secret looks like is defined
//! here; the webhook signer reads its key bytes with
//! [`webhook_secret_bytes`].

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::ExposeSecret;

use crate::config::Settings;

/// Prefix of a webhook secret.
pub const WEBHOOK_SECRET_PREFIX: &str = "whsec_";
/// Fewest key bytes a webhook secret may decode to.
pub const MIN_WEBHOOK_SECRET_BYTES: usize = 24;

/// The key bytes of `whsec_` + base64 of at least
/// [`MIN_WEBHOOK_SECRET_BYTES`] bytes; the error says what is wrong without
/// repeating the secret.
pub fn webhook_secret_bytes(secret: &str) -> Result<Vec<u8>, &'static str> {
    let encoded = secret
        .strip_prefix(WEBHOOK_SECRET_PREFIX)
        .ok_or("must start with whsec_")?;
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| "must be whsec_ followed by base64")?;
    if key.len() < MIN_WEBHOOK_SECRET_BYTES {
        return Err("must encode at least 24 random bytes");
    }
    Ok(key)
}

/// Mistakes in the webhook settings, one line each (never the secret).
pub fn settings_problems(s: &Settings) -> Vec<String> {
    let mut out = Vec::new();
    for (i, client) in s.clients.iter().enumerate() {
        if let Some(secret) = &client.webhook_secret
            && let Err(why) = webhook_secret_bytes(secret.expose_secret())
        {
            out.push(format!("clients[{i}].webhook_secret: {why}"));
        }
        if let Some(previous) = &client.previous_webhook_secret {
            if let Err(why) = webhook_secret_bytes(previous.expose_secret()) {
                out.push(format!("clients[{i}].previous_webhook_secret: {why}"));
            }
            if client.webhook_secret.is_none() {
                out.push(format!(
                    "clients[{i}].previous_webhook_secret: requires webhook_secret (the new one)"
                ));
            }
        }
        if let Some(url) = &client.webhook_url {
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                out.push(format!("clients[{i}].webhook_url: must be an http(s) URL"));
            }
            if client.webhook_secret.is_none() {
                out.push(format!(
                    "clients[{i}].webhook_secret: required with webhook_url"
                ));
            }
        }
    }
    let w = &s.webhooks;
    if !(100..=60_000).contains(&w.timeout_ms) {
        out.push("webhooks.timeout_ms: must be within 100..=60000".into());
    }
    if !(10..=30_000).contains(&w.retry_first_ms) {
        out.push("webhooks.retry_first_ms: must be within 10..=30000".into());
    }
    if w.retry_max_ms < w.retry_first_ms || w.retry_max_ms > 86_400_000 {
        out.push("webhooks.retry_max_ms: from retry_first_ms up to 86400000".into());
    }
    if w.retry_for_secs == 0 {
        out.push("webhooks.retry_for_secs: must be at least 1".into());
    }
    if !(50..=60_000).contains(&w.poll_interval_ms) {
        out.push("webhooks.poll_interval_ms: must be within 50..=60000".into());
    }
    if !(1..=256).contains(&w.concurrency) {
        out.push("webhooks.concurrency: must be within 1..=256".into());
    }
    out
}

/// Advice about the webhook settings that does not stop `serve`.
pub fn settings_warnings(s: &Settings) -> Vec<String> {
    let mut out = Vec::new();
    for (i, client) in s.clients.iter().enumerate() {
        if let Some(url) = &client.webhook_url
            && url.scheme() != "https"
            && !is_loopback(url)
        {
            out.push(format!(
                "clients[{i}].webhook_url: not https; events would cross the network in clear"
            ));
        }
        if client.webhook_secret.is_some() && client.webhook_url.is_none() {
            out.push(format!(
                "clients[{i}].webhook_secret: set without webhook_url; no webhook is sent"
            ));
        }
    }
    if s.webhooks.retry_for_secs < 86_400 {
        out.push("webhooks.retry_for_secs: under a day; receivers down longer lose events".into());
    }
    out
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use crate::config::{ConfigError, Settings};

    fn settings(url: &str, secret: &str) -> Result<Settings, ConfigError> {
        let text = format!(
            r#"
            [[apps]]
            app_id = "wxtest"
            secret = "s"
            [[clients]]
            client_id = "shop"
            name = "Shop"
            client_secret = "0123456789abcdef"
            webhook_url = "{url}"
            webhook_secret = "{secret}"
            "#
        );
        Settings::from_sources(&text, Vec::new())
    }

    #[test]
    fn bad_secrets_are_errors_that_do_not_repeat_them() {
        let short = format!("whsec_{}", STANDARD.encode([5u8; 23]));
        for bad in [short.as_str(), "whsec_***", "plain-secret-0123456789abcdef"] {
            let err = settings("https://a.example/h", bad)
                .expect_err(bad)
                .to_string();
            assert!(err.contains("clients[0].webhook_secret"), "{err}");
            assert!(!err.contains(bad), "{err}");
        }
    }

    #[test]
    fn a_previous_secret_is_checked_like_the_secret_and_needs_one() {
        let good = format!("whsec_{}", STANDARD.encode([5u8; 32]));
        let with_previous = |previous: &str| {
            let text = format!(
                r#"
                [[apps]]
                app_id = "wxtest"
                secret = "s"
                [[clients]]
                client_id = "shop"
                name = "Shop"
                client_secret = "0123456789abcdef"
                webhook_url = "https://a.example/h"
                webhook_secret = "{good}"
                previous_webhook_secret = "{previous}"
                "#
            );
            Settings::from_sources(&text, Vec::new())
        };
        let old = format!("whsec_{}", STANDARD.encode([6u8; 24]));
        let s = with_previous(&old).expect("valid");
        assert!(!format!("{s:?}").contains(&old[6..]), "redacted in Debug");
        let short = format!("whsec_{}", STANDARD.encode([6u8; 23]));
        for bad in [
            short.as_str(),
            "whsec_***",
            "plain-0123456789abcdef0123456789",
        ] {
            let err = with_previous(bad).expect_err(bad).to_string();
            assert!(err.contains("clients[0].previous_webhook_secret"), "{err}");
            assert!(!err.contains(bad), "{err}");
        }
        let alone = format!(
            "[[apps]]\napp_id = \"wxtest\"\nsecret = \"s\"\n[[clients]]\nclient_id = \"shop\"\n\
             name = \"Shop\"\nclient_secret = \"0123456789abcdef\"\nprevious_webhook_secret = \"{old}\"\n"
        );
        let err = Settings::from_sources(&alone, Vec::new())
            .expect_err("a previous secret without a secret")
            .to_string();
        assert!(
            err.contains("clients[0].previous_webhook_secret: requires webhook_secret"),
            "{err}"
        );
    }

    #[test]
    fn plain_http_is_a_warning_except_on_loopback_and_secrets_stay_hidden() {
        let secret = format!("whsec_{}", STANDARD.encode([5u8; 32]));
        let s = settings("http://a.example/h", &secret).expect("valid");
        assert!(
            s.warnings()
                .iter()
                .any(|w| w.starts_with("clients[0].webhook_url: not https")),
            "{:?}",
            s.warnings()
        );
        assert!(!format!("{s:?}").contains(&secret[6..]));
        for local in [
            "http://127.0.0.1:9000/h",
            "http://localhost/h",
            "http://[::1]/h",
        ] {
            let s = settings(local, &secret).expect("valid");
            assert!(
                !s.warnings().iter().any(|w| w.contains("webhook_url")),
                "{local}"
            );
        }
    }
}

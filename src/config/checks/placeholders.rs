//! Values an operator has not filled in yet. The Debian package installs a
//! configuration whose required values read `CHANGE-ME...`; every key that
//! still holds that marker is refused by name, with the environment variable
//! that may set it instead (the value itself is never repeated: it may be a
//! half-edited secret).

use secrecy::ExposeSecret;

use super::super::{ENV_PREFIX, Settings};

/// The marker of a value left to fill (compared without regard to case:
/// URLs lower-case their host).
pub const PLACEHOLDER: &str = "CHANGE-ME";

/// One line per key that still holds a placeholder.
pub fn problems(s: &Settings) -> Vec<String> {
    let mut values: Vec<(String, String)> = vec![
        ("server.public_url".into(), s.server.public_url.to_string()),
        (
            "server.secret_key_file".into(),
            s.server.secret_key_file.display().to_string(),
        ),
        (
            "database.url".into(),
            s.database.url.expose_secret().to_owned(),
        ),
        ("wechat.api_base".into(), s.wechat.api_base.to_string()),
    ];
    if let Some(key) = &s.server.secret_key {
        values.push(("server.secret_key".into(), key.expose_secret().to_owned()));
    }
    if let Some(url) = &s.database.listen_url {
        values.push(("database.listen_url".into(), url.expose_secret().to_owned()));
    }
    for (i, app) in s.apps.iter().enumerate() {
        let key = |name: &str| format!("apps[{i}].{name}");
        values.push((key("app_id"), app.app_id.clone()));
        values.push((key("secret"), app.secret.expose_secret().to_owned()));
        values.push((key("page"), app.page.clone()));
    }
    for (i, client) in s.clients.iter().enumerate() {
        let key = |name: &str| format!("clients[{i}].{name}");
        values.push((key("client_id"), client.client_id.clone()));
        values.push((key("name"), client.name.clone()));
        values.push((
            key("client_secret"),
            client.client_secret.expose_secret().to_owned(),
        ));
        values.push((key("allowed_origins"), client.allowed_origins.join(" ")));
        values.push((key("redirect_uris"), client.redirect_uris.join(" ")));
        if let Some(url) = &client.webhook_url {
            values.push((key("webhook_url"), url.to_string()));
        }
        let previous = [
            ("previous_client_secret", &client.previous_client_secret),
            ("webhook_secret", &client.webhook_secret),
            ("previous_webhook_secret", &client.previous_webhook_secret),
        ];
        for (name, secret) in previous {
            if let Some(secret) = secret {
                values.push((key(name), secret.expose_secret().to_owned()));
            }
        }
        if let Some(app) = &client.app_id {
            values.push((key("app_id"), app.clone()));
        }
    }
    values
        .into_iter()
        .filter(|(_, value)| is_placeholder(value))
        .map(|(key, _)| {
            format!(
                "{key}: still the {PLACEHOLDER} placeholder; set it in the file or in {}",
                env_name(&key)
            )
        })
        .collect()
}

/// Whether `value` holds the marker (in any case).
fn is_placeholder(value: &str) -> bool {
    value.to_ascii_uppercase().contains(PLACEHOLDER)
}

/// The variable that sets `key`: `apps[0].secret` -> `SCANLOGIN__APPS__0__SECRET`.
fn env_name(key: &str) -> String {
    let path: Vec<String> = key
        .split(['.', '[', ']'])
        .filter(|s| !s.is_empty())
        .map(str::to_ascii_uppercase)
        .collect();
    format!("{ENV_PREFIX}{}", path.join("__"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::fixtures::{BASE, env};

    /// The configuration the Debian package installs.
    const PACKAGED: &str = include_str!("../../../deploy/debian/config.toml");

    /// Every required value of the packaged file, as an operator sets it.
    const FILLED: [(&str, &str); 7] = [
        ("SCANLOGIN__SERVER__PUBLIC_URL", "https://login.example.com"),
        ("SCANLOGIN__APPS__0__APP_ID", "wx0123456789abcdef"),
        ("SCANLOGIN__APPS__0__SECRET", "app-secret-from-the-console"),
        ("SCANLOGIN__CLIENTS__0__CLIENT_ID", "shop"),
        ("SCANLOGIN__CLIENTS__0__NAME", "Example Shop"),
        (
            "SCANLOGIN__CLIENTS__0__CLIENT_SECRET",
            "a-long-random-client-secret",
        ),
        (
            "SCANLOGIN__CLIENTS__0__ALLOWED_ORIGINS",
            r#"["https://shop.example.com"]"#,
        ),
    ];

    #[test]
    fn the_packaged_config_names_each_placeholder_until_filled() {
        let err = Settings::from_sources(PACKAGED, env(&[]))
            .expect_err("placeholders are refused")
            .to_string();
        for (var, _) in FILLED {
            let key = var.trim_start_matches(ENV_PREFIX).to_ascii_lowercase();
            let mut parts = key.split("__");
            let named = match (parts.next(), parts.next(), parts.next()) {
                (Some(list), Some(i), Some(field)) => format!("{list}[{i}].{field}"),
                (Some(section), Some(field), None) => format!("{section}.{field}"),
                _ => panic!("unexpected variable {var}"),
            };
            assert!(
                err.lines()
                    .any(|l| l.starts_with(&format!("{named}: still the CHANGE-ME"))
                        && l.ends_with(var)),
                "{named} is not named with {var}:\n{err}"
            );
        }
        assert_eq!(err.lines().count(), FILLED.len(), "{err}");
        // Filled through the environment, as the package's service is.
        let s = Settings::from_sources(PACKAGED, env(&FILLED)).expect("filled config loads");
        assert_eq!(s.wechat.mode, crate::config::WechatMode::Live);
        assert_eq!(s.clients[0].client_id, "shop");
        assert!(s.clients[0].allows_origin("https://shop.example.com"));
    }

    #[test]
    fn a_placeholder_anywhere_is_refused_without_repeating_the_value() {
        let text = BASE.replace(
            "client_secret = \"0123456789abcdef\"",
            "client_secret = \"half-typed-change-me-secret\"",
        );
        let err = Settings::from_sources(&text, env(&[]))
            .expect_err("a placeholder is refused")
            .to_string();
        assert!(
            err.contains("clients[0].client_secret: still the CHANGE-ME placeholder"),
            "{err}"
        );
        assert!(
            err.contains("SCANLOGIN__CLIENTS__0__CLIENT_SECRET"),
            "{err}"
        );
        assert!(!err.contains("half-typed"), "{err}");
        let err = Settings::from_sources(
            BASE,
            env(&[("SCANLOGIN__SERVER__PUBLIC_URL", "https://CHANGE-ME.example")]),
        )
        .expect_err("a placeholder URL is refused")
        .to_string();
        assert!(err.starts_with("server.public_url: still"), "{err}");
        assert!(Settings::from_sources(BASE, env(&[])).is_ok());
    }

    #[test]
    fn env_names_follow_the_overlay() {
        assert_eq!(env_name("apps[0].secret"), "SCANLOGIN__APPS__0__SECRET");
        assert_eq!(
            env_name("server.public_url"),
            "SCANLOGIN__SERVER__PUBLIC_URL"
        );
        assert_eq!(
            env_name("clients[12].allowed_origins"),
            "SCANLOGIN__CLIENTS__12__ALLOWED_ORIGINS"
        );
    }
}

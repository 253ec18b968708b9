//! What makes a configuration unusable ([`Settings::problems`], which stop
//! `serve` and `check-config`) or merely unwise ([`Settings::warnings`]).
//! The OpenID Connect and webhook keys have their own files, as do the
//! `CHANGE-ME` placeholders of the packaged configuration.

pub mod oidc;
pub mod placeholders;
pub mod webhooks;

use std::collections::HashSet;

use secrecy::ExposeSecret;
use url::Url;

use super::{Settings, WechatMode};

impl Settings {
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
        if !(100..=600_000).contains(&self.scene.catch_up_ms) {
            out.push("scene.catch_up_ms: must be within 100..=600000".into());
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
        if self.housekeeping.login_history_days > 36_500 {
            out.push("housekeeping.login_history_days: at most 36500 (0 keeps none)".into());
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
            if let Some(previous) = &client.previous_client_secret
                && previous.expose_secret().is_empty()
            {
                out.push(format!(
                    "clients[{i}].previous_client_secret: must not be empty (leave it out)"
                ));
            }
            for origin in &client.allowed_origins {
                if let Err(why) = check_origin(origin) {
                    out.push(format!("clients[{i}].allowed_origins: {origin:?} {why}"));
                }
            }
            for uri in &client.redirect_uris {
                if let Err(why) = oidc::check_redirect_uri(uri) {
                    out.push(format!("clients[{i}].redirect_uris: {uri:?} {why}"));
                }
            }
            // An mp/login ID token has `aud` = the app id: a client named
            // like an app would take it for one of its own.
            if app_ids.contains(client.client_id.as_str()) {
                out.push(format!(
                    "clients[{i}].client_id: {:?} is also an app_id; an ID token for the \
                     mini-program (aud = app_id) would pass as this client's",
                    client.client_id
                ));
            }
            if let Some(app) = &client.app_id
                && !app_ids.contains(app.as_str())
            {
                out.push(format!(
                    "clients[{i}].app_id: {app:?} is not an [[apps]] entry"
                ));
            }
        }
        if let Some(path) = &self.geoip.database
            && !path.is_file()
        {
            out.push(format!(
                "geoip.database: {} is not a readable file (a MaxMind DB .mmdb city database)",
                path.display()
            ));
        }
        out.extend(webhooks::settings_problems(self));
        out.extend(placeholders::problems(self));
        out
    }

    /// Why the simulator may not serve here: it lets anyone log in as
    /// anyone, so it serves loopback only unless the operator says
    /// otherwise: its bind address, and its public URL too (a loopback bind
    /// behind a public reverse proxy is on the network all the same).
    fn simulator_exposed(&self) -> Option<String> {
        if self.wechat.mode != WechatMode::Simulator || self.wechat.simulator_on_network {
            return None;
        }
        if !self.server.bind.ip().is_loopback() {
            return Some(format!(
                "wechat.simulator_on_network: the simulator lets anyone log in as anyone; \
                 server.bind {} is not a loopback address (bind 127.0.0.1, use mode = \"live\", \
                 or set wechat.simulator_on_network = true)",
                self.server.bind
            ));
        }
        if !is_loopback_url(&self.server.public_url) {
            return Some(format!(
                "wechat.simulator_on_network: the simulator lets anyone log in as anyone; \
                 server.public_url {} is not a loopback address (a proxy serves it to the \
                 network; use mode = \"live\", or set wechat.simulator_on_network = true)",
                self.server.public_url.as_str().trim_end_matches('/')
            ));
        }
        None
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
        let avatar_max = crate::avatars::MAX_AVATAR_BYTES as u64;
        if (1..avatar_max).contains(&u64::from(self.rate_limit.avatar_bytes_per_hour)) {
            out.push(format!(
                "rate_limit.avatar_bytes_per_hour: below {avatar_max}, the largest avatar uploads are always refused"
            ));
        }
        if self.wechat.mode == WechatMode::Live && self.server.public_url.scheme() == "http" {
            out.push(
                "server.public_url: plain http in live mode; browsers and WeChat expect https"
                    .into(),
            );
        }
        for (i, client) in self.clients.iter().enumerate() {
            let secrets = [
                ("client_secret", Some(&client.client_secret)),
                (
                    "previous_client_secret",
                    client.previous_client_secret.as_ref(),
                ),
            ];
            for (key, secret) in secrets {
                if secret.is_some_and(|s| (1..16).contains(&s.expose_secret().len())) {
                    out.push(format!(
                        "clients[{i}].{key}: shorter than 16 characters; use a long random secret"
                    ));
                }
            }
            for uri in &client.redirect_uris {
                if oidc::is_plain_http_off_loopback(uri) {
                    out.push(format!(
                        "clients[{i}].redirect_uris: {uri:?} is plain http off loopback; codes would travel unencrypted"
                    ));
                }
            }
        }
        out.extend(webhooks::settings_warnings(self));
        out
    }
}

/// Whether a URL's host is this machine: a loopback address or `localhost`.
fn is_loopback_url(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        None => false,
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

#[cfg(test)]
mod tests {
    use crate::config::fixtures::{BASE, env};
    use crate::config::{LineColor, Settings};

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
    fn an_avatar_budget_below_one_upload_is_warned_about() {
        let warned = |v: &str| {
            Settings::from_sources(
                BASE,
                env(&[("SCANLOGIN__RATE_LIMIT__AVATAR_BYTES_PER_HOUR", v)]),
            )
            .expect("valid")
            .warnings()
            .iter()
            .any(|w| w.starts_with("rate_limit.avatar_bytes_per_hour"))
        };
        assert!(warned("1000"));
        assert!(warned("0"), "off");
        assert!(!warned("67108864"));
    }

    #[test]
    fn the_simulator_refuses_a_public_url_off_loopback() {
        let sim = format!("[wechat]\nmode = \"simulator\"\n{BASE}");
        for url in [
            "https://login.example.com",
            "http://10.0.0.5:8080",
            "http://[2001:db8::1]/",
        ] {
            let err = Settings::from_sources(&sim, env(&[("SCANLOGIN__SERVER__PUBLIC_URL", url)]))
                .unwrap_err()
                .to_string();
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.starts_with("wechat.simulator_on_network:"), "{err}");
            assert!(err.contains("server.public_url"), "{err}");
        }
        for url in [
            "http://127.0.0.1:8080",
            "http://localhost:8080",
            "http://[::1]:8080",
        ] {
            Settings::from_sources(&sim, env(&[("SCANLOGIN__SERVER__PUBLIC_URL", url)]))
                .unwrap_or_else(|e| panic!("{url}: {e}"));
        }
        Settings::from_sources(
            &sim,
            env(&[
                ("SCANLOGIN__SERVER__PUBLIC_URL", "https://login.example.com"),
                ("SCANLOGIN__WECHAT__SIMULATOR_ON_NETWORK", "true"),
            ]),
        )
        .expect("allowed when the operator says so");
    }

    #[test]
    fn a_client_named_like_an_app_is_refused() {
        let text = format!(
            "{BASE}\n[[clients]]\nclient_id = \"wxtest\"\nname = \"Spoof\"\nclient_secret = \"0123456789abcdef\"\n"
        );
        let err = Settings::from_sources(&text, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("clients[1].client_id: \"wxtest\" is also an app_id"),
            "{err}"
        );
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
}

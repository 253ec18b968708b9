//! The test hub's settings written as a configuration file, for commands
//! run as the real binary against its database (`rotate-keys`).

use scanlogin::Settings;
use scanlogin::config::{AppSettings, ClientSettings, LogFormat, WechatMode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use url::Url;

use super::config::{TestConfig, client};

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
            "catch_up_ms": s.scene.catch_up_ms,
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
            "login_history_days": s.housekeeping.login_history_days,
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
    let secrets = [
        ("previous_client_secret", &c.previous_client_secret),
        ("webhook_secret", &c.webhook_secret),
        ("previous_webhook_secret", &c.previous_webhook_secret),
    ];
    for (key, secret) in secrets {
        set(&mut entry, key, secret.as_ref().map(expose));
    }
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

/// Every value here differs from the hub's default, so a key the file
/// leaves out shows.
#[test]
fn the_config_file_holds_the_same_settings() {
    let mut cfg = TestConfig::default();
    cfg.ttl_secs = 61;
    cfg.busy_timeout_ms = 1234;
    cfg.apps = vec![("wxa".into(), "sa".into()), ("wxb".into(), "sb".into())];
    cfg.trusted_proxies = vec!["127.0.0.1".into()];
    cfg.metrics_bind = Some("127.0.0.1:9".into());
    cfg.redirect_uris = vec!["https://site.test/cb".into()];
    cfg.simulator = true;
    cfg.settings(|s| {
        s.server.secret_key_file = "elsewhere/secret.key".into();
        s.database.listener_grace_secs = 7;
        s.database.migrate_on_start = false;
        s.wechat.simulator_on_network = true;
        s.log.format = LogFormat::Json;
        s.log.level = "debug".into();
        s.housekeeping.batch = 9;
        s.housekeeping.login_history_days = 11;
        s.webhooks.timeout_ms = 1100;
        s.webhooks.retry_first_ms = 120;
        s.webhooks.retry_max_ms = 1300;
        s.webhooks.retry_for_secs = 1400;
        s.webhooks.poll_interval_ms = 150;
        s.webhooks.concurrency = 3;
        s.apps[0].line_color = Some(scanlogin::config::LineColor { r: 7, g: 8, b: 9 });
        let second = &mut s.apps[1];
        second.page = "pages/other/index".into();
        second.env_version = "trial".into();
        second.check_path = false;
        second.width = 500;
        second.auto_color = true;
        second.is_hyaline = true;
        s.clients.push(ClientSettings {
            webhook_url: Some(Url::parse("http://127.0.0.1:9/hook").expect("URL")),
            webhook_secret: Some(SecretString::from(format!("whsec_{}", "A".repeat(32)))),
            previous_webhook_secret: Some(SecretString::from(format!("whsec_{}", "B".repeat(32)))),
            previous_client_secret: Some(SecretString::from("hooked-old-secret-0123456789")),
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
            for secret in [
                &c.previous_client_secret,
                &c.webhook_secret,
                &c.previous_webhook_secret,
            ] {
                all.extend(secret.as_ref().map(|w| w.expose_secret().to_owned()));
            }
        }
        all
    };
    assert_eq!(secrets(&read), secrets(&built));
}

//! What a reload may change. `clients`, `apps`, `rate_limit`, `webhooks` and
//! `geoip` apply to new requests; every other key (the listeners, the
//! database, the secret key, WeChat's address and timeouts, the scene timers,
//! logging, housekeeping, and `webhooks.concurrency`) was used to build the
//! running hub, so it keeps its old value until a restart and the reload
//! names it.

use secrecy::{ExposeSecret, SecretString};

use super::Settings;
use super::sections::{
    DatabaseSettings, HousekeepingSettings, LogSettings, SceneSettings, ServerSettings,
    WechatSettings,
};

impl Settings {
    /// The keys that differ between `self` (in force) and `new` but only
    /// apply after a restart, as `section.key`. Secrets are compared, never
    /// shown.
    pub fn restart_keys(&self, new: &Settings) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut check = |key: &'static str, same: bool| {
            if !same {
                out.push(key);
            }
        };
        // Destructured whole, so that a new key cannot be forgotten here.
        let ServerSettings {
            bind,
            public_url,
            workers,
            secret_key,
            secret_key_file,
            trusted_proxies,
            shutdown_timeout_secs,
            metrics_bind,
        } = &self.server;
        let n = &new.server;
        check("server.bind", *bind == n.bind);
        check("server.public_url", *public_url == n.public_url);
        check("server.workers", *workers == n.workers);
        check(
            "server.secret_key",
            same_secret(secret_key.as_ref(), n.secret_key.as_ref()),
        );
        check(
            "server.secret_key_file",
            *secret_key_file == n.secret_key_file,
        );
        check(
            "server.trusted_proxies",
            *trusted_proxies == n.trusted_proxies,
        );
        check(
            "server.shutdown_timeout_secs",
            *shutdown_timeout_secs == n.shutdown_timeout_secs,
        );
        check("server.metrics_bind", *metrics_bind == n.metrics_bind);

        let DatabaseSettings {
            url,
            max_connections,
            migrate_on_start,
            listen_url,
            listener_grace_secs,
            busy_timeout_ms,
        } = &self.database;
        let n = &new.database;
        check("database.url", same_secret(Some(url), Some(&n.url)));
        check(
            "database.max_connections",
            *max_connections == n.max_connections,
        );
        check(
            "database.migrate_on_start",
            *migrate_on_start == n.migrate_on_start,
        );
        check(
            "database.listen_url",
            same_secret(listen_url.as_ref(), n.listen_url.as_ref()),
        );
        check(
            "database.listener_grace_secs",
            *listener_grace_secs == n.listener_grace_secs,
        );
        check(
            "database.busy_timeout_ms",
            *busy_timeout_ms == n.busy_timeout_ms,
        );

        let WechatSettings {
            mode,
            simulator_on_network,
            api_base,
            timeout_ms,
            connect_timeout_ms,
        } = &self.wechat;
        let n = &new.wechat;
        check("wechat.mode", *mode == n.mode);
        check(
            "wechat.simulator_on_network",
            *simulator_on_network == n.simulator_on_network,
        );
        check("wechat.api_base", *api_base == n.api_base);
        check("wechat.timeout_ms", *timeout_ms == n.timeout_ms);
        check(
            "wechat.connect_timeout_ms",
            *connect_timeout_ms == n.connect_timeout_ms,
        );

        let SceneSettings {
            ttl_secs,
            sweep_interval_ms,
            catch_up_ms,
        } = &self.scene;
        let n = &new.scene;
        check("scene.ttl_secs", *ttl_secs == n.ttl_secs);
        check(
            "scene.sweep_interval_ms",
            *sweep_interval_ms == n.sweep_interval_ms,
        );
        check("scene.catch_up_ms", *catch_up_ms == n.catch_up_ms);

        let LogSettings { format, level } = &self.log;
        check("log.format", *format == new.log.format);
        check("log.level", *level == new.log.level);

        let HousekeepingSettings {
            retention_secs,
            batch,
            interval_secs,
            login_history_days,
        } = &self.housekeeping;
        let n = &new.housekeeping;
        check(
            "housekeeping.retention_secs",
            *retention_secs == n.retention_secs,
        );
        check("housekeeping.batch", *batch == n.batch);
        check(
            "housekeeping.interval_secs",
            *interval_secs == n.interval_secs,
        );
        check(
            "housekeeping.login_history_days",
            *login_history_days == n.login_history_days,
        );

        check(
            "webhooks.concurrency",
            self.webhooks.concurrency == new.webhooks.concurrency,
        );
        out
    }

    /// The settings a reload to `new` stores: `new`'s `clients`, `apps`,
    /// `rate_limit`, `webhooks` and `geoip`, every other key as in `self`.
    pub fn reloaded(&self, new: Settings) -> Settings {
        let concurrency = self.webhooks.concurrency;
        let mut webhooks = new.webhooks;
        webhooks.concurrency = concurrency;
        let mut stored = Settings {
            server: self.server.clone(),
            database: self.database.clone(),
            wechat: self.wechat.clone(),
            scene: self.scene.clone(),
            log: self.log.clone(),
            housekeeping: self.housekeeping.clone(),
            rate_limit: new.rate_limit,
            apps: new.apps,
            clients: new.clients,
            webhooks,
            geoip: new.geoip,
        };
        // The demo client follows the hub's own (kept) address.
        stored.fit_demo_to_the_hub();
        stored
    }
}

/// Whether two optional secrets are equal (in constant time when both are set).
fn same_secret(a: Option<&SecretString>, b: Option<&SecretString>) -> bool {
    use subtle::ConstantTimeEq;
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => bool::from(
            a.expose_secret()
                .as_bytes()
                .ct_eq(b.expose_secret().as_bytes()),
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use crate::config::Settings;
    use crate::config::fixtures::{BASE, env};

    fn with(vars: &[(&str, &str)]) -> Settings {
        Settings::from_sources(BASE, env(vars)).expect("valid")
    }

    #[test]
    fn the_same_settings_need_no_restart() {
        assert_eq!(with(&[]).restart_keys(&with(&[])), Vec::<&str>::new());
    }

    #[test]
    fn each_changed_key_that_needs_a_restart_is_named() {
        let old = with(&[]);
        let new = with(&[
            ("SCANLOGIN__SERVER__BIND", "127.0.0.1:9999"),
            ("SCANLOGIN__DATABASE__URL", "sqlite://other.db"),
            ("SCANLOGIN__SCENE__TTL_SECS", "61"),
            ("SCANLOGIN__LOG__LEVEL", "debug"),
            ("SCANLOGIN__WEBHOOKS__CONCURRENCY", "3"),
        ]);
        assert_eq!(
            old.restart_keys(&new),
            [
                "server.bind",
                "database.url",
                "scene.ttl_secs",
                "log.level",
                "webhooks.concurrency"
            ]
        );
    }

    #[test]
    fn a_changed_secret_key_is_named_but_not_shown() {
        let old = with(&[(
            "SCANLOGIN__SERVER__SECRET_KEY",
            "an-old-secret-key-of-at-least-32-bytes",
        )]);
        let new = with(&[(
            "SCANLOGIN__SERVER__SECRET_KEY",
            "a-new-secret-key-of-at-least-32-bytes!",
        )]);
        let keys = old.restart_keys(&new);
        assert_eq!(keys, ["server.secret_key"]);
        assert!(!format!("{keys:?}").contains("secret-key-of"));
        assert_eq!(with(&[]).restart_keys(&old), ["server.secret_key"]);
    }

    #[test]
    fn reloadable_sections_are_not_restart_keys() {
        let old = with(&[]);
        let new = with(&[
            ("SCANLOGIN__RATE_LIMIT__SCENES_PER_MINUTE", "7"),
            ("SCANLOGIN__WEBHOOKS__TIMEOUT_MS", "1234"),
            ("SCANLOGIN__CLIENTS__0__NAME", "Renamed"),
            ("SCANLOGIN__APPS__0__SECRET", "another-app-secret"),
        ]);
        assert_eq!(old.restart_keys(&new), Vec::<&str>::new());
    }

    #[test]
    fn a_reload_takes_the_reloadable_sections_and_keeps_the_rest() {
        let old = with(&[]);
        let new = with(&[
            ("SCANLOGIN__SERVER__BIND", "127.0.0.1:9999"),
            ("SCANLOGIN__DATABASE__URL", "sqlite://other.db"),
            ("SCANLOGIN__SCENE__TTL_SECS", "61"),
            ("SCANLOGIN__WEBHOOKS__CONCURRENCY", "3"),
            ("SCANLOGIN__WEBHOOKS__TIMEOUT_MS", "1234"),
            ("SCANLOGIN__RATE_LIMIT__SCENES_PER_MINUTE", "7"),
            ("SCANLOGIN__CLIENTS__0__NAME", "Renamed"),
            ("SCANLOGIN__APPS__0__SECRET", "another-app-secret"),
        ]);
        let stored = old.reloaded(new);
        assert_eq!(stored.server.bind, old.server.bind);
        assert_eq!(
            stored.database.url.expose_secret(),
            old.database.url.expose_secret()
        );
        assert_eq!(stored.scene.ttl_secs, old.scene.ttl_secs);
        assert_eq!(stored.webhooks.concurrency, old.webhooks.concurrency);
        assert_eq!(stored.webhooks.timeout_ms, 1234);
        assert_eq!(stored.rate_limit.scenes_per_minute, 7);
        assert_eq!(stored.clients[0].name, "Renamed");
        assert_eq!(stored.apps[0].secret.expose_secret(), "another-app-secret");
        assert!(old.restart_keys(&stored).is_empty());
    }
}

//! Reading settings: the TOML file, then `SCANLOGIN__SECTION__KEY` variables
//! laid over it (numeric segments index lists), then the checks.

use std::path::Path;

use super::{ConfigError, DEMO_CLIENT, DEMO_OIDC_CALLBACK, ENV_PREFIX, Settings, WechatMode};

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

    /// The demo page is served by the hub itself, so the `demo` client always
    /// allows the hub's own origin (wherever `public_url` points) and, in
    /// simulator mode, the callback of the demo's OpenID Connect relying party.
    pub(super) fn fit_demo_to_the_hub(&mut self) {
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
    use secrecy::ExposeSecret;

    use crate::config::Settings;
    use crate::config::fixtures::{BASE, env};

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

//! A small valid configuration and an environment builder for the tests.

/// One app and the `demo` client.
pub const BASE: &str = r#"
        [[apps]]
        app_id = "wxtest"
        secret = "s"
        [[clients]]
        client_id = "demo"
        name = "Demo"
        client_secret = "0123456789abcdef"
        allowed_origins = ["http://127.0.0.1:8080"]
    "#;

/// One app and the client `shop` in simulator mode, with `extra` added to
/// the client's table.
pub fn shop_with(extra: &str) -> Result<super::Settings, super::ConfigError> {
    let text = format!(
        r#"
        [wechat]
        mode = "simulator"
        [[apps]]
        app_id = "wxtest"
        secret = "s"
        [[clients]]
        client_id = "shop"
        name = "Shop"
        client_secret = "0123456789abcdef"
        {extra}
        "#
    );
    super::Settings::from_sources(&text, Vec::<(String, String)>::new())
}

/// `(name, value)` pairs as `Settings::from_sources` takes them.
pub fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

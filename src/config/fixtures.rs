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

/// `(name, value)` pairs as `Settings::from_sources` takes them.
pub fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

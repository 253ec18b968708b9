//! `spawn_app()`: a hub of its own per test (port 0, fresh database, own
//! secret key, own fake WeChat), and typed helpers that keep tests short.
//! One file per job:
//!
//! - `config`: what a test may change (`TestConfig`) and the typed
//!   `Settings` of its hub;
//! - `config_file`: those settings as a file, for the binary's commands;
//! - `app`: starting and stopping the hub, its fake WeChat and its database;
//! - `calls`: the HTTP calls a browser, a phone or a site makes;
//! - `ws`: a browser's WebSocket;
//! - `required`: parts of the machine a test needs, and visible skips;
//! - `problems`: reading answers (RFC 9457 problems, 200 JSON, text);
//! - `fake_wechat`: an independent fake of WeChat's server API;
//! - `tcp_proxy`: a TCP proxy a test can cut, to play a database outage.

mod app;
mod calls;
mod config;
mod config_file;
pub mod fake_wechat;
mod problems;
pub mod required;
pub mod tcp_proxy;
mod ws;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

pub use app::{TestApp, spawn_app, spawn_app_with};
pub use calls::Scene;
pub use config::{TestDb, client, hub_settings};
pub use config_file::config_file;
pub use problems::{assert_problem, get_text, ok_json};
pub use ws::Ending;

/// The first (default) app of every test hub.
pub const APP_ID: &str = "wxtest0000000001";
pub const APP_SECRET: &str = "test-app-secret";
/// The client tests act as, and its one allowed origin.
pub const CLIENT_ID: &str = "site";
pub const CLIENT_SECRET: &str = "site-secret-0123456789";
pub const ORIGIN: &str = "http://site.test";
/// A second client, for "another client's ticket".
pub const OTHER_CLIENT_ID: &str = "other";
pub const OTHER_CLIENT_SECRET: &str = "other-secret-0123456789";
pub const OTHER_ORIGIN: &str = "http://other.test";
/// Where the hub says it lives (URLs in answers are built from it).
pub const PUBLIC_URL: &str = "http://hub.test";
/// Env var naming a PostgreSQL server for the `postgres` tests.
pub const POSTGRES_ENV: &str = "SCANLOGIN_TEST_POSTGRES_URL";

/// Every wait in a test is bounded by this unless it says otherwise.
pub const WAIT: Duration = Duration::from_secs(10);

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

static NEXT: AtomicU64 = AtomicU64::new(1);

/// A unique name for codes and openids within this test binary.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        NEXT.fetch_add(1, Ordering::Relaxed),
        random_hex(4)
    )
}

/// A random 16-byte session key, base64.
pub fn session_key() -> String {
    use rand::RngCore;
    let mut k = [0u8; 16];
    rand::rng().fill_bytes(&mut k);
    STANDARD.encode(k)
}

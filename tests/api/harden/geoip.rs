//! Where the browser is (SPEC v3): with `[geoip] database`, the scan answer's
//! `browser` has the place of the address that created the scene and
//! whether it is far from the phone's; without a database neither appears.
//! Browser and phone get distinct addresses through a trusted proxy's
//! `X-Forwarded-For`; the places come from tests/fixtures/geoip-test.mmdb
//! (made by tests/fixtures/make_geoip.py).

use std::path::Path;

use scanlogin::startup::ReloadOutcome;

use serde_json::{Value, json};

use crate::helpers::{CLIENT_ID, ORIGIN, TestApp, ok_json, spawn_app_with, unique};

const SHENZHEN: &str = "192.0.2.9";
const BEIJING: &str = "198.51.100.5";
const SAN_FRANCISCO: &str = "198.51.100.200";
const GUANGDONG_NO_CITY: &str = "203.0.113.4";
const UNKNOWN: &str = "10.9.8.7";

async fn hub(with_database: bool) -> TestApp {
    spawn_app_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1".into()];
        if with_database {
            c.settings(|s| {
                s.geoip.database = Some(
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/geoip-test.mmdb"),
                );
            });
        }
    })
    .await
}

/// A browser at `browser_ip` makes a scene; a phone at `phone_ip` scans
/// it: the answer's `browser`.
async fn scanned_from(app: &TestApp, browser_ip: &str, phone_ip: &str) -> Value {
    let res = app
        .http
        .post(app.url("/api/v1/scenes"))
        .header("Origin", ORIGIN)
        .header("X-Forwarded-For", browser_ip)
        .json(&json!({"client_id": CLIENT_ID}))
        .send()
        .await
        .expect("POST scenes");
    assert_eq!(res.status(), 201);
    let scene: Value = res.json().await.expect("scene");
    let res = app
        .http
        .post(app.url("/api/v1/mp/scan"))
        .header("X-Forwarded-For", phone_ip)
        .json(&json!({"scene_id": scene["scene_id"], "code": app.login_code(&unique("o"))}))
        .send()
        .await
        .expect("POST scan");
    let answer = ok_json(res).await;
    assert_eq!(answer["browser"]["ip"], browser_ip, "{answer}");
    answer["browser"].clone()
}

#[tokio::test]
async fn the_phone_sees_where_the_browser_is_and_whether_it_is_far() {
    let app = hub(true).await;
    // Another region of the same country: far.
    let b = scanned_from(&app, BEIJING, SHENZHEN).await;
    assert_eq!(
        b["location"],
        json!({"country": "CN", "region": "北京", "city": "北京"}),
        "{b}"
    );
    assert_eq!(b["far_from_phone"], true, "{b}");
    // Another country (a database with English names only there): far.
    let b = scanned_from(&app, SAN_FRANCISCO, SHENZHEN).await;
    assert_eq!(
        b["location"],
        json!({"country": "US", "region": "California", "city": "San Francisco"}),
        "{b}"
    );
    assert_eq!(b["far_from_phone"], true, "{b}");
    // The same region: not far; the city the database lacks is absent.
    let b = scanned_from(&app, GUANGDONG_NO_CITY, SHENZHEN).await;
    assert_eq!(
        b["location"],
        json!({"country": "CN", "region": "广东"}),
        "{b}"
    );
    assert_eq!(b["far_from_phone"], false, "{b}");
    // The database does not know the browser: neither field.
    let b = scanned_from(&app, UNKNOWN, SHENZHEN).await;
    assert!(b.get("location").is_none(), "{b}");
    assert!(b.get("far_from_phone").is_none(), "{b}");
    // It does not know the phone: the place, but nothing about distance.
    let b = scanned_from(&app, BEIJING, UNKNOWN).await;
    assert_eq!(b["location"]["region"], "北京", "{b}");
    assert!(b.get("far_from_phone").is_none(), "{b}");
}

#[tokio::test]
async fn without_a_database_neither_field_appears() {
    let app = hub(false).await;
    let b = scanned_from(&app, BEIJING, SHENZHEN).await;
    assert!(b.get("location").is_none(), "{b}");
    assert!(b.get("far_from_phone").is_none(), "{b}");
}

/// Reloads `app` with its own configuration and `[geoip] database = path`.
async fn reload_with_geoip(app: &TestApp, path: &Path) -> ReloadOutcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("hub.toml");
    let text = format!(
        "{}\n[geoip]\ndatabase = {:?}\n",
        app.config_toml,
        path.display().to_string()
    );
    std::fs::write(&file, text).expect("config file");
    let reloader = app.reloader.clone();
    tokio::task::spawn_blocking(move || reloader.reload(&file))
        .await
        .expect("reload")
}

#[tokio::test]
async fn a_reload_opens_the_database_and_refuses_a_file_that_is_none() {
    let app = hub(false).await;
    let b = scanned_from(&app, BEIJING, SHENZHEN).await;
    assert!(b.get("location").is_none(), "{b}");

    // A readable file that is no MaxMind database: refused, nothing changes.
    let not_a_database = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    match reload_with_geoip(&app, &not_a_database).await {
        ReloadOutcome::Refused(mistakes) => assert!(
            mistakes.len() == 1 && mistakes[0].starts_with("geoip.database"),
            "{mistakes:?}"
        ),
        applied => panic!("a file that is no database was applied: {applied:?}"),
    }
    let b = scanned_from(&app, BEIJING, SHENZHEN).await;
    assert!(b.get("location").is_none(), "{b}");

    let database = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/geoip-test.mmdb");
    let outcome = reload_with_geoip(&app, &database).await;
    assert!(
        matches!(outcome, ReloadOutcome::Applied { .. }),
        "{outcome:?}"
    );
    let b = scanned_from(&app, BEIJING, SHENZHEN).await;
    assert_eq!(
        b["location"],
        json!({"country": "CN", "region": "北京", "city": "北京"}),
        "{b}"
    );
    assert_eq!(b["far_from_phone"], true, "{b}");
}

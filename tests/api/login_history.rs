//! The login history (SPEC v3 "The person's account"): each confirmed login
//! is kept `housekeeping.login_history_days` (0 keeps none) with the
//! browser's address, user agent and, with `[geoip]`, its place; the
//! operator reads it with `scanlogin logins`, run here as the real binary
//! against the test hub's database.

use std::path::Path;
use std::time::{Duration, Instant};

use entity::login_history;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::{
    CLIENT_ID, ORIGIN, OTHER_CLIENT_ID, OTHER_ORIGIN, TestApp, WAIT, ok_json, spawn_app_with,
    unique,
};

const BEIJING: &str = "198.51.100.5";
const UNKNOWN: &str = "10.9.8.7";
const DAY_MS: i64 = 86_400_000;

/// A hub behind a trusted proxy (so each browser has its own address), with
/// the test GeoIP database; `days` of login history.
async fn hub(days: u64, housekeeping_secs: u64) -> TestApp {
    spawn_app_with(move |c| {
        c.trusted_proxies = vec!["127.0.0.1".into()];
        c.housekeeping_secs = housekeeping_secs;
        c.settings(move |s| {
            s.housekeeping.login_history_days = days;
            s.geoip.database =
                Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/geoip-test.mmdb"));
        });
    })
    .await
}

/// A browser at `ip` logs `openid` in to `client`; the user's id.
async fn log_in(app: &TestApp, client: &str, openid: &str, ip: &str, agent: &str) -> String {
    let origin = if client == CLIENT_ID {
        ORIGIN
    } else {
        OTHER_ORIGIN
    };
    let res = app
        .http
        .post(app.url("/api/v1/scenes"))
        .header("Origin", origin)
        .header("X-Forwarded-For", ip)
        .header("User-Agent", agent)
        .json(&json!({"client_id": client}))
        .send()
        .await
        .expect("POST scenes");
    assert_eq!(res.status(), 201);
    let scene: Value = res.json().await.expect("scene");
    let confirmed = ok_json(
        app.confirm(&json!({"scene_id": scene["scene_id"], "code": app.login_code(openid)}))
            .await,
    )
    .await;
    assert_eq!(confirmed["state"], "confirmed", "{confirmed}");
    confirmed["user_id"].as_str().expect("user_id").to_owned()
}

/// `scanlogin logins ARGS` against the hub's database: its exit status and
/// the JSON lines it printed.
async fn logins(app: &TestApp, args: &[&str]) -> (bool, Vec<Value>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, &app.config_toml).expect("write config");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scanlogin"))
        .arg("--config")
        .arg(&config)
        .arg("logins")
        .args(args)
        .env_clear()
        .envs(crate::process::kept_env())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT * 3, out)
        .await
        .expect("logins finishes")
        .expect("logins runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    (
        out.status.success(),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The lines of a successful `scanlogin logins ARGS`.
async fn listed(app: &TestApp, args: &[&str]) -> Vec<Value> {
    let (ok, lines, stderr) = logins(app, args).await;
    assert!(ok, "scanlogin logins {args:?} failed: {stderr}");
    lines
}

#[tokio::test]
async fn a_confirmed_login_is_kept_with_the_browser_and_its_place() {
    let app = hub(90, 60).await;
    let before = chrono::Utc::now();
    let user = log_in(&app, CLIENT_ID, &unique("o_h"), BEIJING, "HistoryTest/1.0").await;
    let lines = listed(&app, &[]).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["user_id"], user.as_str());
    assert_eq!(line["client_id"], CLIENT_ID);
    assert_eq!(line["ip"], BEIJING);
    assert_eq!(line["user_agent"], "HistoryTest/1.0");
    assert_eq!(
        line["location"],
        json!({"country": "CN", "region": "北京", "city": "北京"})
    );
    let at =
        chrono::DateTime::parse_from_rfc3339(line["at"].as_str().expect("at")).expect("RFC 3339");
    assert!(at >= before - chrono::Duration::seconds(1), "{at}");
    let mut keys: Vec<&str> = line
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["at", "client_id", "ip", "location", "user_agent", "user_id"]
    );

    // An address the database does not know: no `location`.
    log_in(&app, CLIENT_ID, &unique("o_h"), UNKNOWN, "Other/2").await;
    let lines = listed(&app, &[]).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[1]["ip"], UNKNOWN, "oldest first");
    assert!(lines[1].get("location").is_none(), "{}", lines[1]);
}

#[tokio::test]
async fn the_logins_command_filters_by_user_client_and_time() {
    let app = hub(90, 60).await;
    let (a, b) = (unique("o_a"), unique("o_b"));
    let user_a = log_in(&app, CLIENT_ID, &a, BEIJING, "A").await;
    let user_b = log_in(&app, CLIENT_ID, &b, BEIJING, "B").await;
    assert_eq!(
        log_in(&app, OTHER_CLIENT_ID, &a, UNKNOWN, "A2").await,
        user_a
    );
    // One of A's logins was two days ago.
    let db = app.db().await;
    login_history::Entity::update_many()
        .col_expr(
            login_history::Column::At,
            Expr::value(chrono::Utc::now().timestamp_millis() - 2 * DAY_MS),
        )
        .filter(login_history::Column::UserAgent.eq("A"))
        .exec(&db)
        .await
        .expect("age a login");

    let agents = |lines: Vec<Value>| -> Vec<String> {
        let mut v: Vec<String> = lines
            .iter()
            .map(|l| l["user_agent"].as_str().expect("user_agent").to_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(agents(listed(&app, &[]).await), ["A", "A2", "B"]);
    assert_eq!(
        agents(listed(&app, &["--user", &user_a]).await),
        ["A", "A2"]
    );
    assert_eq!(agents(listed(&app, &["--user", &user_b]).await), ["B"]);
    assert_eq!(
        agents(listed(&app, &["--client", OTHER_CLIENT_ID]).await),
        ["A2"]
    );
    assert_eq!(
        agents(listed(&app, &["--user", &user_a, "--client", CLIENT_ID]).await),
        ["A"]
    );
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    assert_eq!(
        agents(listed(&app, &["--since", &yesterday]).await),
        ["A2", "B"]
    );
    assert_eq!(
        agents(listed(&app, &["--since", &yesterday, "--user", &user_a]).await),
        ["A2"]
    );
    assert!(listed(&app, &["--user", "nobody"]).await.is_empty());
    assert!(
        listed(&app, &["--since", "2999-01-01T00:00:00Z"])
            .await
            .is_empty()
    );
    let (ok, lines, stderr) = logins(&app, &["--since", "yesterday"]).await;
    assert!(!ok && lines.is_empty(), "a bad time is refused");
    assert!(stderr.contains("RFC 3339"), "{stderr}");
}

#[tokio::test]
async fn logins_past_their_days_are_purged_by_the_housekeeping() {
    let app = hub(3, 1).await;
    log_in(&app, CLIENT_ID, &unique("o_old"), BEIJING, "Old").await;
    log_in(&app, CLIENT_ID, &unique("o_new"), BEIJING, "New").await;
    let db = app.db().await;
    let now = chrono::Utc::now().timestamp_millis();
    for (agent, age) in [("Old", 3 * DAY_MS + 60_000), ("New", 2 * DAY_MS)] {
        login_history::Entity::update_many()
            .col_expr(login_history::Column::At, Expr::value(now - age))
            .filter(login_history::Column::UserAgent.eq(agent))
            .exec(&db)
            .await
            .expect("age a login");
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let left = login_history::Entity::find()
            .all(&db)
            .await
            .expect("read login_history");
        if left.len() == 1 {
            assert_eq!(left[0].user_agent, "New", "the younger login stays");
            break;
        }
        assert!(Instant::now() < deadline, "not purged: {left:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lines = listed(&app, &[]).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["user_agent"], "New");
}

#[tokio::test]
async fn zero_days_records_no_login() {
    let app = hub(0, 60).await;
    let user = log_in(&app, CLIENT_ID, &unique("o_zero"), BEIJING, "Zero").await;
    // Written in the confirm's transaction when at all: nothing to wait for.
    let db = app.db().await;
    let rows = login_history::Entity::find()
        .count(&db)
        .await
        .expect("count login_history");
    assert_eq!(rows, 0);
    assert!(listed(&app, &["--user", &user]).await.is_empty());
}

//! What an operator meets: failed events and the CLI that requeues them,
//! retention, `check-config`, and logs free of the secret.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use entity::webhook_events;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use scanlogin::config::LogFormat;

use super::receiver::Receiver;
use super::{Hub, HubConfig, SITE, WAIT, events_of, new_secret, open_db, sqlite_url, wait_state};

#[tokio::test]
async fn events_fail_after_their_retry_window_and_the_cli_requeues_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(0, &[], 500);
    let db_url = sqlite_url(dir.path());
    let mut cfg = HubConfig::new(&db_url, &receiver.url(), &new_secret());
    cfg.retry_for_secs = 1;
    let hub = Hub::start(&cfg).await;
    let db = open_db(&db_url).await;

    hub.confirmed_login(SITE, "gina").await;
    let failed = wait_state(&db, SITE, "failed").await;
    assert_eq!(failed.last_status, Some(500));
    let tries = receiver.seen().len();
    assert!(tries >= 2, "retried before failing: {tries}");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(receiver.seen().len(), tries, "a failed event is not sent");

    let config = dir.path().join("config.toml");
    std::fs::write(&config, cfg.toml()).expect("write config");
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_scanlogin"))
            .env_clear()
            .envs(crate::process::kept_env())
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .expect("run scanlogin")
    };
    let unknown = cli(&["webhooks", "retry", "msg_unknown"]);
    assert!(!unknown.status.success());
    receiver.answer_from_now(204);
    let out = cli(&["webhooks", "retry", &failed.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 webhook event(s) re-queued"));
    let delivered = wait_state(&db, SITE, "delivered").await;
    assert_eq!(delivered.id, failed.id);
    let seen = receiver.seen();
    assert_eq!(seen.last().map(|d| d.status), Some(204));
    assert!(seen.iter().all(|d| d.id == failed.id));
    let none_left = cli(&["webhooks", "retry", "--failed"]);
    assert!(String::from_utf8_lossy(&none_left.stdout).contains("0 webhook event(s) re-queued"));
    hub.stop().await;
}

#[tokio::test]
async fn delivered_events_are_purged_after_the_retention_and_failed_ones_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(0, &[204], 500);
    let db_url = sqlite_url(dir.path());
    let mut cfg = HubConfig::new(&db_url, &receiver.url(), &new_secret());
    cfg.retry_for_secs = 1;
    let hub = Hub::start(&cfg).await;
    let db = open_db(&db_url).await;

    hub.confirmed_login(SITE, "hana").await;
    let delivered = wait_state(&db, SITE, "delivered").await;
    hub.cancelled_login(SITE, "hana").await;
    let deadline = Instant::now() + WAIT;
    let failed = loop {
        let rows = events_of(&db, SITE).await;
        if let Some(row) = rows.iter().find(|r| r.state == "failed") {
            break row.clone();
        }
        assert!(Instant::now() < deadline, "no failed event: {rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let two_hours_ago = chrono::Utc::now().timestamp_millis() - 2 * 3600 * 1000;
    webhook_events::Entity::update_many()
        .col_expr(
            webhook_events::Column::DeliveredAt,
            sea_orm::sea_query::Expr::value(two_hours_ago),
        )
        .col_expr(
            webhook_events::Column::CreatedAt,
            sea_orm::sea_query::Expr::value(two_hours_ago),
        )
        .filter(webhook_events::Column::Id.eq(delivered.id.as_str()))
        .exec(&db)
        .await
        .expect("age the delivered event");
    webhook_events::Entity::update_many()
        .col_expr(
            webhook_events::Column::CreatedAt,
            sea_orm::sea_query::Expr::value(two_hours_ago),
        )
        .filter(webhook_events::Column::Id.eq(failed.id.as_str()))
        .exec(&db)
        .await
        .expect("age the failed event");
    let deadline = Instant::now() + WAIT;
    loop {
        let rows = events_of(&db, SITE).await;
        if rows.iter().all(|r| r.id != delivered.id) {
            assert_eq!(rows.len(), 1, "{rows:?}");
            assert_eq!(rows[0].id, failed.id, "the failed event is kept");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old delivered event is still there"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    hub.stop().await;
}

#[tokio::test]
async fn check_config_refuses_a_bad_secret_and_warns_about_plain_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db_url = sqlite_url(dir.path());
    let run = |url: &str, secret: &str| {
        let config = dir.path().join("check.toml");
        std::fs::write(&config, HubConfig::new(&db_url, url, secret).toml()).expect("write");
        std::process::Command::new(env!("CARGO_BIN_EXE_scanlogin"))
            .env_clear()
            .envs(crate::process::kept_env())
            .arg("--config")
            .arg(&config)
            .arg("check-config")
            .output()
            .expect("run scanlogin check-config")
    };
    let short = format!("whsec_{}", STANDARD.encode([9u8; 16]));
    for bad in [short.as_str(), "not-a-whsec-secret-at-all", "whsec_%%%"] {
        let out = run("https://hooks.example/in", bad);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("clients[0].webhook_secret"), "{err}");
        assert!(!err.contains(bad), "the secret is not echoed: {err}");
    }
    let good = new_secret();
    let out = run("http://hooks.example/in", &good);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("warning: clients[0].webhook_url: not https"),
        "{said}"
    );
    assert!(!said.contains(&good[6..]), "{said}");
    let out = run("http://127.0.0.1:9/in", &good);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("webhook_url"), "loopback is fine: {said}");
}

#[tokio::test]
async fn the_webhook_secret_is_never_in_the_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(0, &[500], 204);
    let secret = new_secret();
    let cfg = HubConfig::new(&sqlite_url(dir.path()), &receiver.url(), &secret);
    let hub = Hub::start_binary(&cfg, dir.path(), |settings| {
        settings.log.level = "debug".into();
        settings.log.format = LogFormat::Json;
    })
    .await;
    hub.confirmed_login(SITE, "lena").await;
    let seen = receiver.wait_for(2).await;
    assert_eq!(seen[1].status, 204);
    let log = hub.stop().await;
    assert!(log.contains("webhook delivered"), "{log}");
    assert!(
        !log.contains(&secret[6..]),
        "the log holds the webhook secret"
    );
    assert!(!log.contains("whsec_"), "the log holds a webhook secret");
}

//! Limits: per-source throttling, bounded phone calls, sockets and polls,
//! IPv6 /64s, pages, and a locked database.

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::helpers::{
    CLIENT_ID, CLIENT_SECRET, ORIGIN, TestDb, assert_problem, spawn_app, spawn_app_with, unique,
};

use super::{retry_after, row_counts};

#[tokio::test]
async fn wrong_client_secrets_are_throttled_per_source_not_for_the_sites_backend() {
    let app = spawn_app_with(|cfg| {
        cfg.trusted_proxies = vec!["127.0.0.1".into()];
        cfg.rate_limit.auth_failures_per_minute = 5;
    })
    .await;
    let redeem = |from: &'static str, secret: &'static str| {
        app.http
            .post(app.url("/api/v1/tickets/redeem"))
            .header("X-Forwarded-For", from)
            .basic_auth(CLIENT_ID, Some(secret))
            .json(&json!({"ticket": "not-a-ticket"}))
            .send()
    };
    let mut unauthorized = 0;
    let mut throttled = 0;
    for _ in 0..100 {
        let res = redeem("198.51.100.66", "guess").await.expect("redeem");
        match res.status().as_u16() {
            401 => unauthorized += 1,
            429 => {
                assert!(retry_after(&res) >= 1);
                throttled += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(unauthorized, 5, "only the allowance was checked");
    assert_eq!(throttled, 95);
    // While throttled, even the right secret from that source is refused
    // (so a guess cannot be confirmed by a different answer)...
    let res = redeem("198.51.100.66", CLIENT_SECRET)
        .await
        .expect("redeem");
    assert_problem(res, 429, "rate_limited").await;
    // ...but the site's own backend, elsewhere, is not locked out.
    let res = redeem("203.0.113.10", CLIENT_SECRET).await.expect("redeem");
    assert_problem(res, 400, "invalid_ticket").await;
}

#[tokio::test]
async fn basic_auth_scheme_is_case_insensitive() {
    use base64::Engine;
    let app = spawn_app().await;
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    for scheme in ["basic", "BASIC", "Basic"] {
        let res = app
            .http
            .post(app.url("/api/v1/tickets/redeem"))
            .header("Authorization", format!("{scheme} {credentials}"))
            .json(&json!({"ticket": "nope"}))
            .send()
            .await
            .expect("redeem");
        // Authenticated: the ticket, not the credentials, is refused.
        assert_problem(res, 400, "invalid_ticket").await;
    }
}

#[tokio::test]
async fn junk_codes_cannot_burn_the_wechat_quota() {
    // 5 a minute refills one call every 12 s, which a slow loop could see;
    // 1 a minute refills after 60 s, far past this loop.
    let app = spawn_app_with(|cfg| cfg.rate_limit.mp_per_minute = 1).await;
    let scene = app.create_scene().await;
    let mut throttled = 0;
    for i in 0..20 {
        let res = app.scan(&scene.id, &format!("junk-{i}")).await;
        if res.status() == 429 {
            throttled += 1;
            assert_problem(res, 429, "rate_limited").await;
        }
    }
    assert_eq!(throttled, 19);
    assert!(
        app.fake
            .calls(crate::helpers::fake_wechat::Api::CodeToSession)
            <= 1,
        "at most the allowance reached WeChat"
    );
}

#[tokio::test]
async fn one_scene_takes_a_bounded_number_of_phone_calls_from_any_address() {
    let app = spawn_app_with(|cfg| {
        cfg.trusted_proxies = vec!["127.0.0.1".into()];
        cfg.rate_limit.mp_per_scene_per_minute = 3;
    })
    .await;
    let scene = app.create_scene().await;
    let other = app.create_scene().await;
    let scan_from = |scene_id: String, ip: String| {
        app.http
            .post(app.url("/api/v1/mp/scan"))
            .header("X-Forwarded-For", ip)
            .json(&json!({"scene_id": scene_id, "code": unique("junk")}))
            .send()
    };
    for i in 0..3 {
        let res = scan_from(scene.id.clone(), format!("198.51.100.{i}"))
            .await
            .expect("scan");
        assert_ne!(res.status(), 429);
    }
    let res = scan_from(scene.id.clone(), "198.51.100.99".into())
        .await
        .expect("scan");
    assert_problem(res, 429, "rate_limited").await;
    // Another scene is not affected.
    let res = scan_from(other.id.clone(), "198.51.100.99".into())
        .await
        .expect("scan");
    assert_ne!(res.status(), 429);
}

#[tokio::test]
async fn socket_upgrades_and_long_polls_are_limited_per_address() {
    let app = spawn_app_with(|cfg| {
        cfg.rate_limit.sockets_per_minute = 2;
        cfg.rate_limit.polls_per_minute = 2;
        cfg.rate_limit.qrcodes_per_minute = 2;
    })
    .await;
    let scene = app.create_scene().await;
    for _ in 0..2 {
        app.ws_connect_raw(&scene.id, Some(ORIGIN))
            .await
            .expect("upgrade within the limit");
    }
    // A refused upgrade is a 429 problem, not a 101.
    let (status, body) = app
        .raw_http(&format!(
            "GET /api/v1/scenes/{}/ws HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            scene.id
        ))
        .await;
    assert_eq!(status, 429, "{body}");
    let problem: Value = serde_json::from_str(&body).expect("problem JSON");
    assert_eq!(problem["code"], "rate_limited");
    for _ in 0..2 {
        assert_eq!(app.events(&scene, None, 0).await.status(), 200);
    }
    assert_problem(app.events(&scene, None, 0).await, 429, "rate_limited").await;
    for _ in 0..2 {
        assert_ne!(app.qrcode(&scene.id).await.status(), 429);
    }
    assert_problem(app.qrcode(&scene.id).await, 429, "rate_limited").await;
}

#[tokio::test]
async fn an_ipv6_64_is_one_address_for_the_limits() {
    let app = spawn_app_with(|cfg| {
        cfg.trusted_proxies = vec!["127.0.0.1".into()];
        cfg.rate_limit.scenes_per_minute = 3;
        cfg.rate_limit.burst = 3;
    })
    .await;
    let create = |ip: String| {
        app.http
            .post(app.url("/api/v1/scenes"))
            .header("Origin", ORIGIN)
            .header("X-Forwarded-For", ip)
            .json(&json!({"client_id": CLIENT_ID}))
            .send()
    };
    let mut statuses = Vec::new();
    for i in 1..=12 {
        let res = create(format!("2001:db8:5:6::{i:x}"))
            .await
            .expect("create");
        statuses.push(res.status().as_u16());
    }
    assert_eq!(&statuses[..3], &[201, 201, 201]);
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    // The next /64 is someone else.
    let res = create("2001:db8:5:7::1".into()).await.expect("create");
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn pages_and_health_have_a_ceiling_too() {
    let app = spawn_app_with(|cfg| cfg.rate_limit.other_per_minute = 3).await;
    for _ in 0..3 {
        assert_eq!(
            app.http
                .get(app.url("/healthz"))
                .send()
                .await
                .expect("healthz")
                .status(),
            200
        );
    }
    let res = app
        .http
        .get(app.url("/scanlogin.js"))
        .send()
        .await
        .expect("widget");
    assert!(retry_after(&res) >= 1);
    assert_problem(res, 429, "rate_limited").await;
}

#[tokio::test]
async fn a_locked_database_is_503_with_retry_after_and_readyz_says_so() {
    let app = spawn_app_with(|cfg| {
        cfg.db = TestDb::Sqlite;
        cfg.busy_timeout_ms = 200;
    })
    .await;
    let scene = app.create_scene().await;
    assert_eq!(
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("readyz")
            .status(),
        200
    );
    // Another process takes SQLite's write lock and keeps it.
    let locker = app.db().await;
    locker
        .execute_unprepared("BEGIN IMMEDIATE")
        .await
        .expect("take the write lock");
    let before = row_counts(&locker).await;
    let res = app
        .post_scene(&json!({"client_id": CLIENT_ID}), Some(ORIGIN))
        .await;
    assert!(retry_after(&res) >= 1);
    assert_problem(res, 503, "unavailable").await;
    let res = app.scan(&scene.id, &app.login_code(&unique("o"))).await;
    assert_problem(res, 503, "unavailable").await;
    let res = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_problem(res, 503, "unavailable").await;
    // Reads still work while writes wait.
    assert_eq!(app.state_of(&scene).await, "waiting");
    assert_eq!(row_counts(&locker).await, before, "nothing was stored");
    locker
        .execute_unprepared("ROLLBACK")
        .await
        .expect("release");
    assert_eq!(
        app.post_scene(&json!({"client_id": CLIENT_ID}), Some(ORIGIN))
            .await
            .status(),
        201
    );
    assert_eq!(
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("readyz")
            .status(),
        200
    );
}

#[tokio::test]
async fn a_reload_applies_new_rate_limits_to_the_next_request() {
    let app = spawn_app().await;
    let scene = || {
        app.http
            .post(app.url("/api/v1/scenes"))
            .header("Origin", ORIGIN)
            .json(&json!({"client_id": CLIENT_ID}))
            .send()
    };
    for _ in 0..5 {
        assert_eq!(scene().await.expect("scene").status(), 201);
    }
    // The same file with two scenes a minute (burst 2) per address.
    let mut file: toml::Table = toml::from_str(&app.config_toml).expect("the hub's file");
    let limits = file
        .get_mut("rate_limit")
        .and_then(|v| v.as_table_mut())
        .expect("[rate_limit]");
    limits.insert("scenes_per_minute".into(), 2.into());
    limits.insert("burst".into(), 2.into());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hub.toml");
    std::fs::write(&path, toml::to_string(&file).expect("TOML")).expect("config file");
    let reloader = app.reloader.clone();
    let outcome = tokio::task::spawn_blocking(move || reloader.reload(&path))
        .await
        .expect("reload");
    assert!(
        matches!(outcome, scanlogin::startup::ReloadOutcome::Applied { .. }),
        "{outcome:?}"
    );
    // The new limit counts afresh: two more, then refused.
    for _ in 0..2 {
        assert_eq!(scene().await.expect("scene").status(), 201);
    }
    assert_problem(scene().await.expect("scene"), 429, "rate_limited").await;
}

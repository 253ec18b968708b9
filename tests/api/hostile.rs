//! The hub tried as an attacker would (issue "safe to put on the internet"):
//! each test reproduces one attack and checks the defence. Malformed input
//! at every endpoint gets a problem with the right code, never a 5xx, and
//! changes nothing; limits answer 429 with `Retry-After`; a locked database
//! is 503; metrics labels stay bounded; secrets are sealed at rest.

use reqwest::Method;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};

use crate::helpers::{
    CLIENT_ID, CLIENT_SECRET, ORIGIN, Scene, TestDb, assert_problem, ok_json, session_key,
    spawn_app, spawn_app_with, unique,
};

/// Rows of the tables a request could change, as one comparable list.
async fn row_counts(db: &DatabaseConnection) -> Vec<i64> {
    let mut out = Vec::new();
    for table in [
        "scenes",
        "users",
        "identities",
        "tickets",
        "code_exchanges",
        "scene_codes",
    ] {
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .expect("count")
            .expect("a row");
        out.push(row.try_get::<i64>("", "n").expect("n"));
    }
    out
}

/// Retry-After of a 429, in seconds.
fn retry_after(res: &reqwest::Response) -> u64 {
    res.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds")
}

#[tokio::test]
async fn malformed_input_at_every_endpoint_is_a_problem_and_changes_nothing() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let db = app.db().await;
    let before = row_counts(&db).await;
    let id = &scene.id;
    let long = "x".repeat(20_000);
    // (method, path, body, content type, expected status, expected code)
    let cases: Vec<(Method, String, String, &str, u16, &str)> = vec![
        (
            Method::POST,
            "/api/v1/scenes".into(),
            "{".into(),
            "application/json",
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/scenes".into(),
            "[]".into(),
            "application/json",
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/scenes".into(),
            r#"{"client_id":1}"#.into(),
            "application/json",
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/scenes".into(),
            r#"{"client_id":"nope"}"#.into(),
            "application/json",
            400,
            "unknown_client",
        ),
        (
            Method::POST,
            "/api/v1/scenes".into(),
            format!(r#"{{"client_id":"{long}"}}"#),
            "application/json",
            413,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/scenes".into(),
            r#"{"client_id":"site"}"#.into(),
            "text/plain",
            415,
            "invalid_request",
        ),
        (
            Method::GET,
            "/api/v1/scenes/not-a-scene/qrcode".into(),
            String::new(),
            "",
            404,
            "scene_not_found",
        ),
        (
            Method::GET,
            format!("/api/v1/scenes/{}/qrcode", "0".repeat(32)),
            String::new(),
            "",
            404,
            "scene_not_found",
        ),
        (
            Method::GET,
            format!("/api/v1/scenes/{id}/events"),
            String::new(),
            "",
            401,
            "invalid_token",
        ),
        (
            Method::GET,
            format!("/api/v1/scenes/{id}/events?after=bogus"),
            String::new(),
            "",
            400,
            "invalid_request",
        ),
        (
            Method::GET,
            format!("/api/v1/scenes/{id}/events?wait=-1"),
            String::new(),
            "",
            400,
            "invalid_request",
        ),
        (
            Method::GET,
            format!("/api/v1/scenes/{id}/ws"),
            String::new(),
            "",
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/mp/scan".into(),
            "{}".into(),
            "application/json",
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/mp/scan".into(),
            format!(r#"{{"scene_id":"{id}","code":""}}"#),
            "application/json",
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/mp/scan".into(),
            format!(r#"{{"scene_id":"{id}","code":"{}"}}"#, "c".repeat(300)),
            "application/json",
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/mp/scan".into(),
            format!(r#"{{"scene_id":"{id}","code":"junk","app_id":"wxnope"}}"#),
            "application/json",
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/mp/scan".into(),
            r#"{"scene_id":"../../etc","code":"junk"}"#.into(),
            "application/json",
            404,
            "scene_not_found",
        ),
        (
            Method::POST,
            "/api/v1/mp/confirm".into(),
            format!(r#"{{"scene_id":"{id}"}}"#),
            "application/json",
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/mp/confirm".into(),
            format!(r#"{{"scene_id":"{id}","mp_token":"a","code":"b"}}"#),
            "application/json",
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/mp/confirm".into(),
            format!(r#"{{"scene_id":"{id}","mp_token":"forged"}}"#),
            "application/json",
            401,
            "invalid_token",
        ),
        (
            Method::POST,
            "/api/v1/mp/cancel".into(),
            format!(r#"{{"scene_id":"{id}","mp_token":"forged"}}"#),
            "application/json",
            401,
            "invalid_token",
        ),
        (
            Method::POST,
            "/api/v1/mp/cancel".into(),
            "\u{0}".into(),
            "application/json",
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/api/v1/tickets/redeem".into(),
            r#"{"ticket":"x"}"#.into(),
            "application/json",
            401,
            "unauthorized",
        ),
        (
            Method::DELETE,
            "/api/v1/scenes".into(),
            String::new(),
            "",
            405,
            "invalid_request",
        ),
        (
            Method::GET,
            "/nope".into(),
            String::new(),
            "",
            404,
            "invalid_request",
        ),
        (
            Method::POST,
            "/demo/redeem".into(),
            r#"{"ticket":"x"}"#.into(),
            "application/json",
            404,
            "invalid_request",
        ),
        (
            Method::POST,
            "/sim/api/login".into(),
            r#"{"user":"mallory"}"#.into(),
            "application/json",
            404,
            "invalid_request",
        ),
    ];
    for (method, path, body, content_type, status, code) in cases {
        let mut req = app
            .http
            .request(method.clone(), app.url(&path))
            .header("Origin", ORIGIN);
        if !content_type.is_empty() {
            req = req.header("Content-Type", content_type).body(body.clone());
        }
        let res = req.send().await.expect("request");
        assert!(
            res.status().as_u16() < 500,
            "{method} {path}: {}",
            res.status()
        );
        let problem = assert_problem(res, status, code).await;
        assert!(
            !problem.to_string().contains(&scene.browser_token),
            "{method} {path}"
        );
    }
    // The junk codes above reached WeChat at most... not at all: every one
    // was refused before an exchange.
    assert_eq!(app.fake.calls(crate::fake_wechat::Api::CodeToSession), 0);
    assert_eq!(row_counts(&db).await, before, "nothing was stored");
    assert_eq!(app.state_of(&scene).await, "waiting");
}

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
    let app = spawn_app_with(|cfg| cfg.rate_limit.mp_per_minute = 5).await;
    let scene = app.create_scene().await;
    let mut throttled = 0;
    for i in 0..100 {
        let res = app.scan(&scene.id, &format!("junk-{i}")).await;
        if res.status() == 429 {
            throttled += 1;
            assert_problem(res, 429, "rate_limited").await;
        }
    }
    assert_eq!(throttled, 95);
    assert!(
        app.fake.calls(crate::fake_wechat::Api::CodeToSession) <= 5,
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
async fn made_up_methods_do_not_grow_the_metrics() {
    let app = spawn_app().await;
    for i in 0..200 {
        let method = Method::from_bytes(format!("X{i}Y").as_bytes()).expect("method");
        let res = app
            .http
            .request(method, app.url("/healthz"))
            .send()
            .await
            .expect("request");
        assert!(res.status().is_client_error());
    }
    let text = crate::helpers::get_text(&app.http, app.url("/metrics")).await;
    assert!(!text.contains("X7Y"), "a made-up method became a label");
    assert!(text.contains("method=\"other\""), "{text}");
}

#[tokio::test]
async fn metrics_can_live_on_their_own_address() {
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let app =
        spawn_app_with(|cfg| cfg.metrics_bind = Some(format!("127.0.0.1:{metrics_port}"))).await;
    let public = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_problem(public, 404, "invalid_request").await;
    let private = app
        .http
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(private.status(), 200);
    assert!(
        private
            .text()
            .await
            .expect("text")
            .contains("scanlogin_open_sockets")
    );
}

#[tokio::test]
async fn an_origin_that_is_not_ascii_is_refused_not_ignored() {
    let app = spawn_app().await;
    let db = app.db().await;
    let before = row_counts(&db).await;
    let res = app
        .http
        .post(app.url("/api/v1/scenes"))
        .header(
            "Origin",
            reqwest::header::HeaderValue::from_bytes(b"http://site.test\xff").expect("header"),
        )
        .json(&json!({"client_id": CLIENT_ID}))
        .send()
        .await
        .expect("create");
    assert_problem(res, 403, "origin_not_allowed").await;
    assert_eq!(row_counts(&db).await, before);
}

#[tokio::test]
async fn a_scene_made_without_origin_is_shown_to_the_phone_as_a_server() {
    let app = spawn_app().await;
    // What a QRLJacking script does: no browser, no Origin.
    let res = app.post_scene(&json!({"client_id": CLIENT_ID}), None).await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("JSON");
    let scene_id = body["scene_id"].as_str().expect("id");
    let scan = ok_json(app.scan(scene_id, &app.login_code(&unique("o"))).await).await;
    assert_eq!(scan["client"]["origin"], Value::Null, "{scan}");
    assert_eq!(scan["browser"]["kind"], "server", "{scan}");
    // A page's scene says where it came from.
    let page = app.create_scene().await;
    let scan = ok_json(app.scan(&page.id, &app.login_code(&unique("o"))).await).await;
    assert_eq!(scan["client"]["origin"], ORIGIN);
    assert_eq!(scan["browser"]["kind"], "browser");
}

#[tokio::test]
async fn session_keys_and_access_tokens_are_sealed_at_rest() {
    let app = spawn_app().await;
    let scene: Scene = app.create_scene().await;
    let code = unique("code");
    let key = session_key();
    app.fake.add_code(&code, &unique("o"), None, &key);
    app.scanned(&scene.id, &code).await;
    // The code image made the hub fetch and store an access token.
    assert_eq!(app.qrcode(&scene.id).await.status(), 200);
    let db = app.db().await;
    let dump = |sql: &'static str| {
        let db = &db;
        async move {
            db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
                .await
                .expect("query")
                .into_iter()
                .map(|r| r.try_get::<Option<String>>("", "v").expect("v"))
                .collect::<Vec<_>>()
        }
    };
    let scene_keys = dump("SELECT session_key AS v FROM scenes").await;
    let exchange_keys = dump("SELECT session_key AS v FROM code_exchanges").await;
    let tokens = dump("SELECT access_token AS v FROM wechat_tokens").await;
    assert_eq!(tokens.len(), 1);
    let handed_out = app.fake.token_requests().len();
    assert!(handed_out >= 1);
    for sealed in scene_keys
        .iter()
        .chain(&exchange_keys)
        .chain(&tokens)
        .flatten()
    {
        assert!(sealed.starts_with("v1."), "{sealed}");
        assert!(!sealed.contains(&key));
    }
    assert!(
        scene_keys.iter().flatten().count() == 1 && exchange_keys.len() == 1,
        "{scene_keys:?} {exchange_keys:?}"
    );
    // Sealed keys still work: a signed profile is checked with the key.
    let mp_token = app.scanned(&scene.id, &code).await;
    let raw = r#"{"nickName":"Sealed"}"#;
    let signature = {
        use sha1::Digest;
        hex::encode(sha1::Sha1::digest(format!("{raw}{key}").as_bytes()))
    };
    let res = app
        .confirm(&json!({"scene_id": scene.id, "mp_token": mp_token,
            "raw_data": raw, "signature": signature}))
        .await;
    assert_eq!(ok_json(res).await["state"], "confirmed");
    // A final scene keeps no session key at all.
    assert!(
        dump("SELECT session_key AS v FROM scenes")
            .await
            .iter()
            .all(Option::is_none)
    );
}

/// Any JSON value (or none) a client could send.
fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,40}".prop_map(Value::from),
        "[0-9a-f]{32}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("client_id".to_owned()),
                    Just("scene_id".to_owned()),
                    Just("code".to_owned()),
                    Just("mp_token".to_owned()),
                    Just("ticket".to_owned()),
                    Just("profile".to_owned()),
                    Just("encrypted_data".to_owned()),
                    Just("iv".to_owned()),
                    "[a-z_]{1,12}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[tokio::test]
async fn arbitrary_json_bodies_never_fail_the_hub() {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;
    let app = spawn_app().await;
    let db = app.db().await;
    let before = row_counts(&db).await;
    let mut runner = TestRunner::deterministic();
    let strategy = any_json();
    let endpoints = [
        "/api/v1/mp/scan",
        "/api/v1/mp/confirm",
        "/api/v1/mp/cancel",
        "/api/v1/tickets/redeem",
    ];
    for case in 0..64 {
        let body = strategy.new_tree(&mut runner).expect("a value").current();
        for path in endpoints {
            let res = app
                .http
                .post(app.url(path))
                .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
                .json(&body)
                .send()
                .await
                .expect("request");
            let status = res.status().as_u16();
            assert!(
                (400..500).contains(&status),
                "case {case} {path} {body}: {status}"
            );
            let kind = res
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            assert!(
                kind.starts_with("application/problem+json"),
                "{path} {body}"
            );
        }
        // Scene creation: a made-up client is refused, a real one is not
        // what any_json makes.
        let res = app.post_scene(&body, Some(ORIGIN)).await;
        assert!(
            res.status().is_client_error(),
            "case {case} scenes {body}: {}",
            res.status()
        );
    }
    assert_eq!(row_counts(&db).await, before, "nothing was stored");
}

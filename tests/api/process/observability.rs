//! Metrics after a login, and logs free of secrets and of error lines for
//! malformed requests.

use std::time::Duration;

use serde_json::json;

use super::{Hub, full_login, post};

fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|lb| l.contains(lb)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn metrics_move_after_a_login() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Hub::start(dir.path(), &[], None);
    hub.wait_ready().await;
    let scrape = || async {
        reqwest::get(hub.url("/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    };
    let before = scrape().await;
    full_login(&hub, "dave").await;
    let after = scrape().await;
    let moved =
        |name: &str, labels: &[&str]| metric(&after, name, labels) - metric(&before, name, labels);
    assert_eq!(moved("scanlogin_scenes_created_total", &[]), 1.0, "{after}");
    assert_eq!(
        moved("scanlogin_scenes_ended_total", &["outcome=\"confirmed\""]),
        1.0
    );
    assert_eq!(moved("scanlogin_confirm_to_push_seconds_count", &[]), 1.0);
    assert!(
        moved(
            "scanlogin_wechat_calls_total",
            &["api=\"jscode2session\"", "outcome=\"ok\""]
        ) >= 1.0
    );
    assert!(
        moved(
            "scanlogin_wechat_calls_total",
            &["api=\"getwxacodeunlimit\"", "outcome=\"ok\""]
        ) >= 1.0
    );
    assert!(
        moved(
            "scanlogin_http_requests_total",
            &["route=\"/api/v1/mp/confirm\"", "status=\"200\""]
        ) >= 1.0,
        "{after}"
    );
    assert!(after.contains("scanlogin_open_sockets"), "{after}");
    assert!(!after.contains(&dir.path().display().to_string()));
}

#[tokio::test]
async fn debug_logs_carry_no_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_path = dir.path().join("out.log");
    let extra = [
        ("SCANLOGIN__LOG__LEVEL", "debug".to_owned()),
        ("SCANLOGIN__LOG__FORMAT", "json".to_owned()),
    ];
    let mut hub = Hub::start(dir.path(), &extra, Some(&log_path));
    hub.wait_ready().await;
    let mut secrets = full_login(&hub, "erin").await;
    // A failed redemption and a bad token must not echo what was sent either.
    let res = reqwest::Client::new()
        .post(hub.url("/api/v1/tickets/redeem"))
        .basic_auth("demo", Some("wrong-secret-value-123"))
        .json(&json!({"ticket": "forged-ticket-value-456"}))
        .send()
        .await
        .expect("redeem");
    assert_eq!(res.status(), 401);
    secrets.extend([
        "wrong-secret-value-123".to_owned(),
        "forged-ticket-value-456".to_owned(),
    ]);
    secrets.extend([
        "demo-app-secret".to_owned(),
        "demo-client-secret".to_owned(),
    ]);
    let db = sea_orm::Database::connect(format!(
        "sqlite://{}?mode=ro",
        dir.path().join("hub.db").display()
    ))
    .await
    .expect("open db");
    use sea_orm::ConnectionTrait;
    for sql in [
        "SELECT session_key AS v FROM code_exchanges",
        "SELECT access_token AS v FROM wechat_tokens",
    ] {
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                sql,
            ))
            .await
            .expect("query");
        for row in rows {
            secrets.push(row.try_get::<String>("", "v").expect("value"));
        }
    }
    hub.sigterm();
    assert_eq!(hub.wait_exit(), 0);
    let out = std::fs::read_to_string(&log_path).expect("log");
    assert!(
        out.lines().count() > 10,
        "debug logging produced output:\n{out}"
    );
    assert!(
        out.contains("\"route\":\"/api/v1/mp/confirm\""),
        "request spans name the route template"
    );
    for secret in &secrets {
        assert!(
            secret.len() >= 12,
            "secret too short to search for: {secret}"
        );
        assert!(
            !out.contains(secret.as_str()),
            "log leaks a secret starting {:?}",
            &secret[..6]
        );
    }
}

#[tokio::test]
async fn malformed_requests_write_no_error_lines() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("dir");
    let log_path = dir.path().join("hub.log");
    let mut hub = Hub::start(dir.path(), &[], Some(&log_path));
    hub.wait_ready().await;
    let garbage: [&[u8]; 4] = [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"POST /api/v1/scenes HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: \x01\x02\r\n\r\n",
    ];
    for request in garbage {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", hub.port))
            .await
            .expect("connect");
        conn.write_all(request).await.expect("write");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut answer)).await;
        assert!(answer.starts_with(b"HTTP/1.1 400"), "{request:?}");
    }
    // Bad JSON and wrong credentials are the clients' mistakes too.
    let (status, _) = post(hub.url("/api/v1/scenes"), json!([1])).await;
    assert_eq!(status, 400);
    hub.sigterm();
    assert_eq!(hub.wait_exit(), 0);
    let text = std::fs::read_to_string(&log_path).expect("log");
    assert!(text.contains("scanlogin listening"), "{text}");
    assert!(!text.contains("ERROR"), "{text}");
}

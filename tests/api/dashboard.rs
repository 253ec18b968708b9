//! The Grafana dashboard (`deploy/grafana/scanlogin.json`) and the alert
//! rules (`deploy/prometheus/scanlogin-rules.yml`) query only metrics the
//! hub exports: every metric name in their PromQL is looked up in the
//! `/metrics` of a real hub driven through what makes each metric appear
//! (a login with a webhook, a failed redemption, a quota error, and, on
//! PostgreSQL, a dropped bus listener).
//!
//! On PostgreSQL (`SCANLOGIN_TEST_POSTGRES_URL`, as in CI) every name is
//! checked; on SQLite the bus metrics (PostgreSQL only) are named as
//! unchecked.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sea_orm::ConnectionTrait;
use secrecy::SecretString;
use serde_json::Value;

use crate::helpers::fake_wechat::{Api, Fault};
use crate::helpers::{
    POSTGRES_ENV, TestApp, TestDb, WAIT, assert_problem, ok_json, spawn_app_with,
};

const DASHBOARD: &str = include_str!("../../deploy/grafana/scanlogin.json");
const RULES: &str = include_str!("../../deploy/prometheus/scanlogin-rules.yml");

/// Names Prometheus makes itself (only the alert rules may use them).
const PROMETHEUS_OWN: [&str; 1] = ["up"];

/// Words of PromQL that are not metric names: binary operators and
/// modifiers, and the aggregations (which may come before `by (...)`
/// instead of their parenthesis).
const KEYWORDS: [&str; 24] = [
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "by",
    "without",
];

/// The metric names a PromQL expression reads: identifiers outside label
/// matchers, ranges and strings that are not functions, keywords, or the
/// label lists of `by (...)`-like clauses.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    // The label list after `by`, `without`, `on`, `ignoring`, `group_*`.
    let mut labels_next = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while i < chars.len() && chars[i] != close {
                    if chars[i] == '"' {
                        i += 1;
                        while i < chars.len() && chars[i] != '"' {
                            if chars[i] == '\\' {
                                i += 1;
                            }
                            i += 1;
                        }
                    }
                    i += 1;
                }
                i += 1;
            }
            '(' if labels_next => {
                labels_next = false;
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                i += 1;
            }
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' || c == '$' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | ':' | '$'))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace());
                let lower = word.to_ascii_lowercase();
                if matches!(
                    lower.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                ) {
                    labels_next = true;
                } else if next != Some(&'(')
                    && !word.starts_with('$')
                    && !KEYWORDS.contains(&lower.as_str())
                {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

#[test]
fn metric_names_are_read_from_promql() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le, api) (rate(a_seconds_bucket{x="{y}", z=~"$job"}[$__rate_interval]))) > 1e3 * on (instance) group_left (v) b_total offset 5m or vector(0) and c"#,
    );
    let expected: BTreeSet<String> = ["a_seconds_bucket", "b_total", "c"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(names, expected);
}

/// Every PromQL expression of the dashboard: its panels' targets and the
/// metric its variables read (`label_values(metric{...}, label)`).
fn dashboard_exprs() -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr", Value::String(e)) => out.push(e.clone()),
                        ("definition", Value::String(d)) => {
                            let inner = d
                                .strip_prefix("label_values(")
                                .and_then(|rest| rest.rsplit_once(','))
                                .map(|(metric, _)| metric.to_owned());
                            out.push(inner.unwrap_or_else(|| panic!("unexpected variable {d}")));
                        }
                        _ => walk(value, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let mut out = Vec::new();
    walk(&dashboard, &mut out);
    out
}

/// Every alert's expression (one `expr:` line each, as the file says).
fn rule_exprs() -> Vec<String> {
    let exprs: Vec<String> = RULES
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .map(|e| e.trim().to_owned())
        .collect();
    let alerts = RULES
        .lines()
        .filter(|l| l.trim().starts_with("- alert:"))
        .count();
    assert_eq!(exprs.len(), alerts, "one single-line expr per alert");
    assert!(exprs.iter().all(|e| !e.is_empty() && !e.starts_with('|')));
    exprs
}

/// The metric names in a `/metrics` text.
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(String::from)
        .collect()
}

/// A webhook receiver that takes every delivery (204).
async fn webhook_receiver() -> (String, actix_web::dev::ServerHandle) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
    let port = listener.local_addr().expect("address").port();
    let server = HttpServer::new(|| {
        App::new().default_service(web::to(|| async { HttpResponse::NoContent().finish() }))
    })
    .listen(listener)
    .expect("receiver listens")
    .workers(1)
    .disable_signals()
    .shutdown_timeout(0)
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    (format!("http://127.0.0.1:{port}/hooks"), handle)
}

async fn scrape(app: &TestApp) -> String {
    let res = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(res.status(), 200);
    res.text().await.expect("metrics text")
}

/// Scrapes until every name in `wanted` is exported (bounded).
async fn scrape_until(app: &TestApp, wanted: &[&str]) -> String {
    let started = Instant::now();
    loop {
        let text = scrape(app).await;
        let names = exported(&text);
        // The per-client login counter added for the dashboard moved both ways.
        for outcome in ["ok", "failed"] {
            let series = format!(r#"client_id="site",via="ticket",outcome="{outcome}""#);
            assert!(
                text.lines()
                    .any(|l| l.starts_with("scanlogin_logins_total{") && l.contains(&series)),
                "no {series} in\n{text}"
            );
        }
        if wanted.iter().all(|w| names.contains(*w)) {
            return text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never exported {wanted:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn dashboard_and_alerts_query_only_exported_metrics() {
    let on_postgres = std::env::var_os(POSTGRES_ENV).is_some();
    let (hook_url, receiver) = webhook_receiver().await;
    let mut key = [7u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
    let hook_secret = format!("whsec_{}", STANDARD.encode(key));
    let app = spawn_app_with(move |cfg| {
        if on_postgres {
            cfg.db = TestDb::Postgres;
        }
        cfg.settings(move |s| {
            s.clients[0].webhook_url = Some(hook_url.parse().expect("receiver URL"));
            s.clients[0].webhook_secret = Some(SecretString::from(hook_secret));
            s.webhooks.poll_interval_ms = 100;
        });
    })
    .await;

    // One person logs in: code image, scan, confirm, push, redeem.
    let scene = app.create_scene().await;
    let res = app.qrcode(&scene.id).await;
    assert_eq!(res.status(), 200);
    let mut ws = app.ws_connect(&scene).await;
    assert_eq!(ws.next_event().await["state"], "waiting");
    let mp_token = app.scanned(&scene.id, &app.login_code("o_dashboard")).await;
    ok_json(app.confirm_token(&scene.id, &mp_token).await).await;
    let mut confirmed = ws.next_event().await;
    for _ in 0..3 {
        if confirmed["state"] == "confirmed" {
            break;
        }
        confirmed = ws.next_event().await;
    }
    assert_eq!(confirmed["state"], "confirmed", "{confirmed}");
    let ticket = confirmed["ticket"].as_str().expect("ticket");
    ok_json(app.redeem(ticket).await).await;
    // The same ticket again: a failed redemption.
    assert_problem(app.redeem(ticket).await, 400, "invalid_ticket").await;
    // WeChat's quota runs out for the next code image.
    let other = app.create_scene().await;
    app.fake.fail_next(
        Api::CodeImage,
        Fault::Errcode(45009, "reach max api daily quota limit"),
    );
    let refused = app.qrcode(&other.id).await;
    assert!(refused.status().is_server_error(), "{}", refused.status());
    let mut wanted = vec![
        "scanlogin_webhook_deliveries_total",
        "scanlogin_webhook_oldest_pending_seconds",
        "scanlogin_wechat_quota_errors_total",
    ];
    if on_postgres {
        // The bus listener is cut off once, and reconnects.
        let db = app.db().await;
        let started = Instant::now();
        loop {
            let cut = db
                .execute_unprepared(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() \
                     AND application_name LIKE 'scanlogin listener%'",
                )
                .await
                .expect("terminate the listener");
            if cut.rows_affected() == 1 {
                break;
            }
            assert!(started.elapsed() < WAIT, "the listener never listened");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = db.close().await;
        wanted.push("scanlogin_bus_drops_total");
    }
    let text = scrape_until(&app, &wanted).await;
    receiver.stop(false).await;
    let names = exported(&text);
    // The per-client login counter added for the dashboard moved both ways.
    for outcome in ["ok", "failed"] {
        let series = format!(r#"client_id="site",via="ticket",outcome="{outcome}""#);
        assert!(
            text.lines()
                .any(|l| l.starts_with("scanlogin_logins_total{") && l.contains(&series)),
            "no {series} in\n{text}"
        );
    }

    let mut queried = BTreeSet::new();
    for expr in dashboard_exprs() {
        queried.extend(metric_names(&expr));
    }
    assert!(queried.len() >= 15, "{queried:?}");
    let mut rule_names = BTreeSet::new();
    for expr in rule_exprs() {
        rule_names.extend(metric_names(&expr));
    }
    assert!(rule_names.len() >= 8, "{rule_names:?}");
    let mut unchecked = BTreeSet::new();
    let mut missing = Vec::new();
    let every = queried
        .iter()
        .map(|n| (n, "dashboard"))
        .chain(rule_names.iter().map(|n| (n, "alert rules")));
    for (name, file) in every {
        if file == "alert rules" && PROMETHEUS_OWN.contains(&name.as_str()) {
            continue;
        }
        if !on_postgres && name.starts_with("scanlogin_bus_") {
            unchecked.insert(name.clone());
            continue;
        }
        if !name.starts_with("scanlogin_") || !names.contains(name) {
            missing.push(format!("{name} ({file})"));
        }
    }
    assert!(
        missing.is_empty(),
        "queried but not exported: {missing:?}\n/metrics:\n{text}"
    );
    if !unchecked.is_empty() {
        // The rest ran; these names are a skip, reported as every skip is
        // (a failure where PostgreSQL is required).
        crate::helpers::required::missing(
            crate::helpers::required::Part::Postgres,
            &format!(
                "PostgreSQL-only metrics left unchecked, {POSTGRES_ENV} is not set: {unchecked:?}"
            ),
        );
    }
}

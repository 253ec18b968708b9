//! Where a request comes from (issue 21, holes 5 and 7): an IPv6 /48 is
//! limited as a whole besides each /64; `X-Forwarded-For` is believed only
//! as far as the trusted hops go, and an entry that is not an address ends
//! the walk; an IPv4-mapped IPv6 proxy matches its IPv4 form.

use serde_json::{Value, json};

use crate::helpers::{CLIENT_ID, ORIGIN, TestApp, ok_json, spawn_app_with, unique};

/// `POST /api/v1/scenes` through the trusted proxy, which forwarded `xff`.
async fn create_from(app: &TestApp, xff: &str) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/scenes"))
        .header("Origin", ORIGIN)
        .header("X-Forwarded-For", xff)
        .json(&json!({"client_id": CLIENT_ID}))
        .send()
        .await
        .expect("create")
}

/// The address the phone is shown for a scene made with `xff`.
async fn shown_address(app: &TestApp, xff: &str) -> String {
    let res = create_from(app, xff).await;
    assert_eq!(res.status(), 201);
    let scene: Value = res.json().await.expect("JSON");
    let scene_id = scene["scene_id"].as_str().expect("scene_id");
    let answer: Value = ok_json(app.scan(scene_id, &app.login_code(&unique("o"))).await).await;
    answer["browser"]["ip"]
        .as_str()
        .expect("browser.ip")
        .to_owned()
}

#[tokio::test]
async fn an_ipv6_48_is_limited_as_a_whole_besides_each_64() {
    let app = spawn_app_with(|cfg| {
        cfg.trusted_proxies = vec!["127.0.0.1".into()];
        cfg.rate_limit.scenes_per_minute = 2;
        cfg.rate_limit.burst = 2;
    })
    .await;
    // Two scenes from each of 12 /64s of one /48: a /48 holds 8 /64s' worth.
    let mut created = 0;
    let mut refused_first = Vec::new();
    for net in 0..12u16 {
        for host in 1..=2u16 {
            let res = create_from(&app, &format!("2001:db8:5:{net:x}::{host:x}")).await;
            match res.status().as_u16() {
                201 => created += 1,
                429 if host == 1 => refused_first.push(net),
                429 => {}
                other => panic!("unexpected {other}"),
            }
        }
    }
    assert_eq!(created, 16, "the /48 allows 8 times a /64's 2");
    assert_eq!(
        refused_first,
        [8, 9, 10, 11],
        "fresh /64s of a spent /48 are refused"
    );
    // Another /48 is someone else.
    assert_eq!(create_from(&app, "2001:db8:6::1").await.status(), 201);
}

#[tokio::test]
async fn a_forwarded_entry_that_is_not_an_address_ends_the_walk() {
    let app = spawn_app_with(|cfg| {
        cfg.trusted_proxies = vec!["127.0.0.1".into()];
        cfg.rate_limit.scenes_per_minute = 2;
        cfg.rate_limit.burst = 2;
    })
    .await;
    // The attacker writes a fresh address left of an entry the proxy
    // could not have written: it must not be believed.
    for junk in ["unknown", "1.2.3.4:5678"] {
        assert_eq!(
            shown_address(&app, &format!("198.51.100.77, {junk}")).await,
            "127.0.0.1",
            "{junk}: the request counts as coming from the last trusted hop"
        );
    }
    let mut statuses = Vec::new();
    for i in 0..6 {
        let res = create_from(&app, &format!("198.51.100.{i}, unknown")).await;
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [429; 6], "one bucket: the proxy's, already spent");
    // A well-formed chain still gives the client's own address.
    assert_eq!(
        create_from(&app, "203.0.113.8, 127.0.0.1").await.status(),
        201
    );
}

#[tokio::test]
async fn an_ipv4_mapped_trusted_proxy_matches_its_ipv4_form() {
    let app = spawn_app_with(|cfg| cfg.trusted_proxies = vec!["::ffff:127.0.0.1".into()]).await;
    assert_eq!(shown_address(&app, "203.0.113.7").await, "203.0.113.7");
}

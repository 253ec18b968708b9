//! Deliveries: signed, retried, resent after a restart, only for clients
//! with a webhook, never holding up a login.

use std::time::{Duration, Instant};

use entity::webhook_events;
use sea_orm::EntityTrait;
use serde_json::Value;

use super::receiver::{Delivery, Down, Receiver, assert_verified};
use super::{
    Hub, HubConfig, OTHER, SITE, WAIT, events_of, new_secret, open_db, sqlite_url, wait_state,
    wait_states,
};

#[tokio::test]
async fn confirmed_and_cancelled_logins_arrive_signed_and_a_stock_verifier_accepts_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(0, &[], 204);
    let secret = new_secret();
    let db_url = sqlite_url(dir.path());
    let hub = Hub::start(&HubConfig::new(&db_url, &receiver.url(), &secret)).await;
    let db = open_db(&db_url).await;

    let (scene, token) = hub.confirmed_login(SITE, "alice").await;
    let confirmed_at = Instant::now();
    // Written in the confirm's own transaction: there as soon as it answers.
    let rows = events_of(&db, SITE).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].event_type, "login.confirmed");
    let first = receiver.wait_for(1).await.remove(0);
    let latency = first.at.duration_since(confirmed_at);
    println!("first attempt {latency:?} after the confirm answered");
    assert!(
        latency < Duration::from_secs(5),
        "the first attempt took {latency:?}"
    );
    assert_eq!(first.status, 204);
    assert_eq!(first.id, rows[0].id);
    assert!(first.id.starts_with("msg_"), "{}", first.id);
    assert!(first.content_type.starts_with("application/json"));
    let ts: i64 = first.timestamp.parse().expect("Unix seconds");
    assert!((ts - chrono::Utc::now().timestamp()).abs() < 60, "{ts}");
    assert!(first.signature.starts_with("v1,"), "{}", first.signature);

    let body: Value = serde_json::from_str(&first.body).expect("JSON body");
    assert_eq!(body["type"], "login.confirmed");
    chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().expect("timestamp"))
        .expect("RFC 3339 timestamp");
    let redeemed = hub.redeem(&scene, &token).await;
    assert_eq!(body["data"]["scene_id"], scene.as_str());
    assert_eq!(body["data"]["client_id"], SITE);
    assert_eq!(
        body["data"]["user"], redeemed["user"],
        "user as redeem answers it"
    );
    assert_eq!(body["data"]["confirmed_at"], redeemed["confirmed_at"]);
    assert_eq!(body["data"]["user"]["nickname"], "alice");

    let cancelled = hub.cancelled_login(SITE, "bob").await;
    let second = receiver.wait_for(2).await.remove(1);
    let body: Value = serde_json::from_str(&second.body).expect("JSON body");
    assert_eq!(body["type"], "login.cancelled");
    assert_eq!(body["data"]["scene_id"], cancelled.as_str());
    assert_eq!(body["data"]["client_id"], SITE);
    assert!(body["data"].get("user").is_none(), "{body}");
    assert!(body["data"].get("confirmed_at").is_none(), "{body}");
    assert_ne!(second.id, first.id);

    assert_verified(&secret, &[first, second]).await;
    wait_states(&db, SITE, "delivered", 2).await;
    hub.stop().await;
}

#[tokio::test]
async fn failed_answers_are_retried_with_the_same_id_and_never_after_a_2xx() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(0, &[500, 500, 503], 204);
    let secret = new_secret();
    let db_url = sqlite_url(dir.path());
    let hub = Hub::start(&HubConfig::new(&db_url, &receiver.url(), &secret)).await;
    let db = open_db(&db_url).await;

    hub.confirmed_login(SITE, "carol").await;
    let seen = receiver.wait_for(4).await;
    let row = wait_state(&db, SITE, "delivered").await;
    assert_eq!(row.attempts, 4);
    assert_eq!(row.last_status, Some(204));
    let statuses: Vec<u16> = seen.iter().map(|d| d.status).collect();
    assert_eq!(statuses, [500, 500, 503, 204]);
    assert!(
        seen.iter().all(|d| d.id == row.id),
        "one webhook-id: {seen:?}"
    );
    assert!(seen.iter().all(|d| d.body == seen[0].body), "one body");
    let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].at - w[0].at).collect();
    println!(
        "observed retry gaps (first 200 ms, doubling, max 800 ms, jitter down to half): {gaps:?}"
    );
    // Each delay is at least half its nominal value: 100, 200, 400 ms.
    for (gap, least) in gaps.iter().zip([100, 200, 400]) {
        assert!(*gap >= Duration::from_millis(least), "{gaps:?}");
    }
    // Nothing more after the 2xx, for longer than the longest delay.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(receiver.seen().len(), 4, "{:?}", receiver.seen());
    assert_verified(&secret, &seen).await;

    // The metrics these attempts move: `metrics.rs`, on a hub of its own.
    hub.stop().await;
}

#[tokio::test]
async fn a_hub_restarted_while_the_receiver_is_down_delivers_once_both_are_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let down = Down::start();
    let url = down.url();
    let secret = new_secret();
    let db_url = sqlite_url(dir.path());
    let mut cfg = HubConfig::new(&db_url, &url, &secret);
    // The retry after the failed attempt is scheduled 15 to 30 s later.
    cfg.retry_first_ms = 30_000;
    cfg.retry_max_ms = 60_000;
    let hub = Hub::start(&cfg).await;
    let db = open_db(&db_url).await;

    hub.confirmed_login(SITE, "dave").await;
    // The receiver is down: wait until an attempt failed on this hub.
    let deadline = Instant::now() + WAIT;
    let failed = loop {
        let rows = events_of(&db, SITE).await;
        if let [row] = rows.as_slice()
            && row.last_error.is_some()
        {
            break row.clone();
        }
        assert!(Instant::now() < deadline, "no failed attempt: {rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(failed.state, "pending");
    hub.stop().await;

    let receiver = Receiver::start_after(down, &[], 204);
    let hub = Hub::start(&cfg).await;
    let seen = receiver.wait_for(1).await;
    let row = wait_state(&db, SITE, "delivered").await;
    assert_eq!(row.id, failed.id);
    // A restarted hub sends what is pending without waiting for its schedule.
    let delivered_at = row.delivered_at.expect("delivered_at");
    assert!(
        delivered_at < failed.next_attempt_at,
        "delivered at {delivered_at}, scheduled for {}",
        failed.next_attempt_at
    );
    // Still exactly one delivery a while later.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let seen_after = receiver.seen();
    assert_eq!(seen_after.len(), 1, "{seen_after:?}");
    assert_eq!(seen[0].id, failed.id);
    assert_eq!(seen[0].status, 204);
    println!(
        "delivered after the restart on attempt {} (earlier attempts found the receiver down)",
        row.attempts
    );
    assert_verified(&secret, &seen).await;
    hub.stop().await;
}

#[tokio::test]
async fn no_event_for_a_client_without_a_webhook() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(0, &[], 204);
    let db_url = sqlite_url(dir.path());
    let hub = Hub::start(&HubConfig::new(&db_url, &receiver.url(), &new_secret())).await;
    let db = open_db(&db_url).await;

    hub.confirmed_login(OTHER, "erin").await;
    hub.cancelled_login(OTHER, "frank").await;
    assert!(events_of(&db, OTHER).await.is_empty());
    // The worker runs: `site`'s login arrives, and only it.
    hub.confirmed_login(SITE, "erin").await;
    let seen = receiver.wait_for(1).await;
    wait_state(&db, SITE, "delivered").await;
    let all = webhook_events::Entity::find()
        .all(&db)
        .await
        .expect("read webhook_events");
    assert_eq!(all.len(), 1, "{all:?}");
    let body: Value = serde_json::from_str(&seen[0].body).expect("JSON body");
    assert_eq!(body["data"]["client_id"], SITE);
    assert_eq!(receiver.seen().len(), 1);
    hub.stop().await;
}

#[tokio::test]
async fn an_answer_slower_than_the_timeout_is_retried_and_logins_do_not_wait_for_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(0, &[], 204);
    receiver.delay_answers(&[Duration::from_secs(5)]);
    let secret = new_secret();
    let db_url = sqlite_url(dir.path());
    let mut cfg = HubConfig::new(&db_url, &receiver.url(), &secret);
    cfg.timeout_ms = 500;
    let hub = Hub::start(&cfg).await;
    let db = open_db(&db_url).await;

    hub.confirmed_login(SITE, "ivan").await;
    let hanging = receiver.wait_for(1).await.remove(0);
    assert_eq!(hanging.delay, Duration::from_secs(5));
    // While that attempt hangs, logins go on.
    hub.confirmed_login(SITE, "judy").await;
    hub.cancelled_login(SITE, "ken").await;
    let rows = wait_states(&db, SITE, "delivered", 3).await;
    let seen = receiver.seen();
    let first: Vec<&Delivery> = seen.iter().filter(|d| d.id == hanging.id).collect();
    assert_eq!(
        first.len(),
        2,
        "the timed-out attempt was retried: {seen:?}"
    );
    assert_eq!(first[1].delay, Duration::ZERO);
    let gap = first[1].at - first[0].at;
    assert!(
        gap >= Duration::from_millis(500),
        "retried only after the timeout: {gap:?}"
    );
    let row = rows.iter().find(|r| r.id == hanging.id).expect("row");
    assert_eq!(row.attempts, 2);
    assert_eq!(seen.len(), 4, "one attempt each for the others: {seen:?}");
    // The timeout's metric: `metrics.rs`, on a hub of its own.
    hub.stop().await;
}

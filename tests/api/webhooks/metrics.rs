//! The webhook metrics, value by value and label by label. In-process hubs
//! share the `metrics` crate's one process-wide registry, so every other
//! test's deliveries would show in their `/metrics`; this hub is the
//! `scanlogin` binary, whose registry counts only its own work.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use entity::webhook_events;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use super::receiver::Receiver;
use super::{
    Hub, HubConfig, SITE, WAIT, events_of, new_secret, open_db, sqlite_url, wait_state, wait_states,
};

const ATTEMPTS: &str = "scanlogin_webhook_attempts_total";
const DELIVERIES: &str = "scanlogin_webhook_deliveries_total";
const OLDEST: &str = "scanlogin_webhook_oldest_pending_seconds";
const FAILED: &str = "scanlogin_webhook_failed_events";
/// How far back the test moves the pending event's creation.
const AGED_MS: i64 = 2 * 3600 * 1000;

/// Every `scanlogin_webhook_*` series in a scrape: `name{labels}` → value.
fn webhook_series(scrape: &str) -> BTreeMap<String, f64> {
    scrape
        .lines()
        .filter(|l| l.starts_with("scanlogin_webhook_"))
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').expect("`series value`");
            let value = value.parse().unwrap_or_else(|_| panic!("a number: {l}"));
            (name.to_owned(), value)
        })
        .collect()
}

/// The counters of `series` (the gauges left out).
fn counters(series: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    series
        .iter()
        .filter(|(name, _)| name.starts_with(ATTEMPTS) || name.starts_with(DELIVERIES))
        .map(|(name, value)| (name.clone(), *value))
        .collect()
}

/// What `counters` must read: each attempt result and each outcome with its
/// count; a label not listed must be absent.
fn expected(attempts: &[(&str, f64)], deliveries: &[(&str, f64)]) -> BTreeMap<String, f64> {
    let by = |name: &str, label: &str, list: &[(&str, f64)]| {
        list.iter()
            .map(|(value, n)| (format!("{name}{{{label}=\"{value}\"}}"), *n))
            .collect::<Vec<_>>()
    };
    by(ATTEMPTS, "result", attempts)
        .into_iter()
        .chain(by(DELIVERIES, "outcome", deliveries))
        .collect()
}

/// The hub's webhook counters once its finished events (delivered plus
/// failed) count at least `finished`. An event is counted as finished after
/// its last attempt was, so the attempts are all in by then.
async fn counters_after(hub: &Hub, finished: f64) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + WAIT;
    loop {
        let scrape = hub.scrape().await;
        let series = counters(&webhook_series(&scrape));
        let done: f64 = series
            .iter()
            .filter(|(name, _)| name.starts_with(DELIVERIES))
            .map(|(_, n)| n)
            .sum();
        if done >= finished {
            return series;
        }
        assert!(
            Instant::now() < deadline,
            "not {finished} finished events within {WAIT:?}:\n{scrape}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (the worker refreshes its gauges every 5 s) until the backlog
/// gauges (oldest pending age, failed events) satisfy `ok`; returns them.
async fn gauges_when(hub: &Hub, what: &str, ok: impl Fn(f64, f64) -> bool) -> (f64, f64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let scrape = hub.scrape().await;
        let series = webhook_series(&scrape);
        if let (Some(&oldest), Some(&failed)) = (series.get(OLDEST), series.get(FAILED))
            && ok(oldest, failed)
        {
            return (oldest, failed);
        }
        assert!(
            Instant::now() < deadline,
            "the backlog gauges never showed {what} within {WAIT:?}:\n{scrape}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sets one column of one event, as if time had passed.
async fn set_column(db: &DatabaseConnection, id: &str, column: webhook_events::Column, ms: i64) {
    let res = webhook_events::Entity::update_many()
        .col_expr(column, Expr::value(ms))
        .filter(webhook_events::Column::Id.eq(id))
        .exec(db)
        .await
        .expect("age the event");
    assert_eq!(res.rows_affected, 1);
}

/// One delivered event, one that fails once and is delivered on its retry,
/// one whose first attempt times out and is delivered on its retry, and one
/// that fails until its retry window ends: after each, every webhook counter
/// by label holds exactly what that sequence caused, and the backlog gauges
/// show the pending event's age and then the one failed event.
#[tokio::test]
async fn webhook_counters_and_backlog_gauges_hold_exactly_what_the_hub_did() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A: 204. B: 500, then 204 on its retry. Then 204 until told otherwise.
    let receiver = Receiver::start(0, &[204, 500], 204);
    let db_url = sqlite_url(dir.path());
    let cfg = HubConfig::new(&db_url, &receiver.url(), &new_secret());
    let hub = Hub::start_binary(&cfg, dir.path(), |_| {}).await;
    let db = open_db(&db_url).await;

    // A fresh hub: nothing counted, no backlog.
    let (oldest, failed) = gauges_when(&hub, "0 and 0", |o, f| o == 0.0 && f == 0.0).await;
    assert_eq!((oldest, failed), (0.0, 0.0));
    assert_eq!(
        counters(&webhook_series(&hub.scrape().await)),
        expected(&[], &[])
    );

    // A: delivered on its first attempt.
    hub.confirmed_login(SITE, "amy").await;
    let a = wait_state(&db, SITE, "delivered").await;
    assert_eq!(a.attempts, 1);
    assert_eq!(
        counters_after(&hub, 1.0).await,
        expected(&[("2xx", 1.0)], &[("delivered", 1.0)])
    );

    // B: a 500, then a 2xx on the retry.
    hub.confirmed_login(SITE, "ben").await;
    let rows = wait_states(&db, SITE, "delivered", 2).await;
    let b = rows.iter().find(|r| r.id != a.id).expect("B's row");
    assert_eq!((b.attempts, b.last_status), (2, Some(204)));
    assert_eq!(
        counters_after(&hub, 2.0).await,
        expected(&[("2xx", 2.0), ("non_2xx", 1.0)], &[("delivered", 2.0)])
    );

    // D: the first answer comes after the hub's timeout (2 s); the retry gets
    // a 204 at once.
    receiver.delay_answers(&[Duration::from_secs(5)]);
    hub.cancelled_login(SITE, "dan").await;
    let rows = wait_states(&db, SITE, "delivered", 3).await;
    let d = rows
        .iter()
        .find(|r| r.id != a.id && r.id != b.id)
        .expect("D's row");
    assert_eq!((d.attempts, d.last_status), (2, Some(204)));
    assert_eq!(
        counters_after(&hub, 3.0).await,
        expected(
            &[("2xx", 3.0), ("non_2xx", 1.0), ("timeout", 1.0)],
            &[("delivered", 3.0)]
        )
    );

    // C: every answer a 500; pending (retried every 0.1 to 0.8 s) until its
    // retry window (an hour) is moved into the past below.
    receiver.answer_from_now(500);
    hub.confirmed_login(SITE, "cai").await;
    let deadline = Instant::now() + WAIT;
    let c = loop {
        let rows = events_of(&db, SITE).await;
        if let Some(c) = rows
            .iter()
            .find(|r| r.state == "pending" && r.last_status == Some(500))
        {
            break c.clone();
        }
        assert!(
            Instant::now() < deadline,
            "C never failed an attempt: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Its age, as the oldest pending event, is what the gauge reports: move
    // its creation two hours back (its retry window runs from `queued_at`,
    // left alone, so it stays pending).
    let aged_at = chrono::Utc::now().timestamp_millis();
    set_column(
        &db,
        &c.id,
        webhook_events::Column::CreatedAt,
        aged_at - AGED_MS,
    )
    .await;
    let least = AGED_MS as f64 / 1000.0;
    let (oldest, failed) = gauges_when(&hub, "the aged event", |o, _| o >= least).await;
    let most = (chrono::Utc::now().timestamp_millis() - aged_at + AGED_MS) as f64 / 1000.0;
    assert!(
        oldest <= most,
        "oldest pending {oldest} s, at most {most} s"
    );
    assert_eq!(failed, 0.0);
    assert_eq!(
        events_of(&db, SITE)
            .await
            .iter()
            .find(|r| r.id == c.id)
            .map(|r| r.state.clone()),
        Some("pending".to_owned())
    );

    // Its retry window ends: the next attempt fails it for good.
    set_column(
        &db,
        &c.id,
        webhook_events::Column::QueuedAt,
        chrono::Utc::now().timestamp_millis() - AGED_MS,
    )
    .await;
    let deadline = Instant::now() + WAIT;
    let c = loop {
        let rows = events_of(&db, SITE).await;
        let c = rows.iter().find(|r| r.id == c.id).expect("C's row");
        if c.state == "failed" {
            break c.clone();
        }
        assert!(Instant::now() < deadline, "C never failed: {rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let seen = receiver.seen();
    let c_seen: Vec<u16> = seen
        .iter()
        .filter(|s| s.id == c.id)
        .map(|s| s.status)
        .collect();
    assert!(c_seen.len() >= 2, "C was retried: {c_seen:?}");
    assert!(c_seen.iter().all(|s| *s == 500), "{c_seen:?}");
    assert_eq!(c.attempts, c_seen.len() as i64);
    let c_tries = c_seen.len() as f64;
    let counted = counters_after(&hub, 4.0).await;
    assert_eq!(
        counted,
        expected(
            &[("2xx", 3.0), ("non_2xx", 1.0 + c_tries), ("timeout", 1.0)],
            &[("delivered", 3.0), ("failed", 1.0)]
        )
    );
    // Every request the receiver saw was counted once, and nothing else.
    let attempts: f64 = counted
        .iter()
        .filter(|(name, _)| name.starts_with(ATTEMPTS))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(attempts, seen.len() as f64, "{seen:?}");
    let (oldest, failed) =
        gauges_when(&hub, "no pending and 1 failed", |o, f| o == 0.0 && f == 1.0).await;
    assert_eq!((oldest, failed), (0.0, 1.0));
    hub.stop().await;
}

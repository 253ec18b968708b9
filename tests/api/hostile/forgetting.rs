//! The limiters' memory follows the addresses seen recently: housekeeping
//! forgets every allowance that is full again, so a flood from many
//! addresses costs memory only while it lasts.

use std::time::Duration;

use crate::helpers::spawn_app_with;

/// One request from `ip` for a page (the `other` limit), which must pass.
async fn page_from(app: &crate::helpers::TestApp, ip: String) {
    let res = app
        .http
        .get(app.url("/healthz"))
        .header("X-Forwarded-For", ip)
        .send()
        .await
        .expect("healthz");
    assert_eq!(res.status(), 200);
}

/// Waits until the map holds at most `keys` keys again, for at most 15 s.
async fn back_to(app: &crate::helpers::TestApp, keys: usize, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now = app.limits.keys();
        if now <= keys {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {now} keys 15 s after {what} (before it: {keys})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn housekeeping_forgets_allowances_that_are_full_again() {
    let app = spawn_app_with(|cfg| {
        cfg.trusted_proxies = vec!["127.0.0.1".into()];
        cfg.housekeeping_secs = 2;
    })
    .await;
    let before = app.limits.keys();
    // The flood starts right after a housekeeping run, so that the next
    // one (2 s later) cannot forget part of it before it is counted.
    page_from(&app, "10.255.255.255".into()).await;
    back_to(&app, before, "the first request").await;
    // 300 addresses, one request each, ten at a time.
    let senders = (0..10u32).map(|s| {
        let app = &app;
        async move {
            for i in (s * 30)..(s * 30 + 30) {
                page_from(
                    app,
                    format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
                )
                .await;
            }
        }
    });
    futures_util::future::join_all(senders).await;
    let flooded = app.limits.keys();
    assert!(
        flooded >= before + 300,
        "every address holds an allowance: {before} -> {flooded}"
    );
    // One unit of 100,000 a minute is back within a millisecond; the next
    // housekeeping run (every 2 s here) forgets the full allowances.
    back_to(&app, before, "the flood").await;
}

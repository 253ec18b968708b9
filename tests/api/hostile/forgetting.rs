//! The limiters' memory follows the addresses seen recently: housekeeping
//! forgets every allowance that is full again, so a flood from many
//! addresses costs memory only while it lasts.

use std::time::Duration;

use crate::helpers::spawn_app_with;

#[tokio::test]
async fn housekeeping_forgets_allowances_that_are_full_again() {
    let app = spawn_app_with(|cfg| {
        cfg.trusted_proxies = vec!["127.0.0.1".into()];
        cfg.housekeeping_secs = 1;
    })
    .await;
    let before = app.limits.keys();
    // 300 addresses, one request each (a page: the `other` limit).
    for i in 0..300u32 {
        let ip = format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256);
        let res = app
            .http
            .get(app.url("/healthz"))
            .header("X-Forwarded-For", ip)
            .send()
            .await
            .expect("healthz");
        assert_eq!(res.status(), 200);
    }
    let flooded = app.limits.keys();
    assert!(
        flooded >= before + 300,
        "every address holds an allowance: {before} -> {flooded}"
    );
    // One unit of 100,000 a minute is back within a millisecond; the next
    // housekeeping run (every second here) forgets the full allowances.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now = app.limits.keys();
        if now <= before {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {now} keys 15 s after the flood (before it: {before})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

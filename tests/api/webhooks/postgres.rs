//! Two nodes on one PostgreSQL database send each event once.

use std::time::Duration;

use super::receiver::{Delivery, Receiver};
use super::{Hub, HubConfig, SITE, new_secret, open_db, wait_states};

#[tokio::test]
async fn two_nodes_on_postgres_send_each_event_once() {
    // Dropped (connections and all) when the guard goes, also on a panic.
    let Some(pg) = crate::cluster::ClusterDb::create().await else {
        return;
    };
    // The first answers fail, so retries are due on both nodes at once.
    let receiver = Receiver::start(0, &[500; 12], 204);
    let secret = new_secret();
    let cfg = HubConfig::new(&pg.url, &receiver.url(), &secret);
    let a = Hub::start(&cfg).await;
    let b = Hub::start(&cfg).await;
    let db = open_db(&pg.url).await;
    let logins = 12;
    for i in 0..logins {
        let node = if i % 2 == 0 { &a } else { &b };
        node.confirmed_login(SITE, &format!("pg{i}")).await;
    }
    let rows = wait_states(&db, SITE, "delivered", logins).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let seen = receiver.seen();
    let ok: Vec<&Delivery> = seen.iter().filter(|d| d.status == 204).collect();
    assert_eq!(ok.len(), logins, "one 2xx per event: {seen:?}");
    let mut ids: Vec<&str> = ok.iter().map(|d| d.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), logins);
    let attempts: i64 = rows.iter().map(|r| r.attempts).sum();
    assert_eq!(
        attempts as usize,
        seen.len(),
        "every attempt was counted once"
    );
    println!("{} attempts for {logins} events on two nodes", seen.len());
    let _ = db.close().await;
    a.stop().await;
    b.stop().await;
}

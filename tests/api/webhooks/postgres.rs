//! Two nodes on one PostgreSQL database send each event once.

use std::time::Duration;

use super::receiver::{Delivery, Receiver};
use super::{Hub, HubConfig, SITE, new_secret, open_db, wait_states};

/// A fresh database on the server of `SCANLOGIN_TEST_POSTGRES_URL`, dropped
/// when the guard goes; `None` (with a note) when the variable is unset.
struct PgDb {
    admin: String,
    name: String,
    url: String,
}

impl PgDb {
    async fn create() -> Option<PgDb> {
        use sea_orm::ConnectionTrait;
        let Ok(admin) = std::env::var(crate::helpers::POSTGRES_ENV) else {
            println!("skipped: {} not set", crate::helpers::POSTGRES_ENV);
            return None;
        };
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let db = sea_orm::Database::connect(&admin)
            .await
            .expect("connect to PostgreSQL");
        db.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create the test database");
        let _ = db.close().await;
        let mut url = url::Url::parse(&admin).expect("a URL");
        url.set_path(&format!("/{name}"));
        Some(PgDb {
            admin,
            name,
            url: url.to_string(),
        })
    }

    async fn drop_now(self) {
        use sea_orm::ConnectionTrait;
        if let Ok(db) = sea_orm::Database::connect(&self.admin).await {
            let _ = db
                .execute_unprepared(&format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.name
                ))
                .await;
            let _ = db.close().await;
        }
    }
}

#[tokio::test]
async fn two_nodes_on_postgres_send_each_event_once() {
    let Some(pg) = PgDb::create().await else {
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
    pg.drop_now().await;
}

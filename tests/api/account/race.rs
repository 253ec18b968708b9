//! A deletion racing logins of the same person (PostgreSQL runs their
//! transactions side by side): each login either ends before the deletion
//! (and is deleted with it) or makes a new user; nothing is left pointing at
//! a deleted user.

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::json;

use super::{delete_with, log_in};
use crate::helpers::{CLIENT_ID, TestApp, TestDb, required, spawn_app_with, unique};

/// Rows of tables keyed by user that name no user.
async fn orphans(db: &DatabaseConnection) -> Vec<(String, i64)> {
    let mut found = Vec::new();
    for table in [
        "identities",
        "tickets",
        "client_logins",
        "login_history",
        "phone_consents",
        "oidc_grants",
        "scenes",
    ] {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM {table} WHERE user_id IS NOT NULL \
             AND user_id NOT IN (SELECT id FROM users)"
        );
        let row = db
            .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .expect("count orphans")
            .expect("a row");
        let n: i64 = row.try_get("", "n").expect("n");
        if n > 0 {
            found.push((table.to_owned(), n));
        }
    }
    found
}

async fn race(app: &TestApp, rounds: usize) {
    let openid = unique("o_race");
    let db = app.db().await;
    for round in 0..rounds {
        // A user to delete, then a login and the deletion at once.
        log_in(app, CLIENT_ID, &openid, "Before/1", json!({})).await;
        let code = app.login_code(&openid);
        let (login, deleted) = tokio::join!(
            log_in(app, CLIENT_ID, &openid, "During/1", json!({})),
            delete_with(app, &code),
        );
        assert_eq!(deleted.status(), 200, "round {round}");
        let gone = deleted.json::<serde_json::Value>().await.expect("JSON")["user_id"]
            .as_str()
            .expect("user_id")
            .to_owned();
        // The racing login either was deleted with the user or made a new one.
        let (user, _) = login;
        let left = orphans(&db).await;
        assert!(left.is_empty(), "round {round}: orphans {left:?}");
        let users: i64 = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                // A UUID the hub made: safe to inline.
                format!("SELECT COUNT(*) AS n FROM users WHERE id = '{user}'"),
            ))
            .await
            .expect("count")
            .expect("row")
            .try_get("", "n")
            .expect("n");
        assert_eq!(users, i64::from(user != gone), "round {round}");
    }
}

#[tokio::test]
async fn deletions_racing_logins_leave_no_orphans_on_postgres() {
    if required::postgres_url().is_none() {
        return;
    }
    let app = spawn_app_with(|c| c.db = TestDb::Postgres).await;
    race(&app, 15).await;
}

#[tokio::test]
async fn deletions_racing_logins_leave_no_orphans_on_sqlite() {
    let app = spawn_app_with(|_| {}).await;
    race(&app, 5).await;
}

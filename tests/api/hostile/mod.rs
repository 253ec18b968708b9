//! The hub tried as an attacker would (issue "safe to put on the internet"):
//! each test reproduces one attack and checks the defence. Malformed input
//! at every endpoint gets a problem with the right code, never a 5xx, and
//! changes nothing; limits answer 429 with `Retry-After`; a locked database
//! is 503; metrics labels stay bounded; secrets are sealed at rest; the
//! WebSocket is attacked byte by byte (`ws`).

mod addresses;
mod avatars_disk;
mod code_images;
mod every_path;
mod exposure;
mod forgetting;
mod limits;
mod malformed;
mod ws;

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

/// Rows of the tables a request could change, as one comparable list.
async fn row_counts(db: &DatabaseConnection) -> Vec<i64> {
    let mut out = Vec::new();
    for table in [
        "scenes",
        "users",
        "identities",
        "tickets",
        "code_exchanges",
        "scene_codes",
    ] {
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .expect("count")
            .expect("a row");
        out.push(row.try_get::<i64>("", "n").expect("n"));
    }
    out
}

/// Retry-After of a 429, in seconds.
fn retry_after(res: &reqwest::Response) -> u64 {
    res.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds")
}

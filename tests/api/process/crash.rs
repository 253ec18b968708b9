//! `kill -9` under load: every confirm the hub answered is in the database
//! after a restart (its scene confirmed, its ticket there), and no ticket
//! exists without its confirmed scene.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;
use tokio::sync::Mutex;

use super::{Hub, create_scene, post, sim_code};

/// Confirms in flight at once, and the most one worker tries.
const WORKERS: usize = 8;
const PER_WORKER: usize = 200;

fn unlimited() -> Vec<(&'static str, String)> {
    [
        "SCANLOGIN__RATE_LIMIT__SCENES_PER_MINUTE",
        "SCANLOGIN__RATE_LIMIT__MP_PER_MINUTE",
        "SCANLOGIN__RATE_LIMIT__MP_PER_SCENE_PER_MINUTE",
        "SCANLOGIN__RATE_LIMIT__OTHER_PER_MINUTE",
    ]
    .into_iter()
    .map(|k| (k, "0".to_owned()))
    .collect()
}

async fn count(db: &sea_orm::DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("count")
        .expect("a row");
    row.try_get_by_index(0).expect("a number")
}

#[tokio::test]
async fn answered_confirms_survive_kill_9_under_load() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let hub = Hub::start(dir.path(), &unlimited(), None);
    hub.wait_ready().await;
    let hub = Arc::new(hub);
    let answered: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (hub, answered, stop) = (hub.clone(), answered.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            for i in 0..PER_WORKER {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let hub = hub.clone();
                let attempt = async move {
                    let (scene, _) = create_scene(&hub).await;
                    let code = sim_code(&hub, &format!("crash{w}x{i}")).await;
                    let (status, _) = post(
                        hub.url("/api/v1/mp/confirm"),
                        json!({"scene_id": scene, "code": code}),
                    )
                    .await;
                    (status == 200).then_some(scene)
                };
                // A request cut by the kill panics in the helpers: that
                // attempt simply has no answer.
                match tokio::spawn(attempt).await {
                    Ok(Some(scene)) => answered.lock().await.push(scene),
                    _ => return,
                }
            }
        }));
    }
    // Kill once a good number of confirms were answered (or after 20 s).
    let deadline = Instant::now() + Duration::from_secs(20);
    while answered.lock().await.len() < 150 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed = std::process::Command::new("kill")
        .arg("-KILL")
        .arg(hub.child.id().to_string())
        .status()
        .expect("kill -9");
    assert!(killed.success());
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
    }
    let answered = answered.lock().await.clone();
    assert!(
        answered.len() >= 20,
        "too few confirms before the kill: {}",
        answered.len()
    );

    // The same database, opened again (as the restarted hub would).
    let db = sea_orm::Database::connect(format!(
        "sqlite://{}?mode=rw",
        dir.path().join("hub.db").display()
    ))
    .await
    .expect("open the database after the kill");
    let ids = answered
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(",");
    let confirmed = count(
        &db,
        &format!("SELECT COUNT(*) FROM scenes WHERE state = 'confirmed' AND id IN ({ids})"),
    )
    .await;
    let ticketed = count(
        &db,
        &format!("SELECT COUNT(*) FROM tickets WHERE scene_id IN ({ids})"),
    )
    .await;
    assert_eq!(
        confirmed as usize,
        answered.len(),
        "every answered confirm is confirmed"
    );
    assert_eq!(
        ticketed as usize,
        answered.len(),
        "every answered confirm has its ticket"
    );
    let orphans = count(
        &db,
        "SELECT COUNT(*) FROM tickets t LEFT JOIN scenes s ON s.id = t.scene_id \
         WHERE s.id IS NULL OR s.state <> 'confirmed'",
    )
    .await;
    assert_eq!(orphans, 0, "no ticket without its confirmed scene");
    let _ = db.close().await;

    // And the hub starts again on it.
    let again = Hub::start(dir.path(), &unlimited(), None);
    again.wait_ready().await;
}

//! `scanlogin webhooks retry`: failed webhook events queued again.

use std::process::ExitCode;

use scanlogin::Settings;

/// `scanlogin webhooks retry <id> | --failed`.
pub async fn retry(settings: &Settings, id: Option<&str>) -> ExitCode {
    let db = match super::connect(settings).await {
        Ok(db) => db,
        Err(code) => return code,
    };
    let now = scanlogin::clock::now_ms();
    let result = scanlogin::webhooks::outbox::requeue(&db, id, now).await;
    let _ = db.close().await;
    match (result, id) {
        (Ok(0), Some(id)) => {
            eprintln!("no failed webhook event {id:?}");
            ExitCode::FAILURE
        }
        (Ok(n), _) => {
            println!("{n} webhook event(s) re-queued");
            ExitCode::SUCCESS
        }
        (Err(e), _) => {
            eprintln!("re-queueing failed: {e}");
            ExitCode::FAILURE
        }
    }
}

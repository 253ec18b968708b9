//! `scanlogin users show|delete`: a person's account, as the operator sees
//! and deletes it.

use std::process::ExitCode;

use scanlogin::Settings;
use sea_orm::TransactionTrait;

/// `scanlogin users show <id>`: one JSON document; exit 1 when unknown.
pub async fn show(settings: &Settings, id: &str) -> ExitCode {
    let db = match super::connect(settings).await {
        Ok(db) => db,
        Err(code) => return code,
    };
    let found = scanlogin::account::view(&db, settings, id).await;
    let _ = db.close().await;
    let account = match found {
        Ok(Some(account)) => account,
        Ok(None) => {
            eprintln!("no user {id:?}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("reading the user failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    match serde_json::to_string_pretty(&account) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("writing failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `scanlogin users delete <id>`: in one transaction, as the person's own
/// deletion; a running hub's webhook worker sends the `user.deleted` events.
pub async fn delete(settings: &Settings, id: &str) -> ExitCode {
    let db = match super::connect(settings).await {
        Ok(db) => db,
        Err(code) => return code,
    };
    let (job_settings, user_id) = (settings.clone(), id.to_owned());
    let done = db
        .transaction::<_, _, sea_orm::DbErr>(move |tx| {
            Box::pin(async move {
                let now = scanlogin::clock::now_ms();
                scanlogin::account::delete(tx, &job_settings, &user_id, now).await
            })
        })
        .await;
    let _ = db.close().await;
    match done {
        Ok(Some(deleted)) => {
            println!(
                "user {} deleted; {} user.deleted webhook event(s) queued",
                deleted.user_id, deleted.webhooks
            );
            ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!("no user {id:?}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("deleting the user failed: {e}");
            ExitCode::FAILURE
        }
    }
}

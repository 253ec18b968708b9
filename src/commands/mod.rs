//! The bodies of the binary's commands; `src/main.rs` parses the command
//! line and calls one. `serve` runs the hub ([`serve`]); the others are
//! one-shot: each opens the database itself, says what it did on stdout (or
//! why not on stderr) and answers the process's exit code.

pub mod logins;
pub mod serve;
pub mod users;
pub mod webhooks;

use std::process::ExitCode;

use scanlogin::{Settings, telemetry};
use sea_orm::DatabaseConnection;

/// The configured database, or the exit code once the reason is printed.
async fn connect(settings: &Settings) -> Result<DatabaseConnection, ExitCode> {
    scanlogin::db::connect(&settings.database)
        .await
        .map_err(|e| {
            eprintln!("database.url: cannot connect: {e}");
            ExitCode::FAILURE
        })
}

/// `scanlogin migrate`: pending migrations applied.
pub async fn migrate(settings: &Settings) -> ExitCode {
    telemetry::init(&settings.log);
    let db = match connect(settings).await {
        Ok(db) => db,
        Err(code) => return code,
    };
    match scanlogin::db::migrate(&db).await {
        Ok(()) => {
            println!("migrations applied");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("migration failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `scanlogin check-config`: the warnings, then whether the database answers.
pub async fn check_config(settings: &Settings) -> ExitCode {
    for w in settings.warnings() {
        println!("warning: {w}");
    }
    match connect(settings).await {
        Ok(db) => {
            let _ = db.close().await;
            println!("configuration OK");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// `scanlogin rotate-keys`: a new OpenID Connect signing key.
pub async fn rotate_keys(settings: &Settings) -> ExitCode {
    match scanlogin::oidc::rotate_keys(settings).await {
        Ok(key) => {
            println!(
                "new signing key {} (generation {}) is current",
                key.kid, key.generation
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rotate-keys failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

//! The `scanlogin` binary: `serve` (default; SIGHUP reloads the
//! configuration), `migrate`, `check-config`, `webhooks retry`, `logins`,
//! `users show|delete`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use scanlogin::{Application, Settings, telemetry};

/// jemalloc instead of glibc's malloc: with many small buffers allocated
/// and freed on several threads (requests, rows, socket frames), glibc's
/// `malloc`/`free` cost 13 % of the hub's CPU at 1,000 confirms a second;
/// jemalloc cut CPU per login to ×0.85 and memory per waiting browser to
/// ×0.88 (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "scanlogin", version, about = "Scan-with-WeChat login hub")]
struct Cli {
    /// Configuration file (TOML); SCANLOGIN__SECTION__KEY variables override it.
    #[arg(long, global = true, default_value = "config.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Check the configuration, explain each mistake, exit non-zero on any.
    CheckConfig,
    /// Make a new OpenID Connect signing key; older keys stay published
    /// until the tokens they signed expire.
    RotateKeys,
    /// Webhook events kept in the database.
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
    /// A person's account: what the hub holds, or deleting it.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Print the login history, oldest first, one JSON object a line.
    Logins {
        /// Only this user's logins.
        #[arg(long = "user", value_name = "ID")]
        user: Option<String>,
        /// Only logins to this client.
        #[arg(long = "client", value_name = "ID")]
        client: Option<String>,
        /// Only logins at or after this time (RFC 3339).
        #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
        since: Option<i64>,
    },
}

/// An RFC 3339 time as milliseconds since the Unix epoch.
fn parse_rfc3339(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("not an RFC 3339 time ({e}), e.g. 2026-12-01T00:00:00Z"))
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Print what the hub holds about a user as one JSON document (as the
    /// person's `POST /api/v1/mp/account` answers it).
    Show {
        /// The user's id.
        id: String,
    },
    /// Delete everything the hub holds about a user, as the person's own
    /// deletion does (webhooks `user.deleted` included).
    Delete {
        /// The user's id.
        id: String,
    },
}

#[derive(Subcommand)]
enum WebhooksCommand {
    /// Re-queue a failed event, or every failed one, for a fresh retry window.
    Retry {
        /// The event's `webhook-id` (`msg_...`).
        #[arg(required_unless_present = "failed", conflicts_with = "failed")]
        id: Option<String>,
        /// Re-queue every failed event.
        #[arg(long)]
        failed: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(&cli.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("configuration error ({}):\n{e}", cli.config.display());
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => check_config(&settings).await,
        Command::Migrate => {
            telemetry::init(&settings.log);
            match scanlogin::db::connect(&settings.database).await {
                Ok(db) => match scanlogin::db::migrate(&db).await {
                    Ok(()) => {
                        println!("migrations applied");
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("migration failed: {e}");
                        ExitCode::FAILURE
                    }
                },
                Err(e) => {
                    eprintln!("database.url: cannot connect: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve => serve(settings, cli.config).await,
        Command::RotateKeys => rotate_keys(&settings).await,
        Command::Webhooks {
            command: WebhooksCommand::Retry { id, .. },
        } => webhooks_retry(&settings, id.as_deref()).await,
        Command::Users {
            command: UsersCommand::Show { id },
        } => users_show(&settings, &id).await,
        Command::Users {
            command: UsersCommand::Delete { id },
        } => users_delete(&settings, &id).await,
        Command::Logins {
            user,
            client,
            since,
        } => {
            let filter = scanlogin::login_history::LoginFilter {
                user_id: user,
                client_id: client,
                since,
            };
            logins(&settings, &filter).await
        }
    }
}

/// `scanlogin logins [--user ID] [--client ID] [--since RFC3339]`: read in
/// pages, so a long history never sits in memory whole.
async fn logins(settings: &Settings, filter: &scanlogin::login_history::LoginFilter) -> ExitCode {
    use std::io::Write;

    use scanlogin::login_history::{LoginLine, page};
    let db = match scanlogin::db::connect(&settings.database).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("database.url: cannot connect: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut after = None;
    let done = loop {
        let rows = match page(&db, filter, after.as_ref(), 500).await {
            Ok(rows) => rows,
            Err(e) => break Err(format!("reading the login history failed: {e}")),
        };
        let Some(last) = rows.last() else {
            break Ok(());
        };
        after = Some((last.at, last.scene_id.clone()));
        let written = rows.into_iter().try_for_each(|row| {
            let line =
                serde_json::to_string(&LoginLine::from(row)).map_err(std::io::Error::other)?;
            writeln!(out, "{line}")
        });
        if let Err(e) = written {
            break Err(format!("writing failed: {e}"));
        }
    };
    let done = done.and_then(|()| out.flush().map_err(|e| format!("writing failed: {e}")));
    let _ = db.close().await;
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `scanlogin users show <id>`: one JSON document; exit 1 when unknown.
async fn users_show(settings: &Settings, id: &str) -> ExitCode {
    let db = match scanlogin::db::connect(&settings.database).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("database.url: cannot connect: {e}");
            return ExitCode::FAILURE;
        }
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
async fn users_delete(settings: &Settings, id: &str) -> ExitCode {
    use sea_orm::TransactionTrait;
    let db = match scanlogin::db::connect(&settings.database).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("database.url: cannot connect: {e}");
            return ExitCode::FAILURE;
        }
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

/// `scanlogin webhooks retry <id> | --failed`.
async fn webhooks_retry(settings: &Settings, id: Option<&str>) -> ExitCode {
    let db = match scanlogin::db::connect(&settings.database).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("database.url: cannot connect: {e}");
            return ExitCode::FAILURE;
        }
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

async fn check_config(settings: &Settings) -> ExitCode {
    for w in settings.warnings() {
        println!("warning: {w}");
    }
    match scanlogin::db::connect(&settings.database).await {
        Ok(db) => {
            let _ = db.close().await;
            println!("configuration OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("database.url: cannot connect: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn rotate_keys(settings: &Settings) -> ExitCode {
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

async fn serve(settings: Settings, config: PathBuf) -> ExitCode {
    telemetry::init(&settings.log);
    for w in settings.warnings() {
        tracing::warn!("{w}");
    }
    // Taken before anything else, so a SIGHUP from now on reloads (and
    // never ends the process, SIGHUP's default).
    let hangups = hangups();
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("cannot start: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    // Listening and migrated: tell systemd (Type=notify). Outside systemd
    // (no NOTIFY_SOCKET) these calls do nothing.
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "sd_notify READY failed");
    }
    let token = app.shutdown_token();
    tokio::spawn(reload_on_hangup(
        hangups,
        app.reloader(),
        config,
        token.clone(),
    ));
    if let Some(every) = sd_notify::watchdog_enabled() {
        tokio::spawn(watchdog(every / 2, token.clone()));
    }
    let stop = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = wait_for_signal() => tracing::info!("shutdown requested"),
            _ = stop.cancelled() => {}
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        stop.cancel();
    });
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// SIGHUP's stream (`None` where there is none).
#[cfg(unix)]
fn hangups() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::hangup())
        .inspect_err(|e| tracing::warn!(error = %e, "no SIGHUP handler; reloads are off"))
        .ok()
}

#[cfg(not(unix))]
fn hangups() -> Option<()> {
    None
}

/// On each SIGHUP until shutdown, reloads the configuration `config` (and
/// the environment), telling systemd (`Type=notify-reload`) `RELOADING=1`
/// with `MONOTONIC_USEC` first and `READY=1` after, applied or refused.
#[cfg(unix)]
async fn reload_on_hangup(
    hangups: Option<tokio::signal::unix::Signal>,
    reloader: std::sync::Arc<scanlogin::startup::Reloader>,
    config: PathBuf,
    token: tokio_util::sync::CancellationToken,
) {
    use sd_notify::NotifyState;
    let Some(mut hangups) = hangups else {
        return;
    };
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            got = hangups.recv() => if got.is_none() { break },
        }
        tracing::info!(config = %config.display(), "reload requested (SIGHUP)");
        let mut states = vec![NotifyState::Reloading];
        match NotifyState::monotonic_usec_now() {
            Ok(now) => states.push(now),
            Err(e) => tracing::warn!(error = %e, "no monotonic clock for MONOTONIC_USEC"),
        }
        if let Err(e) = sd_notify::notify(&states) {
            tracing::warn!(error = %e, "sd_notify RELOADING failed");
        }
        // Reading the file (and a GeoIP database) blocks: off the workers.
        let (reloader, path) = (reloader.clone(), config.clone());
        if let Err(e) = tokio::task::spawn_blocking(move || reloader.reload(&path)).await {
            tracing::error!(error = %e, "the reload failed");
        }
        if let Err(e) = sd_notify::notify(&[NotifyState::Ready]) {
            tracing::warn!(error = %e, "sd_notify READY failed");
        }
    }
}

#[cfg(not(unix))]
async fn reload_on_hangup(
    _hangups: Option<()>,
    _reloader: std::sync::Arc<scanlogin::startup::Reloader>,
    _config: PathBuf,
    _token: tokio_util::sync::CancellationToken,
) {
}

/// Pings systemd's watchdog while the runtime is alive and not stopping.
async fn watchdog(every: std::time::Duration, token: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tick.tick() => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

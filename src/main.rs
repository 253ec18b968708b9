//! The `scanlogin` binary: `serve` (default; SIGHUP reloads the
//! configuration), `migrate`, `check-config`, `rotate-keys`, `webhooks
//! retry`, `logins`, `users show|delete`. This file parses the command line
//! and the configuration; each command's body is in `commands/`.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use scanlogin::Settings;
use scanlogin::login_history::LoginFilter;

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
        Command::CheckConfig => commands::check_config(&settings).await,
        Command::Migrate => commands::migrate(&settings).await,
        Command::Serve => commands::serve::serve(settings, cli.config).await,
        Command::RotateKeys => commands::rotate_keys(&settings).await,
        Command::Webhooks {
            command: WebhooksCommand::Retry { id, .. },
        } => commands::webhooks::retry(&settings, id.as_deref()).await,
        Command::Users {
            command: UsersCommand::Show { id },
        } => commands::users::show(&settings, &id).await,
        Command::Users {
            command: UsersCommand::Delete { id },
        } => commands::users::delete(&settings, &id).await,
        Command::Logins {
            user,
            client,
            since,
        } => {
            let filter = LoginFilter {
                user_id: user,
                client_id: client,
                since,
            };
            commands::logins::print(&settings, &filter).await
        }
    }
}

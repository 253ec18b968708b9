//! Opening the database: SQLite (file created on first start, WAL) or
//! PostgreSQL, chosen by the URL.

use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use secrecy::ExposeSecret;

use crate::config::DatabaseSettings;

/// Whether the URL names SQLite.
pub fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// The hub's handles: one for reading, one for anything that writes.
///
/// SQLite lets one connection write at a time; a second writer sleeps in
/// SQLite's busy handler (naps of 1 ms growing to 100 ms) and retries. Under
/// load those naps were most of a confirm's latency (docs/benchmarks.md). On a
/// SQLite file the writer is therefore a pool of its own with one connection,
/// so writers queue in the hub, in order, and never nap. On PostgreSQL and
/// in-memory SQLite both handles are the same pool.
#[derive(Clone, Debug)]
pub struct Db {
    read: DatabaseConnection,
    write: DatabaseConnection,
    /// Whether `write` is a pool of its own.
    split: bool,
}

impl Db {
    /// Both handles on one pool (PostgreSQL, in-memory SQLite).
    fn single(conn: DatabaseConnection) -> Self {
        Self {
            read: conn.clone(),
            write: conn,
            split: false,
        }
    }

    /// For queries.
    pub fn read(&self) -> &DatabaseConnection {
        &self.read
    }

    /// For inserts, updates, deletes and transactions that write.
    pub fn write(&self) -> &DatabaseConnection {
        &self.write
    }

    /// Whether both pools answer and the writer can take the write lock:
    /// a transaction writes nothing to the migrations table (taking SQLite's
    /// write lock, or failing on a read-only PostgreSQL) and rolls back.
    pub async fn check_ready(&self) -> Result<(), DbErr> {
        use sea_orm::{ConnectionTrait, TransactionTrait};
        self.read.ping().await?;
        let txn = self.write.begin().await?;
        txn.execute_unprepared("UPDATE seaql_migrations SET version = version WHERE 1 = 0")
            .await?;
        txn.rollback().await
    }

    /// Closes both pools.
    pub async fn close(self) -> Result<(), DbErr> {
        if self.split {
            self.write.close().await?;
        }
        self.read.close().await
    }
}

/// Opens the reading pool and, on a SQLite file, the one-connection writer.
pub async fn open(s: &DatabaseSettings) -> Result<Db, DbErr> {
    let read = connect(s).await?;
    let url = s.url.expose_secret();
    if !is_sqlite(url) || is_in_memory(url) {
        return Ok(Db::single(read));
    }
    let write = connect_with(s, 1).await?;
    Ok(Db {
        read,
        write,
        split: true,
    })
}

/// The file part of a SQLite URL (no scheme, no query).
fn sqlite_path(url: &str) -> &str {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    path.split('?').next().unwrap_or("")
}

fn is_in_memory(url: &str) -> bool {
    let path = sqlite_path(url);
    path.is_empty() || path == ":memory:" || url.contains("mode=memory")
}

/// Connects, creating a SQLite file and its folder when needed.
pub async fn connect(s: &DatabaseSettings) -> Result<DatabaseConnection, DbErr> {
    connect_with(s, s.max_connections).await
}

async fn connect_with(
    s: &DatabaseSettings,
    mut max_connections: u32,
) -> Result<DatabaseConnection, DbErr> {
    let mut url = s.url.expose_secret().to_owned();
    let mut in_memory = false;
    if is_sqlite(&url) {
        let path = sqlite_path(&url);
        // Every connection to `:memory:` is a database of its own: keep one,
        // for the whole life of the hub.
        in_memory = is_in_memory(&url);
        if in_memory {
            max_connections = 1;
        } else {
            if let Some(dir) = std::path::Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir)
                    .map_err(|e| DbErr::Custom(format!("cannot create {}: {e}", dir.display())))?;
            }
            if !url.contains("mode=") {
                url.push_str(if url.contains('?') {
                    "&mode=rwc"
                } else {
                    "?mode=rwc"
                });
            }
        }
    }
    let busy_timeout = Duration::from_millis(s.busy_timeout_ms);
    let mut opts = ConnectOptions::new(url);
    if in_memory {
        opts.idle_timeout(None).max_lifetime(None);
    }
    opts.max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false)
        // A broken SQLite connection shows on the next statement anyway; a
        // ping per acquire is one more worker-thread round trip per query.
        .test_before_acquire(false)
        .map_sqlx_sqlite_opts(move |o| {
            o.journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(busy_timeout)
                .foreign_keys(true)
                // Each pooled connection has its own page cache (2 MiB by
                // default): with 8 of them the hub held the same scene pages
                // up to 8 times, about 1.6 KB per waiting browser at 10,000.
                // The OS page cache (outside the hub's RSS) holds the rest.
                .pragma("cache_size", format!("-{SQLITE_CACHE_KIB}"))
        });
    Database::connect(opts).await
}

/// Whether `err` means the database cannot serve now (locked, busy, slow,
/// full, out of connections, gone) rather than that the statement is wrong:
/// the request may be retried later and gets 503, not 500.
pub fn is_unavailable(err: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    let sqlx_err = match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        _ => return false,
    };
    match sqlx_err.as_ref() {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            match db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                // SQLITE_BUSY, _LOCKED, _IOERR, _CORRUPT aside, _FULL,
                // _CANTOPEN, _PROTOCOL and their extended codes (low byte).
                Some(_) => code
                    .parse::<i32>()
                    .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13 | 14 | 15)),
                // PostgreSQL SQLSTATE: connection exceptions (08), out of
                // resources (53), operator intervention such as shutdown or
                // statement timeout (57), serialization failures and
                // deadlocks (40001, 40P01), lock not available (55P03).
                None => {
                    code.starts_with("08")
                        || code.starts_with("53")
                        || code.starts_with("57")
                        || matches!(code.as_ref(), "40001" | "40P01" | "55P03")
                }
            }
        }
        _ => false,
    }
}

/// Page cache per SQLite connection, in KiB.
const SQLITE_CACHE_KIB: u32 = 256;

/// Key of the advisory lock that serialises migrations between nodes.
const MIGRATION_LOCK: i64 = 0x5ca9_1091;

/// Applies pending migrations. On PostgreSQL they run in one transaction
/// holding an advisory lock, so nodes starting together on a fresh database
/// take turns instead of racing to create the same tables.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    use migration::{Migrator, MigratorTrait};
    use sea_orm::{ConnectionTrait, DatabaseBackend, TransactionTrait};
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return Migrator::up(db, None).await;
    }
    let txn = db.begin().await?;
    txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
        .await?;
    Migrator::up(&txn, None).await?;
    txn.commit().await
}

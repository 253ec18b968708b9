//! The hub's database: SQLite (file created on first start, WAL) or
//! PostgreSQL, chosen by the URL, behind one API for every store.
//!
//! Stores write sea-orm statements against `&impl ConnectionTrait` and get
//! it from [`Db::read`], [`Db::write`] (one statement) or
//! [`Db::transaction`] (several, atomically). On PostgreSQL these are
//! sea-orm's pool and transactions. On SQLite a read runs on a connection
//! of its own in the calling thread (no hand-off: `sqlite`), and every
//! write goes to the one writer thread (`writer`), which commits the writes
//! that queue together in one transaction.

mod file;
mod handle;
mod sqlite;
mod stats;
mod upsert;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr};
use secrecy::ExposeSecret;

use crate::config::DatabaseSettings;
pub use handle::{Conn, Handle, Tx};
pub use stats::Stats;
pub use upsert::insert_or_touch;
pub use writer::JobFuture;

/// Whether the URL names SQLite.
pub fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// The hub's handles on its database; clones share them.
#[derive(Clone, Debug)]
pub struct Db {
    read: Handle,
    write: Handle,
    stats: Stats,
}

impl Db {
    /// For queries: on SQLite they run in the calling thread.
    pub fn read(&self) -> &Handle {
        &self.read
    }

    /// For one insert, update or delete on its own. Several that must hold
    /// together go in [`Self::transaction`].
    pub fn write(&self) -> &Handle {
        &self.write
    }

    /// Runs `job` in one write transaction: committed when it returns `Ok`,
    /// rolled back when it returns `Err`. The job only uses the database
    /// (on SQLite it runs on the writer thread, to completion, in one poll),
    /// so it owns what it needs: `move |tx| Box::pin(async move { … })`.
    pub async fn transaction<T, E, F>(&self, job: F) -> Result<T, E>
    where
        F: for<'c> FnOnce(&'c Tx<'c>) -> JobFuture<'c, Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: From<DbErr> + Send + 'static,
    {
        self.write.transaction(job).await
    }

    /// Whether this is a PostgreSQL database (several nodes may share it).
    pub fn postgres(&self) -> Option<&DatabaseConnection> {
        self.write.pool_ref()
    }

    /// Statements and commits so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Whether the database answers and the hub can take the write lock: a
    /// transaction writes nothing to the migrations table (taking SQLite's
    /// write lock, or failing on a read-only PostgreSQL).
    pub async fn check_ready(&self) -> Result<(), DbErr> {
        self.read.execute_unprepared("SELECT 1").await?;
        self.transaction(|tx| {
            Box::pin(async move {
                tx.execute_unprepared("UPDATE seaql_migrations SET version = version WHERE 1 = 0")
                    .await
                    .map(|_| ())
            })
        })
        .await
    }

    /// Closes the PostgreSQL pool; a SQLite writer ends with its last
    /// handle.
    pub async fn close(self) -> Result<(), DbErr> {
        match self.write.pool_ref() {
            Some(pool) => pool.clone().close().await,
            None => Ok(()),
        }
    }
}

/// Opens the database: on PostgreSQL a pool, on SQLite the writer thread
/// and a set of reading connections.
pub async fn open(s: &DatabaseSettings) -> Result<Db, DbErr> {
    let stats = Stats::default();
    let url = s.url.expose_secret();
    if !is_sqlite(url) {
        let pool = connect(s).await?;
        let handle = Handle::pool(pool, stats.clone());
        return Ok(Db {
            read: handle.clone(),
            write: handle,
            stats,
        });
    }
    let opts = file::OpenOptions {
        busy_timeout: Duration::from_millis(s.busy_timeout_ms),
        cache_kib: SQLITE_CACHE_KIB,
    };
    if is_in_memory(url) {
        // Migrations run on a connection of their own, and every connection
        // to `:memory:` is a database of its own.
        return Err(DbErr::Custom(
            "database.url: an in-memory SQLite database is not supported, use a file".into(),
        ));
    }
    let path = prepare_sqlite_file(url)?;
    // The writer's cache holds the pages every write walks (indexes, the
    // newest rows) across commits: it is one connection.
    let writer_opts = file::OpenOptions {
        cache_kib: WRITER_CACHE_KIB,
        ..opts
    };
    let writing = file::open(&path, writer_opts)?;
    file::note_page_size(&writing);
    let writer = writer::Writer::start(
        sqlite::SqliteConn::new(writing, stats.clone()),
        file::open(&path, opts)?,
        stats.clone(),
        writer::WAL_LIMIT_BYTES,
    )?;
    let write = Handle::writer(writer, stats.clone());
    let read = Handle::readers(
        Arc::new(handle::Readers::new(path, opts, stats.clone())),
        stats.clone(),
    );
    Ok(Db { read, write, stats })
}

/// Creates the folder of a SQLite file, and the file itself with the hub's
/// page size when there is none; the file's path.
fn prepare_sqlite_file(url: &str) -> Result<String, DbErr> {
    let path = sqlite_path(url);
    if let Some(dir) = std::path::Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| DbErr::Custom(format!("cannot create {}: {e}", dir.display())))?;
    }
    file::create_if_missing(path)?;
    Ok(path.to_owned())
}

/// Connects, applies pending migrations and disconnects (the hub's own
/// handles are opened after, by [`open`]).
pub async fn migrate_database(s: &DatabaseSettings) -> Result<(), DbErr> {
    let conn = connect(s).await?;
    let done = migrate(&conn).await;
    let _ = conn.close().await;
    done
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

/// A sea-orm pool over sqlx, creating a SQLite file and its folder when
/// needed: the hub's handles on PostgreSQL, and on SQLite the connection
/// that migrations and the command-line tools use.
pub async fn connect(s: &DatabaseSettings) -> Result<DatabaseConnection, DbErr> {
    let mut url = s.url.expose_secret().to_owned();
    let mut max_connections = s.max_connections;
    let in_memory = is_sqlite(&url) && is_in_memory(&url);
    if in_memory {
        // Every connection to `:memory:` is a database of its own.
        max_connections = 1;
    } else if is_sqlite(&url) {
        prepare_sqlite_file(&url)?;
        if !url.contains("mode=") {
            url.push_str(if url.contains('?') {
                "&mode=rwc"
            } else {
                "?mode=rwc"
            });
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
        .test_before_acquire(false)
        .map_sqlx_sqlite_opts(move |o| {
            o.journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(busy_timeout)
                .foreign_keys(true)
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

/// Page cache per SQLite connection, in KiB: each connection has its own
/// (2 MiB by default), and with several the hub held the same scene pages
/// several times, about 1.6 KB per waiting browser at 10,000. The OS page
/// cache (outside the hub's RSS) holds the rest.
const SQLITE_CACHE_KIB: u32 = 256;

/// Page cache of SQLite's one writing connection, in KiB.
const WRITER_CACHE_KIB: u32 = 2048;

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

//! The SQLite file and its connections: a new file is created with the
//! hub's page size, and every connection is opened with the hub's pragmas.

use rusqlite::{Connection, OpenFlags};
use sea_orm::DbErr;

use super::sqlite::conn_err;

/// How long a statement waits for another process's lock before failing
/// with "busy" (the hub then answers 503).
#[derive(Clone, Copy, Debug)]
pub struct OpenOptions {
    pub busy_timeout: std::time::Duration,
    /// Page cache per connection, in KiB.
    pub cache_kib: u32,
}

/// Opens one connection to the file at `path` (created on first use) with
/// the hub's pragmas: WAL, `synchronous = NORMAL` (a commit survives a
/// crash of the process, not of the machine), foreign keys, a small page
/// cache and a statement cache large enough for every statement the hub
/// runs.
pub fn open(path: &str, o: OpenOptions) -> Result<Connection, DbErr> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(conn_err)?;
    conn.busy_timeout(o.busy_timeout).map_err(conn_err)?;
    // Savepoints and statements journal to memory, not to a temporary file.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
         PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -{};",
        o.cache_kib
    ))
    .map_err(conn_err)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// The page size of a database file the hub creates, in bytes. A commit
/// appends each page it changed to the WAL, and a confirm changes the
/// scene, the person, the ticket, the login's records and their indexes,
/// most of them at a different place each time: 24 pages of SQLite's
/// default 4,096 bytes (100 KB of WAL), or 28 pages of 2,048 (57 KB).
/// Fewer bytes make the WAL reach its limit less often, and each time it
/// does the writer stops for a checkpoint's fsync: at 1,000 confirms a
/// second the p99 went from 10.0 to 5.5 ms, for the same CPU (1,024-byte
/// pages: 5.0 ms, but ×1.12 CPU per confirm; docs/benchmarks.md). A file
/// that exists keeps its own.
pub const PAGE_SIZE: u32 = 2048;

/// Creates the database file at `path` with [`PAGE_SIZE`] and in WAL mode,
/// unless a database is there (its page size is fixed from its first page
/// on); an empty file counts as none.
pub fn create_if_missing(path: &str) -> Result<(), DbErr> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
        return Ok(());
    }
    let conn = Connection::open(path).map_err(conn_err)?;
    // Setting WAL mode writes the first page, which fixes the page size.
    conn.execute_batch(&format!(
        "PRAGMA page_size = {PAGE_SIZE}; PRAGMA journal_mode = WAL;"
    ))
    .map_err(conn_err)
}

/// The file's page size (a WAL frame holds one page).
pub fn page_size(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA page_size", [], |r| r.get(0))
}

/// Says, once at start, when the file's pages are not [`PAGE_SIZE`] (a file
/// made before the hub set it): the hub runs as well, with more WAL per
/// commit; the README tells how to convert it.
pub fn note_page_size(conn: &Connection) {
    if let Ok(size) = page_size(conn)
        && size != i64::from(PAGE_SIZE)
    {
        tracing::info!(
            page_size = size,
            "the SQLite file keeps its {size}-byte pages; a new file gets {PAGE_SIZE} \
             (fewer WAL bytes per commit; README, \"Pages of 2 KiB\", tells how to convert)"
        );
    }
}

/// Prepared statements kept per connection: more than the hub has.
const STATEMENT_CACHE: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    fn page_size_of(path: &std::path::Path) -> i64 {
        page_size(&Connection::open(path).expect("open")).expect("page size")
    }

    /// A database the hub starts on a new file (migrations first, through
    /// sqlx) has the hub's page size and is in WAL mode.
    #[tokio::test]
    async fn a_new_database_gets_the_hubs_page_size() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("new").join("hub.db");
        let settings = crate::config::DatabaseSettings {
            url: secrecy::SecretString::from(format!("sqlite://{}", path.display())),
            ..Default::default()
        };
        crate::db::migrate_database(&settings)
            .await
            .expect("migrations");
        assert_eq!(page_size_of(&path), i64::from(PAGE_SIZE));
        let mode: String = Connection::open(&path)
            .expect("open")
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("journal mode");
        assert_eq!(mode, "wal");
    }

    /// An empty file (made by an installer, say) gets the hub's page size.
    #[test]
    fn an_empty_file_gets_the_hubs_page_size() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("empty.db");
        std::fs::write(&path, b"").expect("an empty file");
        create_if_missing(path.to_str().expect("utf-8 path")).expect("create");
        assert_eq!(page_size_of(&path), i64::from(PAGE_SIZE));
    }

    /// A file that exists keeps its page size and its rows.
    #[test]
    fn an_existing_file_keeps_its_page_size() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("old.db");
        let old = Connection::open(&path).expect("open");
        old.execute_batch(
            "PRAGMA page_size = 4096; CREATE TABLE t (n integer); INSERT INTO t VALUES (7);",
        )
        .expect("an old database");
        drop(old);
        create_if_missing(path.to_str().expect("utf-8 path")).expect("create");
        assert_eq!(page_size_of(&path), 4096);
        let n: i64 = Connection::open(&path)
            .expect("open")
            .query_row("SELECT n FROM t", [], |r| r.get(0))
            .expect("its row");
        assert_eq!(n, 7);
    }
}

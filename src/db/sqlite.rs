//! sea-orm statements run on a rusqlite connection in the calling thread.
//!
//! sea-orm builds the SQL and its values; this module binds them, runs the
//! statement on a connection the caller holds (no hand-off to a worker
//! thread), and gives back sea-orm's own result types, so every store
//! function is the same code on SQLite and PostgreSQL. Rows come back as
//! sea-orm proxy rows (column name -> value): read columns by name.

use std::sync::{Mutex, MutexGuard};

use rusqlite::types::{ToSqlOutput, Value as Sql, ValueRef};
use rusqlite::{Connection, OpenFlags};
use sea_orm::sea_query::Value;
use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, ExecResult, ProxyExecResult, ProxyRow, QueryResult,
    RuntimeErr, Statement,
};

use super::stats::Stats;

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
/// pages: 5.0 ms, but ×1.12 CPU per confirm, as B-trees grow deeper;
/// docs/benchmarks.md). A file that exists keeps its own.
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

/// Says, once at start, when the file's pages are not [`PAGE_SIZE`] (a file
/// made before the hub set it): the hub runs as well, with more WAL per
/// commit; the README tells how to convert it.
pub fn note_page_size(conn: &Connection) {
    if let Ok(size) = conn.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
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

/// A connection that sea-orm can run statements on, in the calling thread.
pub struct SqliteConn {
    conn: Mutex<Connection>,
    stats: Stats,
}

impl SqliteConn {
    /// Wraps `conn`; statements it runs are counted in `stats`.
    pub fn new(conn: Connection, stats: Stats) -> Self {
        Self {
            conn: Mutex::new(conn),
            stats,
        }
    }

    /// The connection, for the writer's BEGIN / SAVEPOINT / COMMIT.
    pub fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held leaves nothing half-done in the
        // connection itself (SQLite's own state is consistent): keep going.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives the connection back (a pool of readers keeps it).
    pub fn into_inner(self) -> Connection {
        self.conn.into_inner().unwrap_or_else(|p| p.into_inner())
    }

    pub fn execute(&self, stmt: &Statement) -> Result<ExecResult, DbErr> {
        self.stats.statement();
        execute(&self.lock(), stmt)
    }

    pub fn query(&self, stmt: &Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.stats.statement();
        query(&self.lock(), stmt, usize::MAX)
    }

    pub fn query_one(&self, stmt: &Statement) -> Result<Option<QueryResult>, DbErr> {
        self.stats.statement();
        Ok(query(&self.lock(), stmt, 1)?.pop())
    }

    pub fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.stats.statement();
        let conn = self.lock();
        conn.execute_batch(sql).map_err(exec_err)?;
        Ok(ProxyExecResult::new(conn.last_insert_rowid() as u64, conn.changes()).into())
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for SqliteConn {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Sqlite
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.execute(&stmt)
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        SqliteConn::execute_unprepared(self, sql)
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.query_one(&stmt)
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.query(&stmt)
    }
}

/// Runs a statement that returns no rows.
pub fn execute(conn: &Connection, stmt: &Statement) -> Result<ExecResult, DbErr> {
    let mut prepared = conn.prepare_cached(&stmt.sql).map_err(exec_err)?;
    let values = params(stmt)?;
    let changed = prepared
        .execute(rusqlite::params_from_iter(values.iter()))
        .map_err(exec_err)?;
    Ok(ProxyExecResult::new(conn.last_insert_rowid() as u64, changed as u64).into())
}

/// Runs a query and reads at most `limit` rows.
pub fn query(conn: &Connection, stmt: &Statement, limit: usize) -> Result<Vec<QueryResult>, DbErr> {
    let mut prepared = conn.prepare_cached(&stmt.sql).map_err(query_err)?;
    let columns: Vec<String> = prepared.column_names().map(str::to_owned).collect();
    let values = params(stmt)?;
    let mut rows = prepared
        .query(rusqlite::params_from_iter(values.iter()))
        .map_err(query_err)?;
    let mut out = Vec::new();
    while out.len() < limit {
        let Some(row) = rows.next().map_err(query_err)? else {
            break;
        };
        let mut map = std::collections::BTreeMap::new();
        for (i, name) in columns.iter().enumerate() {
            let v = row.get_ref(i).map_err(query_err)?;
            map.insert(name.clone(), value_of(v)?);
        }
        out.push(ProxyRow::new(map).into());
    }
    Ok(out)
}

/// A stored value as sea-orm expects it. SQLite keeps every integer in 64
/// bits, and so does every integer column of the hub (`i64` fields).
fn value_of(v: ValueRef<'_>) -> Result<Value, DbErr> {
    Ok(match v {
        // Any typed null reads as `None` for an `Option<_>` field.
        ValueRef::Null => Value::String(None),
        ValueRef::Integer(i) => Value::BigInt(Some(i)),
        ValueRef::Real(f) => Value::Double(Some(f)),
        ValueRef::Text(t) => Value::String(Some(
            std::str::from_utf8(t)
                .map_err(|e| DbErr::Type(format!("text that is not UTF-8: {e}")))?
                .to_owned(),
        )),
        ValueRef::Blob(b) => Value::Bytes(Some(b.to_vec())),
    })
}

/// The statement's values as SQLite values.
fn params(stmt: &Statement) -> Result<Vec<ToSqlOutput<'_>>, DbErr> {
    let Some(values) = &stmt.values else {
        return Ok(Vec::new());
    };
    values.0.iter().map(param).collect()
}

fn param(v: &Value) -> Result<ToSqlOutput<'_>, DbErr> {
    use ToSqlOutput::{Borrowed, Owned};
    Ok(match v {
        Value::Bool(b) => Owned(b.map_or(Sql::Null, |b| Sql::Integer(b.into()))),
        Value::TinyInt(i) => Owned(i.map_or(Sql::Null, |i| Sql::Integer(i.into()))),
        Value::SmallInt(i) => Owned(i.map_or(Sql::Null, |i| Sql::Integer(i.into()))),
        Value::Int(i) => Owned(i.map_or(Sql::Null, |i| Sql::Integer(i.into()))),
        Value::BigInt(i) => Owned(i.map_or(Sql::Null, Sql::Integer)),
        Value::TinyUnsigned(i) => Owned(i.map_or(Sql::Null, |i| Sql::Integer(i.into()))),
        Value::SmallUnsigned(i) => Owned(i.map_or(Sql::Null, |i| Sql::Integer(i.into()))),
        Value::Unsigned(i) => Owned(i.map_or(Sql::Null, |i| Sql::Integer(i.into()))),
        Value::BigUnsigned(i) => Owned(match i {
            None => Sql::Null,
            Some(i) => Sql::Integer(
                i64::try_from(*i).map_err(|_| DbErr::Type(format!("{i} is too large")))?,
            ),
        }),
        Value::Float(f) => Owned(f.map_or(Sql::Null, |f| Sql::Real(f.into()))),
        Value::Double(f) => Owned(f.map_or(Sql::Null, Sql::Real)),
        Value::String(s) => match s {
            Some(s) => Borrowed(ValueRef::Text(s.as_bytes())),
            None => Owned(Sql::Null),
        },
        Value::Char(c) => Owned(c.map_or(Sql::Null, |c| Sql::Text(c.to_string()))),
        Value::Bytes(b) => match b {
            Some(b) => Borrowed(ValueRef::Blob(b)),
            None => Owned(Sql::Null),
        },
        Value::Json(j) => Owned(j.as_ref().map_or(Sql::Null, |j| Sql::Text(j.to_string()))),
        other => {
            return Err(DbErr::Type(format!(
                "a value of this type cannot be stored in SQLite here: {other:?}"
            )));
        }
    })
}

/// SQLite's primary result codes that mean "cannot serve now" rather than
/// "the statement is wrong": BUSY, LOCKED, IOERR, FULL, CANTOPEN, PROTOCOL.
fn is_unavailable_code(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code().is_some_and(|c| {
        use rusqlite::ErrorCode as E;
        matches!(
            c,
            E::DatabaseBusy
                | E::DatabaseLocked
                | E::SystemIoFailure
                | E::DiskFull
                | E::CannotOpen
                | E::FileLockingProtocolFailed
        )
    })
}

/// A rusqlite error as sea-orm's: one the database cannot serve now is a
/// connection error (so `db::is_unavailable` says 503).
fn err_with(e: rusqlite::Error, wrap: fn(RuntimeErr) -> DbErr) -> DbErr {
    let runtime = RuntimeErr::Internal(format!("sqlite: {e}"));
    if is_unavailable_code(&e) {
        DbErr::Conn(runtime)
    } else {
        wrap(runtime)
    }
}

pub(super) fn exec_err(e: rusqlite::Error) -> DbErr {
    err_with(e, DbErr::Exec)
}

pub(super) fn query_err(e: rusqlite::Error) -> DbErr {
    err_with(e, DbErr::Query)
}

pub(super) fn conn_err(e: rusqlite::Error) -> DbErr {
    err_with(e, DbErr::Conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query, SqliteQueryBuilder};

    fn conn() -> SqliteConn {
        let c = Connection::open_in_memory().expect("in-memory database");
        c.execute_batch(
            "CREATE TABLE t (id text PRIMARY KEY, n integer NOT NULL, small integer, b blob)",
        )
        .expect("table");
        SqliteConn::new(c, Stats::default())
    }

    fn stmt(sql: String, values: sea_orm::sea_query::Values) -> Statement {
        Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)
    }

    #[test]
    fn values_go_in_and_come_back_with_their_types() {
        let c = conn();
        let (sql, values) = Query::insert()
            .into_table(Alias::new("t"))
            .columns([
                Alias::new("id"),
                Alias::new("n"),
                Alias::new("small"),
                Alias::new("b"),
            ])
            .values_panic([
                "a".into(),
                (i64::MAX).into(),
                7i64.into(),
                vec![0u8, 1, 2].into(),
            ])
            .build(SqliteQueryBuilder);
        let done = c.execute(&stmt(sql, values)).expect("insert");
        assert_eq!(done.rows_affected(), 1);
        let (sql, values) = Query::select()
            .columns([
                Alias::new("id"),
                Alias::new("n"),
                Alias::new("small"),
                Alias::new("b"),
            ])
            .from(Alias::new("t"))
            .and_where(Expr::col(Alias::new("id")).eq("a"))
            .build(SqliteQueryBuilder);
        let row = c
            .query_one(&stmt(sql, values))
            .expect("query")
            .expect("a row");
        assert_eq!(row.try_get::<String>("", "id").expect("id"), "a");
        assert_eq!(row.try_get::<i64>("", "n").expect("n"), i64::MAX);
        assert_eq!(row.try_get::<i64>("", "small").expect("small"), 7);
        assert_eq!(row.try_get::<Vec<u8>>("", "b").expect("b"), vec![0, 1, 2]);
        assert_eq!(c.stats.statements(), 2);
    }

    #[test]
    fn nulls_read_as_none_and_missing_rows_as_nothing() {
        let c = conn();
        c.execute_unprepared("INSERT INTO t (id, n) VALUES ('x', 1)")
            .expect("insert");
        let row = c
            .query_one(&Statement::from_string(
                DbBackend::Sqlite,
                "SELECT small, b FROM t WHERE id = 'x'",
            ))
            .expect("query")
            .expect("a row");
        assert_eq!(
            row.try_get::<Option<i64>>("", "small").expect("small"),
            None
        );
        assert_eq!(row.try_get::<Option<Vec<u8>>>("", "b").expect("b"), None);
        let none = c
            .query_one(&Statement::from_string(
                DbBackend::Sqlite,
                "SELECT id FROM t WHERE id = 'nobody'",
            ))
            .expect("query");
        assert!(none.is_none());
    }

    fn page_size(path: &std::path::Path) -> i64 {
        Connection::open(path)
            .expect("open")
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .expect("page size")
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
        assert_eq!(page_size(&path), i64::from(PAGE_SIZE));
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
        assert_eq!(page_size(&path), i64::from(PAGE_SIZE));
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
        assert_eq!(page_size(&path), 4096);
        let n: i64 = Connection::open(&path)
            .expect("open")
            .query_row("SELECT n FROM t", [], |r| r.get(0))
            .expect("its row");
        assert_eq!(n, 7);
    }

    #[test]
    fn a_wrong_statement_is_an_error_not_unavailable() {
        let c = conn();
        let err = c
            .execute(&Statement::from_string(
                DbBackend::Sqlite,
                "INSERT INTO nowhere VALUES (1)",
            ))
            .expect_err("no such table");
        assert!(matches!(err, DbErr::Exec(_)), "{err:?}");
        assert!(!super::super::is_unavailable(&err));
    }
}

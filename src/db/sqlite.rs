//! sea-orm statements run on a rusqlite connection in the calling thread.
//!
//! sea-orm builds the SQL and its values; this module binds them, runs the
//! statement on a connection the caller holds (no hand-off to a worker
//! thread), and gives back sea-orm's own result types, so every store
//! function is the same code on SQLite and PostgreSQL. Rows come back as
//! sea-orm proxy rows (column name -> value): read columns by name.

use std::sync::{Mutex, MutexGuard};

use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, Value as Sql, ValueRef};
use sea_orm::sea_query::Value;
use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, ExecResult, ProxyExecResult, ProxyRow, QueryResult,
    RuntimeErr, Statement,
};

use super::stats::Stats;

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

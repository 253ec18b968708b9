//! What stores run their statements on: a [`Handle`] (a PostgreSQL pool,
//! SQLite's reading connections, or SQLite's writer) and, inside a write
//! transaction, a [`Tx`]. Both are sea-orm connections, so a store function
//! is one piece of code for both databases.

use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, Statement, TransactionTrait,
};

use super::file::{OpenOptions, open};
use super::sqlite::SqliteConn;
use super::stats::Stats;
use super::writer::{JobFuture, Writer};

/// One of the hub's handles on its database.
#[derive(Clone, Debug)]
pub struct Handle {
    kind: Kind,
    stats: Stats,
}

#[derive(Clone, Debug)]
enum Kind {
    /// PostgreSQL: sea-orm's pool.
    Pool(DatabaseConnection),
    /// SQLite reads: a connection of the calling thread's own.
    Readers(Arc<Readers>),
    /// SQLite writes: jobs for the writer thread.
    Writer(Writer),
}

/// A write transaction, as a job sees it.
pub enum Tx<'a> {
    /// On SQLite's writer thread, inside its transaction.
    Sqlite(&'a SqliteConn),
    /// A PostgreSQL transaction.
    Postgres(&'a DatabaseTransaction, &'a Stats),
}

impl Handle {
    pub(super) fn pool(pool: DatabaseConnection, stats: Stats) -> Self {
        Self {
            kind: Kind::Pool(pool),
            stats,
        }
    }

    pub(super) fn readers(readers: Arc<Readers>, stats: Stats) -> Self {
        Self {
            kind: Kind::Readers(readers),
            stats,
        }
    }

    pub(super) fn writer(writer: Writer, stats: Stats) -> Self {
        Self {
            kind: Kind::Writer(writer),
            stats,
        }
    }

    /// The PostgreSQL pool, when this is one.
    pub(super) fn pool_ref(&self) -> Option<&DatabaseConnection> {
        match &self.kind {
            Kind::Pool(pool) => Some(pool),
            _ => None,
        }
    }

    /// Runs `job` in one write transaction (see `Db::transaction`).
    pub(super) async fn transaction<T, E, F>(&self, job: F) -> Result<T, E>
    where
        F: for<'c> FnOnce(&'c Tx<'c>) -> JobFuture<'c, Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: From<DbErr> + Send + 'static,
    {
        match &self.kind {
            Kind::Writer(writer) => writer.run(job).await,
            Kind::Pool(pool) => {
                let txn = pool.begin().await?;
                let result = job(&Tx::Postgres(&txn, &self.stats)).await;
                match result {
                    Ok(v) => {
                        txn.commit().await?;
                        self.stats.commit(1);
                        Ok(v)
                    }
                    Err(e) => {
                        if let Err(rollback) = txn.rollback().await {
                            tracing::warn!(error = %rollback, "rollback failed");
                        }
                        Err(e)
                    }
                }
            }
            Kind::Readers(_) => Err(E::from(DbErr::Custom(
                "a write transaction on the reading handle".into(),
            ))),
        }
    }
}

/// One statement through the writer thread, as a job of its own.
async fn through_writer<T: Send + 'static>(
    writer: &Writer,
    stmt: Statement,
    run: fn(&SqliteConn, &Statement) -> Result<T, DbErr>,
) -> Result<T, DbErr> {
    writer
        .run(move |tx| {
            Box::pin(async move {
                match tx {
                    Tx::Sqlite(conn) => run(conn, &stmt),
                    Tx::Postgres(..) => {
                        Err(DbErr::Custom("the SQLite writer on PostgreSQL".into()))
                    }
                }
            })
        })
        .await
}

#[async_trait::async_trait]
impl ConnectionTrait for Handle {
    fn get_database_backend(&self) -> DbBackend {
        match &self.kind {
            Kind::Pool(pool) => pool.get_database_backend(),
            _ => DbBackend::Sqlite,
        }
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match &self.kind {
            Kind::Pool(pool) => {
                self.stats.statement();
                pool.execute_raw(stmt).await
            }
            Kind::Readers(readers) => readers.with(|c| c.execute(&stmt)),
            Kind::Writer(writer) => through_writer(writer, stmt, SqliteConn::execute).await,
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match &self.kind {
            Kind::Pool(pool) => {
                self.stats.statement();
                pool.execute_unprepared(sql).await
            }
            Kind::Readers(readers) => readers.with(|c| c.execute_unprepared(sql)),
            Kind::Writer(writer) => {
                let sql = sql.to_owned();
                writer
                    .run(move |tx| Box::pin(async move { tx.execute_unprepared(&sql).await }))
                    .await
            }
        }
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match &self.kind {
            Kind::Pool(pool) => {
                self.stats.statement();
                pool.query_one_raw(stmt).await
            }
            Kind::Readers(readers) => readers.with(|c| c.query_one(&stmt)),
            Kind::Writer(writer) => through_writer(writer, stmt, SqliteConn::query_one).await,
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match &self.kind {
            Kind::Pool(pool) => {
                self.stats.statement();
                pool.query_all_raw(stmt).await
            }
            Kind::Readers(readers) => readers.with(|c| c.query(&stmt)),
            Kind::Writer(writer) => through_writer(writer, stmt, SqliteConn::query).await,
        }
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Tx<'_> {
    fn get_database_backend(&self) -> DbBackend {
        match self {
            Tx::Sqlite(_) => DbBackend::Sqlite,
            Tx::Postgres(txn, _) => txn.get_database_backend(),
        }
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match self {
            Tx::Sqlite(conn) => conn.execute(&stmt),
            Tx::Postgres(txn, stats) => {
                stats.statement();
                txn.execute_raw(stmt).await
            }
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match self {
            Tx::Sqlite(conn) => conn.execute_unprepared(sql),
            Tx::Postgres(txn, stats) => {
                stats.statement();
                txn.execute_unprepared(sql).await
            }
        }
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match self {
            Tx::Sqlite(conn) => conn.query_one(&stmt),
            Tx::Postgres(txn, stats) => {
                stats.statement();
                txn.query_one_raw(stmt).await
            }
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match self {
            Tx::Sqlite(conn) => conn.query(&stmt),
            Tx::Postgres(txn, stats) => {
                stats.statement();
                txn.query_all_raw(stmt).await
            }
        }
    }
}

/// SQLite's reading connections. A read takes an idle one (or opens one),
/// runs in the calling thread and puts it back, so there are about as many
/// as threads that read at once.
#[derive(Debug)]
pub struct Readers {
    path: String,
    opts: OpenOptions,
    stats: Stats,
    idle: Mutex<Vec<Connection>>,
}

/// Idle reading connections kept at most.
const IDLE_READERS: usize = 16;

impl Readers {
    pub(super) fn new(path: String, opts: OpenOptions, stats: Stats) -> Self {
        Self {
            path,
            opts,
            stats,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn with<T>(&self, read: impl FnOnce(&SqliteConn) -> Result<T, DbErr>) -> Result<T, DbErr> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open(&self.path, self.opts)?,
        };
        let conn = SqliteConn::new(conn, self.stats.clone());
        let result = read(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(conn.into_inner());
        }
        result
    }
}

/// Either a handle or a transaction, for code that runs in a transaction
/// on one database and on a handle on the other (`crate::flight`).
pub enum Conn<'a> {
    Handle(&'a Handle),
    Tx(Tx<'a>),
}

#[async_trait::async_trait]
impl ConnectionTrait for Conn<'_> {
    fn get_database_backend(&self) -> DbBackend {
        match self {
            Conn::Handle(h) => h.get_database_backend(),
            Conn::Tx(t) => t.get_database_backend(),
        }
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match self {
            Conn::Handle(h) => h.execute_raw(stmt).await,
            Conn::Tx(t) => t.execute_raw(stmt).await,
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match self {
            Conn::Handle(h) => h.execute_unprepared(sql).await,
            Conn::Tx(t) => t.execute_unprepared(sql).await,
        }
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match self {
            Conn::Handle(h) => h.query_one_raw(stmt).await,
            Conn::Tx(t) => t.query_one_raw(stmt).await,
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match self {
            Conn::Handle(h) => h.query_all_raw(stmt).await,
            Conn::Tx(t) => t.query_all_raw(stmt).await,
        }
    }
}

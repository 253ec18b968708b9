//! Cluster-wide single flight: one holder per key at a time across every
//! node, for the WeChat calls that must happen once (a scene's code image,
//! an app's access token). In a process an async lock per key queues the
//! callers; on PostgreSQL the holder then also takes a transaction-scoped
//! advisory lock on a hash of the key (`pg_advisory_xact_lock`) on the write
//! pool, re-checks the cache in that transaction and stores its result there,
//! so the next holder (on any node) finds it. A node that dies mid-flight
//! releases the lock with its connection. On SQLite (one node) the
//! in-process lock is the whole of it. Every wait is bounded: a caller that
//! does not get its turn in time gets [`FlightError::Busy`] (503).

use std::time::{Duration, Instant};

use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseTransaction, DbErr, RuntimeErr, Statement,
    TransactionTrait,
};

use crate::db::{Conn, Db, Tx};
use crate::locks::{KeyGuard, KeyedLocks};

/// What a flight is for; each has its own advisory-lock namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `getwxacodeunlimit`, keyed by scene id.
    CodeImage,
    /// `stable_token`, keyed by app id.
    AccessToken,
}

impl Purpose {
    /// First key of the two-key advisory lock (the one-key space, used for
    /// migrations, does not overlap it).
    fn namespace(self) -> i32 {
        match self {
            Self::CodeImage => 0x5ca9_0001,
            Self::AccessToken => 0x5ca9_0002,
        }
    }
}

/// How long a caller waits for a holder that calls WeChat: two calls and a
/// second (a holder may refresh its token and retry once).
pub fn wait_for_wechat(call_timeout: Duration) -> Duration {
    call_timeout * 2 + Duration::from_secs(1)
}

/// One holder per key, cluster-wide on PostgreSQL.
pub struct SingleFlight {
    purpose: Purpose,
    local: KeyedLocks,
    db: Db,
    cluster: bool,
    wait: Duration,
}

/// A caller's turn; reads and writes through it see and are seen by the next
/// holder. Dropping it without [`Flight::land`] discards what was written.
pub struct Flight<'a> {
    // Dropped first: the transaction ends before the next local caller starts.
    txn: Option<DatabaseTransaction>,
    _local: KeyGuard,
    db: &'a Db,
}

/// The turn did not come.
#[derive(Debug, thiserror::Error)]
pub enum FlightError {
    /// Another caller held the key for longer than the wait.
    #[error("another request held {0:?} for longer than {1:?}")]
    Busy(Purpose, Duration),
    /// The lock could not be taken.
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

impl SingleFlight {
    /// Flights for `purpose` on `db`; callers wait at most `wait` for their turn.
    pub fn new(purpose: Purpose, db: Db, wait: Duration) -> Self {
        let cluster = db.postgres().is_some();
        Self {
            purpose,
            local: KeyedLocks::default(),
            db,
            cluster,
            wait,
        }
    }

    /// Whether flights span nodes (PostgreSQL): a holder then reads and
    /// writes in a transaction of its own.
    pub fn spans_nodes(&self) -> bool {
        self.cluster
    }

    /// Waits (at most the configured wait) for the turn of `key`.
    pub async fn enter(&self, key: &str) -> Result<Flight<'_>, FlightError> {
        let started = Instant::now();
        let busy = || FlightError::Busy(self.purpose, self.wait);
        let local = tokio::time::timeout(self.wait, self.local.lock(key))
            .await
            .map_err(|_| busy())?;
        if !self.cluster {
            return Ok(Flight {
                _local: local,
                txn: None,
                db: &self.db,
            });
        }
        let left = self
            .wait
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1));
        let Some(pool) = self.db.postgres() else {
            return Err(FlightError::Db(DbErr::Custom(
                "a cluster flight without PostgreSQL".into(),
            )));
        };
        let txn = pool.begin().await?;
        txn.execute_unprepared(&format!("SET LOCAL lock_timeout = {}", left.as_millis()))
            .await?;
        let lock = Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            [self.purpose.namespace().into(), key.into()],
        );
        match txn.execute_raw(lock).await {
            Ok(_) => Ok(Flight {
                _local: local,
                txn: Some(txn),
                db: &self.db,
            }),
            Err(e) if is_lock_timeout(&e) => Err(busy()),
            Err(e) => Err(e.into()),
        }
    }
}

/// PostgreSQL's `lock_not_available` (55P03): `lock_timeout` ran out.
fn is_lock_timeout(err: &DbErr) -> bool {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|code| code == "55P03"),
        _ => false,
    }
}

impl Flight<'_> {
    /// Where reads inside the flight go: the lock's transaction on
    /// PostgreSQL (it sees what the previous holder committed), else the
    /// reading handle.
    pub fn reader(&self) -> Conn<'_> {
        match &self.txn {
            Some(txn) => Conn::Tx(Tx::Postgres(txn, self.db.stats())),
            None => Conn::Handle(self.db.read()),
        }
    }

    /// Where writes inside the flight go: the lock's transaction on
    /// PostgreSQL, else the writing handle.
    pub fn writer(&self) -> Conn<'_> {
        match &self.txn {
            Some(txn) => Conn::Tx(Tx::Postgres(txn, self.db.stats())),
            None => Conn::Handle(self.db.write()),
        }
    }

    /// Ends the turn: commits what was written and releases the lock.
    pub async fn land(self) -> Result<(), DbErr> {
        match self.txn {
            Some(txn) => txn.commit().await,
            None => Ok(()),
        }
    }
}

//! The one writer of a SQLite file: a thread that owns the writing
//! connection and runs each request's whole write transaction as one job.
//!
//! Jobs queued together share one `BEGIN IMMEDIATE … COMMIT` (group
//! commit), each inside a savepoint of its own so that one job's failure
//! undoes only its writes. A job's answer is sent after the commit that
//! holds it, so an answered request survives `kill -9`. Requests queue in
//! the hub, in order, instead of napping in SQLite's busy handler.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::task::{Context, Poll, Waker};

use sea_orm::{DbErr, RuntimeErr};

use super::Tx;
use super::file::page_size;
use super::sqlite::{SqliteConn, exec_err};
use super::stats::Stats;

/// A job's future: it borrows the transaction it writes through.
pub type JobFuture<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;

/// What the writer thread runs: the job itself (or, when its transaction or
/// savepoint could not begin, the reason), then, after the commit, its
/// answer.
type Job = Box<dyn for<'c> FnOnce(Result<&'c Tx<'c>, DbErr>) -> Finish + Send>;

struct Finish {
    /// Whether the job's writes stay (else its savepoint is rolled back).
    ok: bool,
    /// Sends the answer, given how the commit went.
    answer: Box<dyn FnOnce(Result<(), DbErr>) + Send>,
}

/// Requests waiting for the writer at most; past it a write is refused
/// as unavailable (503) instead of queueing without bound.
const QUEUE: usize = 1024;

/// Jobs committed together at most.
const BATCH: usize = 64;

/// The handle requests send their write jobs through.
#[derive(Clone, Debug)]
pub struct Writer {
    queue: SyncSender<Job>,
}

impl std::fmt::Debug for Finish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Finish").field("ok", &self.ok).finish()
    }
}

fn unavailable(why: &str) -> DbErr {
    DbErr::Conn(RuntimeErr::Internal(why.to_owned()))
}

impl Writer {
    /// Starts the writer thread on `conn`, and beside it the thread that
    /// checkpoints the WAL on `checkpointer` (a connection of its own), so
    /// that copying pages back into the database and its fsync never hold
    /// up a commit. Both threads end when every handle is gone.
    pub fn start(
        conn: SqliteConn,
        checkpointer: rusqlite::Connection,
        stats: Stats,
        wal_limit_bytes: i64,
    ) -> Result<Self, DbErr> {
        let (queue, jobs) = sync_channel::<Job>(QUEUE);
        let (wrote, written) = sync_channel::<()>(1);
        let (finish_asked, finish) = sync_channel::<()>(1);
        conn.lock()
            .execute_batch(&format!(
                "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {wal_limit_bytes};"
            ))
            .map_err(exec_err)?;
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(&conn, &jobs, &wrote, &finish, &stats))
            .map_err(|e| unavailable(&format!("cannot start the SQLite writer: {e}")))?;
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(&checkpointer, &written, &finish_asked, wal_limit_bytes))
            .map_err(|e| unavailable(&format!("cannot start the SQLite checkpointer: {e}")))?;
        Ok(Self { queue })
    }

    /// Runs `job` in a write transaction on the writer thread and answers
    /// once it is committed. The job must only use the database: it runs
    /// to completion in one poll.
    pub async fn run<T, E, F>(&self, job: F) -> Result<T, E>
    where
        F: for<'c> FnOnce(&'c Tx<'c>) -> JobFuture<'c, Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: From<DbErr> + Send + 'static,
    {
        let (send, recv) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |tx| {
            let result = match tx {
                Err(e) => Err(E::from(e)),
                Ok(tx) => catch_unwind(AssertUnwindSafe(|| poll_once(job(tx))))
                    .unwrap_or_else(|_| {
                        Some(Err(E::from(DbErr::Custom("a write job panicked".into()))))
                    })
                    .unwrap_or_else(|| {
                        Err(E::from(DbErr::Custom(
                            "a write job waited on something other than the database".into(),
                        )))
                    }),
            };
            let ok = result.is_ok();
            Finish {
                ok,
                answer: Box::new(move |committed| {
                    let answer = match committed {
                        Err(e) if ok => Err(E::from(e)),
                        _ => result,
                    };
                    // The caller may have gone (its request was dropped):
                    // what it wrote stays written.
                    let _ = send.send(answer);
                }),
            }
        });
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(E::from(unavailable("too many writes are waiting")));
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(E::from(unavailable("the SQLite writer has stopped")));
            }
        }
        recv.await
            .unwrap_or_else(|_| Err(E::from(unavailable("the SQLite writer has stopped"))))
    }
}

/// Polls a future once: a job that only uses the database is done by then.
fn poll_once<F: Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

fn write_loop(
    conn: &SqliteConn,
    jobs: &Receiver<Job>,
    wrote: &SyncSender<()>,
    finish: &Receiver<()>,
    stats: &Stats,
) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(conn, batch, stats);
        if finish.try_recv().is_ok() {
            finish_checkpoint(conn);
        }
        // The checkpointer has work; one wake-up waiting is enough.
        let _ = wrote.try_send(());
    }
}

/// How long the checkpointer lets commits gather before copying them back.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// The WAL's size past which the writer finishes a checkpoint itself (see
/// [`checkpoint_loop`]), and the size the WAL file is cut back to when it
/// starts over: 128 MiB, about 2 s of 1,000 confirms a second with 2 KiB
/// pages (57 KB of WAL each). Each time the WAL passes it the writer stops
/// for a checkpoint's fsyncs; against 64 MiB, 128 MiB gave a lower p99 at
/// 1,000 confirms/s in 8 runs out of 8 (medians 5.4 and 6.0 ms against 8.1
/// and 6.2), for the same CPU (docs/benchmarks.md). Much longer WALs cost
/// every read more: a 1 GiB limit with 4 KiB pages took ×1.12–1.33 CPU per
/// confirm.
pub const WAL_LIMIT_BYTES: i64 = 128 << 20;

/// What `PRAGMA wal_checkpoint` reports: frames in the WAL, frames copied
/// back into the database.
fn checkpoint(conn: &rusqlite::Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    })
}

/// Copies committed pages from the WAL back into the database (PASSIVE: it
/// never waits for, nor blocks, the writer or a reader), at most every
/// [`CHECKPOINT_EVERY`] while there are commits, never when idle.
///
/// The WAL starts over from its beginning only when a write transaction
/// begins with every frame copied back; while commits never stop, one
/// always lands during the copy, and the WAL would grow without bound. So
/// once it holds more than `limit` bytes ([`WAL_LIMIT_BYTES`]), the checkpointer asks the
/// writer to copy the few frames left itself, between two batches: the
/// writer's next transaction then starts the WAL over.
fn checkpoint_loop(
    conn: &rusqlite::Connection,
    written: &Receiver<()>,
    finish: &SyncSender<()>,
    limit: i64,
) {
    // A WAL frame holds one page; a file in WAL mode keeps its page size.
    let page = page_size(conn).unwrap_or(4096);
    while written.recv().is_ok() {
        std::thread::sleep(CHECKPOINT_EVERY);
        let _ = written.try_recv();
        match checkpoint(conn) {
            Ok((frames, _)) if frames.saturating_mul(page) > limit => {
                let _ = finish.try_send(());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; the next one catches up"),
        }
    }
}

/// The writer's part of a checkpoint: between batches, with no write
/// pending, it copies back what the checkpointer could not.
fn finish_checkpoint(conn: &SqliteConn) {
    match checkpoint(&conn.lock()) {
        Ok((frames, copied)) if frames > copied => {
            tracing::debug!(
                frames,
                copied,
                "a reader kept WAL frames from being copied back"
            );
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; the next one catches up"),
    }
}

/// Runs the writer's own statements (BEGIN, SAVEPOINT, COMMIT …), each
/// prepared once and kept in the connection's statement cache.
fn sql(conn: &SqliteConn, statements: &[&str]) -> Result<(), DbErr> {
    let conn = conn.lock();
    for text in statements {
        conn.prepare_cached(text)
            .and_then(|mut s| s.execute([]))
            .map_err(exec_err)?;
    }
    Ok(())
}

/// Runs `batch` in one transaction and answers every job after the commit.
fn commit_batch(conn: &SqliteConn, batch: Vec<Job>, stats: &Stats) {
    if let Err(e) = sql(conn, &["BEGIN IMMEDIATE"]) {
        tracing::warn!(error = %e, "the SQLite writer could not begin a transaction");
        for job in batch {
            let f = job(Err(e.clone()));
            (f.answer)(Ok(()));
        }
        return;
    }
    let tx = Tx::Sqlite(conn);
    let alone = batch.len() == 1;
    let mut finished = Vec::with_capacity(batch.len());
    for job in batch {
        if !alone && let Err(e) = sql(conn, &["SAVEPOINT job"]) {
            finished.push(job(Err(e)));
            continue;
        }
        let finish = job(Ok(&tx));
        if !alone {
            let end = if finish.ok {
                &["RELEASE job"][..]
            } else {
                &["ROLLBACK TO job", "RELEASE job"][..]
            };
            if let Err(e) = sql(conn, end) {
                tracing::warn!(error = %e, "the SQLite writer could not end a savepoint");
            }
        }
        finished.push(finish);
    }
    let committed = if alone && !finished[0].ok {
        sql(conn, &["ROLLBACK"])
    } else {
        let done = sql(conn, &["COMMIT"]);
        match &done {
            Ok(()) => stats.commit(finished.iter().filter(|f| f.ok).count()),
            Err(_) => {
                let _ = sql(conn, &["ROLLBACK"]);
            }
        }
        done
    };
    for f in finished {
        (f.answer)(committed.clone());
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::ConnectionTrait;

    use crate::config::DatabaseSettings;
    use crate::db::{Db, is_unavailable, open};

    async fn db_in(dir: &std::path::Path, busy_timeout_ms: u64) -> Db {
        let settings = DatabaseSettings {
            url: secrecy::SecretString::from(format!("sqlite://{}", dir.join("hub.db").display())),
            busy_timeout_ms,
            ..Default::default()
        };
        let db = open(&settings).await.expect("database");
        db.write()
            .execute_unprepared("CREATE TABLE IF NOT EXISTS t (n integer NOT NULL)")
            .await
            .expect("table");
        db
    }

    /// While commits never stop, the WAL still starts over: it stays near
    /// its limit instead of growing with every commit (without the
    /// writer's part of the checkpoint it grew past 10 MiB here).
    ///
    /// The run lasts a fixed 4 s (twenty checkpoint rounds), however many
    /// commits a slow machine manages in it: what is asserted is that the
    /// WAL's largest size is a fraction of what the run wrote, which holds
    /// whenever the WAL starts over at least every couple of seconds, and
    /// fails when it grows with every commit.
    #[tokio::test]
    async fn the_wal_stays_bounded_while_commits_never_stop() {
        use crate::db::file::{OpenOptions, open};
        use crate::db::handle::Handle;
        use crate::db::sqlite::SqliteConn;
        use crate::db::stats::Stats;
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("hub.db");
        let path = path.to_str().expect("utf-8 path");
        let opts = OpenOptions {
            busy_timeout: std::time::Duration::from_secs(5),
            cache_kib: 2048,
        };
        let stats = Stats::default();
        let limit = 128 << 10;
        let conn = SqliteConn::new(open(path, opts).expect("open"), stats.clone());
        let writer =
            super::Writer::start(conn, open(path, opts).expect("open"), stats.clone(), limit)
                .expect("writer");
        let db = Handle::writer(writer, stats);
        db.execute_unprepared("CREATE TABLE t (n integer NOT NULL, pad text NOT NULL)")
            .await
            .expect("table");
        let wal = dir.path().join("hub.db-wal");
        let started = std::time::Instant::now();
        let (mut largest, mut commits) = (0, 0u64);
        // Commits one after the other, at most about a thousand a second,
        // for 4 s, each adding at least one 4 KiB frame.
        for n in 0..8_000 {
            db.execute_unprepared(&format!(
                "INSERT INTO t (n, pad) VALUES ({n}, printf('%.300c', 'x'))"
            ))
            .await
            .expect("insert");
            commits += 1;
            if n % 20 == 0 {
                largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
            }
            if started.elapsed() > std::time::Duration::from_secs(4) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        // Growing, the WAL would hold every commit's frames.
        assert!(
            largest * 2 < commits * 4096,
            "the WAL grew to {largest} bytes over {commits} commits (limit {limit})"
        );
    }

    /// While another process holds the write lock, writes queue up to the
    /// bound and the rest are refused at once as unavailable (503), then
    /// the queued ones complete once the lock is gone.
    #[tokio::test]
    async fn a_full_queue_refuses_writes_at_once() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let db = db_in(dir.path(), 3_000).await;
        let locker = rusqlite::Connection::open(dir.path().join("hub.db")).expect("open");
        locker
            .execute_batch("BEGIN EXCLUSIVE")
            .expect("take the lock");
        let writes = (0..super::QUEUE + 200).map(|n| {
            let db = db.clone();
            tokio::spawn(async move {
                db.write()
                    .execute_unprepared(&format!("INSERT INTO t (n) VALUES ({n})"))
                    .await
            })
        });
        let writes: Vec<_> = writes.collect();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        locker.execute_batch("ROLLBACK").expect("release the lock");
        drop(locker);
        let (mut done, mut refused) = (0, 0);
        for w in writes {
            match w.await.expect("task") {
                Ok(_) => done += 1,
                Err(e) => {
                    assert!(is_unavailable(&e), "{e}");
                    refused += 1;
                }
            }
        }
        assert!(
            refused >= 200 - super::BATCH,
            "refused {refused}, done {done}"
        );
        assert!(
            done >= super::QUEUE - super::BATCH,
            "refused {refused}, done {done}"
        );
    }
}

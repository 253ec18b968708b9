//! The `webhook_events` table: the only code touching its rows. Events are
//! `pending` until a 2xx (`delivered`) or the end of their retry window
//! (`failed`). A node claims due events by moving `next_attempt_at` past the
//! attempt's lease in one UPDATE; on PostgreSQL the rows are picked with
//! `FOR UPDATE SKIP LOCKED`, so each event is sent by one node at a time.

use entity::webhook_events::{self, Column as C, Model};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, LockBehavior, LockType, Order, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait,
    QueryFilter, UpdateMany,
};

/// An event waiting for (another) attempt.
pub const PENDING: &str = "pending";
/// An event a receiver answered with a 2xx.
pub const DELIVERED: &str = "delivered";
/// An event given up after its retry window.
pub const FAILED: &str = "failed";

/// Queues an event (inside the caller's transaction) for its first attempt now.
pub async fn insert(
    conn: &impl ConnectionTrait,
    client_id: &str,
    event_type: &str,
    payload: &str,
    now: i64,
) -> Result<(), DbErr> {
    let row = webhook_events::ActiveModel {
        id: Set(format!("msg_{}", uuid::Uuid::new_v4().simple())),
        client_id: Set(client_id.to_owned()),
        event_type: Set(event_type.to_owned()),
        payload: Set(payload.to_owned()),
        state: Set(PENDING.into()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        queued_at: Set(now),
        created_at: Set(now),
        delivered_at: Set(None),
        last_status: Set(None),
        last_error: Set(None),
    };
    webhook_events::Entity::insert(row)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// How an attempt ended, as stored.
pub struct Outcome<'a> {
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// Why the attempt failed, when it did.
    pub error: Option<&'a str>,
}

/// Whether any event is due at `now` (a read, so an idle poll takes no
/// write lock).
pub async fn any_due(conn: &impl ConnectionTrait, now: i64) -> Result<bool, DbErr> {
    let query = Query::select()
        .expr(Expr::val(1))
        .from(webhook_events::Entity)
        .and_where(C::State.eq(PENDING))
        .and_where(C::NextAttemptAt.lte(now))
        .limit(1)
        .to_owned();
    Ok(conn.query_one(&query).await?.is_some())
}

/// Claims up to `limit` due events for one attempt each: counts the attempt
/// and holds the event until `lease_until`, when another node (or this one
/// after a restart) may try again if this attempt never reported.
pub async fn claim(
    conn: &impl ConnectionTrait,
    now: i64,
    lease_until: i64,
    limit: u64,
) -> Result<Vec<Model>, DbErr> {
    claim_query(conn.get_database_backend(), now, lease_until, limit)
        .exec_with_returning(conn)
        .await
}

/// The claim as one UPDATE; on PostgreSQL its rows are picked with
/// `FOR UPDATE SKIP LOCKED`, so concurrent claims never wait for or take
/// each other's events.
fn claim_query(
    backend: DatabaseBackend,
    now: i64,
    lease_until: i64,
    limit: u64,
) -> UpdateMany<webhook_events::Entity> {
    let mut due = Query::select()
        .column(C::Id)
        .from(webhook_events::Entity)
        .and_where(C::State.eq(PENDING))
        .and_where(C::NextAttemptAt.lte(now))
        .order_by(C::NextAttemptAt, Order::Asc)
        .limit(limit)
        .to_owned();
    if backend == DatabaseBackend::Postgres {
        due.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    webhook_events::Entity::update_many()
        .col_expr(C::NextAttemptAt, Expr::value(lease_until))
        .col_expr(C::Attempts, Expr::col(C::Attempts).add(1))
        .filter(C::Id.in_subquery(due))
        .filter(C::State.eq(PENDING))
        .filter(C::NextAttemptAt.lte(now))
}

/// The claimed attempt `e` (still ours: nobody claimed it since) ends in
/// `state`; a pending event is next tried at `next_attempt_at`.
pub async fn finish(
    conn: &impl ConnectionTrait,
    e: &Model,
    state: &str,
    next_attempt_at: i64,
    outcome: Outcome<'_>,
    now: i64,
) -> Result<bool, DbErr> {
    let delivered_at = (state == DELIVERED).then_some(now);
    let res = webhook_events::Entity::update_many()
        .col_expr(C::State, Expr::value(state))
        .col_expr(C::NextAttemptAt, Expr::value(next_attempt_at))
        .col_expr(C::DeliveredAt, Expr::value(delivered_at))
        .col_expr(C::LastStatus, Expr::value(outcome.status.map(i64::from)))
        .col_expr(
            C::LastError,
            Expr::value(
                outcome
                    .error
                    .map(|s| s.chars().take(500).collect::<String>()),
            ),
        )
        .filter(C::Id.eq(e.id.as_str()))
        .filter(C::State.eq(PENDING))
        .filter(C::Attempts.eq(e.attempts))
        .exec(conn)
        .await?;
    Ok(res.rows_affected == 1)
}

/// At a node's start: pending events scheduled later than `horizon` are due
/// now, so what a stopped hub left pending goes out within a minute of the
/// restart (leases of attempts in flight elsewhere end before `horizon`).
/// Returns how many.
pub async fn due_after_restart(
    conn: &impl ConnectionTrait,
    now: i64,
    horizon: i64,
) -> Result<u64, DbErr> {
    Ok(webhook_events::Entity::update_many()
        .col_expr(C::NextAttemptAt, Expr::value(now))
        .filter(C::State.eq(PENDING))
        .filter(C::NextAttemptAt.gt(horizon))
        .exec(conn)
        .await?
        .rows_affected)
}

/// Puts failed events back in the queue for a fresh retry window: the one
/// with `id`, or every failed one. Returns how many.
pub async fn requeue(
    conn: &impl ConnectionTrait,
    id: Option<&str>,
    now: i64,
) -> Result<u64, DbErr> {
    let mut update = webhook_events::Entity::update_many()
        .col_expr(C::State, Expr::value(PENDING))
        .col_expr(C::Attempts, Expr::value(0))
        .col_expr(C::NextAttemptAt, Expr::value(now))
        .col_expr(C::QueuedAt, Expr::value(now))
        .filter(C::State.eq(FAILED));
    if let Some(id) = id {
        update = update.filter(C::Id.eq(id));
    }
    Ok(update.exec(conn).await?.rows_affected)
}

/// Deletes up to `limit` events delivered before `cutoff`; returns how many.
pub async fn purge_delivered(
    conn: &impl ConnectionTrait,
    cutoff: i64,
    limit: u64,
) -> Result<u64, DbErr> {
    let ids = Query::select()
        .column(C::Id)
        .from(webhook_events::Entity)
        .and_where(C::State.eq(DELIVERED))
        .and_where(C::DeliveredAt.lt(cutoff))
        .limit(limit)
        .to_owned();
    Ok(webhook_events::Entity::delete_many()
        .filter(C::Id.in_subquery(ids))
        .exec(conn)
        .await?
        .rows_affected)
}

/// Creation time of the oldest pending event, and how many events failed.
/// Each value is read by its column name (`oldest`, `failed`): SQLite's
/// rows are maps by name.
pub async fn backlog(conn: &impl ConnectionTrait) -> Result<(Option<i64>, i64), DbErr> {
    let oldest = Query::select()
        .expr_as(Func::min(Expr::col(C::CreatedAt)), Alias::new("oldest"))
        .from(webhook_events::Entity)
        .and_where(C::State.eq(PENDING))
        .to_owned();
    let failed = Query::select()
        .expr_as(Func::count(Expr::col(C::Id)), Alias::new("failed"))
        .from(webhook_events::Entity)
        .and_where(C::State.eq(FAILED))
        .to_owned();
    let oldest: Option<i64> = match conn.query_one(&oldest).await? {
        Some(row) => row.try_get("", "oldest")?,
        None => None,
    };
    let failed: i64 = match conn.query_one(&failed).await? {
        Some(row) => row.try_get("", "failed")?,
        None => 0,
    };
    Ok((oldest, failed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::QueryTrait;

    #[test]
    fn postgres_claims_skip_locked_rows_and_sqlite_has_no_lock_clause() {
        let pg = claim_query(DatabaseBackend::Postgres, 1, 2, 8)
            .build(DatabaseBackend::Postgres)
            .to_string();
        assert!(pg.contains("FOR UPDATE SKIP LOCKED"), "{pg}");
        let lite = claim_query(DatabaseBackend::Sqlite, 1, 2, 8)
            .build(DatabaseBackend::Sqlite)
            .to_string();
        assert!(!lite.contains("FOR UPDATE"), "{lite}");
    }
}

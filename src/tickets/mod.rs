//! One-time tickets (`tickets`). A ticket's value is
//! `{scene_id}.{HMAC(server key, scene_id, issued_at)}`: the browser can be
//! given it again whenever it asks, yet the database alone cannot produce it.
//! Redemption is one conditional UPDATE, so it succeeds once, ever.

use entity::tickets::{self, Column as C};
use sea_orm::sea_query::Query;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter,
};
use subtle::ConstantTimeEq;

use crate::keys::ServerKey;
use crate::scene::SceneId;

/// How long a ticket can be redeemed.
pub const TICKET_TTL_MS: i64 = 60_000;

/// The ticket text for a scene confirmed at `issued_at`.
pub fn ticket_value(key: &ServerKey, scene_id: &str, issued_at: i64) -> String {
    format!(
        "{scene_id}.{}",
        key.derive(&["ticket", scene_id, &issued_at.to_string()])
    )
}

/// Issues and redeems tickets.
#[derive(Clone)]
pub struct TicketStore {
    db: DatabaseConnection,
}

/// A redeemed ticket's facts.
pub struct Redeemed {
    pub scene_id: String,
    pub user_id: String,
    pub issued_at: i64,
}

impl TicketStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Records the ticket of a confirmed scene (in the confirm's transaction).
    pub async fn issue(
        &self,
        conn: &impl ConnectionTrait,
        scene_id: &str,
        client_id: &str,
        user_id: &str,
        issued_at: i64,
    ) -> Result<(), DbErr> {
        let row = tickets::ActiveModel {
            scene_id: Set(scene_id.to_owned()),
            client_id: Set(client_id.to_owned()),
            user_id: Set(user_id.to_owned()),
            issued_at: Set(issued_at),
            expires_at: Set(issued_at + TICKET_TTL_MS),
            redeemed_at: Set(None),
        };
        tickets::Entity::insert(row)
            .exec_without_returning(conn)
            .await?;
        Ok(())
    }

    /// Redeems `ticket` for `client_id` at `now`; `None` when it is unknown,
    /// forged, used, stale or another client's.
    pub async fn redeem(
        &self,
        key: &ServerKey,
        ticket: &str,
        client_id: &str,
        now: i64,
    ) -> Result<Option<Redeemed>, DbErr> {
        let Some((scene_id, _)) = ticket.split_once('.') else {
            return Ok(None);
        };
        if SceneId::parse(scene_id).is_none() {
            return Ok(None);
        }
        let Some(row) = tickets::Entity::find_by_id(scene_id.to_owned())
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let expected = ticket_value(key, scene_id, row.issued_at);
        let genuine: bool = expected.as_bytes().ct_eq(ticket.as_bytes()).into();
        if !genuine
            || row.client_id != client_id
            || row.expires_at <= now
            || row.redeemed_at.is_some()
        {
            return Ok(None);
        }
        let res = tickets::Entity::update_many()
            .col_expr(C::RedeemedAt, now.into())
            .filter(C::SceneId.eq(scene_id))
            .filter(C::RedeemedAt.is_null())
            .filter(C::ExpiresAt.gt(now))
            .exec(&self.db)
            .await?;
        Ok((res.rows_affected == 1).then_some(Redeemed {
            scene_id: row.scene_id,
            user_id: row.user_id,
            issued_at: row.issued_at,
        }))
    }

    /// Deletes up to `limit` tickets issued before `cutoff`.
    pub async fn purge_before(&self, cutoff: i64, limit: u64) -> Result<u64, DbErr> {
        let ids = Query::select()
            .column(C::SceneId)
            .from(tickets::Entity)
            .and_where(C::IssuedAt.lt(cutoff))
            .limit(limit)
            .to_owned();
        Ok(tickets::Entity::delete_many()
            .filter(C::SceneId.in_subquery(ids))
            .exec(&self.db)
            .await?
            .rows_affected)
    }
}

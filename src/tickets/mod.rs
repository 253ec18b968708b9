//! One-time tickets (`tickets`). A ticket's value is
//! `{scene_id}.{HMAC(server key, scene_id, issued_at)}`: the browser can be
//! given it again whenever it asks, yet the database alone cannot produce it.
//! Redemption is one conditional UPDATE, so it succeeds once, ever. The
//! edge shows the value through a [`TicketMinter`], which holds the key.

use std::sync::Arc;

use crate::db::Db;
use entity::tickets::{self, Column as C};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use subtle::ConstantTimeEq;

use crate::keys::ServerKey;
use crate::scene::{SceneId, SceneView};
use crate::users::{UserProfile, join_profile, read_profile};

/// How long a ticket can be redeemed.
pub const TICKET_TTL_MS: i64 = 60_000;

/// The ticket text for a scene confirmed at `issued_at`.
pub fn ticket_value(key: &ServerKey, scene_id: &str, issued_at: i64) -> String {
    format!(
        "{scene_id}.{}",
        key.derive(&["ticket", scene_id, &issued_at.to_string()])
    )
}

/// Mints the ticket a browser is shown for a confirmed scene, from the
/// server key: the scene's view carries no secret.
#[derive(Clone)]
pub struct TicketMinter(Arc<ServerKey>);

impl TicketMinter {
    /// Mints with `key`.
    pub fn new(key: Arc<ServerKey>) -> Self {
        Self(key)
    }

    /// The one-time ticket of `view`, when it is confirmed.
    pub fn ticket_of(&self, view: &SceneView) -> Option<String> {
        let confirmed = view.confirmed.as_ref()?;
        Some(ticket_value(
            &self.0,
            view.scene_id.as_str(),
            confirmed.ticket_issued_at,
        ))
    }
}

/// Issues and redeems tickets.
#[derive(Clone)]
pub struct TicketStore {
    db: Db,
}

/// A redeemed ticket's facts.
pub struct Redeemed {
    pub scene_id: String,
    pub issued_at: i64,
    /// The ticket's user; `None` only if their row is missing.
    pub user: Option<UserProfile>,
}

impl TicketStore {
    pub fn new(db: Db) -> Self {
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
    /// forged, used, stale or another client's. The ticket is read together
    /// with its user's profile, so a redemption is two statements.
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
        let mut query = Query::select()
            .columns([
                (tickets::Entity, C::ClientId),
                (tickets::Entity, C::IssuedAt),
                (tickets::Entity, C::ExpiresAt),
                (tickets::Entity, C::RedeemedAt),
            ])
            .from(tickets::Entity)
            .and_where(Expr::col((tickets::Entity, C::SceneId)).eq(scene_id))
            .to_owned();
        join_profile(&mut query, Expr::col((tickets::Entity, C::UserId)));
        let rows = self.db.read().query_all(&query).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let row_client: String = row.try_get("", "client_id")?;
        let issued_at: i64 = row.try_get("", "issued_at")?;
        let expires_at: i64 = row.try_get("", "expires_at")?;
        let redeemed_at: Option<i64> = row.try_get("", "redeemed_at")?;
        let expected = ticket_value(key, scene_id, issued_at);
        let genuine: bool = expected.as_bytes().ct_eq(ticket.as_bytes()).into();
        if !genuine || row_client != client_id || expires_at <= now || redeemed_at.is_some() {
            return Ok(None);
        }
        let res = tickets::Entity::update_many()
            .col_expr(C::RedeemedAt, now.into())
            .filter(C::SceneId.eq(scene_id))
            .filter(C::RedeemedAt.is_null())
            .filter(C::ExpiresAt.gt(now))
            .exec(self.db.write())
            .await?;
        if res.rows_affected != 1 {
            return Ok(None);
        }
        Ok(Some(Redeemed {
            scene_id: scene_id.to_owned(),
            issued_at,
            user: read_profile(&rows)?,
        }))
    }

    /// Deletes every ticket of `user_id`, redeemed or not (their account's
    /// deletion, in its transaction): a later redemption is refused.
    pub async fn delete_user(conn: &impl ConnectionTrait, user_id: &str) -> Result<u64, DbErr> {
        Ok(tickets::Entity::delete_many()
            .filter(C::UserId.eq(user_id))
            .exec(conn)
            .await?
            .rows_affected)
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
            .exec(self.db.write())
            .await?
            .rows_affected)
    }
}

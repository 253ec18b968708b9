//! The `scenes` table. Every transition is one conditional UPDATE, so of two
//! racing requests exactly one changes the row.

use entity::scenes::{self, Column as C};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
};

use super::{SceneId, State};
use crate::db::Db;
use crate::sealed::Sealer;

/// The person who scanned a scene (or confirms it in one step): who they
/// are at WeChat, and the session key of their code.
#[derive(Clone)]
pub struct Scanner {
    pub app_id: String,
    pub openid: String,
    pub unionid: Option<String>,
    pub session_key: String,
}

/// A scene about to be stored.
pub struct NewScene {
    pub id: SceneId,
    pub client_id: String,
    pub browser_token_hash: String,
    pub browser_ip: String,
    pub browser_user_agent: String,
    /// `Origin` of the page that asked, when a browser did.
    pub origin: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    /// The app whose code the scene will show.
    pub code_app_id: Option<String>,
}

/// What a confirm writes.
pub struct Confirmation<'a> {
    pub nickname: Option<&'a str>,
    pub avatar_url: Option<&'a str>,
    /// The scene's user: an expression the users store gives, evaluated by
    /// the same UPDATE (see `UserStore::existing_or`).
    pub user_id: Expr,
}

/// Reads and transitions scenes. The scanner's session key is kept sealed
/// (`crate::sealed`) and dropped once the scene is final.
#[derive(Clone)]
pub struct SceneStore {
    db: Db,
    sealer: Sealer,
}

/// Where a scene's session key is sealed: its column and row.
fn session_key_context(id: &str) -> String {
    format!("scenes.session_key:{id}")
}

fn bound_to(b: &Scanner) -> Condition {
    Condition::all()
        .add(C::AppId.eq(b.app_id.as_str()))
        .add(C::Openid.eq(b.openid.as_str()))
}

/// Rows a transition may start from: `scanned` by this person, or also
/// `waiting` when the request carries a fresh code (single-step).
fn from_states(b: &Scanner, allow_waiting: bool) -> Condition {
    let scanned_by = Condition::all()
        .add(C::State.eq(State::Scanned.as_str()))
        .add(bound_to(b));
    let mut any = Condition::any().add(scanned_by);
    if allow_waiting {
        any = any.add(C::State.eq(State::Waiting.as_str()));
    }
    any
}

impl SceneStore {
    /// The store over `db`, sealing session keys with `sealer`.
    pub fn new(db: Db, sealer: Sealer) -> Self {
        Self { db, sealer }
    }

    fn seal_session_key(&self, id: &str, b: &Scanner) -> String {
        self.sealer
            .seal_str(&session_key_context(id), &b.session_key)
    }

    /// The scanner's session key, opened; `None` when there is none or it
    /// does not open (sealed under another `server.secret_key`).
    pub fn session_key(&self, row: &scenes::Model) -> Option<String> {
        let sealed = row.session_key.as_deref()?;
        self.sealer
            .open_str(&session_key_context(&row.id), sealed)
            .inspect_err(
                |e| tracing::warn!(scene_id = %row.id, error = %e, "session key does not open"),
            )
            .ok()
    }

    pub async fn insert(&self, s: NewScene) -> Result<(), DbErr> {
        let row = scenes::ActiveModel {
            id: Set(s.id.into()),
            client_id: Set(s.client_id),
            state: Set(State::Waiting.as_str().into()),
            browser_token_hash: Set(s.browser_token_hash),
            browser_ip: Set(s.browser_ip),
            browser_user_agent: Set(s.browser_user_agent),
            created_at: Set(s.created_at),
            expires_at: Set(s.expires_at),
            app_id: Set(None),
            openid: Set(None),
            unionid: Set(None),
            session_key: Set(None),
            mp_token_hash: Set(None),
            scanned_at: Set(None),
            user_id: Set(None),
            nickname: Set(None),
            avatar_url: Set(None),
            finished_at: Set(None),
            origin: Set(s.origin),
            code_app_id: Set(s.code_app_id),
        };
        scenes::Entity::insert(row)
            .exec_without_returning(self.db.write())
            .await?;
        Ok(())
    }

    pub async fn get(&self, id: &SceneId) -> Result<Option<scenes::Model>, DbErr> {
        scenes::Entity::find_by_id(id.as_str().to_owned())
            .one(self.db.read())
            .await
    }

    /// The rows of these scenes (those that still exist), in one query.
    pub async fn get_many(&self, ids: &[SceneId]) -> Result<Vec<scenes::Model>, DbErr> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        scenes::Entity::find()
            .filter(C::Id.is_in(ids.iter().map(SceneId::as_str)))
            .all(self.db.read())
            .await
    }

    /// `waiting -> scanned`, binding the scene to its first scanner, in the
    /// caller's transaction.
    pub async fn scan(
        &self,
        conn: &impl ConnectionTrait,
        id: &SceneId,
        b: &Scanner,
        mp_token_hash: &str,
        now: i64,
    ) -> Result<bool, DbErr> {
        let res = scenes::Entity::update_many()
            .col_expr(C::State, Expr::value(State::Scanned.as_str()))
            .col_expr(C::AppId, Expr::value(b.app_id.clone()))
            .col_expr(C::Openid, Expr::value(b.openid.clone()))
            .col_expr(C::Unionid, Expr::value(b.unionid.clone()))
            .col_expr(
                C::SessionKey,
                Expr::value(self.seal_session_key(id.as_str(), b)),
            )
            .col_expr(C::MpTokenHash, Expr::value(mp_token_hash))
            .col_expr(C::ScannedAt, Expr::value(now))
            .filter(C::Id.eq(id.as_str()))
            .filter(C::State.eq(State::Waiting.as_str()))
            .filter(C::ExpiresAt.gt(now))
            .exec(conn)
            .await?;
        Ok(res.rows_affected == 1)
    }

    /// The same person scanned again: keep their newest session key (in the
    /// caller's transaction).
    pub async fn rescan(
        &self,
        conn: &impl ConnectionTrait,
        id: &SceneId,
        b: &Scanner,
        now: i64,
    ) -> Result<bool, DbErr> {
        let res = scenes::Entity::update_many()
            .col_expr(
                C::SessionKey,
                Expr::value(self.seal_session_key(id.as_str(), b)),
            )
            .filter(C::Id.eq(id.as_str()))
            .filter(C::State.eq(State::Scanned.as_str()))
            .filter(bound_to(b))
            .filter(C::ExpiresAt.gt(now))
            .exec(conn)
            .await?;
        Ok(res.rows_affected == 1)
    }

    /// `scanned (by b) | waiting -> confirmed`, inside the caller's
    /// transaction; returns the user id it wrote, or `None` when the scene
    /// was not in a state to confirm.
    pub async fn confirm(
        &self,
        conn: &impl ConnectionTrait,
        id: &SceneId,
        b: &Scanner,
        allow_waiting: bool,
        c: Confirmation<'_>,
        now: i64,
    ) -> Result<Option<String>, DbErr> {
        let mut rows = scenes::Entity::update_many()
            .col_expr(C::State, Expr::value(State::Confirmed.as_str()))
            .col_expr(C::AppId, Expr::value(b.app_id.clone()))
            .col_expr(C::Openid, Expr::value(b.openid.clone()))
            .col_expr(C::Unionid, Expr::value(b.unionid.clone()))
            .col_expr(C::SessionKey, Expr::value(Option::<String>::None))
            .col_expr(C::ScannedAt, Expr::col(C::ScannedAt).if_null(now))
            .col_expr(C::UserId, c.user_id)
            .col_expr(C::Nickname, Expr::value(c.nickname.map(str::to_owned)))
            .col_expr(C::AvatarUrl, Expr::value(c.avatar_url.map(str::to_owned)))
            .col_expr(C::FinishedAt, Expr::value(now))
            .filter(C::Id.eq(id.as_str()))
            .filter(C::ExpiresAt.gt(now))
            .filter(from_states(b, allow_waiting))
            .exec_with_returning(conn)
            .await?;
        match rows.pop() {
            None => Ok(None),
            Some(row) => row
                .user_id
                .map(Some)
                .ok_or_else(|| DbErr::Custom("confirmed scene has no user".into())),
        }
    }

    /// Corrects the confirmed scene's user when a concurrent first login of
    /// the same person won (same transaction as `confirm`).
    pub async fn set_user(
        &self,
        conn: &impl ConnectionTrait,
        id: &SceneId,
        user_id: &str,
    ) -> Result<(), DbErr> {
        scenes::Entity::update_many()
            .col_expr(C::UserId, Expr::value(user_id))
            .filter(C::Id.eq(id.as_str()))
            .exec(conn)
            .await?;
        Ok(())
    }

    /// Forgets who confirmed the scenes of `user_id` (their account's
    /// deletion, in its transaction): the user, their WeChat identity and
    /// what they showed; the scenes keep their states until they are purged.
    pub async fn forget_user(conn: &impl ConnectionTrait, user_id: &str) -> Result<u64, DbErr> {
        let none = || Expr::value(Option::<String>::None);
        Ok(scenes::Entity::update_many()
            .col_expr(C::UserId, none())
            .col_expr(C::Openid, none())
            .col_expr(C::Unionid, none())
            .col_expr(C::SessionKey, none())
            .col_expr(C::MpTokenHash, none())
            .col_expr(C::Nickname, none())
            .col_expr(C::AvatarUrl, none())
            .filter(C::UserId.eq(user_id))
            .exec(conn)
            .await?
            .rows_affected)
    }

    /// The scene's code now comes from `app_id` (a fallback after a quota error).
    pub async fn set_code_app(&self, id: &SceneId, app_id: &str) -> Result<(), DbErr> {
        scenes::Entity::update_many()
            .col_expr(C::CodeAppId, Expr::value(app_id))
            .filter(C::Id.eq(id.as_str()))
            .exec(self.db.write())
            .await?;
        Ok(())
    }

    /// `scanned (by b) | waiting -> cancelled`, inside the caller's
    /// transaction (which also queues the webhook event).
    pub async fn cancel(
        &self,
        conn: &impl ConnectionTrait,
        id: &SceneId,
        b: &Scanner,
        allow_waiting: bool,
        now: i64,
    ) -> Result<bool, DbErr> {
        let res = scenes::Entity::update_many()
            .col_expr(C::State, Expr::value(State::Cancelled.as_str()))
            .col_expr(C::AppId, Expr::value(b.app_id.clone()))
            .col_expr(C::Openid, Expr::value(b.openid.clone()))
            .col_expr(C::SessionKey, Expr::value(Option::<String>::None))
            .col_expr(C::FinishedAt, Expr::value(now))
            .filter(C::Id.eq(id.as_str()))
            .filter(C::ExpiresAt.gt(now))
            .filter(from_states(b, allow_waiting))
            .exec(conn)
            .await?;
        Ok(res.rows_affected == 1)
    }

    /// Marks up to `limit` overdue scenes expired; returns the ids it changed.
    pub async fn expire_overdue(&self, now: i64, limit: u64) -> Result<Vec<SceneId>, DbErr> {
        let live = [State::Waiting.as_str(), State::Scanned.as_str()];
        // One statement per batch (the single SQLite writer is not held up by
        // one UPDATE per scene when many expire at once).
        let overdue = Query::select()
            .column(C::Id)
            .from(scenes::Entity)
            .and_where(C::State.is_in(live))
            .and_where(C::ExpiresAt.lte(now))
            .limit(limit)
            .to_owned();
        let rows = scenes::Entity::update_many()
            .col_expr(C::State, Expr::value(State::Expired.as_str()))
            .col_expr(C::SessionKey, Expr::value(Option::<String>::None))
            .col_expr(C::FinishedAt, Expr::value(now))
            .filter(C::Id.in_subquery(overdue))
            .filter(C::State.is_in(live))
            .filter(C::ExpiresAt.lte(now))
            .exec_with_returning(self.db.write())
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| SceneId::stored(row.id))
            .collect())
    }

    /// The scene (id, expiry) whose token `mp_token_hash` is, when scanned
    /// and not expired (an avatar upload's credential).
    pub async fn scanned_with_token(
        &self,
        mp_token_hash: &str,
        now: i64,
    ) -> Result<Option<(String, i64)>, DbErr> {
        let found = scenes::Entity::find()
            .filter(C::MpTokenHash.eq(mp_token_hash))
            .filter(C::State.eq(State::Scanned.as_str()))
            .filter(C::ExpiresAt.gt(now))
            .one(self.db.read())
            .await?;
        Ok(found.map(|m| (m.id, m.expires_at)))
    }

    /// Deletes up to `limit` scenes created before `cutoff`; returns how many.
    pub async fn purge_before(&self, cutoff: i64, limit: u64) -> Result<u64, DbErr> {
        let ids = Query::select()
            .column(C::Id)
            .from(scenes::Entity)
            .and_where(C::CreatedAt.lt(cutoff))
            .limit(limit)
            .to_owned();
        Ok(scenes::Entity::delete_many()
            .filter(C::Id.in_subquery(ids))
            .exec(self.db.write())
            .await?
            .rows_affected)
    }
}

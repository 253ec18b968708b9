//! The only code touching `oidc_grants` and `oidc_access_tokens`: pending
//! authorizations, their one-time codes and the access tokens issued for
//! them. Handles, codes and tokens are stored as SHA-256 hashes only.

use entity::oidc_access_tokens::{self as tokens, Column as T};
use entity::oidc_grants::{self as grants, Column as G};
use sea_orm::sea_query::Query;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
};

use crate::db::Db;

/// A new pending authorization.
pub struct NewGrant {
    pub id_hash: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// What a completed authorization records with its code.
pub struct CodeIssue<'a> {
    pub code_hash: &'a str,
    pub code_expires_at: i64,
    pub user_id: &'a str,
    pub auth_time: i64,
    pub claims: &'a str,
}

/// An access token to store with the code's use.
pub struct NewAccessToken<'a> {
    pub token_hash: &'a str,
    pub claims: &'a str,
    pub expires_at: i64,
}

/// Reads and writes OpenID Connect grants and tokens.
#[derive(Clone)]
pub struct GrantStore {
    db: Db,
}

impl GrantStore {
    /// The store on `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Records a pending authorization.
    pub async fn insert(&self, g: NewGrant) -> Result<(), DbErr> {
        let row = grants::ActiveModel {
            id_hash: Set(g.id_hash),
            client_id: Set(g.client_id),
            redirect_uri: Set(g.redirect_uri),
            scope: Set(g.scope),
            state: Set(g.state),
            nonce: Set(g.nonce),
            code_challenge: Set(g.code_challenge),
            created_at: Set(g.created_at),
            expires_at: Set(g.expires_at),
            code_hash: Set(None),
            code_expires_at: Set(None),
            code_used_at: Set(None),
            user_id: Set(None),
            auth_time: Set(None),
            claims: Set(None),
            scene_id: Set(None),
        };
        grants::Entity::insert(row)
            .exec_without_returning(self.db.write())
            .await?;
        Ok(())
    }

    /// A pending authorization that has not expired and has no code yet.
    pub async fn pending(&self, id_hash: &str, now: i64) -> Result<Option<grants::Model>, DbErr> {
        grants::Entity::find()
            .filter(G::IdHash.eq(id_hash))
            .filter(G::CodeHash.is_null())
            .filter(G::ExpiresAt.gt(now))
            .one(self.db.read())
            .await
    }

    /// The authorize page of a pending authorization of `client_id` shows
    /// `scene_id` now (a refreshed code replaces the one before); false
    /// when no such authorization is pending.
    pub async fn show_scene(
        &self,
        id_hash: &str,
        client_id: &str,
        scene_id: &str,
        now: i64,
    ) -> Result<bool, DbErr> {
        let res = grants::Entity::update_many()
            .col_expr(G::SceneId, scene_id.into())
            .filter(G::IdHash.eq(id_hash))
            .filter(G::ClientId.eq(client_id))
            .filter(G::CodeHash.is_null())
            .filter(G::ExpiresAt.gt(now))
            .exec(self.db.write())
            .await?;
        Ok(res.rows_affected == 1)
    }

    /// Gives a pending authorization its code; false when it was completed,
    /// cancelled or expired meanwhile.
    pub async fn issue_code(
        &self,
        id_hash: &str,
        c: CodeIssue<'_>,
        now: i64,
    ) -> Result<bool, DbErr> {
        let res = grants::Entity::update_many()
            .col_expr(G::CodeHash, c.code_hash.into())
            .col_expr(G::CodeExpiresAt, c.code_expires_at.into())
            .col_expr(G::UserId, c.user_id.into())
            .col_expr(G::AuthTime, c.auth_time.into())
            .col_expr(G::Claims, c.claims.into())
            .filter(G::IdHash.eq(id_hash))
            .filter(G::CodeHash.is_null())
            .filter(G::ExpiresAt.gt(now))
            .exec(self.db.write())
            .await?;
        Ok(res.rows_affected == 1)
    }

    /// Ends a pending authorization (cancelled on the phone).
    pub async fn cancel(&self, id_hash: &str) -> Result<bool, DbErr> {
        let res = grants::Entity::delete_many()
            .filter(G::IdHash.eq(id_hash))
            .filter(G::CodeHash.is_null())
            .exec(self.db.write())
            .await?;
        Ok(res.rows_affected == 1)
    }

    /// The authorization holding this code, used or not.
    pub async fn by_code(&self, code_hash: &str) -> Result<Option<grants::Model>, DbErr> {
        grants::Entity::find()
            .filter(G::CodeHash.eq(code_hash))
            .one(self.db.read())
            .await
    }

    /// Uses the grant's code and stores the access token, in one
    /// transaction; false when the code was used (or expired) meanwhile.
    pub async fn exchange(
        &self,
        grant: &grants::Model,
        token: NewAccessToken<'_>,
        now: i64,
    ) -> Result<bool, DbErr> {
        let row = tokens::ActiveModel {
            token_hash: Set(token.token_hash.to_owned()),
            grant_id: Set(grant.id_hash.clone()),
            client_id: Set(grant.client_id.clone()),
            claims: Set(token.claims.to_owned()),
            expires_at: Set(token.expires_at),
            revoked_at: Set(None),
        };
        let grant_id = grant.id_hash.clone();
        self.db
            .transaction(move |tx| {
                Box::pin(async move {
                    let used = grants::Entity::update_many()
                        .col_expr(G::CodeUsedAt, now.into())
                        .filter(G::IdHash.eq(&grant_id))
                        .filter(G::CodeUsedAt.is_null())
                        .filter(G::CodeExpiresAt.gt(now))
                        .exec(tx)
                        .await?;
                    if used.rows_affected != 1 {
                        return Ok(false);
                    }
                    tokens::Entity::insert(row)
                        .exec_without_returning(tx)
                        .await?;
                    Ok(true)
                })
            })
            .await
    }

    /// Revokes every access token issued with the grant's code (the code
    /// was presented again: it may have been stolen).
    pub async fn revoke_tokens(&self, grant_id: &str, now: i64) -> Result<u64, DbErr> {
        Ok(tokens::Entity::update_many()
            .col_expr(T::RevokedAt, now.into())
            .filter(T::GrantId.eq(grant_id))
            .filter(T::RevokedAt.is_null())
            .exec(self.db.write())
            .await?
            .rows_affected)
    }

    /// The claims of a live access token.
    pub async fn token_claims(&self, token_hash: &str, now: i64) -> Result<Option<String>, DbErr> {
        tokens::Entity::find()
            .select_only()
            .column(T::Claims)
            .filter(T::TokenHash.eq(token_hash))
            .filter(T::RevokedAt.is_null())
            .filter(T::ExpiresAt.gt(now))
            .into_tuple()
            .one(self.db.read())
            .await
    }

    /// Deletes up to `limit` grants and tokens that expired before `cutoff`.
    pub async fn purge_before(&self, cutoff: i64, limit: u64) -> Result<u64, DbErr> {
        let old_tokens = Query::select()
            .column(T::TokenHash)
            .from(tokens::Entity)
            .and_where(T::ExpiresAt.lt(cutoff))
            .limit(limit)
            .to_owned();
        let n = tokens::Entity::delete_many()
            .filter(T::TokenHash.in_subquery(old_tokens))
            .exec(self.db.write())
            .await?
            .rows_affected;
        let old_grants = Query::select()
            .column(G::IdHash)
            .from(grants::Entity)
            .and_where(G::ExpiresAt.lt(cutoff))
            .limit(limit)
            .to_owned();
        Ok(n + grants::Entity::delete_many()
            .filter(G::IdHash.in_subquery(old_grants))
            .exec(self.db.write())
            .await?
            .rows_affected)
    }
}

/// Deletes every grant of `user_id` (pending codes included) and every
/// access token issued with them (their account's deletion, in its
/// transaction): userinfo then refuses those tokens.
pub async fn delete_user(conn: &impl ConnectionTrait, user_id: &str) -> Result<u64, DbErr> {
    let theirs = Query::select()
        .column(G::IdHash)
        .from(grants::Entity)
        .and_where(G::UserId.eq(user_id))
        .to_owned();
    let n = tokens::Entity::delete_many()
        .filter(T::GrantId.in_subquery(theirs))
        .exec(conn)
        .await?
        .rows_affected;
    Ok(n + grants::Entity::delete_many()
        .filter(G::UserId.eq(user_id))
        .exec(conn)
        .await?
        .rows_affected)
}

//! The `wechat_tokens` table: access tokens shared by every node, sealed
//! (`crate::sealed`) so a database dump does not hand them out.

use crate::db::Db;
use crate::sealed::Sealer;
use entity::wechat_tokens;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

/// An access token and when it runs out.
#[derive(Clone)]
pub struct CachedToken {
    pub access_token: String,
    pub expires_at: i64,
    pub fetched_at: i64,
}

/// Reads and writes cached tokens.
pub struct TokenStore {
    db: Db,
    sealer: Sealer,
}

/// Where an app's token is sealed: its column and row.
fn context(app_id: &str) -> String {
    format!("wechat_tokens.access_token:{app_id}")
}

impl TokenStore {
    /// The store over `db`, sealing tokens with `sealer`.
    pub fn new(db: Db, sealer: Sealer) -> Self {
        Self { db, sealer }
    }

    /// The app's stored token with its sealed form; a row that does not
    /// open (another `server.secret_key`, or written before sealing) counts
    /// as no token.
    async fn row(
        &self,
        conn: &impl ConnectionTrait,
        app_id: &str,
    ) -> Result<Option<(CachedToken, String)>, DbErr> {
        Ok(wechat_tokens::Entity::find_by_id(app_id.to_owned())
            .one(conn)
            .await?
            .and_then(|m| {
                let token = self
                    .sealer
                    .open_str(&context(app_id), &m.access_token)
                    .ok()?;
                let cached = CachedToken {
                    access_token: token,
                    expires_at: m.expires_at,
                    fetched_at: m.fetched_at,
                };
                Some((cached, m.access_token))
            }))
    }

    /// The app's stored token, if any, from the read pool.
    pub async fn get(&self, app_id: &str) -> Result<Option<CachedToken>, DbErr> {
        self.get_with(self.db.read(), app_id).await
    }

    /// The app's stored token, if any, read through `conn` (e.g. a flight's
    /// transaction).
    pub async fn get_with(
        &self,
        conn: &impl ConnectionTrait,
        app_id: &str,
    ) -> Result<Option<CachedToken>, DbErr> {
        Ok(self.row(conn, app_id).await?.map(|(t, _)| t))
    }

    /// Stores the app's token through `conn`, replacing the previous one.
    pub async fn put(
        &self,
        conn: &impl ConnectionTrait,
        app_id: &str,
        t: &CachedToken,
    ) -> Result<(), DbErr> {
        let row = wechat_tokens::ActiveModel {
            app_id: Set(app_id.to_owned()),
            access_token: Set(self.sealer.seal_str(&context(app_id), &t.access_token)),
            expires_at: Set(t.expires_at),
            fetched_at: Set(t.fetched_at),
        };
        wechat_tokens::Entity::insert(row)
            .on_conflict(
                OnConflict::column(wechat_tokens::Column::AppId)
                    .update_columns([
                        wechat_tokens::Column::AccessToken,
                        wechat_tokens::Column::ExpiresAt,
                        wechat_tokens::Column::FetchedAt,
                    ])
                    .to_owned(),
            )
            .exec(conn)
            .await?;
        Ok(())
    }

    /// Deletes the row only if it still holds `token` (another node may have
    /// stored a newer one meanwhile).
    pub async fn forget(&self, app_id: &str, token: &str) -> Result<(), DbErr> {
        let Some((stored, sealed)) = self.row(self.db.read(), app_id).await? else {
            return Ok(());
        };
        if !crate::keys::secrets_equal(&stored.access_token, token) {
            return Ok(());
        }
        wechat_tokens::Entity::delete_many()
            .filter(wechat_tokens::Column::AppId.eq(app_id))
            .filter(wechat_tokens::Column::AccessToken.eq(sealed))
            .exec(self.db.write())
            .await?;
        Ok(())
    }
}

//! The `wechat_tokens` table: access tokens shared by every node.

use crate::db::Db;
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
}

impl TokenStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// The app's cached token, from the read pool.
    pub async fn get(&self, app_id: &str) -> Result<Option<CachedToken>, DbErr> {
        self.get_with(self.db.read(), app_id).await
    }

    /// The app's cached token, read through `conn` (e.g. a flight's transaction).
    pub async fn get_with(
        &self,
        conn: &impl ConnectionTrait,
        app_id: &str,
    ) -> Result<Option<CachedToken>, DbErr> {
        Ok(wechat_tokens::Entity::find_by_id(app_id.to_owned())
            .one(conn)
            .await?
            .map(|m| CachedToken {
                access_token: m.access_token,
                expires_at: m.expires_at,
                fetched_at: m.fetched_at,
            }))
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
            access_token: Set(t.access_token.clone()),
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
        wechat_tokens::Entity::delete_many()
            .filter(wechat_tokens::Column::AppId.eq(app_id))
            .filter(wechat_tokens::Column::AccessToken.eq(token))
            .exec(self.db.write())
            .await?;
        Ok(())
    }
}

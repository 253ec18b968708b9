//! The `wechat_tokens` table: access tokens shared by every node.

use crate::db::Db;
use entity::wechat_tokens;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter};

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

    pub async fn get(&self, app_id: &str) -> Result<Option<CachedToken>, DbErr> {
        Ok(wechat_tokens::Entity::find_by_id(app_id.to_owned())
            .one(self.db.read())
            .await?
            .map(|m| CachedToken {
                access_token: m.access_token,
                expires_at: m.expires_at,
                fetched_at: m.fetched_at,
            }))
    }

    pub async fn put(&self, app_id: &str, t: &CachedToken) -> Result<(), DbErr> {
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
            .exec(self.db.write())
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

//! The `scene_codes` table: each scene's code image, so WeChat is asked once
//! per scene even across restarts and nodes.

use crate::db::Db;
use entity::scene_codes::{self, Column as C};
use sea_orm::sea_query::{OnConflict, Query};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use super::SceneId;
use crate::wechat::CodeImage;

/// Reads and writes cached code images.
#[derive(Clone)]
pub struct CodeImages {
    db: Db,
}

impl CodeImages {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// The scene's image, from the read pool.
    pub async fn get(&self, scene_id: &SceneId) -> Result<Option<CodeImage>, DbErr> {
        self.get_with(self.db.read(), scene_id).await
    }

    /// The scene's image, read through `conn` (e.g. a flight's transaction).
    pub async fn get_with(
        &self,
        conn: &impl ConnectionTrait,
        scene_id: &SceneId,
    ) -> Result<Option<CodeImage>, DbErr> {
        Ok(
            scene_codes::Entity::find_by_id(scene_id.as_str().to_owned())
                .one(conn)
                .await?
                .map(|m| CodeImage {
                    content_type: m.content_type,
                    bytes: m.image,
                }),
        )
    }

    /// Stores the scene's image through `conn`, unless one is stored already.
    pub async fn put(
        &self,
        conn: &impl ConnectionTrait,
        scene_id: &SceneId,
        image: &CodeImage,
        now: i64,
    ) -> Result<(), DbErr> {
        let row = scene_codes::ActiveModel {
            scene_id: Set(scene_id.as_str().to_owned()),
            content_type: Set(image.content_type.clone()),
            image: Set(image.bytes.clone()),
            created_at: Set(now),
        };
        scene_codes::Entity::insert(row)
            .on_conflict(OnConflict::column(C::SceneId).do_nothing().to_owned())
            .exec_without_returning(conn)
            .await?;
        Ok(())
    }

    /// Deletes up to `limit` images stored before `cutoff`.
    pub async fn purge_before(&self, cutoff: i64, limit: u64) -> Result<u64, DbErr> {
        let ids = Query::select()
            .column(C::SceneId)
            .from(scene_codes::Entity)
            .and_where(C::CreatedAt.lt(cutoff))
            .limit(limit)
            .to_owned();
        Ok(scene_codes::Entity::delete_many()
            .filter(C::SceneId.in_subquery(ids))
            .exec(self.db.write())
            .await?
            .rows_affected)
    }
}

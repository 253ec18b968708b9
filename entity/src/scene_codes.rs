//! The mini-program code image of a scene, fetched from WeChat once.
use sea_orm::entity::prelude::*;

/// One row of `scene_codes`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "scene_codes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub scene_id: String,
    pub content_type: String,
    pub image: Vec<u8>,
    pub created_at: i64,
}

impl ActiveModelBehavior for ActiveModel {}

//! An avatar a person uploaded from the mini-program, re-encoded by the hub.
use sea_orm::entity::prelude::*;

/// One row of `avatars`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "avatars")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub content_type: String,
    pub image: Vec<u8>,
    pub created_at: i64,
    /// The scene it was uploaded for (one avatar per scene); `None` for
    /// avatars stored before scenes were recorded.
    #[sea_orm(unique)]
    pub scene_id: Option<String>,
    /// Until when it is kept even if no user shows it (its scene's end,
    /// at most an hour after the upload).
    pub keep_until: Option<i64>,
}

impl ActiveModelBehavior for ActiveModel {}

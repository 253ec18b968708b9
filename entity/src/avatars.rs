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
}

impl ActiveModelBehavior for ActiveModel {}

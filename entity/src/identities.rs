//! One WeChat identity `(app_id, openid)` of a user.
use sea_orm::entity::prelude::*;

/// One row of `identities`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "identities")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub app_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub openid: String,
    pub user_id: String,
    pub created_at: i64,
}

impl ActiveModelBehavior for ActiveModel {}

//! The cached WeChat access token of an app, shared by every node.
use sea_orm::entity::prelude::*;

/// One row of `wechat_tokens`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "wechat_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub app_id: String,
    pub access_token: String,
    pub expires_at: i64,
    pub fetched_at: i64,
}

impl ActiveModelBehavior for ActiveModel {}

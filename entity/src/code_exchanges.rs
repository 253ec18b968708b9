//! A remembered `jscode2session` answer, keyed by a hash of `(app_id, code)`,
//! and what the code was used for, so a retry gets the same answer.
use sea_orm::entity::prelude::*;

/// One row of `code_exchanges`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "code_exchanges")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub code_hash: String,
    pub app_id: String,
    pub openid: String,
    pub unionid: Option<String>,
    pub session_key: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub scene_id: Option<String>,
    pub outcome: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}

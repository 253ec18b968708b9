//! The one-time ticket of a confirmed scene. The ticket's value is derived
//! with an HMAC under a key kept outside the database and is not stored.
use sea_orm::entity::prelude::*;

/// One row of `tickets`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tickets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub scene_id: String,
    pub client_id: String,
    pub user_id: String,
    pub issued_at: i64,
    pub expires_at: i64,
    pub redeemed_at: Option<i64>,
}

impl ActiveModelBehavior for ActiveModel {}

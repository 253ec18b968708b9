//! A person logged in to a client: when first and when last. One row per
//! (user, client), deleted with the user.
use sea_orm::entity::prelude::*;

/// One row of `client_logins`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "client_logins")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub client_id: String,
    pub first_login_at: i64,
    pub last_login_at: i64,
}

impl ActiveModelBehavior for ActiveModel {}

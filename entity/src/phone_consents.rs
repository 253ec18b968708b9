//! A person shared their phone number with a client (in a confirm whose
//! `phone_code` WeChat accepted): that client may have the number.
use sea_orm::entity::prelude::*;

/// One row of `phone_consents`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "phone_consents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub client_id: String,
    pub created_at: i64,
    /// The latest login in which the person shared it.
    pub updated_at: i64,
}

impl ActiveModelBehavior for ActiveModel {}

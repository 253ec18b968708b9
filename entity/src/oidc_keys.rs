//! An ID token signing key. The private key is sealed (AES-256-GCM under a
//! key derived from `server.secret_key`); the highest generation signs.
use sea_orm::entity::prelude::*;

/// One row of `oidc_keys`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oidc_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub generation: i64,
    #[sea_orm(unique)]
    pub kid: String,
    pub private_key: String,
    pub created_at: i64,
}

impl ActiveModelBehavior for ActiveModel {}

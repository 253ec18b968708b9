//! An OpenID Connect access token (hashed), good for `userinfo` only.
use sea_orm::entity::prelude::*;

/// One row of `oidc_access_tokens`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oidc_access_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: String,
    /// The grant whose code was exchanged for it.
    pub grant_id: String,
    pub client_id: String,
    /// The userinfo answer (JSON).
    pub claims: String,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

impl ActiveModelBehavior for ActiveModel {}

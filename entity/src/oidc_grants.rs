//! An OpenID Connect authorization: pending while its page shows the code,
//! then holding its one-time authorization code (hashed) and the claims.
use sea_orm::entity::prelude::*;

/// One row of `oidc_grants`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oidc_grants")]
pub struct Model {
    /// SHA-256 of the page's handle.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id_hash: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// SHA-256 of the authorization code, once issued.
    #[sea_orm(unique)]
    pub code_hash: Option<String>,
    pub code_expires_at: Option<i64>,
    pub code_used_at: Option<i64>,
    pub user_id: Option<String>,
    pub auth_time: Option<i64>,
    /// The user claims (JSON) the ID token and userinfo carry.
    pub claims: Option<String>,
    /// The scene the authorize page shows now (only its ticket completes
    /// the authorization).
    pub scene_id: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}

//! One login attempt shown as one code.
use sea_orm::entity::prelude::*;

/// One row of `scenes`. `state` is `waiting`, `scanned`, `confirmed`,
/// `cancelled` or `expired`; token columns hold SHA-256 hashes, never values.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "scenes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub client_id: String,
    pub state: String,
    pub browser_token_hash: String,
    pub browser_ip: String,
    pub browser_user_agent: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub app_id: Option<String>,
    pub openid: Option<String>,
    pub unionid: Option<String>,
    pub session_key: Option<String>,
    pub mp_token_hash: Option<String>,
    pub scanned_at: Option<i64>,
    pub user_id: Option<String>,
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
    pub finished_at: Option<i64>,
    /// `Origin` of the page that asked for the scene, when a browser did.
    pub origin: Option<String>,
    /// The app whose mini-program code the scene shows (the client's app,
    /// or the next one after a quota error); `None` before the first code.
    pub code_app_id: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}

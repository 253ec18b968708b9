//! A confirmed login: who, to which client, when, and from which browser.
use sea_orm::entity::prelude::*;

/// One row of `login_history`. The place (`country`, `region`, `city`) is
/// the browser's, from the `[geoip]` database when one is configured.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "login_history")]
pub struct Model {
    /// The scene confirmed (one login per scene).
    #[sea_orm(primary_key, auto_increment = false)]
    pub scene_id: String,
    pub user_id: String,
    pub client_id: String,
    pub at: i64,
    /// The address that created the scene.
    pub ip: String,
    pub user_agent: String,
    pub country: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}

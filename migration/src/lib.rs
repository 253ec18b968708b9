//! Database migrations of scanlogin. Each migration declares its own tables and
//! columns; nothing here imports the `entity` crate, so old migrations keep
//! compiling when entities change.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_init;
mod m20261122_000002_scene_origin;
mod m20261130_000020_oidc;
mod m20261130_000030_webhooks;
mod m20261130_000040_wechat_depth;
mod m20261207_000010_webhook_counts_bigint;
mod m20261207_000050_avatar_slots;
mod m20261207_000060_consent_and_binding;
mod m20261207_000070_login_history;
mod m20261207_000080_client_logins;

/// Every migration of scanlogin, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_init::Migration),
            Box::new(m20261122_000002_scene_origin::Migration),
            Box::new(m20261130_000020_oidc::Migration),
            Box::new(m20261130_000030_webhooks::Migration),
            Box::new(m20261130_000040_wechat_depth::Migration),
            Box::new(m20261207_000010_webhook_counts_bigint::Migration),
            Box::new(m20261207_000050_avatar_slots::Migration),
            Box::new(m20261207_000060_consent_and_binding::Migration),
            Box::new(m20261207_000070_login_history::Migration),
            Box::new(m20261207_000080_client_logins::Migration),
        ]
    }
}

//! `webhook_events.attempts` and `last_status` become 64-bit like every other
//! integer column, so every integer the hub reads is an `i64`. SQLite's
//! `integer` already holds 64 bits; on PostgreSQL the columns widen.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(
                "ALTER TABLE webhook_events ALTER COLUMN attempts TYPE bigint, \
                 ALTER COLUMN last_status TYPE bigint",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(
                "ALTER TABLE webhook_events ALTER COLUMN attempts TYPE integer, \
                 ALTER COLUMN last_status TYPE integer",
            )
            .await?;
        Ok(())
    }
}

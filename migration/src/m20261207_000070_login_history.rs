//! The login history (SPEC v3 "The person's account"): one row per
//! confirmed login, kept `housekeeping.login_history_days`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum LoginHistory {
    Table,
    SceneId,
    UserId,
    ClientId,
    At,
    Ip,
    UserAgent,
    Country,
    Region,
    City,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LoginHistory::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(LoginHistory::SceneId)
                            .text()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(LoginHistory::UserId).text().not_null())
                    .col(ColumnDef::new(LoginHistory::ClientId).text().not_null())
                    .col(ColumnDef::new(LoginHistory::At).big_integer().not_null())
                    .col(ColumnDef::new(LoginHistory::Ip).text().not_null())
                    .col(ColumnDef::new(LoginHistory::UserAgent).text().not_null())
                    .col(ColumnDef::new(LoginHistory::Country).text().null())
                    .col(ColumnDef::new(LoginHistory::Region).text().null())
                    .col(ColumnDef::new(LoginHistory::City).text().null())
                    .to_owned(),
            )
            .await?;
        // A person's logins, newest first; the housekeeping's oldest first.
        manager
            .create_index(
                Index::create()
                    .name("idx_login_history_user_at")
                    .table(LoginHistory::Table)
                    .col(LoginHistory::UserId)
                    .col(LoginHistory::At)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_login_history_at")
                    .table(LoginHistory::Table)
                    .col(LoginHistory::At)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LoginHistory::Table).to_owned())
            .await
    }
}

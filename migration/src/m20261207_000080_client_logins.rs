//! Which clients each person logged in to, first and last (SPEC v3 "The
//! person's account"): one row per (user, client), kept as long as the
//! user, so the account view and `user.deleted` do not depend on how long
//! the login history is kept.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ClientLogins {
    Table,
    UserId,
    ClientId,
    FirstLoginAt,
    LastLoginAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ClientLogins::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(ClientLogins::UserId).text().not_null())
                    .col(ColumnDef::new(ClientLogins::ClientId).text().not_null())
                    .col(
                        ColumnDef::new(ClientLogins::FirstLoginAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ClientLogins::LastLoginAt)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(ClientLogins::UserId)
                            .col(ClientLogins::ClientId),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ClientLogins::Table).to_owned())
            .await
    }
}

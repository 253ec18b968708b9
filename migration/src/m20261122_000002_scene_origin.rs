//! Scenes remember the `Origin` of the page that asked for them, so the phone
//! can name the exact site (a client may allow several origins).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Scenes {
    Table,
    Origin,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Scenes::Table)
                    .add_column(ColumnDef::new(Scenes::Origin).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Scenes::Table)
                    .drop_column(Scenes::Origin)
                    .to_owned(),
            )
            .await
    }
}

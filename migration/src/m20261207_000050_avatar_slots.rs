//! Avatars belong to a scene (one each: a second upload replaces the
//! first) and are kept while their scene can still use them.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Avatars {
    Table,
    SceneId,
    KeepUntil,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Avatars::Table)
                    .add_column(ColumnDef::new(Avatars::SceneId).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Avatars::Table)
                    .add_column(ColumnDef::new(Avatars::KeepUntil).big_integer().null())
                    .to_owned(),
            )
            .await?;
        // Rows from before have no scene (NULLs never collide).
        manager
            .create_index(
                Index::create()
                    .name("avatars_scene_id")
                    .table(Avatars::Table)
                    .col(Avatars::SceneId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("avatars_scene_id")
                    .table(Avatars::Table)
                    .to_owned(),
            )
            .await?;
        for column in [Avatars::KeepUntil, Avatars::SceneId] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Avatars::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

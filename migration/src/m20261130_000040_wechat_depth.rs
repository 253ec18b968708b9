//! WeChat depth: a user's phone number (sealed) and uploaded avatar, the
//! avatars themselves, and which app's code a scene shows.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    PhoneNumber,
    AvatarId,
}

#[derive(DeriveIden)]
enum Scenes {
    Table,
    CodeAppId,
    MpTokenHash,
}

#[derive(DeriveIden)]
enum Avatars {
    Table,
    Id,
    ContentType,
    Image,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one at a time.
        for column in [Users::PhoneNumber, Users::AvatarId] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .add_column(ColumnDef::new(column).text().null())
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Scenes::Table)
                    .add_column(ColumnDef::new(Scenes::CodeAppId).text().null())
                    .to_owned(),
            )
            .await?;
        // Avatar uploads find their scene by the mp token alone.
        manager
            .create_index(
                Index::create()
                    .name("scenes_mp_token_hash")
                    .table(Scenes::Table)
                    .col(Scenes::MpTokenHash)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Avatars::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Avatars::Id).text().not_null().primary_key())
                    .col(ColumnDef::new(Avatars::ContentType).text().not_null())
                    .col(ColumnDef::new(Avatars::Image).blob().not_null())
                    .col(ColumnDef::new(Avatars::CreatedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("avatars_created_at")
                    .table(Avatars::Table)
                    .col(Avatars::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Avatars::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("scenes_mp_token_hash")
                    .table(Scenes::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Scenes::Table)
                    .drop_column(Scenes::CodeAppId)
                    .to_owned(),
            )
            .await?;
        for column in [Users::AvatarId, Users::PhoneNumber] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

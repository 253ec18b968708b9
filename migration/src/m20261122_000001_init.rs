//! The first schema: users and their WeChat identities, scenes with their
//! cached codes, tickets, WeChat access tokens and remembered code exchanges.
//! Every timestamp is milliseconds since the Unix epoch (BIGINT), so the same
//! comparisons work on SQLite and PostgreSQL.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Unionid,
    Nickname,
    AvatarUrl,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Identities {
    Table,
    AppId,
    Openid,
    UserId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Scenes {
    Table,
    Id,
    ClientId,
    State,
    BrowserTokenHash,
    BrowserIp,
    BrowserUserAgent,
    CreatedAt,
    ExpiresAt,
    AppId,
    Openid,
    Unionid,
    SessionKey,
    MpTokenHash,
    ScannedAt,
    UserId,
    Nickname,
    AvatarUrl,
    FinishedAt,
}

#[derive(DeriveIden)]
enum SceneCodes {
    Table,
    SceneId,
    ContentType,
    Image,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Tickets {
    Table,
    SceneId,
    ClientId,
    UserId,
    IssuedAt,
    ExpiresAt,
    RedeemedAt,
}

#[derive(DeriveIden)]
enum WechatTokens {
    Table,
    AppId,
    AccessToken,
    ExpiresAt,
    FetchedAt,
}

#[derive(DeriveIden)]
enum CodeExchanges {
    Table,
    CodeHash,
    AppId,
    Openid,
    Unionid,
    SessionKey,
    CreatedAt,
    ExpiresAt,
    SceneId,
    Outcome,
}

fn text(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).text().not_null().to_owned()
}

fn text_null(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).text().null().to_owned()
}

fn millis(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).big_integer().not_null().to_owned()
}

fn millis_null(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).big_integer().null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(text(Users::Id).primary_key())
                    .col(text_null(Users::Unionid).unique_key())
                    .col(text_null(Users::Nickname))
                    .col(text_null(Users::AvatarUrl))
                    .col(millis(Users::CreatedAt))
                    .col(millis(Users::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Identities::Table)
                    .col(text(Identities::AppId))
                    .col(text(Identities::Openid))
                    .col(text(Identities::UserId))
                    .col(millis(Identities::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(Identities::AppId)
                            .col(Identities::Openid),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Identities::Table, Identities::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("identities_user_id")
                    .table(Identities::Table)
                    .col(Identities::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Scenes::Table)
                    .col(text(Scenes::Id).primary_key())
                    .col(text(Scenes::ClientId))
                    .col(text(Scenes::State))
                    .col(text(Scenes::BrowserTokenHash))
                    .col(text(Scenes::BrowserIp))
                    .col(text(Scenes::BrowserUserAgent))
                    .col(millis(Scenes::CreatedAt))
                    .col(millis(Scenes::ExpiresAt))
                    .col(text_null(Scenes::AppId))
                    .col(text_null(Scenes::Openid))
                    .col(text_null(Scenes::Unionid))
                    .col(text_null(Scenes::SessionKey))
                    .col(text_null(Scenes::MpTokenHash))
                    .col(millis_null(Scenes::ScannedAt))
                    .col(text_null(Scenes::UserId))
                    .col(text_null(Scenes::Nickname))
                    .col(text_null(Scenes::AvatarUrl))
                    .col(millis_null(Scenes::FinishedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("scenes_state_expires_at")
                    .table(Scenes::Table)
                    .col(Scenes::State)
                    .col(Scenes::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("scenes_created_at")
                    .table(Scenes::Table)
                    .col(Scenes::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SceneCodes::Table)
                    .col(text(SceneCodes::SceneId).primary_key())
                    .col(text(SceneCodes::ContentType))
                    .col(ColumnDef::new(SceneCodes::Image).blob().not_null())
                    .col(millis(SceneCodes::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("scene_codes_created_at")
                    .table(SceneCodes::Table)
                    .col(SceneCodes::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Tickets::Table)
                    .col(text(Tickets::SceneId).primary_key())
                    .col(text(Tickets::ClientId))
                    .col(text(Tickets::UserId))
                    .col(millis(Tickets::IssuedAt))
                    .col(millis(Tickets::ExpiresAt))
                    .col(millis_null(Tickets::RedeemedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("tickets_issued_at")
                    .table(Tickets::Table)
                    .col(Tickets::IssuedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WechatTokens::Table)
                    .col(text(WechatTokens::AppId).primary_key())
                    .col(text(WechatTokens::AccessToken))
                    .col(millis(WechatTokens::ExpiresAt))
                    .col(millis(WechatTokens::FetchedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CodeExchanges::Table)
                    .col(text(CodeExchanges::CodeHash).primary_key())
                    .col(text(CodeExchanges::AppId))
                    .col(text(CodeExchanges::Openid))
                    .col(text_null(CodeExchanges::Unionid))
                    .col(text(CodeExchanges::SessionKey))
                    .col(millis(CodeExchanges::CreatedAt))
                    .col(millis(CodeExchanges::ExpiresAt))
                    .col(text_null(CodeExchanges::SceneId))
                    .col(text_null(CodeExchanges::Outcome))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("code_exchanges_expires_at")
                    .table(CodeExchanges::Table)
                    .col(CodeExchanges::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            CodeExchanges::Table.into_iden(),
            WechatTokens::Table.into_iden(),
            Tickets::Table.into_iden(),
            SceneCodes::Table.into_iden(),
            Scenes::Table.into_iden(),
            Identities::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

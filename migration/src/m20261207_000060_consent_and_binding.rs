//! Consent and binding (SPEC v3): which clients a person shared their phone
//! number with (`phone_consents`, one row per user and client), and the scene
//! an OpenID Connect authorize page shows (`oidc_grants.scene_id`), so that
//! only that scene's ticket completes it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum PhoneConsents {
    Table,
    UserId,
    ClientId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum OidcGrants {
    Table,
    SceneId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PhoneConsents::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(PhoneConsents::UserId).text().not_null())
                    .col(ColumnDef::new(PhoneConsents::ClientId).text().not_null())
                    .col(
                        ColumnDef::new(PhoneConsents::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PhoneConsents::UpdatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(PhoneConsents::UserId)
                            .col(PhoneConsents::ClientId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(OidcGrants::Table)
                    .add_column(ColumnDef::new(OidcGrants::SceneId).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(OidcGrants::Table)
                    .drop_column(OidcGrants::SceneId)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(PhoneConsents::Table).to_owned())
            .await
    }
}

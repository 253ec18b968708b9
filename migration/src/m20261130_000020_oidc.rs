//! OpenID Connect provider: signing keys (sealed at rest), pending and
//! completed authorizations with their one-time codes (hashed), and access
//! tokens (hashed). Timestamps are milliseconds since the Unix epoch.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OidcKeys {
    Table,
    Generation,
    Kid,
    PrivateKey,
    CreatedAt,
}

#[derive(DeriveIden)]
enum OidcGrants {
    Table,
    IdHash,
    ClientId,
    RedirectUri,
    Scope,
    State,
    Nonce,
    CodeChallenge,
    CreatedAt,
    ExpiresAt,
    CodeHash,
    CodeExpiresAt,
    CodeUsedAt,
    UserId,
    AuthTime,
    Claims,
}

#[derive(DeriveIden)]
enum OidcAccessTokens {
    Table,
    TokenHash,
    GrantId,
    ClientId,
    Claims,
    ExpiresAt,
    RevokedAt,
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
                    .table(OidcKeys::Table)
                    .col(
                        ColumnDef::new(OidcKeys::Generation)
                            .big_integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(text(OidcKeys::Kid).unique_key())
                    .col(text(OidcKeys::PrivateKey))
                    .col(millis(OidcKeys::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OidcGrants::Table)
                    .col(text(OidcGrants::IdHash).primary_key())
                    .col(text(OidcGrants::ClientId))
                    .col(text(OidcGrants::RedirectUri))
                    .col(text(OidcGrants::Scope))
                    .col(text_null(OidcGrants::State))
                    .col(text_null(OidcGrants::Nonce))
                    .col(text(OidcGrants::CodeChallenge))
                    .col(millis(OidcGrants::CreatedAt))
                    .col(millis(OidcGrants::ExpiresAt))
                    .col(text_null(OidcGrants::CodeHash).unique_key())
                    .col(millis_null(OidcGrants::CodeExpiresAt))
                    .col(millis_null(OidcGrants::CodeUsedAt))
                    .col(text_null(OidcGrants::UserId))
                    .col(millis_null(OidcGrants::AuthTime))
                    .col(text_null(OidcGrants::Claims))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OidcAccessTokens::Table)
                    .col(text(OidcAccessTokens::TokenHash).primary_key())
                    .col(text(OidcAccessTokens::GrantId))
                    .col(text(OidcAccessTokens::ClientId))
                    .col(text(OidcAccessTokens::Claims))
                    .col(millis(OidcAccessTokens::ExpiresAt))
                    .col(millis_null(OidcAccessTokens::RevokedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_oidc_access_tokens_grant")
                    .table(OidcAccessTokens::Table)
                    .col(OidcAccessTokens::GrantId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            OidcAccessTokens::Table.into_iden(),
            OidcGrants::Table.into_iden(),
            OidcKeys::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

//! The webhook outbox: one row per event, written in the same transaction as
//! the login's state change and sent (and retried) by the delivery worker.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookEvents {
    Table,
    Id,
    ClientId,
    EventType,
    Payload,
    State,
    Attempts,
    NextAttemptAt,
    QueuedAt,
    CreatedAt,
    DeliveredAt,
    LastStatus,
    LastError,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookEvents::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(WebhookEvents::Id)
                            .text()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(WebhookEvents::ClientId).text().not_null())
                    .col(ColumnDef::new(WebhookEvents::EventType).text().not_null())
                    .col(ColumnDef::new(WebhookEvents::Payload).text().not_null())
                    .col(ColumnDef::new(WebhookEvents::State).text().not_null())
                    .col(
                        ColumnDef::new(WebhookEvents::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(WebhookEvents::NextAttemptAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookEvents::QueuedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookEvents::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookEvents::DeliveredAt)
                            .big_integer()
                            .null(),
                    )
                    .col(ColumnDef::new(WebhookEvents::LastStatus).integer().null())
                    .col(ColumnDef::new(WebhookEvents::LastError).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("webhook_events_due")
                    .table(WebhookEvents::Table)
                    .col(WebhookEvents::State)
                    .col(WebhookEvents::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("webhook_events_delivered")
                    .table(WebhookEvents::Table)
                    .col(WebhookEvents::State)
                    .col(WebhookEvents::DeliveredAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookEvents::Table).to_owned())
            .await
    }
}

//! The webhook outbox: an event for a client's `webhook_url`, its signed
//! body fixed when the login happened, and where its delivery stands.
use sea_orm::entity::prelude::*;

/// One row of `webhook_events`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_events")]
pub struct Model {
    /// The `webhook-id` the receiver sees on every attempt.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub client_id: String,
    /// `login.confirmed` or `login.cancelled`.
    pub event_type: String,
    /// The JSON body, byte for byte what every attempt sends.
    pub payload: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    /// Attempts since the event was (re)queued.
    pub attempts: i64,
    /// When the next attempt is due; while an attempt runs, when its lease ends.
    pub next_attempt_at: i64,
    /// When the current retry window began (creation or a manual re-queue).
    pub queued_at: i64,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    /// The HTTP status of the last answer, if there was one.
    pub last_status: Option<i64>,
    /// Why the last attempt failed, without secrets.
    pub last_error: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}

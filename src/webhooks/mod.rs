//! Signed webhooks (`login.confirmed`, `login.cancelled`, `user.deleted`)
//! sent the Standard Webhooks way to each client's `webhook_url`. An event
//! is written to the outbox in the same transaction as the change it tells
//! of ([`record_confirmed`], [`record_cancelled`], [`record_user_deleted`]);
//! the delivery worker sends it at least once, retrying with growing
//! delays, and survives restarts.

pub mod outbox;
pub mod signing;
pub mod worker;

use std::sync::Arc;

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbErr};
use serde::Serialize;
use tokio::sync::Notify;

use crate::clock::rfc3339;
use crate::config::{ClientSettings, Settings};
use crate::users::{UserProfile, join_profile, read_profile};
use signing::SigningKey;

/// Event type of a confirmed login.
pub const LOGIN_CONFIRMED: &str = "login.confirmed";
/// Event type of a cancelled login.
pub const LOGIN_CANCELLED: &str = "login.cancelled";
/// Event type of a person's deleted account.
pub const USER_DELETED: &str = "user.deleted";

/// The JSON body of an event.
#[derive(Debug, Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: String,
    data: EventData<'a>,
}

/// What happened, to which scene, for which client.
#[derive(Debug, Serialize)]
struct EventData<'a> {
    scene_id: &'a str,
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<UserProfile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    confirmed_at: Option<String>,
}

fn has_webhook(settings: &Settings, client_id: &str) -> bool {
    settings
        .client(client_id)
        .is_some_and(|c| c.webhook_url.is_some())
}

/// Inside a confirm's transaction, after its ticket was issued: queues
/// `login.confirmed` when the client has a webhook. `user` and
/// `confirmed_at` are read from the ticket exactly as a redemption reads them.
pub async fn record_confirmed(
    conn: &impl ConnectionTrait,
    settings: &Settings,
    scene_id: &str,
    client_id: &str,
    now: i64,
) -> Result<(), DbErr> {
    use entity::tickets::{self, Column as T};
    if !has_webhook(settings, client_id) {
        return Ok(());
    }
    let mut query = Query::select()
        .column((tickets::Entity, T::IssuedAt))
        .from(tickets::Entity)
        .and_where(Expr::col((tickets::Entity, T::SceneId)).eq(scene_id))
        .to_owned();
    join_profile(&mut query, Expr::col((tickets::Entity, T::UserId)));
    let rows = conn.query_all(&query).await?;
    let issued_at: i64 = rows
        .first()
        .ok_or_else(|| DbErr::Custom("the confirmed scene has no ticket".into()))?
        .try_get("", "issued_at")?;
    let user = read_profile(&rows)?
        .ok_or_else(|| DbErr::Custom("the confirmed scene's user is missing".into()))?;
    let event = Event {
        kind: LOGIN_CONFIRMED,
        timestamp: rfc3339(now),
        data: EventData {
            scene_id,
            client_id,
            user: Some(user),
            confirmed_at: Some(rfc3339(issued_at)),
        },
    };
    outbox::insert(conn, client_id, LOGIN_CONFIRMED, &body(&event)?, now).await
}

/// Inside a cancel's transaction: queues `login.cancelled` when the client
/// has a webhook.
pub async fn record_cancelled(
    conn: &impl ConnectionTrait,
    settings: &Settings,
    scene_id: &str,
    client_id: &str,
    now: i64,
) -> Result<(), DbErr> {
    if !has_webhook(settings, client_id) {
        return Ok(());
    }
    let event = Event {
        kind: LOGIN_CANCELLED,
        timestamp: rfc3339(now),
        data: EventData {
            scene_id,
            client_id,
            user: None,
            confirmed_at: None,
        },
    };
    outbox::insert(conn, client_id, LOGIN_CANCELLED, &body(&event)?, now).await
}

/// The body of `user.deleted`.
#[derive(Debug, Serialize)]
struct UserDeletedEvent<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: String,
    data: UserDeletedData<'a>,
}

/// Which person is gone, told to one client.
#[derive(Debug, Serialize)]
struct UserDeletedData<'a> {
    user_id: &'a str,
    client_id: &'a str,
}

/// Inside an account deletion's transaction: queues `user.deleted` for each
/// of `client_ids` (the clients the person logged in to) that has a
/// webhook; returns how many were queued.
pub async fn record_user_deleted(
    conn: &impl ConnectionTrait,
    settings: &Settings,
    user_id: &str,
    client_ids: &[String],
    now: i64,
) -> Result<usize, DbErr> {
    let mut queued = 0;
    for client_id in client_ids.iter().filter(|c| has_webhook(settings, c)) {
        let event = UserDeletedEvent {
            kind: USER_DELETED,
            timestamp: rfc3339(now),
            data: UserDeletedData { user_id, client_id },
        };
        let body = serde_json::to_string(&event)
            .map_err(|e| DbErr::Custom(format!("webhook body: {e}")))?;
        outbox::insert(conn, client_id, USER_DELETED, &body, now).await?;
        queued += 1;
    }
    Ok(queued)
}

fn body(event: &Event<'_>) -> Result<String, DbErr> {
    serde_json::to_string(event).map_err(|e| DbErr::Custom(format!("webhook body: {e}")))
}

/// Wakes this node's delivery worker after a login ended, so the first
/// attempt does not wait for the next poll.
#[derive(Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    /// Called after a transaction that queued an event committed.
    pub fn notify(&self) {
        self.0.notify_one();
    }

    /// Resolves after the next wake-up (or at once if one is pending).
    pub async fn notified(&self) {
        self.0.notified().await;
    }
}

/// A client's webhook as the worker uses it.
pub struct Target {
    /// Where events are POSTed.
    pub url: url::Url,
    /// What signs them.
    pub key: SigningKey,
    /// The secret before a rotation, when the client still has one: each
    /// delivery is signed with it too.
    pub previous_key: Option<SigningKey>,
}

impl Target {
    /// The `webhook-signature` value: `v1,<new>`, then ` v1,<old>` during a
    /// rotation (Standard Webhooks: signatures separated by spaces; a
    /// verifier accepts the delivery when any one of them matches).
    pub fn signature(&self, id: &str, timestamp: i64, body: &str) -> String {
        let mut value = self.key.sign(id, timestamp, body);
        if let Some(previous) = &self.previous_key {
            value.push(' ');
            value.push_str(&previous.sign(id, timestamp, body));
        }
        value
    }
}

/// The webhook of `client`, when it has a usable one.
pub fn target(client: &ClientSettings) -> Option<Target> {
    use secrecy::ExposeSecret;
    let url = client.webhook_url.clone()?;
    let key = SigningKey::parse(client.webhook_secret.as_ref()?.expose_secret()).ok()?;
    let previous_key = client
        .previous_webhook_secret
        .as_ref()
        .and_then(|p| SigningKey::parse(p.expose_secret()).ok());
    Some(Target {
        url,
        key,
        previous_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn a_client_with_url_and_good_secret_is_a_target() {
        let secret = format!("whsec_{}", STANDARD.encode([5u8; 32]));
        let text = format!(
            r#"
            [[apps]]
            app_id = "wxtest"
            secret = "s"
            [[clients]]
            client_id = "shop"
            name = "Shop"
            client_secret = "0123456789abcdef"
            webhook_url = "https://a.example/h"
            webhook_secret = "{secret}"
            "#
        );
        let s = Settings::from_sources(&text, Vec::new()).expect("valid");
        let t = target(&s.clients[0]).expect("a target");
        assert!(
            !t.signature("msg_1", 1, "{}").contains(' '),
            "one secret, one signature"
        );
    }

    #[test]
    fn a_previous_secret_adds_a_second_signature_after_the_new_one() {
        let (new, old) = (
            format!("whsec_{}", STANDARD.encode([5u8; 32])),
            format!("whsec_{}", STANDARD.encode([6u8; 32])),
        );
        let text = format!(
            r#"
            [[apps]]
            app_id = "wxtest"
            secret = "s"
            [[clients]]
            client_id = "shop"
            name = "Shop"
            client_secret = "0123456789abcdef"
            webhook_url = "https://a.example/h"
            webhook_secret = "{new}"
            previous_webhook_secret = "{old}"
            "#
        );
        let s = Settings::from_sources(&text, Vec::new()).expect("valid");
        let t = target(&s.clients[0]).expect("a target");
        let both = t.signature("msg_1", 1, "{}");
        let expected =
            [&new, &old].map(|k| SigningKey::parse(k).expect("key").sign("msg_1", 1, "{}"));
        assert_eq!(both, expected.join(" "));
        assert!(!format!("{s:?}").contains(&old[6..]), "redacted in Debug");
    }
}

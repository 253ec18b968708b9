//! The person's account (SPEC v3 "The person's account"): what the hub
//! holds about one person ([`view`]) and deleting all of it ([`delete`]).
//! Both are reached by the person (`POST /api/v1/mp/account[/delete]`,
//! proven by a fresh `wx.login` code, see `login::account`) and by the
//! operator (`scanlogin users show|delete`). Each table is read and deleted
//! through the room that owns it; `client_logins` (which clients a person
//! logged in to, first and last) is this room's own.

pub mod client_logins;

use std::collections::BTreeSet;

use sea_orm::{ConnectionTrait, DbErr};
use serde::Serialize;
use utoipa::ToSchema;

use crate::clock::rfc3339;
use crate::config::Settings;
use crate::geoip::Location;
use crate::users::IdentityView;

/// How many logins the account shows, newest first.
pub const RECENT_LOGINS: u64 = 100;

/// What the hub holds about one person.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    pub user: AccountUser,
    /// Every client the person logged in to (kept as long as the user).
    pub clients: Vec<AccountClient>,
    /// The newest logins (at most 100), newest first; kept
    /// `housekeeping.login_history_days`.
    pub logins: Vec<AccountLogin>,
}

/// The person as the hub records them.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountUser {
    /// The hub's user id.
    pub id: String,
    #[schema(required = true)]
    pub unionid: Option<String>,
    #[schema(required = true)]
    pub nickname: Option<String>,
    #[schema(required = true)]
    pub avatar_url: Option<String>,
    /// One `(app_id, openid)` per mini-program the person has used.
    pub identities: Vec<IdentityView>,
    /// Whether the hub keeps a phone number for the person (never the number).
    pub phone_number_kept: bool,
    /// When the hub first saw the person (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// A client (website) the person logged in to.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountClient {
    pub client_id: String,
    /// The client's configured name (its id when no longer configured).
    pub name: String,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub first_login_at: String,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub last_login_at: String,
    /// Whether the person shared their phone number with this client.
    pub phone_shared: bool,
}

/// One confirmed login.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountLogin {
    pub client_id: String,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub at: String,
    /// The address of the browser that asked for the login.
    pub ip: String,
    pub user_agent: String,
    /// Where the browser was, with a `[geoip]` database.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub location: Option<Location>,
}

/// What the hub holds about `user_id`, or `None` for an unknown user.
pub async fn view(
    conn: &impl ConnectionTrait,
    settings: &Settings,
    user_id: &str,
) -> Result<Option<AccountView>, DbErr> {
    let Some(stored) = crate::users::find(conn, user_id).await? else {
        return Ok(None);
    };
    let shared: BTreeSet<String> = crate::consents::clients_of(conn, user_id)
        .await?
        .into_iter()
        .collect();
    let clients = client_logins::of_user(conn, user_id)
        .await?
        .into_iter()
        .map(|c| AccountClient {
            name: settings
                .client(&c.client_id)
                .map_or_else(|| c.client_id.clone(), |s| s.name.clone()),
            phone_shared: shared.contains(&c.client_id),
            first_login_at: rfc3339(c.first_login_at),
            last_login_at: rfc3339(c.last_login_at),
            client_id: c.client_id,
        })
        .collect();
    let logins = crate::login_history::recent(conn, user_id, RECENT_LOGINS)
        .await?
        .into_iter()
        .map(|m| {
            let line = crate::login_history::LoginLine::from(m);
            AccountLogin {
                client_id: line.client_id,
                at: line.at,
                ip: line.ip,
                user_agent: line.user_agent,
                location: line.location,
            }
        })
        .collect();
    let p = stored.profile;
    Ok(Some(AccountView {
        user: AccountUser {
            phone_number_kept: p.phone_sealed.is_some(),
            id: p.id,
            unionid: p.unionid,
            nickname: p.nickname,
            avatar_url: p.avatar_url,
            identities: p.identities,
            created_at: rfc3339(stored.created_at),
        },
        clients,
        logins,
    }))
}

/// What a deletion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    pub user_id: String,
    /// How many `user.deleted` webhook events were queued.
    pub webhooks: usize,
}

/// Deletes everything the hub holds about `user_id`, in the caller's
/// transaction: the user row first (profile, phone number), then their
/// identities, avatar, phone consents, login history, the clients they
/// logged in to, their tickets, OpenID Connect grants and access tokens,
/// and who confirmed their scenes; queues `user.deleted` for each client
/// they logged in to that has a webhook. `None` for an unknown user
/// (nothing is written).
pub async fn delete(
    conn: &impl ConnectionTrait,
    settings: &Settings,
    user_id: &str,
    now: i64,
) -> Result<Option<Deleted>, DbErr> {
    let Some(gone) = crate::users::delete(conn, user_id).await? else {
        return Ok(None);
    };
    if let Some(avatar) = &gone.avatar_id {
        crate::avatars::delete(conn, avatar).await?;
    }
    crate::consents::delete_user(conn, user_id).await?;
    crate::login_history::delete_user(conn, user_id).await?;
    let clients = client_logins::delete_user(conn, user_id).await?;
    crate::tickets::TicketStore::delete_user(conn, user_id).await?;
    crate::oidc::store::delete_user(conn, user_id).await?;
    crate::scene::SceneStore::forget_user(conn, user_id).await?;
    let webhooks =
        crate::webhooks::record_user_deleted(conn, settings, user_id, &clients, now).await?;
    Ok(Some(Deleted {
        user_id: user_id.to_owned(),
        webhooks,
    }))
}

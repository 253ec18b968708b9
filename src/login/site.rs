//! What a site's backend asks of the flow ([`Redeemer`]): to be recognised
//! by its client credentials, and to redeem a ticket for the person who
//! logged in. The OpenID Connect provider redeems through it too.

use std::sync::Arc;

use serde::Serialize;
use tracing::info;

use super::{LoginError, client};
use crate::clock::{now_ms, rfc3339};
use crate::config::ClientSettings;
use crate::db::Db;
use crate::error::Fault;
use crate::keys::ServerKey;
use crate::live::{ClientRef, LiveSettings};
use crate::sealed::Sealer;
use crate::tickets::TicketStore;
use crate::users::UserProfile;

/// The answer to a redemption.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RedeemAnswer {
    pub user: UserProfile,
    pub scene_id: String,
    pub client_id: String,
    /// When the phone confirmed (RFC 3339).
    #[schema(format = DateTime)]
    pub confirmed_at: String,
}

/// Redeems tickets for the clients they were made for.
pub struct Redeemer {
    /// The settings in force (the clients and their secrets).
    settings: LiveSettings,
    db: Db,
    tickets: TicketStore,
    /// Checks a ticket is one the hub made.
    key: Arc<ServerKey>,
    /// Opens phone numbers.
    sealer: Sealer,
}

impl Redeemer {
    /// Redeems the tickets stored in `db`, made with `key`.
    pub fn new(settings: LiveSettings, db: Db, key: Arc<ServerKey>) -> Self {
        Self {
            tickets: TicketStore::new(db.clone()),
            sealer: Sealer::new(&key),
            settings,
            db,
            key,
        }
    }

    /// The client whose id and secret these are (compared in constant time);
    /// its `previous_client_secret` is accepted too during a rotation.
    pub fn authenticate_client(
        &self,
        client_id: &str,
        client_secret: &str,
    ) -> Result<ClientRef, LoginError> {
        let client = client(&self.settings, client_id).ok();
        let known = client
            .as_ref()
            .is_some_and(|c| c.secret_matches(client_secret));
        client
            .filter(|_| known)
            .ok_or(LoginError::Unauthorized("client credentials are wrong"))
    }

    /// An authenticated site backend redeems a ticket made for it.
    pub async fn redeem(
        &self,
        client: &ClientSettings,
        ticket: &str,
    ) -> Result<RedeemAnswer, LoginError> {
        let redeemed = self
            .tickets
            .redeem(&self.key, ticket, &client.client_id, now_ms())
            .await?
            .ok_or(LoginError::InvalidTicket)?;
        let mut user = redeemed
            .user
            .ok_or_else(|| Fault::internal("ticket's user is missing"))?;
        // The number only when the person shared it with this client (in
        // this login or an earlier one), never because another client got it.
        let consented = client.phone
            && user.phone_sealed.is_some()
            && crate::consents::shared(self.db.read(), &user.id, &client.client_id).await?;
        user.reveal_phone(&self.sealer, consented);
        info!(scene_id = %redeemed.scene_id, client_id = %client.client_id, "ticket redeemed");
        Ok(RedeemAnswer {
            user,
            scene_id: redeemed.scene_id,
            client_id: client.client_id.clone(),
            confirmed_at: rfc3339(redeemed.issued_at),
        })
    }
}

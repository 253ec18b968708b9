//! What a site's backend asks of the flow: to be recognised by its client
//! credentials, and to redeem a ticket for the person who logged in.

use serde::Serialize;
use tracing::info;

use super::{Login, LoginError};
use crate::clock::{now_ms, rfc3339};
use crate::config::ClientSettings;
use crate::error::Fault;
use crate::live::ClientRef;
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

impl Login {
    /// The client whose id and secret these are (compared in constant time);
    /// its `previous_client_secret` is accepted too during a rotation.
    pub fn authenticate_client(
        &self,
        client_id: &str,
        client_secret: &str,
    ) -> Result<ClientRef, LoginError> {
        let client = self.client(client_id).ok();
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

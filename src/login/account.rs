//! The person's own account, inside the mini-program (`POST
//! /api/v1/mp/account` and `/api/v1/mp/account/delete`): a fresh `wx.login`
//! code is exchanged like a scan's and names the person; the account room
//! (`crate::account`) reads or deletes what the hub holds about them.

use tracing::info;

use super::phone::PhoneFlow;
use super::{FlowEvent, LoginError};
use crate::account::AccountView;
use crate::clock::now_ms;
use crate::users::{Person, UserStore};

/// What a code exchanged to show an account is bound to: such a code
/// cannot also scan a scene, log in, or delete the account.
const VIEW: &str = "mp-account";
/// What a code exchanged to delete an account is bound to.
const DELETE: &str = "mp-account-delete";

impl PhoneFlow {
    /// What the hub holds about the person whose `wx.login` code this is
    /// (exchanged once; a retry within its 5 minutes is answered again).
    pub async fn account(
        &self,
        code: &str,
        app_id: Option<&str>,
    ) -> Result<AccountView, LoginError> {
        let (_held, ex, note) = self.exchange_for(code, app_id, VIEW).await?;
        // The exchange is remembered whether or not the person is known.
        note.write(self.db.write(), None).await?;
        let person = Person::bare(&ex.app_id, &ex.openid, ex.unionid.as_deref());
        let db = self.db.read();
        let unknown = UserStore::new_id();
        let user_id = UserStore.existing(db, &person, &unknown).await?;
        if user_id == unknown {
            return Err(LoginError::UserNotFound);
        }
        let settings = self.settings.get();
        crate::account::view(db, &settings, &user_id)
            .await?
            .ok_or(LoginError::UserNotFound)
    }

    /// Deletes everything the hub holds about the person whose `wx.login`
    /// code this is, in one transaction with the code's note; returns their
    /// (former) user id.
    pub async fn delete_account(
        &self,
        code: &str,
        app_id: Option<&str>,
    ) -> Result<String, LoginError> {
        let (_held, ex, note) = self.exchange_for(code, app_id, DELETE).await?;
        // The settings are read inside the transaction: which clients have a
        // webhook is decided by the settings in force when the events are
        // queued, after any reload while the code was exchanged.
        let live = self.settings.clone();
        let (app_id, openid, unionid) = (ex.app_id, ex.openid, ex.unionid);
        let deleted = self
            .db
            .transaction(move |tx| {
                Box::pin(async move {
                    let person = Person::bare(&app_id, &openid, unionid.as_deref());
                    let unknown = UserStore::new_id();
                    let user_id = UserStore.existing(tx, &person, &unknown).await?;
                    let deleted = if user_id == unknown {
                        None
                    } else {
                        let settings = live.get();
                        crate::account::delete(tx, &settings, &user_id, now_ms()).await?
                    };
                    note.write(tx, None).await?;
                    Ok::<_, sea_orm::DbErr>(deleted)
                })
            })
            .await?;
        let deleted = deleted.ok_or(LoginError::UserNotFound)?;
        info!(user_id = %deleted.user_id, webhooks = deleted.webhooks, "account deleted by the person");
        if deleted.webhooks > 0 {
            self.report(FlowEvent::UserDeleted);
        }
        Ok(deleted.user_id)
    }
}

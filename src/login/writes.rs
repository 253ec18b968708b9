//! What each step of the phone writes, in one transaction: a scan (the
//! scene and the code's note), a confirm (the scene, the person, their
//! avatar and phone, the consent, the ticket, the client logged in to, the
//! login's record, the webhook event and the code's note) and a cancel. Each is a job that owns
//! what it writes, so that on SQLite it can run on the writer thread.

use std::sync::Arc;

use sea_orm::DbErr;

use super::CodeUse;
use super::exchanges::CodeNote;
use super::profile::Profile;
use crate::config::Settings;
use crate::db::Tx;
use crate::login_history::LoginRecord;
use crate::scene::store::Confirmation;
use crate::scene::{Scanner, SceneId, SceneStore};
use crate::sealed::Sealer;
use crate::tickets::TicketStore;
use crate::users::{Person, UserStore, phone_context};

/// Whether a scan bound the scene.
pub(super) enum Scanned {
    /// It did: the browser is told.
    First,
    /// The same person scanned again; their newest session key is kept.
    Again,
    /// The scene was not in a state to scan.
    No,
}

/// What a scan writes, in one transaction: the scene and the code's note.
pub(super) struct ScanWrite {
    pub(super) scenes: SceneStore,
    pub(super) id: SceneId,
    pub(super) b: Scanner,
    pub(super) mp_token_hash: String,
    pub(super) note: Option<CodeNote>,
    pub(super) now: i64,
}

impl ScanWrite {
    pub(super) async fn run(self, tx: &Tx<'_>) -> Result<Scanned, DbErr> {
        let scanned = if self
            .scenes
            .scan(tx, &self.id, &self.b, &self.mp_token_hash, self.now)
            .await?
        {
            Scanned::First
        } else if self.scenes.rescan(tx, &self.id, &self.b, self.now).await? {
            Scanned::Again
        } else {
            Scanned::No
        };
        if let Some(note) = self.note {
            let used = (!matches!(scanned, Scanned::No)).then_some(CodeUse::Scan);
            note.write(tx, used).await?;
        }
        Ok(scanned)
    }
}

/// What a confirm writes, in one transaction: the scene, the person, their
/// avatar and phone, the ticket, the webhook event and the code's note.
pub(super) struct ConfirmWrite {
    pub(super) scenes: SceneStore,
    pub(super) tickets: TicketStore,
    pub(super) settings: Arc<Settings>,
    pub(super) sealer: Sealer,
    pub(super) id: SceneId,
    pub(super) client_id: String,
    pub(super) b: Scanner,
    pub(super) single_step: bool,
    pub(super) profile: Profile,
    /// The login to record, unless the history keeps none.
    pub(super) history: Option<LoginRecord>,
    pub(super) note: Option<CodeNote>,
    pub(super) now: i64,
}

impl ConfirmWrite {
    /// The user confirmed, or `None` when the scene was no longer in a
    /// state to confirm (only the code's note is written).
    pub(super) async fn run(self, tx: &Tx<'_>) -> Result<Option<String>, DbErr> {
        let (b, profile, now) = (&self.b, &self.profile, self.now);
        let person = Person {
            app_id: &b.app_id,
            openid: &b.openid,
            unionid: b.unionid.as_deref(),
            nickname: profile.nickname.as_deref(),
            avatar_url: profile.avatar_url.as_deref(),
        };
        let new_user = UserStore::new_id();
        let confirmation = Confirmation {
            nickname: profile.nickname.as_deref(),
            avatar_url: profile.avatar_url.as_deref(),
            user_id: UserStore::existing_or(&person, &new_user),
        };
        // The scene row is written first; the same UPDATE looks up who the
        // person already is.
        let found = self
            .scenes
            .confirm(tx, &self.id, b, self.single_step, confirmation, now)
            .await?;
        let Some(found) = found else {
            if let Some(note) = self.note {
                note.write(tx, None).await?;
            }
            return Ok(None);
        };
        let users = UserStore;
        let user_id = users.record(tx, &person, &found, &new_user, now).await?;
        if user_id != found {
            self.scenes.set_user(tx, &self.id, &user_id).await?;
        }
        if let Some(url) = &profile.avatar_url {
            let public_url = self.settings.server.public_url.as_str();
            let own = crate::avatars::own_avatar_id(public_url, url);
            users.set_avatar(tx, &user_id, own).await?;
        }
        if let Some(number) = &profile.phone {
            let sealed = self.sealer.seal_str(&phone_context(&user_id), number);
            users.set_phone(tx, &user_id, &sealed).await?;
            // Shared with this client in this login: kept per user and client.
            crate::consents::record(tx, &user_id, &self.client_id, now).await?;
        }
        self.tickets
            .issue(tx, self.id.as_str(), &self.client_id, &user_id, now)
            .await?;
        crate::webhooks::record_confirmed(
            tx,
            &self.settings,
            self.id.as_str(),
            &self.client_id,
            now,
        )
        .await?;
        // Which clients the person logged in to, kept whatever the history keeps.
        crate::account::client_logins::record(tx, &user_id, &self.client_id, now).await?;
        if let Some(login) = &self.history {
            crate::login_history::record(tx, &user_id, login).await?;
        }
        if let Some(note) = self.note {
            note.write(tx, Some(CodeUse::Confirm)).await?;
        }
        Ok(Some(user_id))
    }
}

/// What a cancel writes, in one transaction: the scene, the webhook event
/// and the code's note.
pub(super) struct CancelWrite {
    pub(super) scenes: SceneStore,
    pub(super) settings: Arc<Settings>,
    pub(super) id: SceneId,
    pub(super) client_id: String,
    pub(super) b: Scanner,
    pub(super) single_step: bool,
    pub(super) note: Option<CodeNote>,
    pub(super) now: i64,
}

impl CancelWrite {
    pub(super) async fn run(self, tx: &Tx<'_>) -> Result<bool, DbErr> {
        let cancelled = self
            .scenes
            .cancel(tx, &self.id, &self.b, self.single_step, self.now)
            .await?;
        if cancelled {
            crate::webhooks::record_cancelled(
                tx,
                &self.settings,
                self.id.as_str(),
                &self.client_id,
                self.now,
            )
            .await?;
        }
        if let Some(note) = self.note {
            note.write(tx, cancelled.then_some(CodeUse::Cancel)).await?;
        }
        Ok(cancelled)
    }
}

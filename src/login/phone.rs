//! What the phone asks of the flow: scan a scene, then confirm or cancel it
//! (with the token from the scan, or in one step with a fresh code).

use std::time::Instant;

use sea_orm::TransactionTrait;
use secrecy::ExposeSecret;
use tracing::{Instrument, info, info_span, warn};

use super::answers::{BrowserKind, BrowserView, ClientView, ScanAnswer};
use super::exchanges::HeldCode;
use super::profile::Profile;
use super::{CodeUse, FlowEvent, Login, LoginError, ProfileInput};
use crate::clock::{now_ms, rfc3339};
use crate::keys::{token_hash, token_matches};
use crate::scene::machine::{already_done, may_finish, refusal};
use crate::scene::store::Confirmation;
use crate::scene::{ConfirmedView, Scanner, SceneId, SceneView, State, Step};
use crate::sealed::Sealer;
use crate::users::{Person, UserStore, phone_context};

/// How the phone proves who it is.
pub enum MpAuth {
    /// The token from `scan`, bound to the scene and the scanner.
    Token(String),
    /// A fresh `wx.login` code (single-step confirm or cancel).
    Code(String),
}

/// Everything a confirm may carry.
pub struct ConfirmInput {
    pub encrypted_data: Option<String>,
    pub iv: Option<String>,
    pub raw_data: Option<String>,
    pub signature: Option<String>,
    pub profile: Option<ProfileInput>,
    /// The `code` of the `getPhoneNumber` button, when the person shared it.
    pub phone_code: Option<String>,
}

/// How the phone proved who it is, for the length of one call: a code is
/// held (its turn taken) until the call returns.
pub(super) enum Proof {
    Token(String),
    Code(HeldCode),
}

impl Proof {
    /// A fresh code may confirm or cancel a scene still waiting.
    fn single_step(&self) -> bool {
        matches!(self, Self::Code(_))
    }
}

/// Refuses a WeChat code (`field`: a `wx.login` code, a `getPhoneNumber`
/// code) that cannot be one, before it is hashed or sent anywhere.
pub(super) fn check_code(field: &str, code: &str) -> Result<(), LoginError> {
    if code.is_empty() || code.len() > 256 {
        return Err(LoginError::InvalidRequest(format!(
            "{field} must be 1-256 characters"
        )));
    }
    Ok(())
}

/// The app a mini-program call acts for: the one it names, which must be
/// the app whose code the scene shows, else that app.
fn scene_app(
    row: &entity::scenes::Model,
    named: Option<&str>,
) -> Result<Option<String>, LoginError> {
    match (named, row.code_app_id.as_deref()) {
        (Some(named), Some(shown)) if named != shown => Err(LoginError::InvalidRequest(format!(
            "this code belongs to app {shown:?}, not {named:?}"
        ))),
        (Some(named), _) => Ok(Some(named.to_owned())),
        (None, shown) => Ok(shown.map(str::to_owned)),
    }
}

/// A phone's call, begun: its scene and proof, the scene's row (read again
/// by `resolve` when a retried code was used before), and the app it acts
/// for.
struct Call {
    id: SceneId,
    proof: Proof,
    row: entity::scenes::Model,
    app_id: Option<String>,
}

impl Login {
    /// Reads the scene and, when the phone sent a code, takes the code's
    /// turn (the code belongs to the scene's app): a retry of the same code
    /// waits until the first call has returned. [`Self::resolve`] reads the
    /// scene again when that first call used the code.
    async fn begin(
        &self,
        id: &SceneId,
        auth: MpAuth,
        named: Option<&str>,
    ) -> Result<Call, LoginError> {
        match auth {
            MpAuth::Token(token) => {
                let row = self.load(id).await?;
                let app_id = scene_app(&row, named)?;
                Ok(Call {
                    id: id.clone(),
                    proof: Proof::Token(token),
                    row,
                    app_id,
                })
            }
            MpAuth::Code(code) => {
                self.app(named)?;
                check_code("code", &code)?;
                let row = self.load(id).await?;
                let app_id = scene_app(&row, named)?;
                let app = self.app(app_id.as_deref())?;
                let held = self.exchanges.hold(&app.app_id, &code).await;
                Ok(Call {
                    id: id.clone(),
                    proof: Proof::Code(held),
                    row,
                    app_id,
                })
            }
        }
    }

    /// Who the phone is, from its token or by exchanging its code. Also says
    /// what this code already did on this scene (for same-answer retries);
    /// when it did something, the scene is read again, as that call left it.
    async fn resolve(&self, call: &mut Call) -> Result<(Scanner, Option<CodeUse>), LoginError> {
        let row = &call.row;
        match &call.proof {
            Proof::Token(token) => {
                let valid = row
                    .mp_token_hash
                    .as_deref()
                    .is_some_and(|h| token_matches(token, h));
                let (Some(app), Some(openid)) = (row.app_id.clone(), row.openid.clone()) else {
                    return Err(LoginError::InvalidToken(
                        "mp_token does not match this scene",
                    ));
                };
                if !valid || call.app_id.as_deref().is_some_and(|a| a != app) {
                    return Err(LoginError::InvalidToken(
                        "mp_token does not match this scene",
                    ));
                }
                let binding = Scanner {
                    app_id: app,
                    openid,
                    unionid: row.unionid.clone(),
                    session_key: self.scenes.session_key(row).unwrap_or_default(),
                };
                Ok((binding, None))
            }
            Proof::Code(held) => {
                let ex = self.exchanges.exchange(held, &row.id).await?;
                if ex.used_for.is_some() {
                    call.row = self.load(&call.id).await?;
                }
                let binding = Scanner {
                    app_id: ex.app_id,
                    openid: ex.openid,
                    unionid: ex.unionid,
                    session_key: ex.session_key.expose_secret().to_owned(),
                };
                Ok((binding, ex.used_for))
            }
        }
    }

    async fn note_code_use(&self, proof: &Proof, used: CodeUse) {
        if let Proof::Code(held) = proof
            && let Err(e) = self.exchanges.record_use(held, used).await
        {
            warn!(error = %e, "could not note a code's use");
        }
    }

    /// Why this person's step was refused, from the scene as it is now.
    async fn refused(&self, id: &SceneId, b: &Scanner) -> LoginError {
        match self.load(id).await {
            Ok(fresh) => refusal(&fresh, b, now_ms()).into(),
            Err(e) => e,
        }
    }

    fn mp_token(&self, id: &SceneId, app_id: &str, openid: &str) -> String {
        self.key.derive(&["mp", id.as_str(), app_id, openid])
    }

    /// The phone scanned: bind the scene to this person, tell the browser.
    pub async fn scan(
        &self,
        id: &SceneId,
        code: &str,
        app_id: Option<&str>,
    ) -> Result<ScanAnswer, LoginError> {
        let mut call = self
            .begin(id, MpAuth::Code(code.to_owned()), app_id)
            .await?;
        let span = info_span!("scan", scene_id = %id);
        async {
            let client = self.client(&call.row.client_id)?;
            let (b, _) = self.resolve(&mut call).await?;
            let row = &call.row;
            let mp_token = self.mp_token(id, &b.app_id, &b.openid);
            let now = now_ms();
            if self
                .scenes
                .scan(id, &b, &token_hash(&mp_token), now)
                .await?
            {
                info!("scene scanned");
                self.publish(SceneView::plain(id.clone(), State::Scanned))
                    .await;
            } else if !self.scenes.rescan(id, &b, now).await? {
                return Err(self.refused(id, &b).await);
            }
            self.note_code_use(&call.proof, CodeUse::Scan).await;
            Ok(ScanAnswer {
                mp_token,
                state: State::Scanned,
                expires_at: rfc3339(row.expires_at),
                client: ClientView {
                    id: client.client_id.clone(),
                    name: client.name.clone(),
                    // Only what the browser said: a scene made without an
                    // Origin was made by a script, not the site's page.
                    origin: row.origin.clone(),
                    wants_phone: client.phone,
                },
                browser: BrowserView {
                    kind: if row.origin.is_some() {
                        BrowserKind::Browser
                    } else {
                        BrowserKind::Server
                    },
                    ip: row.browser_ip.clone(),
                    user_agent: row.browser_user_agent.clone(),
                    // Where it is: added by the edge, with `[geoip]`.
                    location: None,
                    far_from_phone: None,
                },
            })
        }
        .instrument(span)
        .await
    }

    /// The person confirmed: record them, issue the ticket, tell the browser.
    pub async fn confirm(
        &self,
        id: &SceneId,
        auth: MpAuth,
        app_id: Option<&str>,
        input: ConfirmInput,
    ) -> Result<(State, String), LoginError> {
        let arrived = Instant::now();
        let mut call = self.begin(id, auth, app_id).await?;
        let span = info_span!("confirm", scene_id = %id);
        async {
            let (b, used) = self.resolve(&mut call).await?;
            let row = &call.row;
            if let (Some(CodeUse::Confirm), Some(user_id)) = (used, &row.user_id)
                && already_done(row, &b, Step::Confirm)
            {
                return Ok((State::Confirmed, user_id.clone()));
            }
            let single_step = call.proof.single_step();
            if !may_finish(row, &b, single_step, now_ms()) {
                return Err(refusal(row, &b, now_ms()).into());
            }
            let phone_code = input.phone_code.clone();
            // Only a client that asks for numbers may receive one: a code
            // for any other is refused before WeChat is called.
            if phone_code.is_some() && !self.client(&row.client_id)?.phone {
                return Err(LoginError::InvalidRequest(
                    "phone_code: this site does not receive phone numbers".into(),
                ));
            }
            let mut profile = self.profile(&b, input)?;
            // Asked before anything is written: a refusal leaves the scene scanned.
            if let Some(code) = phone_code {
                profile.phone = Some(self.phone_number(&b.app_id, &code).await?);
            }
            let now = now_ms();
            let Some(user_id) = self
                .record_confirm(id, &row.client_id, &b, single_step, &profile, now)
                .await?
            else {
                return Err(self.refused(id, &b).await);
            };
            info!(user_id, "scene confirmed");
            self.report(FlowEvent::Ended(State::Confirmed));
            // Tell the browser first: noting the code's use is one more write
            // the person should not wait for (the code's turn, held until
            // this call returns, still keeps a retry from racing it).
            self.publish(SceneView {
                scene_id: id.clone(),
                state: State::Confirmed,
                confirmed: Some(ConfirmedView {
                    ticket_issued_at: now,
                    nickname: profile.nickname,
                    avatar_url: profile.avatar_url,
                }),
            })
            .await;
            self.report(FlowEvent::ConfirmPushed(arrived.elapsed().as_secs_f64()));
            self.note_code_use(&call.proof, CodeUse::Confirm).await;
            Ok((State::Confirmed, user_id))
        }
        .instrument(span)
        .await
    }

    /// Writes a confirm in one transaction: the scene, the person, their
    /// avatar and phone, the ticket and the webhook event. `None` when the
    /// scene was no longer in a state to confirm (nothing is written).
    async fn record_confirm(
        &self,
        id: &SceneId,
        client_id: &str,
        b: &Scanner,
        single_step: bool,
        profile: &Profile,
        now: i64,
    ) -> Result<Option<String>, LoginError> {
        let person = Person {
            app_id: &b.app_id,
            openid: &b.openid,
            unionid: b.unionid.as_deref(),
            nickname: profile.nickname.as_deref(),
            avatar_url: profile.avatar_url.as_deref(),
        };
        let new_user = UserStore::new_id();
        let txn = self.db.write().begin().await?;
        let confirmation = Confirmation {
            nickname: profile.nickname.as_deref(),
            avatar_url: profile.avatar_url.as_deref(),
            user_id: UserStore::existing_or(&person, &new_user),
        };
        // The scene row is written first: on SQLite this takes the write
        // lock before any read, so racing confirms queue instead of failing.
        // The same UPDATE looks up who the person already is.
        let Some(found) = self
            .scenes
            .confirm(&txn, id, b, single_step, confirmation, now)
            .await?
        else {
            txn.rollback().await?;
            return Ok(None);
        };
        let user_id = self
            .users
            .record(&txn, &person, &found, &new_user, now)
            .await?;
        if user_id != found {
            self.scenes.set_user(&txn, id, &user_id).await?;
        }
        if let Some(url) = &profile.avatar_url {
            let public_url = self.settings.server.public_url.as_str();
            let own = crate::avatars::own_avatar_id(public_url, url);
            self.users.set_avatar(&txn, &user_id, own).await?;
        }
        if let Some(number) = &profile.phone {
            let sealed = Sealer::new(&self.key).seal_str(&phone_context(&user_id), number);
            self.users.set_phone(&txn, &user_id, &sealed).await?;
            crate::consents::record(&txn, &user_id, client_id, now).await?;
        }
        self.tickets
            .issue(&txn, id.as_str(), client_id, &user_id, now)
            .await?;
        crate::webhooks::record_confirmed(&txn, &self.settings, id.as_str(), client_id, now)
            .await?;
        txn.commit().await?;
        Ok(Some(user_id))
    }

    /// The person refused: end the scene, tell the browser.
    pub async fn cancel(
        &self,
        id: &SceneId,
        auth: MpAuth,
        app_id: Option<&str>,
    ) -> Result<State, LoginError> {
        let mut call = self.begin(id, auth, app_id).await?;
        let span = info_span!("cancel", scene_id = %id);
        async {
            let (b, used) = self.resolve(&mut call).await?;
            let row = &call.row;
            if used == Some(CodeUse::Cancel) && already_done(row, &b, Step::Cancel) {
                return Ok(State::Cancelled);
            }
            let single_step = call.proof.single_step();
            let (now, txn) = (now_ms(), self.db.write().begin().await?);
            let cancelled = self.scenes.cancel(&txn, id, &b, single_step, now).await?;
            if cancelled {
                crate::webhooks::record_cancelled(
                    &txn,
                    &self.settings,
                    id.as_str(),
                    &row.client_id,
                    now,
                )
                .await?;
            }
            txn.commit().await?;
            if !cancelled {
                return Err(self.refused(id, &b).await);
            }
            info!("scene cancelled");
            self.report(FlowEvent::Ended(State::Cancelled));
            self.note_code_use(&call.proof, CodeUse::Cancel).await;
            self.publish(SceneView::plain(id.clone(), State::Cancelled))
                .await;
            Ok(State::Cancelled)
        }
        .instrument(span)
        .await
    }
}

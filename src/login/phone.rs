//! What the phone asks of the flow ([`PhoneFlow`]): scan a scene, then
//! confirm or cancel it (with the token from the scan, or in one step with a
//! fresh code); and, in `inside.rs` and `account.rs`, a login inside the
//! mini-program and the person's own account.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use secrecy::ExposeSecret;
use tracing::{Instrument, info, info_span, warn};

use super::answers::{BrowserKind, BrowserView, ClientView, ScanAnswer};
use super::exchanges::{CodeExchanges, CodeNote, Exchange, HeldCode, check_code};
use super::profile::{ConfirmInput, Profile, phone_number};
use super::writes::{CancelWrite, ConfirmWrite, ScanWrite, Scanned};
use super::{CodeUse, FlowEvent, FlowObserver, LoginError, app, client, load, publish, report};
use crate::clock::{now_ms, rfc3339};
use crate::db::Db;
use crate::geoip::GeoIp;
use crate::keys::{ServerKey, token_hash, token_matches};
use crate::live::{ClientRef, Live, LiveSettings};
use crate::login_history::LoginRecord;
use crate::push::Bus;
use crate::scene::machine::{already_done, may_finish, refusal};
use crate::scene::{ConfirmedView, Scanner, SceneId, SceneStore, SceneView, State, Step};
use crate::sealed::Sealer;
use crate::tickets::TicketStore;
use crate::wechat::WechatClient;

/// The phone's flow: a scan binds a scene to the person, a confirm records
/// them and issues the ticket, a cancel ends the scene; each step tells the
/// browser through the bus. Also the person's calls that serve no scene
/// (a login inside the mini-program, their account).
pub struct PhoneFlow {
    /// The settings in force; each step reads them once, so a reload
    /// applies from the next step on.
    pub(super) settings: LiveSettings,
    pub(super) db: Db,
    scenes: SceneStore,
    tickets: TicketStore,
    exchanges: CodeExchanges,
    wechat: Arc<WechatClient>,
    /// Derives the `mp_token` a scan hands the phone.
    key: Arc<ServerKey>,
    /// Seals phone numbers.
    sealer: Sealer,
    bus: Arc<dyn Bus<SceneView>>,
    observer: Option<FlowObserver>,
    /// The `[geoip]` city database, when configured: where a scan's
    /// browser is, and a login's, for the login history.
    geoip: Live<Option<GeoIp>>,
}

/// How the phone proves who it is.
pub enum MpAuth {
    /// The token from `scan`, bound to the scene and the scanner.
    Token(String),
    /// A fresh `wx.login` code (single-step confirm or cancel).
    Code(String),
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
/// by `resolve` when a retried code was used before), the app it acts for,
/// and what it has yet to write about its code.
struct Call {
    id: SceneId,
    proof: Proof,
    row: entity::scenes::Model,
    app_id: Option<String>,
    note: Option<CodeNote>,
}

impl PhoneFlow {
    /// The flow on `db`: codes exchanged through `wechat`, tokens derived
    /// from `key`, scene changes published on `bus`, events shown to
    /// `observer`, browsers located with `geoip`.
    pub fn new(
        settings: LiveSettings,
        db: Db,
        wechat: Arc<WechatClient>,
        key: Arc<ServerKey>,
        bus: Arc<dyn Bus<SceneView>>,
        observer: Option<FlowObserver>,
        geoip: Live<Option<GeoIp>>,
    ) -> Self {
        let sealer = Sealer::new(&key);
        Self {
            scenes: SceneStore::new(db.clone(), sealer.clone()),
            tickets: TicketStore::new(db.clone()),
            exchanges: CodeExchanges::new(db.clone(), wechat.clone(), sealer.clone()),
            settings,
            db,
            wechat,
            key,
            sealer,
            bus,
            observer,
            geoip,
        }
    }

    /// Exchanges a `wx.login` code of `app_id`'s app that serves no scene,
    /// bound to `purpose` (a code exchanged for one use is refused for
    /// another): the code, still held, the person, and the note the caller
    /// writes about the code. The caller keeps the held code until that note
    /// is written, so a retry of the same code waits for it and then finds it
    /// used.
    pub(super) async fn exchange_for(
        &self,
        code: &str,
        app_id: Option<&str>,
        purpose: &str,
    ) -> Result<(HeldCode, Exchange, CodeNote), LoginError> {
        let app = app(&self.settings, app_id)?;
        check_code("code", code)?;
        let held = self.exchanges.hold(&app.app_id, code).await;
        let (ex, note) = self.exchanges.exchange(&held, purpose).await?;
        Ok((held, ex, note))
    }

    /// The scene `id`, which must exist.
    async fn load(&self, id: &SceneId) -> Result<entity::scenes::Model, LoginError> {
        load(&self.scenes, id).await
    }

    fn client(&self, client_id: &str) -> Result<ClientRef, LoginError> {
        client(&self.settings, client_id)
    }

    /// Hands a flow event to the observer (metrics, webhook wake-ups).
    pub(super) fn report(&self, e: FlowEvent) {
        report(&self.observer, e);
    }

    async fn publish(&self, view: SceneView) {
        publish(&*self.bus, view).await;
    }

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
                    note: None,
                })
            }
            MpAuth::Code(code) => {
                app(&self.settings, named)?;
                check_code("code", &code)?;
                let row = self.load(id).await?;
                let app_id = scene_app(&row, named)?;
                let app = app(&self.settings, app_id.as_deref())?;
                let held = self.exchanges.hold(&app.app_id, &code).await;
                Ok(Call {
                    id: id.clone(),
                    proof: Proof::Code(held),
                    row,
                    app_id,
                    note: None,
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
                let (ex, note) = self.exchanges.exchange(held, &row.id).await?;
                call.note = Some(note);
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

    /// Writes what the call has yet to write about its code, when its step
    /// was refused or failed (a step taken wrote it in its transaction).
    async fn settle(&self, call: &mut Call) {
        if let Some(note) = call.note.take()
            && let Err(e) = note.write(self.db.write(), None).await
        {
            warn!(error = %e, "could not remember a code's exchange");
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

    /// The phone (at `phone_ip`) scanned: bind the scene to this person,
    /// tell the browser; with `[geoip]`, the answer says where the browser
    /// is and whether it is far from the phone.
    pub async fn scan(
        &self,
        id: &SceneId,
        code: &str,
        app_id: Option<&str>,
        phone_ip: Option<IpAddr>,
    ) -> Result<ScanAnswer, LoginError> {
        let mut call = self
            .begin(id, MpAuth::Code(code.to_owned()), app_id)
            .await?;
        let span = info_span!("scan", scene_id = %id);
        let answer = self.scan_call(&mut call).instrument(span).await;
        self.settle(&mut call).await;
        let mut answer = answer?;
        if let Some(geo) = self.geoip.load().as_ref() {
            answer.browser.locate(geo, phone_ip);
        }
        Ok(answer)
    }

    async fn scan_call(&self, call: &mut Call) -> Result<ScanAnswer, LoginError> {
        let client = self.client(&call.row.client_id)?;
        let (b, _) = self.resolve(call).await?;
        let id = call.id.clone();
        let mp_token = self.mp_token(&id, &b.app_id, &b.openid);
        let write = ScanWrite {
            scenes: self.scenes.clone(),
            id: id.clone(),
            b: b.clone(),
            mp_token_hash: token_hash(&mp_token),
            note: call.note.take(),
            now: now_ms(),
        };
        let scanned = self
            .db
            .transaction(move |tx| Box::pin(async move { write.run(tx).await }))
            .await?;
        match scanned {
            Scanned::First => {
                info!("scene scanned");
                self.publish(SceneView::plain(id.clone(), State::Scanned))
                    .await;
            }
            Scanned::Again => {}
            Scanned::No => return Err(self.refused(&id, &b).await),
        }
        let row = &call.row;
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
                // Where it is: added by `scan`, with `[geoip]`.
                location: None,
                far_from_phone: None,
            },
        })
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
        let answer = self
            .confirm_call(&mut call, input, arrived)
            .instrument(span)
            .await;
        self.settle(&mut call).await;
        answer
    }

    async fn confirm_call(
        &self,
        call: &mut Call,
        input: ConfirmInput,
        arrived: Instant,
    ) -> Result<(State, String), LoginError> {
        let (b, used) = self.resolve(call).await?;
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
        // Only a client that asks for numbers may receive one: a code for
        // any other is refused before WeChat is called.
        if phone_code.is_some() && !self.client(&row.client_id)?.phone {
            return Err(LoginError::InvalidRequest(
                "phone_code: this site does not receive phone numbers".into(),
            ));
        }
        let mut profile = Profile::checked(&b, input)?;
        // Asked before anything is written: a refusal leaves the scene scanned.
        if let Some(code) = phone_code {
            profile.phone = Some(phone_number(&self.wechat, &b.app_id, &code).await?);
        }
        let (nickname, avatar_url) = (profile.nickname.clone(), profile.avatar_url.clone());
        let now = now_ms();
        // Kept unless the history keeps no days.
        let settings = self.settings.get();
        let history = settings
            .housekeeping
            .keeps_login_history()
            .then(|| LoginRecord::of(row, now, self.geoip.load().as_ref().as_ref()));
        let write = ConfirmWrite {
            scenes: self.scenes.clone(),
            tickets: self.tickets.clone(),
            settings,
            sealer: self.sealer.clone(),
            id: call.id.clone(),
            client_id: row.client_id.clone(),
            b: b.clone(),
            single_step,
            profile,
            history,
            note: call.note.take(),
            now,
        };
        let confirmed = self
            .db
            .transaction(move |tx| Box::pin(async move { write.run(tx).await }))
            .await?;
        let Some(user_id) = confirmed else {
            return Err(self.refused(&call.id, &b).await);
        };
        info!(user_id, "scene confirmed");
        self.report(FlowEvent::Ended(State::Confirmed));
        self.publish(SceneView {
            scene_id: call.id.clone(),
            state: State::Confirmed,
            confirmed: Some(ConfirmedView {
                ticket_issued_at: now,
                nickname,
                avatar_url,
            }),
        })
        .await;
        self.report(FlowEvent::ConfirmPushed(arrived.elapsed().as_secs_f64()));
        Ok((State::Confirmed, user_id))
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
        let answer = self.cancel_call(&mut call).instrument(span).await;
        self.settle(&mut call).await;
        answer
    }

    async fn cancel_call(&self, call: &mut Call) -> Result<State, LoginError> {
        let (b, used) = self.resolve(call).await?;
        let row = &call.row;
        if used == Some(CodeUse::Cancel) && already_done(row, &b, Step::Cancel) {
            return Ok(State::Cancelled);
        }
        let write = CancelWrite {
            scenes: self.scenes.clone(),
            settings: self.settings.get(),
            id: call.id.clone(),
            client_id: row.client_id.clone(),
            b: b.clone(),
            single_step: call.proof.single_step(),
            note: call.note.take(),
            now: now_ms(),
        };
        let cancelled = self
            .db
            .transaction(move |tx| Box::pin(async move { write.run(tx).await }))
            .await?;
        if !cancelled {
            return Err(self.refused(&call.id, &b).await);
        }
        info!("scene cancelled");
        self.report(FlowEvent::Ended(State::Cancelled));
        self.publish(SceneView::plain(call.id.clone(), State::Cancelled))
            .await;
        Ok(State::Cancelled)
    }
}

//! The login flow: what happens when a browser asks for a scene, a phone scans,
//! confirms or cancels, and a site backend redeems a ticket. Handlers call
//! these functions; these call the stores, WeChat and the bus.

mod inside;

pub use inside::InsideLogin;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::{DbErr, TransactionTrait};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tracing::{Instrument, info, info_span, warn};

use crate::avatars::{AVATAR_PATH, Avatar, AvatarError, AvatarStore};
use crate::config::{AppSettings, ClientSettings, Settings};
use crate::db::Db;
use crate::flight::{Purpose, SingleFlight, wait_for_wechat};
use crate::http::error::ApiError;
use crate::keys::{ServerKey, now_ms, random_token, secrets_equal, token_hash, token_matches};
use crate::locks::{KeyGuard, KeyedLocks};
use crate::push::Bus;
use crate::scene::codes::SceneCodes;
use crate::scene::store::Confirmation;
use crate::scene::{Binding, ConfirmedView, NewScene, SceneId, SceneStore, SceneView, State};
use crate::sealed::Sealer;
use crate::tickets::{TicketStore, ticket_value};
use crate::users::{Person, UserProfile, UserStore, phone_context};
use crate::wechat::apps::{AppChooser, QUOTA_ERROR};
use crate::wechat::crypto::{decrypt_user_data, signature_matches};
use crate::wechat::{CodeExchanges, CodeImage, WechatClient};

/// Longest nickname accepted, in characters.
const MAX_NICKNAME: usize = 64;
/// Longest avatar URL accepted, in bytes.
const MAX_AVATAR_URL: usize = 2048;

/// Who asks for a scene: shown on the phone so the person can refuse.
#[derive(Debug, Clone)]
pub struct BrowserInfo {
    pub ip: String,
    pub user_agent: String,
}

/// A new scene, with the browser's secret (shown to that browser only).
pub struct CreatedScene {
    pub scene_id: String,
    pub browser_token: String,
    pub expires_at: i64,
    /// The app whose mini-program code the scene shows.
    pub app_id: Option<String>,
}

/// How the phone proves who it is.
pub enum MpAuth {
    /// The token from `scan`, bound to the scene and the scanner.
    Token(String),
    /// A fresh `wx.login` code (single-step confirm or cancel).
    Code(String),
}

/// The profile a confirm may carry.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileInput {
    /// At most 64 characters.
    pub nickname: Option<String>,
    /// An `https` URL of at most 2048 bytes.
    pub avatar_url: Option<String>,
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

/// The answer to a scan.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScanAnswer {
    /// The mini-program's credential for `confirm` and `cancel` of this
    /// scene, bound to this scene and this openid. A secret: send it only
    /// in request bodies.
    pub mp_token: String,
    pub state: State,
    /// When the scene expires (RFC 3339).
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub client: ClientView,
    pub browser: BrowserView,
}

/// Which site asks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClientView {
    pub id: String,
    pub name: String,
    /// The client's first allowed origin, if it has one.
    #[schema(required = true)]
    pub origin: Option<String>,
    /// Whether the site asks for the phone number (`phone = true`): the
    /// phone then offers the "share my phone number" button.
    pub wants_phone: bool,
}

/// Who made the scene: a web page (it sent an `Origin`) or a program that
/// did not say, which is what a QRLJacking script looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BrowserKind {
    Browser,
    Server,
}

/// Which browser asks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BrowserView {
    pub kind: BrowserKind,
    pub ip: String,
    pub user_agent: String,
}

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

/// The kind of a browser event (always `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// A state event.
    State,
}

/// The event a browser receives over the WebSocket and from `events`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BrowserEvent {
    /// `state`.
    #[serde(rename = "type")]
    pub r#type: EventType,
    /// The scene the event is about.
    pub scene_id: String,
    /// The scene's state now.
    pub state: State,
    /// The one-time ticket for the site's backend (only when `confirmed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub ticket: Option<String>,
    /// Who logged in (only when `confirmed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub user: Option<EventUser>,
}

/// The person shown to the browser after a confirm.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventUser {
    /// The nickname the phone sent, if any.
    #[schema(required = true)]
    pub nickname: Option<String>,
    /// The avatar URL the phone sent, if any.
    #[schema(required = true)]
    pub avatar_url: Option<String>,
}

/// Hook that sees flow events (metrics).
pub type FlowObserver = Arc<dyn Fn(FlowEvent) + Send + Sync>;

/// Something that happened to a scene, for metrics.
#[derive(Debug, Clone, Copy)]
pub enum FlowEvent {
    Created,
    Ended(State),
    /// Seconds from a confirm's arrival to the hand-off of `confirmed` to the bus.
    ConfirmPushed(f64),
}

/// The login flow.
pub struct Login {
    settings: Arc<Settings>,
    db: Db,
    scenes: SceneStore,
    codes: SceneCodes,
    users: UserStore,
    tickets: TicketStore,
    wechat: Arc<WechatClient>,
    exchanges: CodeExchanges,
    key: ServerKey,
    bus: Arc<dyn Bus>,
    code_flight: SingleFlight,
    code_calls: KeyedLocks,
    observer: Option<FlowObserver>,
    avatars: AvatarStore,
    apps: AppChooser,
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_scene(id: &str) -> Result<SceneId, ApiError> {
    SceneId::parse(id).ok_or(ApiError::SceneNotFound)
}

impl Login {
    /// Wires the flow to its stores.
    pub fn new(
        settings: Arc<Settings>,
        db: Db,
        wechat: Arc<WechatClient>,
        key: ServerKey,
        bus: Arc<dyn Bus>,
        observer: Option<FlowObserver>,
    ) -> Self {
        let code_flight = SingleFlight::new(
            Purpose::CodeImage,
            db.clone(),
            wait_for_wechat(Duration::from_millis(settings.wechat.timeout_ms)),
        );
        Self {
            avatars: AvatarStore::new(db.clone()),
            apps: AppChooser::new(settings.apps.iter().map(|a| a.app_id.clone()).collect()),
            scenes: SceneStore::new(db.clone(), Sealer::new(&key)),
            codes: SceneCodes::new(db.clone()),
            users: UserStore,
            tickets: TicketStore::new(db.clone()),
            exchanges: CodeExchanges::new(db.clone(), wechat.clone(), Sealer::new(&key)),
            settings,
            db,
            wechat,
            key,
            bus,
            code_flight,
            code_calls: KeyedLocks::default(),
            observer,
        }
    }

    fn observe(&self, e: FlowEvent) {
        if let Some(o) = &self.observer {
            o(e);
        }
    }

    fn client(&self, client_id: &str) -> Result<&ClientSettings, ApiError> {
        self.settings
            .client(client_id)
            .ok_or_else(|| ApiError::UnknownClient(client_id.to_owned()))
    }

    fn app(&self, app_id: Option<&str>) -> Result<&AppSettings, ApiError> {
        self.settings.app(app_id).ok_or_else(|| {
            ApiError::InvalidRequest(format!("unknown app_id {:?}", app_id.unwrap_or("")))
        })
    }

    /// Refuses an `Origin` the client does not allow (no header: not a browser).
    /// A client with OpenID Connect `redirect_uris` also allows the hub's own
    /// origin, where its authorize page shows the code.
    pub fn check_origin(
        &self,
        client: &ClientSettings,
        origin: Option<&str>,
    ) -> Result<(), ApiError> {
        match origin {
            Some(o)
                if !client.allows_origin(o)
                    && !crate::oidc::hub_page_origin(&self.settings, client, o) =>
            {
                Err(ApiError::OriginNotAllowed(o.to_owned()))
            }
            _ => Ok(()),
        }
    }

    /// Makes a new scene for `client_id`.
    pub async fn create_scene(
        &self,
        client_id: &str,
        origin: Option<&str>,
        browser: BrowserInfo,
    ) -> Result<CreatedScene, ApiError> {
        let client = self.client(client_id)?;
        self.check_origin(client, origin)?;
        let id = SceneId::new_random();
        let browser_token = random_token();
        let now = now_ms();
        let expires_at = now + self.settings.scene.ttl_secs as i64 * 1000;
        let app_id = self.apps.pick(client.app_id.as_deref(), now);
        self.scenes
            .insert(NewScene {
                id: id.to_string(),
                client_id: client.client_id.clone(),
                browser_token_hash: token_hash(&browser_token),
                browser_ip: browser.ip,
                browser_user_agent: browser.user_agent.chars().take(512).collect(),
                origin: origin.map(str::to_owned),
                created_at: now,
                expires_at,
                code_app_id: app_id.clone(),
            })
            .await?;
        info!(scene_id = %id, client_id, "scene created");
        self.observe(FlowEvent::Created);
        Ok(CreatedScene {
            scene_id: id.to_string(),
            browser_token,
            expires_at,
            app_id,
        })
    }

    /// The scene's code image; WeChat is asked once per scene.
    pub async fn qrcode(&self, scene_id: &str) -> Result<CodeImage, ApiError> {
        let row = self.load(scene_id).await?;
        let id = row.id.as_str();
        if SceneView::of(&row, now_ms()).state == State::Expired {
            return Err(ApiError::SceneExpired);
        }
        if let Some(img) = self.codes.get(id).await? {
            return Ok(img);
        }
        // The token of the app that will be asked first, so the scene's
        // flight needs no second connection for it.
        let first = self
            .apps
            .candidates(self.code_app(&row).as_deref(), now_ms());
        if let Some(app_id) = first.first() {
            self.wechat.token(app_id).await?;
        }
        // One caller per scene across every node (crate::flight).
        let flight = self.code_flight.enter(id).await?;
        if let Some(img) = self.codes.get_with(&flight.reader(), id).await? {
            return Ok(img);
        }
        let img = self
            .code_image(&row)
            .instrument(info_span!("wechat_code", scene_id = %id))
            .await?;
        self.codes.put(&flight.writer(), id, &img, now_ms()).await?;
        if let Err(e) = flight.land().await {
            warn!(error = %e, scene_id = %id, "code image not stored; the next request asks WeChat again");
        }
        Ok(img)
    }

    /// The app the scene's code comes from first: the one that made it
    /// before, else the client's.
    fn code_app(&self, row: &entity::scenes::Model) -> Option<String> {
        row.code_app_id.clone().or_else(|| {
            self.settings
                .client(&row.client_id)
                .and_then(|c| c.app_id.clone())
        })
    }

    /// Asks WeChat for the scene's code: from the scene's app, or on a quota
    /// error (45009) from the next configured app, which the scene then
    /// names. Any other error, or a quota error from every app, is returned.
    async fn code_image(&self, row: &entity::scenes::Model) -> Result<CodeImage, ApiError> {
        let preferred = self.code_app(row);
        let mut last = None;
        for app_id in self.apps.candidates(preferred.as_deref(), now_ms()) {
            let result = self.wechat.code_image(&app_id, &row.id).await;
            let outcome = match &result {
                Ok(_) => "ok".to_owned(),
                Err(e) => e.errcode.to_string(),
            };
            crate::telemetry::metrics::code_call(&app_id, &outcome);
            match result {
                Ok(img) => {
                    self.apps.worked(&app_id);
                    if row.code_app_id.as_deref() != Some(app_id.as_str()) {
                        info!(scene_id = %row.id, app_id, "code made by another app");
                        self.scenes.set_code_app(&row.id, &app_id).await?;
                    }
                    return Ok(img);
                }
                Err(e) if e.errcode == QUOTA_ERROR => {
                    warn!(app_id, "WeChat quota spent; trying the next app");
                    self.apps.exhausted(&app_id, now_ms());
                    last = Some(e);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last.map_or_else(
            || ApiError::InvalidRequest("no app is configured".into()),
            ApiError::from,
        ))
    }

    /// The app a mini-program call acts for: the one it names, which must be
    /// the app whose code the scene shows, else that app.
    fn scene_app<'a>(
        &self,
        row: &'a entity::scenes::Model,
        named: Option<&'a str>,
    ) -> Result<Option<&'a str>, ApiError> {
        match (named, row.code_app_id.as_deref()) {
            (Some(named), Some(shown)) if named != shown => Err(ApiError::InvalidRequest(format!(
                "this code belongs to app {shown:?}, not {named:?}"
            ))),
            (Some(named), _) => Ok(Some(named)),
            (None, shown) => Ok(shown),
        }
    }

    /// The scene as its browser may see it: checks the browser token.
    /// The scene as its browser may see it, in one read: the `Origin` (when
    /// given) must be one of the scene's client's, then the token must match.
    pub async fn browser_view(
        &self,
        scene_id: &str,
        browser_token: &str,
        origin: Option<&str>,
    ) -> Result<SceneView, ApiError> {
        let row = self.load(scene_id).await?;
        if let Some(client) = self.settings.client(&row.client_id) {
            self.check_origin(client, origin)?;
        }
        if !token_matches(browser_token, &row.browser_token_hash) {
            return Err(ApiError::InvalidToken(
                "browser_token does not match this scene",
            ));
        }
        Ok(SceneView::of(&row, now_ms()))
    }

    /// The scene's current view for a listener that already proved its token.
    pub async fn browser_view_unchecked(&self, scene_id: &str) -> Result<SceneView, ApiError> {
        let row = self.load(scene_id).await?;
        Ok(SceneView::of(&row, now_ms()))
    }

    /// For a socket or long-poll: the scene's client, to check the `Origin`.
    /// `None` when the scene does not exist.
    pub async fn scene_client(&self, scene_id: &str) -> Result<Option<&ClientSettings>, ApiError> {
        let Some(id) = SceneId::parse(scene_id) else {
            return Ok(None);
        };
        let Some(row) = self.scenes.get(id.as_str()).await? else {
            return Ok(None);
        };
        Ok(self.settings.client(&row.client_id))
    }

    /// The JSON event a browser receives for `view` (adds the derived ticket).
    pub fn browser_event(&self, view: &SceneView) -> BrowserEvent {
        let confirmed = view.confirmed.as_ref();
        BrowserEvent {
            r#type: EventType::State,
            scene_id: view.scene_id.clone(),
            state: view.state,
            ticket: confirmed.map(|c| ticket_value(&self.key, &view.scene_id, c.ticket_issued_at)),
            user: confirmed.map(|c| EventUser {
                nickname: c.nickname.clone(),
                avatar_url: c.avatar_url.clone(),
            }),
        }
    }

    async fn publish(&self, view: SceneView) {
        if let Err(e) = self.bus.publish(view).await {
            warn!(error = %e, "push failed; listeners will read the state from the database");
        }
    }

    fn mp_token(&self, scene_id: &str, app_id: &str, openid: &str) -> String {
        self.key.derive(&["mp", scene_id, app_id, openid])
    }

    /// Why a transition did not happen, from the scene's current row.
    fn refusal(&self, row: &entity::scenes::Model, b: &Binding) -> ApiError {
        let view = SceneView::of(row, now_ms());
        let bound_other = row.openid.is_some()
            && (row.app_id.as_deref() != Some(&b.app_id)
                || row.openid.as_deref() != Some(&b.openid));
        match view.state {
            State::Expired => ApiError::SceneExpired,
            _ if bound_other => ApiError::SceneTaken,
            s if s.is_final() => ApiError::SceneFinal(s.as_str()),
            _ => ApiError::SceneFinal("changed meanwhile"),
        }
    }

    /// Serialises every call that carries the same code, so a retry sent
    /// while the first call is still running waits for it and then gets the
    /// same answer instead of racing it.
    async fn hold_code(
        &self,
        auth: &MpAuth,
        app_id: Option<&str>,
    ) -> Result<Option<KeyGuard>, ApiError> {
        let MpAuth::Code(code) = auth else {
            return Ok(None);
        };
        let app = self.app(app_id)?;
        if code.is_empty() || code.len() > 256 {
            return Err(ApiError::InvalidRequest(
                "code must be 1-256 characters".into(),
            ));
        }
        Ok(Some(
            self.code_calls
                .lock(&CodeExchanges::code_hash(&app.app_id, code))
                .await,
        ))
    }

    /// Who the phone is, from its token or by exchanging its code. Also says
    /// what this code already did on this scene (for same-answer retries).
    async fn resolve(
        &self,
        row: &entity::scenes::Model,
        app_id: Option<&str>,
        auth: &MpAuth,
    ) -> Result<(Binding, Option<String>), ApiError> {
        match auth {
            MpAuth::Token(token) => {
                let valid = row
                    .mp_token_hash
                    .as_deref()
                    .is_some_and(|h| token_matches(token, h));
                let (Some(app), Some(openid)) = (row.app_id.clone(), row.openid.clone()) else {
                    return Err(ApiError::InvalidToken("mp_token does not match this scene"));
                };
                if !valid || app_id.is_some_and(|a| a != app) {
                    return Err(ApiError::InvalidToken("mp_token does not match this scene"));
                }
                let binding = Binding {
                    app_id: app,
                    openid,
                    unionid: row.unionid.clone(),
                    session_key: self.scenes.session_key(row).unwrap_or_default(),
                };
                Ok((binding, None))
            }
            MpAuth::Code(code) => {
                let app = self.app(app_id)?;
                let ex = self.exchanges.exchange(&app.app_id, code, &row.id).await?;
                let binding = Binding {
                    app_id: ex.app_id,
                    openid: ex.openid,
                    unionid: ex.unionid,
                    session_key: ex.session_key.expose_secret().to_owned(),
                };
                Ok((binding, ex.outcome))
            }
        }
    }

    async fn load(&self, scene_id: &str) -> Result<entity::scenes::Model, ApiError> {
        let id = parse_scene(scene_id)?;
        self.scenes
            .get(id.as_str())
            .await?
            .ok_or(ApiError::SceneNotFound)
    }

    async fn note_code_use(&self, auth: &MpAuth, app_id: &str, outcome: &str) {
        if let MpAuth::Code(code) = auth {
            let hash = CodeExchanges::code_hash(app_id, code);
            if let Err(e) = self.exchanges.record_use(&hash, outcome).await {
                warn!(error = %e, "could not note a code's use");
            }
        }
    }

    /// The phone scanned: bind the scene to this person, tell the browser.
    pub async fn scan(
        &self,
        scene_id: &str,
        code: &str,
        app_id: Option<&str>,
    ) -> Result<ScanAnswer, ApiError> {
        let auth = MpAuth::Code(code.to_owned());
        let _code = self.hold_code(&auth, app_id).await?;
        let row = self.load(scene_id).await?;
        let app_id = self.scene_app(&row, app_id)?;
        let span = info_span!("scan", scene_id = %row.id);
        async {
            let client = self.client(&row.client_id)?;
            let (b, _) = self.resolve(&row, app_id, &auth).await?;
            let mp_token = self.mp_token(&row.id, &b.app_id, &b.openid);
            let now = now_ms();
            if self
                .scenes
                .scan(&row.id, &b, &token_hash(&mp_token), now)
                .await?
            {
                info!("scene scanned");
                self.publish(SceneView {
                    scene_id: row.id.clone(),
                    state: State::Scanned,
                    confirmed: None,
                })
                .await;
            } else if !self.scenes.rescan(&row.id, &b, now).await? {
                let fresh = self.load(&row.id).await?;
                return Err(self.refusal(&fresh, &b));
            }
            self.note_code_use(&auth, &b.app_id, "scan").await;
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
                },
            })
        }
        .instrument(span)
        .await
    }

    /// The person confirmed: record them, issue the ticket, tell the browser.
    pub async fn confirm(
        &self,
        scene_id: &str,
        auth: MpAuth,
        app_id: Option<&str>,
        input: ConfirmInput,
    ) -> Result<(State, String), ApiError> {
        let arrived = std::time::Instant::now();
        let _code = self.hold_code(&auth, app_id).await?;
        let row = self.load(scene_id).await?;
        let app_id = self.scene_app(&row, app_id)?;
        let span = info_span!("confirm", scene_id = %row.id);
        async {
            let (b, used) = self.resolve(&row, app_id, &auth).await?;
            let bound_here = row.app_id.as_deref() == Some(&b.app_id)
                && row.openid.as_deref() == Some(&b.openid);
            if let (Some("confirm"), Some(user_id)) = (used.as_deref(), &row.user_id)
                && bound_here
                && row.state == State::Confirmed.as_str()
            {
                return Ok((State::Confirmed, user_id.clone()));
            }
            let allow_waiting = matches!(auth, MpAuth::Code(_));
            let eligible = SceneView::of(&row, now_ms()).state == State::Scanned && bound_here
                || allow_waiting
                    && row.state == State::Waiting.as_str()
                    && row.expires_at > now_ms();
            if !eligible {
                return Err(self.refusal(&row, &b));
            }
            let phone_code = input.phone_code.clone();
            let (nickname, avatar_url) = self.profile(&b, input)?;
            // Asked before anything is written: a refusal leaves the scene scanned.
            let phone = match phone_code {
                Some(code) => Some(self.phone_number(&b.app_id, &code).await?),
                None => None,
            };
            let person = Person {
                app_id: &b.app_id,
                openid: &b.openid,
                unionid: b.unionid.as_deref(),
                nickname: nickname.as_deref(),
                avatar_url: avatar_url.as_deref(),
            };
            let new_user = UserStore::new_id();
            let now = now_ms();
            let txn = self.db.write().begin().await?;
            let confirmation = Confirmation {
                nickname: nickname.as_deref(),
                avatar_url: avatar_url.as_deref(),
                user_id: UserStore::existing_or(&person, &new_user),
            };
            // The scene row is written first: on SQLite this takes the write
            // lock before any read, so racing confirms queue instead of failing.
            // The same UPDATE looks up who the person already is.
            let Some(found) = self
                .scenes
                .confirm(&txn, &row.id, &b, allow_waiting, confirmation, now)
                .await?
            else {
                txn.rollback().await?;
                let fresh = self.load(&row.id).await?;
                return Err(self.refusal(&fresh, &b));
            };
            let user_id = self
                .users
                .record(&txn, &person, &found, &new_user, now)
                .await?;
            if user_id != found {
                self.scenes.set_user(&txn, &row.id, &user_id).await?;
            }
            if let Some(url) = &avatar_url {
                let public_url = self.settings.server.public_url.as_str();
                let own = crate::avatars::own_avatar_id(public_url, url);
                self.users.set_avatar(&txn, &user_id, own).await?;
            }
            if let Some(number) = &phone {
                let sealed = Sealer::new(&self.key).seal_str(&phone_context(&user_id), number);
                self.users.set_phone(&txn, &user_id, &sealed).await?;
            }
            self.tickets
                .issue(&txn, &row.id, &row.client_id, &user_id, now)
                .await?;
            crate::webhooks::record_confirmed(&txn, &self.settings, &row.id, &row.client_id, now)
                .await?;
            txn.commit().await?;
            info!(user_id, "scene confirmed");
            self.observe(FlowEvent::Ended(State::Confirmed));
            // Tell the browser first: noting the code's use is one more write
            // the person should not wait for (the code's lock, held until this
            // call returns, still keeps a retry from racing it).
            self.publish(SceneView {
                scene_id: row.id.clone(),
                state: State::Confirmed,
                confirmed: Some(ConfirmedView {
                    ticket_issued_at: now,
                    nickname,
                    avatar_url,
                }),
            })
            .await;
            self.observe(FlowEvent::ConfirmPushed(arrived.elapsed().as_secs_f64()));
            self.note_code_use(&auth, &b.app_id, "confirm").await;
            Ok((State::Confirmed, user_id))
        }
        .instrument(span)
        .await
    }

    /// The phone number behind a `getPhoneNumber` code, from WeChat.
    async fn phone_number(&self, app_id: &str, code: &str) -> Result<String, ApiError> {
        if code.is_empty() || code.len() > 256 {
            return Err(ApiError::InvalidRequest(
                "phone_code must be 1-256 characters".into(),
            ));
        }
        Ok(self
            .wechat
            .phone_number(app_id, code)
            .instrument(info_span!("wechat_phone"))
            .await?)
    }

    /// Nickname and avatar from the plain profile, the decrypted data or the
    /// signed raw data, after checking each against WeChat's session.
    fn profile(
        &self,
        b: &Binding,
        input: ConfirmInput,
    ) -> Result<(Option<String>, Option<String>), ApiError> {
        let mut nickname = None;
        let mut avatar = None;
        match (&input.encrypted_data, &input.iv) {
            (Some(data), Some(iv)) => {
                let d = decrypt_user_data(&b.session_key, data, iv)
                    .map_err(|e| ApiError::DecryptFailed(e.to_string()))?;
                if d.watermark.as_ref().map(|w| w.appid.as_str()) != Some(b.app_id.as_str()) {
                    return Err(ApiError::WatermarkMismatch);
                }
                if d.open_id.as_ref().is_some_and(|o| *o != b.openid) {
                    return Err(ApiError::IdentityMismatch(
                        "decrypted openId is not the session's openid",
                    ));
                }
                if let (Some(u), Some(mine)) = (&d.union_id, &b.unionid)
                    && u != mine
                {
                    return Err(ApiError::IdentityMismatch(
                        "decrypted unionId is not the session's unionid",
                    ));
                }
                nickname = d.nick_name;
                avatar = d.avatar_url;
            }
            (None, None) => {}
            _ => {
                return Err(ApiError::InvalidRequest(
                    "encrypted_data and iv go together".into(),
                ));
            }
        }
        match (&input.raw_data, &input.signature) {
            (Some(raw), Some(sig)) => {
                if !signature_matches(raw, &b.session_key, sig) {
                    return Err(ApiError::SignatureMismatch);
                }
                #[derive(Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Raw {
                    nick_name: Option<String>,
                    avatar_url: Option<String>,
                }
                let r: Raw = serde_json::from_str(raw).map_err(|_| {
                    ApiError::InvalidRequest("raw_data is not a JSON object".into())
                })?;
                nickname = nickname.or(r.nick_name);
                avatar = avatar.or(r.avatar_url);
            }
            (None, None) => {}
            _ => {
                return Err(ApiError::InvalidRequest(
                    "raw_data and signature go together".into(),
                ));
            }
        }
        if let Some(p) = input.profile {
            nickname = p.nickname.or(nickname);
            avatar = p.avatar_url.or(avatar);
        }
        let nickname = nickname
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty());
        if nickname
            .as_ref()
            .is_some_and(|n| n.chars().count() > MAX_NICKNAME || n.chars().any(char::is_control))
        {
            return Err(ApiError::InvalidRequest(format!(
                "nickname: at most {MAX_NICKNAME} printable characters"
            )));
        }
        let avatar = avatar.filter(|a| !a.is_empty());
        if let Some(a) = &avatar {
            let ok = a.len() <= MAX_AVATAR_URL
                && url::Url::parse(a).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return Err(ApiError::InvalidRequest(
                    "avatar_url: an http(s) URL of at most 2048 bytes".into(),
                ));
            }
        }
        Ok((nickname, avatar))
    }

    /// The person refused: end the scene, tell the browser.
    pub async fn cancel(
        &self,
        scene_id: &str,
        auth: MpAuth,
        app_id: Option<&str>,
    ) -> Result<State, ApiError> {
        let _code = self.hold_code(&auth, app_id).await?;
        let row = self.load(scene_id).await?;
        let app_id = self.scene_app(&row, app_id)?;
        let span = info_span!("cancel", scene_id = %row.id);
        async {
            let (b, used) = self.resolve(&row, app_id, &auth).await?;
            let bound_here = row.app_id.as_deref() == Some(&b.app_id)
                && row.openid.as_deref() == Some(&b.openid);
            if used.as_deref() == Some("cancel")
                && bound_here
                && row.state == State::Cancelled.as_str()
            {
                return Ok(State::Cancelled);
            }
            let allow_waiting = matches!(auth, MpAuth::Code(_));
            let (now, txn) = (now_ms(), self.db.write().begin().await?);
            let cancelled = self
                .scenes
                .cancel(&txn, &row.id, &b, allow_waiting, now)
                .await?;
            if cancelled {
                crate::webhooks::record_cancelled(
                    &txn,
                    &self.settings,
                    &row.id,
                    &row.client_id,
                    now,
                )
                .await?;
            }
            txn.commit().await?;
            if !cancelled {
                let fresh = self.load(&row.id).await?;
                return Err(self.refusal(&fresh, &b));
            }
            info!("scene cancelled");
            self.observe(FlowEvent::Ended(State::Cancelled));
            self.note_code_use(&auth, &b.app_id, "cancel").await;
            self.publish(SceneView {
                scene_id: row.id.clone(),
                state: State::Cancelled,
                confirmed: None,
            })
            .await;
            Ok(State::Cancelled)
        }
        .instrument(span)
        .await
    }

    /// The client whose id and secret these are (compared in constant time).
    pub fn authenticate_client(
        &self,
        client_id: &str,
        client_secret: &str,
    ) -> Result<&ClientSettings, ApiError> {
        let client = self.settings.client(client_id);
        let known =
            client.is_some_and(|c| secrets_equal(client_secret, c.client_secret.expose_secret()));
        client
            .filter(|_| known)
            .ok_or(ApiError::Unauthorized("client credentials are wrong"))
    }

    /// An authenticated site backend redeems a ticket made for it.
    pub async fn redeem(
        &self,
        client: &ClientSettings,
        ticket: &str,
    ) -> Result<RedeemAnswer, ApiError> {
        let redeemed = self
            .tickets
            .redeem(&self.key, ticket, &client.client_id, now_ms())
            .await?
            .ok_or(ApiError::InvalidTicket)?;
        let mut user = redeemed
            .user
            .ok_or_else(|| ApiError::Internal("ticket's user is missing".into()))?;
        user.reveal_phone(&Sealer::new(&self.key), client.phone);
        info!(scene_id = %redeemed.scene_id, client_id = %client.client_id, "ticket redeemed");
        Ok(RedeemAnswer {
            user,
            scene_id: redeemed.scene_id,
            client_id: client.client_id.clone(),
            confirmed_at: rfc3339(redeemed.issued_at),
        })
    }

    /// Marks overdue scenes expired and tells their browsers; returns how many.
    pub async fn expire_overdue(&self) -> Result<usize, DbErr> {
        let mut total = 0;
        for _ in 0..20 {
            let ids = self.scenes.expire_overdue(now_ms(), 500).await?;
            let n = ids.len();
            for id in ids {
                info!(scene_id = %id, "scene expired");
                self.observe(FlowEvent::Ended(State::Expired));
                self.publish(SceneView {
                    scene_id: id,
                    state: State::Expired,
                    confirmed: None,
                })
                .await;
            }
            total += n;
            if n < 500 {
                break;
            }
        }
        Ok(total)
    }

    /// Deletes scenes, code images and tickets older than `retention_ms`, and
    /// code exchanges past their 5 minutes, in batches; returns rows deleted.
    pub async fn purge(&self, retention_ms: i64, batch: u64) -> Result<u64, DbErr> {
        let now = now_ms();
        let cutoff = now - retention_ms;
        let mut total = 0;
        for _ in 0..100 {
            let n = self.scenes.purge_before(cutoff, batch).await?
                + self.codes.purge_before(cutoff, batch).await?
                + self.tickets.purge_before(cutoff, batch).await?
                + self.exchanges.purge_before(now, batch).await?
                + self.avatars.purge_unreferenced(cutoff, batch).await?;
            total += n;
            if n == 0 {
                break;
            }
        }
        Ok(total)
    }

    /// Refuses a token that is not the `mp_token` of a live scanned scene
    /// (before an avatar's body is read).
    pub async fn check_avatar_token(&self, mp_token: &str) -> Result<(), ApiError> {
        if self.avatars.token_is_live(mp_token, now_ms()).await? {
            Ok(())
        } else {
            Err(ApiError::InvalidToken(
                "mp_token is not the token of a scanned scene",
            ))
        }
    }

    /// Checks, re-encodes and stores an uploaded avatar (after
    /// [`Self::check_avatar_token`]); returns its absolute URL.
    pub async fn upload_avatar(
        &self,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<String, ApiError> {
        let png = self
            .avatars
            .reencode(content_type, bytes)
            .await
            .map_err(|e| match e {
                AvatarError::UnsupportedType => ApiError::BadRequestStatus {
                    status: actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    detail: e.to_string(),
                },
                AvatarError::Busy => ApiError::Unavailable(e.to_string()),
                other => ApiError::InvalidRequest(other.to_string()),
            })?;
        let id = self.avatars.put(png, now_ms()).await?;
        info!(avatar_id = %id, "avatar stored");
        let base = self.settings.server.public_url.as_str();
        Ok(format!("{}{AVATAR_PATH}{id}", base.trim_end_matches('/')))
    }

    /// A stored avatar.
    pub async fn avatar(&self, id: &str) -> Result<Avatar, ApiError> {
        self.avatars
            .get(id)
            .await?
            .ok_or_else(|| ApiError::BadRequestStatus {
                status: actix_web::http::StatusCode::NOT_FOUND,
                detail: "no such avatar".into(),
            })
    }

    /// Whether the database answers reads and takes writes.
    pub async fn ready(&self) -> Result<(), DbErr> {
        self.db.check_ready().await
    }
}

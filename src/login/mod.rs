//! The login flow: what happens when a browser asks for a scene, a phone
//! scans, confirms or cancels, and a site backend redeems a ticket. One file
//! per audience, as in `src/http/`: `browser.rs`, `phone.rs` (with
//! `answers.rs` for what a scan tells the phone, `profile.rs` for what a
//! confirm carries, `inside.rs` for logins inside the mini-program and
//! `account.rs` for the person's own account), `site.rs` and
//! `housekeeping.rs`. Handlers call these methods; these call the stores,
//! WeChat and the bus, and fail with [`LoginError`], which knows nothing of
//! HTTP.

mod account;
mod answers;
mod browser;
mod error;
mod exchanges;
mod housekeeping;
mod inside;
mod phone;
mod profile;
mod site;
mod writes;

pub use answers::{BrowserKind, BrowserView, ClientView, ScanAnswer};
pub use browser::{BrowserInfo, CreatedScene, SocketScene};
pub use error::LoginError;
use exchanges::{CodeExchanges, CodeUse};
pub use inside::InsideLogin;
pub use phone::{ConfirmInput, MpAuth};
pub use profile::ProfileInput;
pub use site::RedeemAnswer;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tracing::warn;

use crate::avatars::AvatarStore;
use crate::clock::now_ms;
use crate::config::Settings;
use crate::db::Db;
use crate::flight::{Purpose, SingleFlight, wait_for_wechat};
use crate::geoip::GeoIp;
use crate::keys::ServerKey;
use crate::live::{AppRef, ClientRef, Live, LiveSettings};
use crate::push::{Bus, Message, Source};
use crate::scene::code_images::CodeImages;
use crate::scene::{SceneId, SceneStore, SceneView, State};
use crate::sealed::Sealer;
use crate::tickets::{TicketStore, ticket_value};
use crate::wechat::WechatClient;
use crate::wechat::apps::AppChooser;

/// Hook that sees flow events (metrics, webhooks).
pub type FlowObserver = Arc<dyn Fn(FlowEvent) + Send + Sync>;

/// Something that happened to a scene or a person, for metrics and webhooks.
#[derive(Debug, Clone, Copy)]
pub enum FlowEvent {
    Created,
    Ended(State),
    /// Seconds from a confirm's arrival to the hand-off of `confirmed` to the bus.
    ConfirmPushed(f64),
    /// A person deleted their account; `user.deleted` events were queued.
    UserDeleted,
}

/// The login flow.
pub struct Login {
    /// The settings in force; each step reads them once, so a reload
    /// applies from the next step on.
    settings: LiveSettings,
    db: Db,
    scenes: SceneStore,
    code_images: CodeImages,
    tickets: TicketStore,
    wechat: Arc<WechatClient>,
    exchanges: CodeExchanges,
    key: ServerKey,
    bus: Arc<dyn Bus<SceneView>>,
    code_flight: SingleFlight,
    observer: Option<FlowObserver>,
    avatars: AvatarStore,
    apps: AppChooser,
    /// Seals phone numbers and opens them for redemption (built once).
    sealer: Sealer,
    /// The `[geoip]` city database, when configured: where a login's
    /// browser was, for the login history.
    geoip: Live<Option<GeoIp>>,
}

/// A scene's changes are what the push room carries: the topic is the
/// scene, the rank its place along the state machine.
impl Message for SceneView {
    fn topic(&self) -> &str {
        self.scene_id.as_str()
    }

    fn rank(&self) -> u8 {
        self.state.rank()
    }
}

/// Where the bus re-reads listened scenes after a reconnect.
pub struct SceneSource(SceneStore);

impl SceneSource {
    pub fn new(db: Db, key: &ServerKey) -> Self {
        Self(SceneStore::new(db, Sealer::new(key)))
    }
}

impl Source<SceneView> for SceneSource {
    /// The scenes past `waiting` (every listener has seen `waiting`).
    fn reread<'a>(&'a self, topics: &'a [String]) -> BoxFuture<'a, Result<Vec<SceneView>, String>> {
        Box::pin(async move {
            let ids: Vec<SceneId> = topics.iter().filter_map(|t| SceneId::parse(t)).collect();
            let rows = self.0.get_many(&ids).await.map_err(|e| e.to_string())?;
            let now = now_ms();
            Ok(rows
                .iter()
                .map(|row| SceneView::of(row, now))
                .filter(|view| view.state != State::Waiting)
                .collect())
        })
    }
}

impl Login {
    /// Wires the flow to its stores.
    pub fn new(
        settings: LiveSettings,
        db: Db,
        wechat: Arc<WechatClient>,
        key: ServerKey,
        bus: Arc<dyn Bus<SceneView>>,
        observer: Option<FlowObserver>,
    ) -> Self {
        let now = settings.get();
        let code_flight = SingleFlight::new(
            Purpose::CodeImage,
            db.clone(),
            wait_for_wechat(Duration::from_millis(now.wechat.timeout_ms)),
        );
        Self {
            avatars: AvatarStore::new(db.clone()),
            apps: AppChooser::new(app_order(&now)),
            scenes: SceneStore::new(db.clone(), Sealer::new(&key)),
            code_images: CodeImages::new(db.clone()),
            tickets: TicketStore::new(db.clone()),
            exchanges: CodeExchanges::new(db.clone(), wechat.clone(), Sealer::new(&key)),
            sealer: Sealer::new(&key),
            settings,
            db,
            wechat,
            key,
            bus,
            code_flight,
            observer,
            geoip: Live::new(None),
        }
    }

    /// Locates the browsers of logins with the `[geoip]` database.
    pub fn with_geoip(mut self, geoip: Live<Option<GeoIp>>) -> Self {
        self.geoip = geoip;
        self
    }

    /// After a reload stored `settings`: the apps a code may come from, and
    /// the apps the WeChat client knows, follow them.
    pub fn reloaded(&self, settings: &Settings) {
        self.apps.reorder(app_order(settings));
        self.wechat.set_apps(&settings.apps);
    }

    /// The one-time ticket a browser is shown for a confirmed view (derived
    /// from the server key; the view itself carries no secret).
    pub fn ticket_of(&self, view: &SceneView) -> Option<String> {
        let confirmed = view.confirmed.as_ref()?;
        Some(ticket_value(
            &self.key,
            view.scene_id.as_str(),
            confirmed.ticket_issued_at,
        ))
    }

    /// The avatar store's decoding slots (for tests: see
    /// [`AvatarStore::decode_slots`]).
    pub fn avatar_decode_slots(&self) -> Arc<tokio::sync::Semaphore> {
        self.avatars.decode_slots()
    }

    /// Hands a flow event to the observer (metrics, webhook wake-ups).
    fn report(&self, e: FlowEvent) {
        if let Some(o) = &self.observer {
            o(e);
        }
    }

    fn client(&self, client_id: &str) -> Result<ClientRef, LoginError> {
        ClientRef::find(self.settings.get(), client_id)
            .ok_or_else(|| LoginError::UnknownClient(client_id.to_owned()))
    }

    fn app(&self, app_id: Option<&str>) -> Result<AppRef, LoginError> {
        AppRef::find(self.settings.get(), app_id).ok_or_else(|| {
            LoginError::InvalidRequest(format!("unknown app_id {:?}", app_id.unwrap_or("")))
        })
    }

    /// Exchanges a `wx.login` code of `app_id`'s app that serves no scene,
    /// bound to `purpose` (a code exchanged for one use is refused for
    /// another): the person and the note the caller writes about the code.
    async fn exchange_for(
        &self,
        code: &str,
        app_id: Option<&str>,
        purpose: &str,
    ) -> Result<(exchanges::Exchange, exchanges::CodeNote), LoginError> {
        let app = self.app(app_id)?;
        phone::check_code("code", code)?;
        let held = self.exchanges.hold(&app.app_id, code).await;
        Ok(self.exchanges.exchange(&held, purpose).await?)
    }

    async fn load(&self, id: &SceneId) -> Result<entity::scenes::Model, LoginError> {
        self.scenes.get(id).await?.ok_or(LoginError::SceneNotFound)
    }

    async fn publish(&self, view: SceneView) {
        if let Err(e) = self.bus.publish(view).await {
            warn!(error = %e, "push failed; listeners will read the state from the database");
        }
    }
}

/// The configured app ids, in order.
fn app_order(settings: &Settings) -> Vec<String> {
    settings.apps.iter().map(|a| a.app_id.clone()).collect()
}

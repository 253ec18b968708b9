//! The login flow: what happens when a browser asks for a scene, a phone
//! scans, confirms or cancels, and a site backend redeems a ticket. One
//! service per audience, as in `src/http/`, each holding only the stores and
//! keys it uses: [`BrowserScenes`] (`browser.rs`), [`PhoneFlow`] (`phone.rs`,
//! with `answers.rs` for what a scan tells the phone, `profile.rs` for what a
//! confirm carries, `writes.rs` for what each step writes, `inside.rs` for
//! logins inside the mini-program and `account.rs` for the person's account),
//! [`Avatars`] (`avatars.rs`), the [`Redeemer`] (`site.rs`) and the
//! [`Sweeper`] (`housekeeping.rs`), which runs on its own. Handlers call
//! these services; these call the stores, WeChat and the bus, and fail with
//! [`LoginError`], which knows nothing of HTTP.

mod account;
mod answers;
mod avatars;
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
pub use avatars::Avatars;
pub use browser::{BrowserInfo, BrowserScenes, CreatedScene, SocketScene};
pub use error::LoginError;
use exchanges::CodeUse;
pub use housekeeping::{DbReadiness, Purge, Sweeper};
pub use inside::InsideLogin;
pub use phone::{MpAuth, PhoneFlow};
pub use profile::{ConfirmInput, ProfileInput};
pub use site::{RedeemAnswer, Redeemer};

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tracing::warn;

use crate::clock::now_ms;
use crate::live::{AppRef, ClientRef, LiveSettings};
use crate::push::{Bus, Message, Source};
use crate::scene::{SceneId, SceneStore, SceneView, State};

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
    pub fn new(scenes: SceneStore) -> Self {
        Self(scenes)
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

/// The client `client_id` in the settings in force.
fn client(settings: &LiveSettings, client_id: &str) -> Result<ClientRef, LoginError> {
    ClientRef::find(settings.get(), client_id)
        .ok_or_else(|| LoginError::UnknownClient(client_id.to_owned()))
}

/// The app `app_id` in the settings in force (`None`: the first configured).
fn app(settings: &LiveSettings, app_id: Option<&str>) -> Result<AppRef, LoginError> {
    AppRef::find(settings.get(), app_id).ok_or_else(|| {
        LoginError::InvalidRequest(format!("unknown app_id {:?}", app_id.unwrap_or("")))
    })
}

/// The scene `id`, which must exist.
async fn load(scenes: &SceneStore, id: &SceneId) -> Result<entity::scenes::Model, LoginError> {
    scenes.get(id).await?.ok_or(LoginError::SceneNotFound)
}

/// Hands a flow event to the observer, when there is one (metrics, webhook
/// wake-ups).
fn report(observer: &Option<FlowObserver>, e: FlowEvent) {
    if let Some(o) = observer {
        o(e);
    }
}

/// Tells the scene's listeners on every node; when the bus fails they read
/// the state from the database.
async fn publish(bus: &dyn Bus<SceneView>, view: SceneView) {
    if let Err(e) = bus.publish(view).await {
        warn!(error = %e, "push failed; listeners will read the state from the database");
    }
}

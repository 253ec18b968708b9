//! What a browser asks of the flow ([`BrowserScenes`]): a new scene, its
//! code image, and the scene as its browser may see it.

use std::sync::Arc;
use std::time::Duration;

use tracing::{Instrument, info, info_span, warn};

use super::{FlowEvent, FlowObserver, LoginError, client, load, report};
use crate::clock::now_ms;
use crate::config::{ClientSettings, Settings};
use crate::db::Db;
use crate::flight::{Purpose, SingleFlight, wait_for_wechat};
use crate::keys::{random_token, token_hash, token_matches};
use crate::live::LiveSettings;
use crate::scene::code_images::CodeImages;
use crate::scene::{NewScene, SceneId, SceneStore, SceneView, State};
use crate::wechat::apps::{AppChooser, QUOTA_ERROR};
use crate::wechat::{CodeImage, WechatClient};

/// Who asks for a scene: shown on the phone so the person can refuse.
#[derive(Debug, Clone)]
pub struct BrowserInfo {
    pub ip: String,
    pub user_agent: String,
}

/// A new scene, with the browser's secret (shown to that browser only).
pub struct CreatedScene {
    pub scene_id: SceneId,
    pub browser_token: String,
    pub expires_at: i64,
    /// The app whose mini-program code the scene shows.
    pub app_id: Option<String>,
}

/// Scenes for browsers: making them, their code images (one WeChat call per
/// scene across every node, from the app whose per-minute limit is not
/// spent), and the scene as its browser may see it.
pub struct BrowserScenes {
    /// The settings in force; each step reads them once, so a reload
    /// applies from the next step on.
    settings: LiveSettings,
    scenes: SceneStore,
    code_images: CodeImages,
    code_flight: SingleFlight,
    apps: AppChooser,
    wechat: Arc<WechatClient>,
    observer: Option<FlowObserver>,
}

impl BrowserScenes {
    /// Scenes in `scenes`, their code images on `db` from `wechat`;
    /// `observer` sees each scene made.
    pub fn new(
        settings: LiveSettings,
        db: Db,
        scenes: SceneStore,
        wechat: Arc<WechatClient>,
        observer: Option<FlowObserver>,
    ) -> Self {
        let now = settings.get();
        let code_flight = SingleFlight::new(
            Purpose::CodeImage,
            db.clone(),
            wait_for_wechat(Duration::from_millis(now.wechat.timeout_ms)),
        );
        Self {
            apps: AppChooser::new(app_order(&now)),
            scenes,
            code_images: CodeImages::new(db),
            code_flight,
            settings,
            wechat,
            observer,
        }
    }

    /// After a reload stored `settings`: the apps a code may come from, and
    /// the apps the WeChat client knows, follow them.
    pub fn reloaded(&self, settings: &Settings) {
        self.apps.reorder(app_order(settings));
        self.wechat.set_apps(&settings.apps);
    }

    /// Refuses an `Origin` the client does not allow (no header: not a browser).
    /// A client with OpenID Connect `redirect_uris` also allows the hub's own
    /// origin, where its authorize page shows the code.
    pub fn check_origin(
        &self,
        client: &ClientSettings,
        origin: Option<&str>,
    ) -> Result<(), LoginError> {
        match origin {
            Some(o) if !crate::origins::client_allows(&self.settings.load(), client, o) => {
                Err(LoginError::OriginNotAllowed(o.to_owned()))
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
    ) -> Result<CreatedScene, LoginError> {
        let client = client(&self.settings, client_id)?;
        self.check_origin(&client, origin)?;
        let id = SceneId::new_random();
        let browser_token = random_token();
        let now = now_ms();
        let expires_at = now + client.settings().scene.ttl_secs as i64 * 1000;
        let app_id = self.apps.pick(client.app_id.as_deref(), now);
        self.scenes
            .insert(NewScene {
                id: id.clone(),
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
        report(&self.observer, FlowEvent::Created);
        Ok(CreatedScene {
            scene_id: id,
            browser_token,
            expires_at,
            app_id,
        })
    }

    /// The scene's code image; WeChat is asked once per scene.
    pub async fn qrcode(&self, id: &SceneId) -> Result<CodeImage, LoginError> {
        let row = load(&self.scenes, id).await?;
        if State::at(&row, now_ms()) == State::Expired {
            return Err(LoginError::SceneExpired);
        }
        // Across nodes a flight is a transaction: look before taking one,
        // and get the token of the app that will be asked first, so the
        // scene's flight needs no second connection for it. On one node the
        // flight's own read is the only one.
        if self.code_flight.spans_nodes() {
            if let Some(img) = self.code_images.get(id).await? {
                return Ok(img);
            }
            let first = self
                .apps
                .candidates(self.code_app(&row).as_deref(), now_ms());
            if let Some(app_id) = first.first() {
                self.wechat.token(app_id).await?;
            }
        }
        // One caller per scene across every node (crate::flight).
        let flight = self.code_flight.enter(id.as_str()).await?;
        if let Some(img) = self.code_images.get_with(&flight.reader(), id).await? {
            return Ok(img);
        }
        let img = self
            .code_image(id, &row)
            .instrument(info_span!("wechat_code", scene_id = %id))
            .await?;
        self.code_images
            .put(&flight.writer(), id, &img, now_ms())
            .await?;
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
                .load()
                .client(&row.client_id)
                .and_then(|c| c.app_id.clone())
        })
    }

    /// Asks WeChat for the scene's code: from the scene's app, or on 45009
    /// (WeChat's per-minute limit) from the next configured app, which the scene then
    /// names. Any other error, or a quota error from every app, is returned.
    async fn code_image(
        &self,
        id: &SceneId,
        row: &entity::scenes::Model,
    ) -> Result<CodeImage, LoginError> {
        let preferred = self.code_app(row);
        let mut last = None;
        for app_id in self.apps.candidates(preferred.as_deref(), now_ms()) {
            let result = self.wechat.code_image(&app_id, id.as_str()).await;
            let outcome = match &result {
                Ok(_) => "ok".to_owned(),
                Err(e) => e.errcode.to_string(),
            };
            crate::telemetry::metrics::code_call(&app_id, &outcome);
            match result {
                Ok(img) => {
                    self.apps.worked(&app_id);
                    if row.code_app_id.as_deref() != Some(app_id.as_str()) {
                        info!(scene_id = %id, app_id, "code made by another app");
                        self.scenes.set_code_app(id, &app_id).await?;
                    }
                    return Ok(img);
                }
                Err(e) if e.errcode == QUOTA_ERROR => {
                    let until = self.apps.exhausted(&app_id, now_ms());
                    crate::telemetry::metrics::app_skipped_until(&app_id, until);
                    warn!(
                        app_id,
                        "WeChat's per-minute code limit (45009); the app is skipped \
                        for the rest of this minute, trying the next app"
                    );
                    last = Some(e);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last.map_or_else(
            || LoginError::InvalidRequest("no app is configured".into()),
            LoginError::from,
        ))
    }

    /// The scene as its browser may see it, in one read: the `Origin` (when
    /// given) must be one of the scene's client's, then the token must match.
    pub async fn browser_view(
        &self,
        id: &SceneId,
        browser_token: &str,
        origin: Option<&str>,
    ) -> Result<SceneView, LoginError> {
        let row = load(&self.scenes, id).await?;
        if let Ok(client) = client(&self.settings, &row.client_id) {
            self.check_origin(&client, origin)?;
        }
        if !token_matches(browser_token, &row.browser_token_hash) {
            return Err(LoginError::InvalidToken(
                "browser_token does not match this scene",
            ));
        }
        Ok(SceneView::of(&row, now_ms()))
    }

    /// The scene's current view for a listener that already proved its token.
    pub async fn scene_view(&self, id: &SceneId) -> Result<SceneView, LoginError> {
        let row = load(&self.scenes, id).await?;
        Ok(SceneView::of(&row, now_ms()))
    }

    /// For a socket's upgrade: the scene, read once (its client's `Origin`
    /// is checked at the upgrade, its browser token at the first frame).
    /// `None` when the scene does not exist.
    pub async fn socket_scene(&self, id: &SceneId) -> Result<Option<SocketScene>, LoginError> {
        Ok(self
            .scenes
            .get(id)
            .await?
            .map(|row| SocketScene(Box::new(row))))
    }
}

/// The configured app ids, in order.
fn app_order(settings: &Settings) -> Vec<String> {
    settings.apps.iter().map(|a| a.app_id.clone()).collect()
}

/// A scene as a socket read it at its upgrade.
pub struct SocketScene(Box<entity::scenes::Model>);

impl SocketScene {
    /// The client the scene was made for.
    pub fn client_id(&self) -> &str {
        &self.0.client_id
    }

    /// The scene's view now, for the browser holding `browser_token`.
    pub fn view_for(&self, browser_token: &str) -> Result<SceneView, LoginError> {
        if !token_matches(browser_token, &self.0.browser_token_hash) {
            return Err(LoginError::InvalidToken(
                "browser_token does not match this scene",
            ));
        }
        Ok(SceneView::of(&self.0, now_ms()))
    }
}

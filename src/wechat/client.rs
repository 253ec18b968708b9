//! HTTP client for WeChat's server API (or anything speaking it: the built-in
//! simulator, a test fake). Access tokens come from `cgi-bin/stable_token`,
//! are cached in memory and in the database (shared by every node), refreshed
//! before they run out, one refresh per app at a time across every node
//! (`crate::flight`); a call answered with 40001/40014/42001 refreshes once
//! and retries.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use reqwest::header::CONTENT_TYPE;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use super::tokens::{CachedToken, TokenStore};
use crate::config::AppSettings;
use crate::db::Db;
use crate::flight::{FlightError, Purpose, SingleFlight};
use crate::http::error::ApiError;
use crate::keys::now_ms;

/// Refresh a token when less than this is left (WeChat renews 5 min early).
const REFRESH_MARGIN_MS: i64 = 5 * 60 * 1000;
/// Token errors after which the cached token is dropped and the call retried.
const TOKEN_ERRORS: [i64; 3] = [40001, 40014, 42001];

/// WeChat said no, or could not be reached or understood.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("WeChat {api}: {errcode} {errmsg}")]
pub struct WechatError {
    pub api: &'static str,
    /// WeChat's `errcode`; -1 ("busy, retry") when WeChat gave none, e.g. on a
    /// timeout or an unreadable answer.
    pub errcode: i64,
    pub errmsg: String,
}

impl WechatError {
    fn transport(api: &'static str, err: reqwest::Error) -> Self {
        let what = if err.is_timeout() {
            "timed out"
        } else {
            "unreachable"
        };
        tracing::warn!(api, error = %err.without_url(), "WeChat call failed");
        Self {
            api,
            errcode: -1,
            errmsg: format!("WeChat {what}"),
        }
    }
    fn garbage(api: &'static str, why: &str) -> Self {
        tracing::warn!(api, why, "unreadable WeChat answer");
        Self {
            api,
            errcode: -1,
            errmsg: format!("unreadable answer from WeChat: {why}"),
        }
    }
}

/// Why no access token came: WeChat's answer, or no turn to ask for one.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// WeChat could not be reached or refused.
    #[error(transparent)]
    Wechat(#[from] WechatError),
    /// Another request (on this or another node) fetched it for too long.
    #[error(transparent)]
    Flight(#[from] FlightError),
}

impl From<TokenError> for WechatError {
    fn from(err: TokenError) -> Self {
        match err {
            TokenError::Wechat(e) => e,
            TokenError::Flight(e) => {
                tracing::warn!(error = %e, "no turn to fetch the access token");
                WechatError {
                    api: "stable_token",
                    errcode: -1,
                    errmsg: "the access token is being fetched; retry".into(),
                }
            }
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(err: TokenError) -> Self {
        match err {
            TokenError::Wechat(e) => e.into(),
            TokenError::Flight(e) => e.into(),
        }
    }
}

/// What `jscode2session` tells about a person.
#[derive(Clone)]
pub struct WxSession {
    pub openid: String,
    pub unionid: Option<String>,
    pub session_key: SecretString,
}

/// A mini-program code image.
#[derive(Clone)]
pub struct CodeImage {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Outcome counter hook: (api, outcome, seconds).
pub type CallObserver = Arc<dyn Fn(&'static str, &str, f64) + Send + Sync>;

/// The client; cheap to share behind an `Arc`.
pub struct WechatClient {
    http: reqwest::Client,
    base: Url,
    apps: HashMap<String, AppSettings>,
    tokens: TokenStore,
    memory: DashMap<String, CachedToken>,
    token_flight: SingleFlight,
    observer: Option<CallObserver>,
}

#[derive(Deserialize)]
struct ErrBody {
    errcode: Option<i64>,
    errmsg: Option<String>,
}

impl WechatClient {
    /// A client for `base` (WeChat's `https://api.weixin.qq.com` or a stand-in);
    /// a request waits at most `flight_wait` for another's token fetch.
    pub fn new(
        http: reqwest::Client,
        base: Url,
        apps: &[AppSettings],
        db: Db,
        sealer: crate::sealed::Sealer,
        observer: Option<CallObserver>,
        flight_wait: Duration,
    ) -> Self {
        let mut base = base;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Self {
            http,
            base,
            apps: apps.iter().map(|a| (a.app_id.clone(), a.clone())).collect(),
            tokens: TokenStore::new(db.clone(), sealer),
            memory: DashMap::new(),
            token_flight: SingleFlight::new(Purpose::AccessToken, db, flight_wait),
            observer,
        }
    }

    fn url(&self, path: &str) -> Result<Url, WechatError> {
        self.base
            .join(path)
            .map_err(|_| WechatError::garbage("config", "bad api_base"))
    }

    /// POSTs `body` as JSON to `path?access_token=token`; the answer's
    /// lower-cased Content-Type and bytes.
    async fn post_json(
        &self,
        api: &'static str,
        path: &str,
        token: &str,
        body: &Value,
    ) -> Result<(String, bytes::Bytes), WechatError> {
        let mut url = self.url(path)?;
        url.query_pairs_mut().append_pair("access_token", token);
        let res = self
            .http
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(|e| WechatError::transport(api, e))?;
        let content_type = res
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let bytes = res
            .bytes()
            .await
            .map_err(|e| WechatError::transport(api, e))?;
        Ok((content_type, bytes))
    }

    fn app(&self, app_id: &str) -> Result<&AppSettings, WechatError> {
        self.apps.get(app_id).ok_or_else(|| WechatError {
            api: "config",
            errcode: 40013,
            errmsg: "app not configured".into(),
        })
    }

    fn observe(&self, api: &'static str, outcome: String, started: Instant) {
        if let Some(obs) = &self.observer {
            obs(api, &outcome, started.elapsed().as_secs_f64());
        }
    }

    /// A valid access token for the app, from memory, the database, or WeChat.
    pub async fn access_token(&self, app_id: &str) -> Result<String, WechatError> {
        Ok(self.token(app_id).await?)
    }

    /// Like [`Self::access_token`], saying apart "no turn to fetch it" (503).
    /// One fetch per app at a time across every node: the holder re-reads
    /// the shared cache once it has its turn and stores what it fetched
    /// before the next caller's turn.
    pub async fn token(&self, app_id: &str) -> Result<String, TokenError> {
        let fresh = |t: &CachedToken| t.expires_at - now_ms() > REFRESH_MARGIN_MS;
        if let Some(t) = self.memory.get(app_id).map(|t| t.clone())
            && fresh(&t)
        {
            return Ok(t.access_token);
        }
        match self.tokens.get(app_id).await {
            Ok(Some(t)) if fresh(&t) => {
                self.memory.insert(app_id.to_owned(), t.clone());
                return Ok(t.access_token);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "token cache unreadable; asking WeChat"),
        }
        let flight = self.token_flight.enter(app_id).await?;
        if let Some(t) = self.memory.get(app_id).map(|t| t.clone())
            && fresh(&t)
        {
            return Ok(t.access_token);
        }
        match self.tokens.get_with(&flight.reader(), app_id).await {
            Ok(Some(t)) if fresh(&t) => {
                self.memory.insert(app_id.to_owned(), t.clone());
                return Ok(t.access_token);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "token cache unreadable; asking WeChat"),
        }
        let t = self.fetch_stable_token(app_id).await?;
        let stored = match self.tokens.put(&flight.writer(), app_id, &t).await {
            Ok(()) => flight.land().await,
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            tracing::warn!(error = %e, "could not store access token");
        }
        self.memory.insert(app_id.to_owned(), t.clone());
        Ok(t.access_token)
    }

    /// Forgets `token` (memory and database) so the next call fetches anew.
    async fn drop_token(&self, app_id: &str, token: &str) {
        self.memory
            .remove_if(app_id, |_, t| t.access_token == token);
        if let Err(e) = self.tokens.forget(app_id, token).await {
            tracing::warn!(error = %e, "could not drop access token");
        }
    }

    async fn fetch_stable_token(&self, app_id: &str) -> Result<CachedToken, WechatError> {
        const API: &str = "stable_token";
        let app = self.app(app_id)?;
        let started = Instant::now();
        let body = json!({
            "grant_type": "client_credential",
            "appid": app.app_id,
            "secret": app.secret.expose_secret(),
        });
        let result = async {
            let res = self
                .http
                .post(self.url("cgi-bin/stable_token")?)
                .json(&body)
                .send()
                .await
                .map_err(|e| WechatError::transport(API, e))?;
            let bytes = res
                .bytes()
                .await
                .map_err(|e| WechatError::transport(API, e))?;
            #[derive(Deserialize)]
            struct Answer {
                access_token: Option<String>,
                expires_in: Option<i64>,
                errcode: Option<i64>,
                errmsg: Option<String>,
            }
            let a: Answer = serde_json::from_slice(&bytes)
                .map_err(|_| WechatError::garbage(API, "not JSON"))?;
            match (a.access_token, a.expires_in) {
                (Some(token), Some(secs)) if !token.is_empty() && secs > 0 => {
                    let now = now_ms();
                    Ok(CachedToken {
                        access_token: token,
                        expires_at: now + secs.min(7200) * 1000,
                        fetched_at: now,
                    })
                }
                _ => Err(WechatError {
                    api: API,
                    errcode: a.errcode.filter(|c| *c != 0).unwrap_or(-1),
                    errmsg: a
                        .errmsg
                        .unwrap_or_else(|| "no access_token in answer".into()),
                }),
            }
        }
        .await;
        self.observe(API, outcome(&result), started);
        result
    }

    /// Runs `call` with a token; on a token error drops it and retries once.
    async fn with_token<T, F, Fut>(&self, app_id: &str, call: F) -> Result<T, WechatError>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<T, WechatError>>,
    {
        let token = self.access_token(app_id).await?;
        match call(token.clone()).await {
            Err(e) if TOKEN_ERRORS.contains(&e.errcode) => {
                tracing::info!(errcode = e.errcode, "access token refused; refreshing once");
                self.drop_token(app_id, &token).await;
                let token = self.access_token(app_id).await?;
                call(token).await
            }
            other => other,
        }
    }

    /// `wxa/getwxacodeunlimit`: the code image for `scene` with the app's page.
    pub async fn code_image(&self, app_id: &str, scene: &str) -> Result<CodeImage, WechatError> {
        const API: &str = "getwxacodeunlimit";
        let app = self.app(app_id)?;
        let mut body = json!({
            "scene": scene,
            "page": app.page,
            "env_version": app.env_version,
            "check_path": app.check_path,
            "width": app.width,
            "auto_color": app.auto_color,
            "is_hyaline": app.is_hyaline,
        });
        if let Some(color) = app.line_color {
            body["line_color"] = json!(color);
        }
        let started = Instant::now();
        let result = self
            .with_token(app_id, |token| {
                let body = &body;
                async move {
                    let (content_type, bytes) = self
                        .post_json(API, "wxa/getwxacodeunlimit", &token, body)
                        .await?;
                    if let Ok(ErrBody {
                        errcode: Some(code),
                        errmsg,
                    }) = serde_json::from_slice::<ErrBody>(&bytes)
                        && code != 0
                    {
                        return Err(WechatError {
                            api: API,
                            errcode: code,
                            errmsg: errmsg.unwrap_or_default(),
                        });
                    }
                    let image_type = content_type
                        .split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_owned();
                    if !image_type.starts_with("image/") || bytes.is_empty() {
                        return Err(WechatError::garbage(API, "answer is not an image"));
                    }
                    Ok(CodeImage {
                        content_type: image_type,
                        bytes: bytes.to_vec(),
                    })
                }
            })
            .await;
        self.observe(API, outcome(&result), started);
        result
    }

    /// `wxa/business/getuserphonenumber`: the phone number behind a
    /// `getPhoneNumber` button's `code` (`phone_info.phoneNumber`, with the
    /// country code when it is not China's).
    pub async fn phone_number(&self, app_id: &str, code: &str) -> Result<String, WechatError> {
        const API: &str = "getuserphonenumber";
        self.app(app_id)?;
        let body = json!({ "code": code });
        let started = Instant::now();
        let result = self
            .with_token(app_id, |token| {
                let body = &body;
                async move {
                    let (_, bytes) = self
                        .post_json(API, "wxa/business/getuserphonenumber", &token, body)
                        .await?;
                    #[derive(Deserialize)]
                    #[serde(rename_all = "camelCase")]
                    struct PhoneInfo {
                        phone_number: Option<String>,
                    }
                    #[derive(Deserialize)]
                    struct Answer {
                        errcode: Option<i64>,
                        errmsg: Option<String>,
                        phone_info: Option<PhoneInfo>,
                    }
                    let a: Answer = serde_json::from_slice(&bytes)
                        .map_err(|_| WechatError::garbage(API, "not JSON"))?;
                    let code = a.errcode.unwrap_or(0);
                    if code != 0 {
                        return Err(WechatError {
                            api: API,
                            errcode: code,
                            errmsg: a.errmsg.unwrap_or_default(),
                        });
                    }
                    a.phone_info
                        .and_then(|p| p.phone_number)
                        .filter(|n| is_phone_number(n))
                        .ok_or_else(|| WechatError::garbage(API, "no phone number in answer"))
                }
            })
            .await;
        self.observe(API, outcome(&result), started);
        result
    }

    /// `sns/jscode2session`: who holds this `wx.login` code.
    pub async fn code_to_session(
        &self,
        app_id: &str,
        code: &str,
    ) -> Result<WxSession, WechatError> {
        const API: &str = "jscode2session";
        let app = self.app(app_id)?;
        let started = Instant::now();
        let result = async {
            let res = self
                .http
                .get(self.url("sns/jscode2session")?)
                .query(&[
                    ("appid", app.app_id.as_str()),
                    ("secret", app.secret.expose_secret()),
                    ("js_code", code),
                    ("grant_type", "authorization_code"),
                ])
                .send()
                .await
                .map_err(|e| WechatError::transport(API, e))?;
            let bytes = res
                .bytes()
                .await
                .map_err(|e| WechatError::transport(API, e))?;
            #[derive(Deserialize)]
            struct Answer {
                openid: Option<String>,
                unionid: Option<String>,
                session_key: Option<String>,
                errcode: Option<i64>,
                errmsg: Option<String>,
            }
            let a: Answer = serde_json::from_slice(&bytes)
                .map_err(|_| WechatError::garbage(API, "not JSON"))?;
            match (a.openid, a.session_key, a.errcode.unwrap_or(0)) {
                (Some(openid), Some(key), 0) if !openid.is_empty() && !key.is_empty() => {
                    Ok(WxSession {
                        openid,
                        unionid: a.unionid.filter(|u| !u.is_empty()),
                        session_key: SecretString::from(key),
                    })
                }
                (_, _, code) => Err(WechatError {
                    api: API,
                    errcode: if code == 0 { -1 } else { code },
                    errmsg: a.errmsg.unwrap_or_else(|| "no openid in answer".into()),
                }),
            }
        }
        .await;
        self.observe(API, outcome(&result), started);
        result
    }
}

/// Whether WeChat's `phoneNumber` looks like one: an optional `+`, then
/// 5 to 20 digits (spaces and dashes allowed between them).
fn is_phone_number(n: &str) -> bool {
    let digits = n.strip_prefix('+').unwrap_or(n);
    let count = digits.chars().filter(char::is_ascii_digit).count();
    (5..=20).contains(&count)
        && digits.len() <= 32
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
}

fn outcome<T>(r: &Result<T, WechatError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => e.errcode.to_string(),
    }
}

/// Builds the shared HTTP client with explicit timeouts.
pub fn http_client(
    timeout: Duration,
    connect_timeout: Duration,
) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("scanlogin/", env!("CARGO_PKG_VERSION")))
        .build()
}

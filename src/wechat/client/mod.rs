//! HTTP client for WeChat's server API (or anything speaking it: the built-in
//! simulator, a test fake). Access tokens come from `cgi-bin/stable_token`,
//! are cached in memory and in the database (shared by every node), refreshed
//! before they run out, one refresh per app at a time across every node
//! (`crate::flight`); a call answered with 40001/40014/42001 refreshes once
//! and retries.
//!
//! - `error`: [`WechatError`] and [`TokenError`];
//! - `token`: the access token, cached and fetched once per app;
//! - `calls`: WeChat's APIs the hub calls.

mod calls;
mod error;
mod token;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use dashmap::DashMap;
use reqwest::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use super::tokens::{CachedToken, TokenStore};
use crate::config::AppSettings;
use crate::db::Db;
use crate::flight::{Purpose, SingleFlight};

pub use calls::{CodeImage, WxSession};
pub use error::{TokenError, WechatError};

/// Outcome counter hook: (api, outcome, seconds).
pub type CallObserver = Arc<dyn Fn(&'static str, &str, f64) + Send + Sync>;

/// The client; cheap to share behind an `Arc`.
pub struct WechatClient {
    http: reqwest::Client,
    base: Url,
    /// The configured apps by id (a reload replaces them).
    apps: ArcSwap<HashMap<String, AppSettings>>,
    tokens: TokenStore,
    memory: DashMap<String, CachedToken>,
    token_flight: SingleFlight,
    observer: Option<CallObserver>,
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
            apps: ArcSwap::from_pointee(by_id(apps)),
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

    /// Sends `request` and reads the answer as JSON of type `T` (a transport
    /// failure or an answer that is not JSON is a `WechatError`).
    async fn json_answer<T: DeserializeOwned>(
        api: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, WechatError> {
        let res = request
            .send()
            .await
            .map_err(|e| WechatError::transport(api, e))?;
        let bytes = res
            .bytes()
            .await
            .map_err(|e| WechatError::transport(api, e))?;
        serde_json::from_slice(&bytes).map_err(|_| WechatError::garbage(api, "not JSON"))
    }

    /// The configured apps are now `apps` (after a reload). A cached access
    /// token stays in use until it runs out or WeChat refuses it.
    pub fn set_apps(&self, apps: &[AppSettings]) {
        self.apps.store(Arc::new(by_id(apps)));
    }

    fn app(&self, app_id: &str) -> Result<AppSettings, WechatError> {
        self.apps
            .load()
            .get(app_id)
            .cloned()
            .ok_or_else(|| WechatError {
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
}

fn by_id(apps: &[AppSettings]) -> HashMap<String, AppSettings> {
    apps.iter().map(|a| (a.app_id.clone(), a.clone())).collect()
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

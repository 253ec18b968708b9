//! Access tokens: from memory, the shared cache in the database, or
//! `cgi-bin/stable_token`; one fetch per app at a time across every node;
//! a call refused for its token refreshes once and retries.

use std::time::Instant;

use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use super::{TokenError, WechatClient, WechatError, outcome};
use crate::clock::now_ms;
use crate::wechat::tokens::CachedToken;

/// Refresh a token when less than this is left (WeChat renews 5 min early).
const REFRESH_MARGIN_MS: i64 = 5 * 60 * 1000;
/// Token errors after which the cached token is dropped and the call retried.
const TOKEN_ERRORS: [i64; 3] = [40001, 40014, 42001];

impl WechatClient {
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
            #[derive(Deserialize)]
            struct Answer {
                access_token: Option<String>,
                expires_in: Option<i64>,
                errcode: Option<i64>,
                errmsg: Option<String>,
            }
            let request = self
                .http
                .post(self.url("cgi-bin/stable_token")?)
                .json(&body);
            let a: Answer = Self::json_answer(API, request).await?;
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
    pub(super) async fn with_token<T, F, Fut>(
        &self,
        app_id: &str,
        call: F,
    ) -> Result<T, WechatError>
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
}

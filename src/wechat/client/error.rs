//! What goes wrong talking to WeChat.

use crate::flight::FlightError;

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
    pub(super) fn transport(api: &'static str, err: reqwest::Error) -> Self {
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
    pub(super) fn garbage(api: &'static str, why: &str) -> Self {
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

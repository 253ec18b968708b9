//! Why a step of the flow failed, in the flow's own words. It knows nothing
//! of HTTP: the edge (`src/http/error.rs`) turns each variant into its
//! status and problem document (docs/api.md "Errors").

use sea_orm::DbErr;

use crate::error::Fault;
use crate::flight::FlightError;
use crate::scene::Refusal;
use crate::wechat::WechatError;
use crate::wechat::client::TokenError;

/// A failure of the login flow.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoginError {
    /// The request's input is wrong (a field's form, a pair sent half).
    #[error("{0}")]
    InvalidRequest(String),
    #[error("unknown client {0:?}")]
    UnknownClient(String),
    #[error("origin {0:?} is not allowed for this client")]
    OriginNotAllowed(String),
    #[error("no such scene")]
    SceneNotFound,
    #[error("the scene has expired")]
    SceneExpired,
    #[error("the scene is already {0}")]
    SceneFinal(&'static str),
    #[error("another WeChat user has scanned this scene")]
    SceneTaken,
    #[error("{0}")]
    InvalidToken(&'static str),
    /// A site backend's credentials are wrong.
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("WeChat answered {errcode}: {errmsg}")]
    Wechat { errcode: i64, errmsg: String },
    #[error("{0}")]
    DecryptFailed(String),
    #[error("watermark.appid does not match the app")]
    WatermarkMismatch,
    #[error("signature does not match sha1(raw_data + session_key)")]
    SignatureMismatch,
    #[error("{0}")]
    IdentityMismatch(&'static str),
    #[error("the ticket is unknown, used, expired or for another client")]
    InvalidTicket,
    /// An uploaded file of a type the hub does not take.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A stored thing (an avatar) that is not there.
    #[error("{0}")]
    NotFound(&'static str),
    /// The hub holds nothing about this person.
    #[error("the hub holds no account for this person")]
    UserNotFound,
    /// A dependency (the database, a turn at WeChat) cannot answer now, or
    /// a bug: the hub's fault, with its cause.
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl From<Refusal> for LoginError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Expired => Self::SceneExpired,
            Refusal::Taken => Self::SceneTaken,
            Refusal::Final(s) => Self::SceneFinal(s.as_str()),
            Refusal::Changed => Self::SceneFinal("changed meanwhile"),
        }
    }
}

impl From<DbErr> for LoginError {
    /// Unavailable or internal as [`Fault`] says.
    fn from(err: DbErr) -> Self {
        Fault::from(err).into()
    }
}

impl From<WechatError> for LoginError {
    fn from(err: WechatError) -> Self {
        Self::Wechat {
            errcode: err.errcode,
            errmsg: err.errmsg,
        }
    }
}

impl From<FlightError> for LoginError {
    fn from(err: FlightError) -> Self {
        match err {
            FlightError::Busy(..) => Fault::unavailable("single flight").because(err).into(),
            FlightError::Db(e) => e.into(),
        }
    }
}

impl From<TokenError> for LoginError {
    fn from(err: TokenError) -> Self {
        match err {
            TokenError::Wechat(e) => e.into(),
            TokenError::Flight(e) => e.into(),
        }
    }
}

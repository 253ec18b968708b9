//! The one error type at the HTTP edge, rendered as RFC 9457 problem details
//! with the stable `code` of docs/api.md. 4xx answers show their message; 5xx
//! answers are opaque and the detail goes to the log only.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use crate::login::LoginError;

/// Every `code` a problem can carry (docs/api.md "Errors"); the `code` enum of
/// the OpenAPI document. A unit test checks every [`ApiError`] against it.
pub const ERROR_CODES: [&str; 18] = [
    "invalid_request",
    "unknown_client",
    "origin_not_allowed",
    "rate_limited",
    "scene_not_found",
    "scene_expired",
    "scene_final",
    "scene_taken",
    "invalid_token",
    "unauthorized",
    "wechat_error",
    "decrypt_failed",
    "watermark_mismatch",
    "signature_mismatch",
    "identity_mismatch",
    "invalid_ticket",
    "unavailable",
    "internal",
];

/// An RFC 9457 problem document (`application/problem+json`), the body of
/// every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `urn:scanlogin:error:{code}`.
    #[serde(rename = "type")]
    #[schema(format = "uri")]
    pub r#type: String,
    /// The HTTP reason phrase of `status`.
    pub title: &'static str,
    /// The HTTP status code of the answer.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong, for a human (opaque for 5xx answers).
    pub detail: String,
    /// The stable, machine-readable error code.
    #[schema(schema_with = error_code_schema)]
    pub code: &'static str,
    /// WeChat's `errcode` (only with `code` = `wechat_error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub errcode: Option<i64>,
    /// WeChat's `errmsg` (only with `code` = `wechat_error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub errmsg: Option<String>,
}

fn error_code_schema() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "The stable, machine-readable error code (docs/api.md \"Errors\").",
        ))
        .enum_values(Some(ERROR_CODES))
        .into()
}

/// A failure that reaches a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    /// Same code as `InvalidRequest`, with another status (404, 405, 413, 415).
    #[error("{detail}")]
    BadRequestStatus { status: StatusCode, detail: String },
    #[error("unknown client {0:?}")]
    UnknownClient(String),
    #[error("origin {0:?} is not allowed for this client")]
    OriginNotAllowed(String),
    #[error("too many requests; retry in {0} s")]
    RateLimited(u64),
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
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The stable snake_case code of docs/api.md.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) | Self::BadRequestStatus { .. } => "invalid_request",
            Self::UnknownClient(_) => "unknown_client",
            Self::OriginNotAllowed(_) => "origin_not_allowed",
            Self::RateLimited(_) => "rate_limited",
            Self::SceneNotFound => "scene_not_found",
            Self::SceneExpired => "scene_expired",
            Self::SceneFinal(_) => "scene_final",
            Self::SceneTaken => "scene_taken",
            Self::InvalidToken(_) => "invalid_token",
            Self::Unauthorized(_) => "unauthorized",
            Self::Wechat { .. } => "wechat_error",
            Self::DecryptFailed(_) => "decrypt_failed",
            Self::WatermarkMismatch => "watermark_mismatch",
            Self::SignatureMismatch => "signature_mismatch",
            Self::IdentityMismatch(_) => "identity_mismatch",
            Self::InvalidTicket => "invalid_ticket",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// A 404 for paths the hub does not serve.
    pub fn not_found() -> Self {
        Self::BadRequestStatus {
            status: StatusCode::NOT_FOUND,
            detail: "no such path".into(),
        }
    }
}

impl From<LoginError> for ApiError {
    /// One problem per failure of the flow (docs/api.md "Errors").
    fn from(err: LoginError) -> Self {
        match err {
            LoginError::InvalidRequest(d) => Self::InvalidRequest(d),
            LoginError::UnknownClient(c) => Self::UnknownClient(c),
            LoginError::OriginNotAllowed(o) => Self::OriginNotAllowed(o),
            LoginError::SceneNotFound => Self::SceneNotFound,
            LoginError::SceneExpired => Self::SceneExpired,
            LoginError::SceneFinal(s) => Self::SceneFinal(s),
            LoginError::SceneTaken => Self::SceneTaken,
            LoginError::InvalidToken(d) => Self::InvalidToken(d),
            LoginError::Unauthorized(d) => Self::Unauthorized(d),
            LoginError::Wechat { errcode, errmsg } => Self::Wechat { errcode, errmsg },
            LoginError::DecryptFailed(d) => Self::DecryptFailed(d),
            LoginError::WatermarkMismatch => Self::WatermarkMismatch,
            LoginError::SignatureMismatch => Self::SignatureMismatch,
            LoginError::IdentityMismatch(d) => Self::IdentityMismatch(d),
            LoginError::InvalidTicket => Self::InvalidTicket,
            LoginError::UnsupportedMediaType(detail) => Self::BadRequestStatus {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                detail,
            },
            LoginError::NotFound(detail) => Self::BadRequestStatus {
                status: StatusCode::NOT_FOUND,
                detail: detail.into(),
            },
            LoginError::Unavailable(d) => Self::Unavailable(d),
            LoginError::Internal(d) => Self::Internal(d),
        }
    }
}

impl From<crate::flight::FlightError> for ApiError {
    fn from(err: crate::flight::FlightError) -> Self {
        LoginError::from(err).into()
    }
}

impl From<crate::ratelimit::Throttled> for ApiError {
    fn from(t: crate::ratelimit::Throttled) -> Self {
        Self::RateLimited(t.retry_after_secs)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidRequest(_)
            | Self::UnknownClient(_)
            | Self::DecryptFailed(_)
            | Self::WatermarkMismatch
            | Self::SignatureMismatch
            | Self::IdentityMismatch(_)
            | Self::InvalidTicket => StatusCode::BAD_REQUEST,
            Self::BadRequestStatus { status, .. } => *status,
            Self::OriginNotAllowed(_) => StatusCode::FORBIDDEN,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::SceneNotFound => StatusCode::NOT_FOUND,
            Self::SceneExpired => StatusCode::GONE,
            Self::SceneFinal(_) | Self::SceneTaken => StatusCode::CONFLICT,
            Self::InvalidToken(_) | Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Wechat { .. } => StatusCode::BAD_GATEWAY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let detail = match self {
            Self::Internal(_) => {
                tracing::error!(error = %self, "request failed");
                "the hub failed; the error was logged".to_owned()
            }
            Self::Unavailable(_) => {
                tracing::warn!(error = %self, "service unavailable");
                "a dependency of the hub is unavailable; retry later".to_owned()
            }
            other => other.to_string(),
        };
        let (errcode, errmsg) = match self {
            Self::Wechat { errcode, errmsg } => (Some(*errcode), Some(errmsg.clone())),
            _ => (None, None),
        };
        let body = Problem {
            r#type: format!("urn:scanlogin:error:{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            code: self.code(),
            errcode,
            errmsg,
        };
        let mut res = HttpResponse::build(status);
        res.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        match self {
            Self::RateLimited(secs) => {
                res.insert_header((header::RETRY_AFTER, secs.to_string()));
            }
            Self::Unauthorized(_) => {
                res.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"scanlogin\""));
            }
            Self::Unavailable(_) => {
                res.insert_header((header::RETRY_AFTER, "5"));
            }
            _ => {}
        }
        res.json(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of each variant; the exhaustive match makes a new variant a
    /// compile error here until it is listed.
    fn one_of_each() -> Vec<ApiError> {
        let all = vec![
            ApiError::InvalidRequest("x".into()),
            ApiError::BadRequestStatus {
                status: StatusCode::NOT_FOUND,
                detail: "x".into(),
            },
            ApiError::UnknownClient("x".into()),
            ApiError::OriginNotAllowed("x".into()),
            ApiError::RateLimited(1),
            ApiError::SceneNotFound,
            ApiError::SceneExpired,
            ApiError::SceneFinal("confirmed"),
            ApiError::SceneTaken,
            ApiError::InvalidToken("x"),
            ApiError::Unauthorized("x"),
            ApiError::Wechat {
                errcode: 40029,
                errmsg: "invalid code".into(),
            },
            ApiError::DecryptFailed("x".into()),
            ApiError::WatermarkMismatch,
            ApiError::SignatureMismatch,
            ApiError::IdentityMismatch("x"),
            ApiError::InvalidTicket,
            ApiError::Unavailable("x".into()),
            ApiError::Internal("x".into()),
        ];
        for e in &all {
            match e {
                ApiError::InvalidRequest(_)
                | ApiError::BadRequestStatus { .. }
                | ApiError::UnknownClient(_)
                | ApiError::OriginNotAllowed(_)
                | ApiError::RateLimited(_)
                | ApiError::SceneNotFound
                | ApiError::SceneExpired
                | ApiError::SceneFinal(_)
                | ApiError::SceneTaken
                | ApiError::InvalidToken(_)
                | ApiError::Unauthorized(_)
                | ApiError::Wechat { .. }
                | ApiError::DecryptFailed(_)
                | ApiError::WatermarkMismatch
                | ApiError::SignatureMismatch
                | ApiError::IdentityMismatch(_)
                | ApiError::InvalidTicket
                | ApiError::Unavailable(_)
                | ApiError::Internal(_) => {}
            }
        }
        all
    }

    #[test]
    fn every_error_code_is_documented_and_every_documented_code_is_used() {
        let used: std::collections::BTreeSet<&str> =
            one_of_each().iter().map(ApiError::code).collect();
        let documented: std::collections::BTreeSet<&str> = ERROR_CODES.into_iter().collect();
        assert_eq!(used, documented);
    }
}

//! The one error type at the HTTP edge, rendered as RFC 9457 problem details
//! with the stable `code` of docs/api.md. 4xx answers show their message; 5xx
//! answers are opaque and the error, with its whole chain of causes, goes to
//! the log: once, here, where every answer is rendered.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use crate::error::{Chain, Fault};
use crate::login::LoginError;

/// Every `code` a problem can carry (docs/api.md "Errors"); the `code` enum of
/// the OpenAPI document. A unit test checks every [`ApiError`] against it.
pub const ERROR_CODES: [&str; 19] = [
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
    "user_not_found",
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

/// A failure that reaches a client: one of the flow's, or a request the
/// edge refused before the flow saw it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// What the flow said went wrong.
    #[error(transparent)]
    Flow(#[from] LoginError),
    /// A dependency failed or a bug, outside the flow (readiness, the
    /// framework, OIDC's keys).
    #[error(transparent)]
    Fault(#[from] Fault),
    /// A malformed request (body, path, query, header).
    #[error("{0}")]
    InvalidRequest(String),
    /// Same code as `InvalidRequest`, with another status (404, 405, 413, 415).
    #[error("{detail}")]
    BadRequestStatus { status: StatusCode, detail: String },
    #[error("too many requests; retry in {0} s")]
    RateLimited(u64),
}

impl ApiError {
    /// The stable snake_case code of docs/api.md.
    pub fn code(&self) -> &'static str {
        let flow = match self {
            Self::InvalidRequest(_) | Self::BadRequestStatus { .. } => return "invalid_request",
            Self::RateLimited(_) => return "rate_limited",
            Self::Fault(f) => return fault_code(f),
            Self::Flow(flow) => flow,
        };
        match flow {
            LoginError::InvalidRequest(_)
            | LoginError::UnsupportedMediaType(_)
            | LoginError::NotFound(_) => "invalid_request",
            LoginError::UnknownClient(_) => "unknown_client",
            LoginError::OriginNotAllowed(_) => "origin_not_allowed",
            LoginError::SceneNotFound => "scene_not_found",
            LoginError::SceneExpired => "scene_expired",
            LoginError::SceneFinal(_) => "scene_final",
            LoginError::SceneTaken => "scene_taken",
            LoginError::InvalidToken(_) => "invalid_token",
            LoginError::Unauthorized(_) => "unauthorized",
            LoginError::Wechat { .. } => "wechat_error",
            LoginError::DecryptFailed(_) => "decrypt_failed",
            LoginError::WatermarkMismatch => "watermark_mismatch",
            LoginError::SignatureMismatch => "signature_mismatch",
            LoginError::IdentityMismatch(_) => "identity_mismatch",
            LoginError::InvalidTicket => "invalid_ticket",
            LoginError::UserNotFound => "user_not_found",
            LoginError::Fault(f) => fault_code(f),
        }
    }

    /// The fault behind a 5xx, the flow's or the edge's.
    fn fault(&self) -> Option<&Fault> {
        match self {
            Self::Fault(f) | Self::Flow(LoginError::Fault(f)) => Some(f),
            _ => None,
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

fn fault_code(f: &Fault) -> &'static str {
    if f.is_unavailable() {
        "unavailable"
    } else {
        "internal"
    }
}

fn fault_status(f: &Fault) -> StatusCode {
    if f.is_unavailable() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
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
        let flow = match self {
            Self::InvalidRequest(_) => return StatusCode::BAD_REQUEST,
            Self::BadRequestStatus { status, .. } => return *status,
            Self::RateLimited(_) => return StatusCode::TOO_MANY_REQUESTS,
            Self::Fault(f) => return fault_status(f),
            Self::Flow(flow) => flow,
        };
        match flow {
            LoginError::InvalidRequest(_)
            | LoginError::UnknownClient(_)
            | LoginError::DecryptFailed(_)
            | LoginError::WatermarkMismatch
            | LoginError::SignatureMismatch
            | LoginError::IdentityMismatch(_)
            | LoginError::InvalidTicket => StatusCode::BAD_REQUEST,
            LoginError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            LoginError::NotFound(_) | LoginError::SceneNotFound | LoginError::UserNotFound => {
                StatusCode::NOT_FOUND
            }
            LoginError::OriginNotAllowed(_) => StatusCode::FORBIDDEN,
            LoginError::SceneExpired => StatusCode::GONE,
            LoginError::SceneFinal(_) | LoginError::SceneTaken => StatusCode::CONFLICT,
            LoginError::InvalidToken(_) | LoginError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            LoginError::Wechat { .. } => StatusCode::BAD_GATEWAY,
            LoginError::Fault(f) => fault_status(f),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let flow = match self {
            Self::Flow(flow) => Some(flow),
            _ => None,
        };
        let fault = self.fault();
        let detail = match fault {
            Some(f) if f.is_unavailable() => {
                tracing::warn!(error = %Chain(self), "service unavailable");
                "a dependency of the hub is unavailable; retry later".to_owned()
            }
            Some(_) => {
                tracing::error!(error = %Chain(self), "request failed");
                "the hub failed; the error was logged".to_owned()
            }
            None => self.to_string(),
        };
        let (errcode, errmsg) = match flow {
            Some(LoginError::Wechat { errcode, errmsg }) => (Some(*errcode), Some(errmsg.clone())),
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
        match (self, flow) {
            (Self::RateLimited(secs), _) => {
                res.insert_header((header::RETRY_AFTER, secs.to_string()));
            }
            (_, Some(LoginError::Unauthorized(_))) => {
                res.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"scanlogin\""));
            }
            _ if fault.is_some_and(Fault::is_unavailable) => {
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

    /// One of each variant, the flow's included; the exhaustive matches make
    /// a new variant a compile error here until it is listed.
    fn one_of_each() -> Vec<ApiError> {
        let flow = vec![
            LoginError::InvalidRequest("x".into()),
            LoginError::UnknownClient("x".into()),
            LoginError::OriginNotAllowed("x".into()),
            LoginError::SceneNotFound,
            LoginError::SceneExpired,
            LoginError::SceneFinal("confirmed"),
            LoginError::SceneTaken,
            LoginError::InvalidToken("x"),
            LoginError::Unauthorized("x"),
            LoginError::Wechat {
                errcode: 40029,
                errmsg: "invalid code".into(),
            },
            LoginError::DecryptFailed("x".into()),
            LoginError::WatermarkMismatch,
            LoginError::SignatureMismatch,
            LoginError::IdentityMismatch("x"),
            LoginError::InvalidTicket,
            LoginError::UnsupportedMediaType("x".into()),
            LoginError::NotFound("x"),
            LoginError::UserNotFound,
            LoginError::Fault(Fault::unavailable("x")),
            LoginError::Fault(Fault::internal("x")),
        ];
        for e in &flow {
            match e {
                LoginError::InvalidRequest(_)
                | LoginError::UnknownClient(_)
                | LoginError::OriginNotAllowed(_)
                | LoginError::SceneNotFound
                | LoginError::SceneExpired
                | LoginError::SceneFinal(_)
                | LoginError::SceneTaken
                | LoginError::InvalidToken(_)
                | LoginError::Unauthorized(_)
                | LoginError::Wechat { .. }
                | LoginError::DecryptFailed(_)
                | LoginError::WatermarkMismatch
                | LoginError::SignatureMismatch
                | LoginError::IdentityMismatch(_)
                | LoginError::InvalidTicket
                | LoginError::UnsupportedMediaType(_)
                | LoginError::NotFound(_)
                | LoginError::UserNotFound
                | LoginError::Fault(_) => {}
            }
        }
        let mut all: Vec<ApiError> = flow.into_iter().map(ApiError::from).collect();
        all.extend([
            ApiError::InvalidRequest("x".into()),
            ApiError::BadRequestStatus {
                status: StatusCode::NOT_FOUND,
                detail: "x".into(),
            },
            ApiError::RateLimited(1),
            ApiError::Fault(Fault::unavailable("x")),
            ApiError::Fault(Fault::internal("x")),
        ]);
        for e in &all {
            match e {
                ApiError::Flow(_)
                | ApiError::Fault(_)
                | ApiError::InvalidRequest(_)
                | ApiError::BadRequestStatus { .. }
                | ApiError::RateLimited(_) => {}
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

    #[test]
    fn the_flows_failures_keep_their_status_and_headers() {
        let e = ApiError::from(LoginError::UnsupportedMediaType("x".into()));
        assert_eq!(e.status_code(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(e.code(), "invalid_request");
        let e = ApiError::from(LoginError::NotFound("no such avatar"));
        assert_eq!(e.status_code(), StatusCode::NOT_FOUND);
        let res = ApiError::from(LoginError::Fault(Fault::unavailable("db"))).error_response();
        assert_eq!(
            res.headers().get(header::RETRY_AFTER).map(|v| v.as_bytes()),
            Some(&b"5"[..])
        );
        let res = ApiError::from(LoginError::Unauthorized("x")).error_response();
        assert!(res.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    /// A writer into a shared buffer, for reading what was logged.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<String> {
            let bytes = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            String::from_utf8_lossy(&bytes)
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    #[test]
    fn a_5xx_keeps_its_cause_logs_its_chain_once_and_shows_none_of_it() {
        use std::error::Error as _;
        let db = sea_orm::DbErr::Custom("disk on fire".into());
        let e = ApiError::from(LoginError::from(db));
        assert_eq!(e.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.code(), "internal");
        let cause = e.source().and_then(|s| s.downcast_ref::<sea_orm::DbErr>());
        assert!(matches!(cause, Some(sea_orm::DbErr::Custom(m)) if m == "disk on fire"));

        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let res = tracing::subscriber::with_default(subscriber, || e.error_response());
        let lines = log.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("ERROR"), "{lines:?}");
        assert!(
            lines[0].contains("internal error: database: Custom Error: disk on fire"),
            "{lines:?}"
        );
        let Ok(body) = actix_web::body::MessageBody::try_into_bytes(res.into_body()) else {
            panic!("a problem document is one buffer");
        };
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("disk on fire"), "{text}");
        assert!(
            text.contains("the hub failed; the error was logged"),
            "{text}"
        );
    }
}

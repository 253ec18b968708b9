//! The answers of the token and userinfo endpoints when they refuse: the
//! OAuth way (RFC 6749 section 5.2 JSON, RFC 6750 `WWW-Authenticate:
//! Bearer`); a failing dependency or a rate limit is still the hub's
//! problem+json.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use crate::http::error::ApiError;
use crate::oidc::OAuthError;

/// Every `error` the token and userinfo endpoints answer.
pub const OAUTH_ERROR_CODES: [&str; 5] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unsupported_grant_type",
    "invalid_token",
];

/// The body of a refusal (RFC 6749 section 5.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthErrorBody {
    /// The RFC 6749 / RFC 6750 error code.
    #[schema(schema_with = oauth_error_code_schema)]
    pub error: &'static str,
    /// What went wrong, for a human.
    pub error_description: String,
}

fn oauth_error_code_schema() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("The RFC 6749 / RFC 6750 error code."))
        .enum_values(Some(OAUTH_ERROR_CODES))
        .into()
}

/// A refusal of the token or userinfo endpoint: OAuth's, or the hub's
/// problem (limits, failures).
#[derive(Debug, thiserror::Error)]
pub enum OAuthReply {
    #[error(transparent)]
    OAuth(OAuthError),
    #[error(transparent)]
    Problem(ApiError),
}

impl From<OAuthError> for OAuthReply {
    fn from(e: OAuthError) -> Self {
        match e {
            OAuthError::Flow(f) => Self::Problem(f.into()),
            OAuthError::Fault(f) => Self::Problem(f.into()),
            other => Self::OAuth(other),
        }
    }
}

impl From<ApiError> for OAuthReply {
    fn from(e: ApiError) -> Self {
        Self::Problem(e)
    }
}

impl From<crate::ratelimit::Throttled> for OAuthReply {
    fn from(t: crate::ratelimit::Throttled) -> Self {
        Self::Problem(t.into())
    }
}

impl ResponseError for OAuthReply {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::OAuth(OAuthError::Refused { .. }) => StatusCode::BAD_REQUEST,
            Self::OAuth(_) => StatusCode::UNAUTHORIZED,
            Self::Problem(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let refusal = match self {
            Self::Problem(e) => return e.error_response(),
            Self::OAuth(refusal) => refusal,
        };
        let (code, description) = match refusal {
            OAuthError::Flow(e) => return ApiError::from(e.clone()).error_response(),
            OAuthError::Fault(f) => return ApiError::from(f.clone()).error_response(),
            OAuthError::Refused { code, description } => (*code, description.as_str()),
            OAuthError::InvalidClient(d) => ("invalid_client", *d),
            OAuthError::InvalidToken(d) => ("invalid_token", *d),
            OAuthError::NoToken => (
                "invalid_request",
                "Authorization: Bearer <access_token> is required",
            ),
        };
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"));
        match refusal {
            OAuthError::InvalidClient(_) => {
                res.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"scanlogin\""));
            }
            OAuthError::InvalidToken(d) => {
                res.insert_header((
                    header::WWW_AUTHENTICATE,
                    format!("Bearer realm=\"scanlogin\", error=\"invalid_token\", error_description=\"{d}\""),
                ));
            }
            OAuthError::NoToken => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"scanlogin\""));
            }
            _ => {}
        }
        res.json(OAuthErrorBody {
            error: code,
            error_description: description.to_owned(),
        })
    }
}

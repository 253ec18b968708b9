//! Errors of the token and userinfo endpoints, answered the OAuth way
//! (RFC 6749 section 5.2 JSON, RFC 6750 `WWW-Authenticate: Bearer`); a
//! failing dependency or a rate limit is still the hub's problem+json.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use crate::http::error::ApiError;

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

/// A refusal of the token or userinfo endpoint.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// `invalid_request`, `invalid_grant`, `unsupported_grant_type`, ... (400).
    #[error("{code}: {description}")]
    Refused {
        code: &'static str,
        description: String,
    },
    /// Unknown client or wrong secret (401).
    #[error("invalid_client: {0}")]
    InvalidClient(&'static str),
    /// A missing, unknown, expired or revoked bearer token (401).
    #[error("invalid_token: {0}")]
    InvalidToken(&'static str),
    /// No bearer token at all (401 without an error code, RFC 6750 3.1).
    #[error("a bearer token is required")]
    NoToken,
    /// Rate limits, the database and other failures.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl OAuthError {
    /// `invalid_request` with this description.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::Refused {
            code: "invalid_request",
            description: description.into(),
        }
    }

    /// `invalid_grant` with this description.
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::Refused {
            code: "invalid_grant",
            description: description.into(),
        }
    }
}

impl From<sea_orm::DbErr> for OAuthError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::Api(err.into())
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Refused { .. } => StatusCode::BAD_REQUEST,
            Self::InvalidClient(_) | Self::InvalidToken(_) | Self::NoToken => {
                StatusCode::UNAUTHORIZED
            }
            Self::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (code, description) = match self {
            Self::Api(e) => return e.error_response(),
            Self::Refused { code, description } => (*code, description.as_str()),
            Self::InvalidClient(d) => ("invalid_client", *d),
            Self::InvalidToken(d) => ("invalid_token", *d),
            Self::NoToken => (
                "invalid_request",
                "Authorization: Bearer <access_token> is required",
            ),
        };
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"));
        match self {
            Self::InvalidClient(_) => {
                res.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"scanlogin\""));
            }
            Self::InvalidToken(d) => {
                res.insert_header((
                    header::WWW_AUTHENTICATE,
                    format!("Bearer realm=\"scanlogin\", error=\"invalid_token\", error_description=\"{d}\""),
                ));
            }
            Self::NoToken => {
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

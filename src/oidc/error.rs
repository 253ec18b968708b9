//! Why the token or userinfo endpoint refused, in OAuth's words (RFC 6749
//! section 5.2, RFC 6750). It knows nothing of HTTP: `src/http/oidc/error.rs`
//! answers it as OAuth's JSON, and a failure of the flow or a fault as the
//! hub's problem+json.

use crate::error::Fault;
use crate::login::LoginError;

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
    /// A failure of the login flow (redeeming the ticket).
    #[error(transparent)]
    Flow(#[from] LoginError),
    /// The database or the signing keys failed.
    #[error(transparent)]
    Fault(#[from] Fault),
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
        Self::Fault(err.into())
    }
}

//! What the provider publishes: the discovery document and the JWKS.

use serde::Serialize;

use super::{Oidc, SCOPES};
use crate::error::Fault;

/// The discovery document (OpenID Connect Discovery 1.0).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Discovery {
    /// The issuer: `server.public_url` without a trailing slash.
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub userinfo_endpoint: String,
    pub jwks_uri: String,
    pub response_types_supported: Vec<&'static str>,
    pub response_modes_supported: Vec<&'static str>,
    pub grant_types_supported: Vec<&'static str>,
    pub code_challenge_methods_supported: Vec<&'static str>,
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    pub id_token_signing_alg_values_supported: Vec<&'static str>,
    pub scopes_supported: Vec<&'static str>,
    pub subject_types_supported: Vec<&'static str>,
    pub claims_supported: Vec<&'static str>,
    pub authorization_response_iss_parameter_supported: bool,
}

impl Oidc {
    /// `/.well-known/openid-configuration`.
    pub fn discovery(&self) -> Discovery {
        let iss = self.issuer();
        Discovery {
            authorization_endpoint: format!("{iss}/oauth2/authorize"),
            token_endpoint: format!("{iss}/oauth2/token"),
            userinfo_endpoint: format!("{iss}/oauth2/userinfo"),
            jwks_uri: format!("{iss}/oauth2/jwks"),
            issuer: iss,
            response_types_supported: vec!["code"],
            response_modes_supported: vec!["query"],
            grant_types_supported: vec!["authorization_code"],
            code_challenge_methods_supported: vec!["S256"],
            token_endpoint_auth_methods_supported: vec![
                "client_secret_basic",
                "client_secret_post",
            ],
            id_token_signing_alg_values_supported: vec!["RS256"],
            scopes_supported: SCOPES.to_vec(),
            subject_types_supported: vec!["public"],
            claims_supported: vec![
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "name",
                "picture",
                "unionid",
                "phone_number",
                "phone_number_verified",
            ],
            authorization_response_iss_parameter_supported: true,
        }
    }

    /// `GET /oauth2/jwks`.
    pub async fn jwks(&self) -> Result<jsonwebtoken::jwk::JwkSet, Fault> {
        Ok(self.keys.jwks().await?)
    }
}

//! The token endpoint (code for tokens, with PKCE), userinfo, and the ID
//! tokens of mini-program logins.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::{info, warn};

use super::claims::IdTokenClaims;
use super::store::NewAccessToken;
use super::{ACCESS_TOKEN_TTL_SECS, ID_TOKEN_TTL_SECS, OAuthError, Oidc};
use crate::clock::now_ms;
use crate::config::ClientSettings;
use crate::error::Fault;
use crate::keys::{random_token, token_hash};

/// The token endpoint's form, after the client's fields are taken out.
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
}

/// The token endpoint's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenAnswer {
    /// For `userinfo`, as `Authorization: Bearer`.
    pub access_token: String,
    /// `Bearer`.
    #[schema(pattern = "^Bearer$")]
    pub token_type: &'static str,
    /// Seconds the access token lives.
    pub expires_in: i64,
    /// The RS256-signed ID token (verify it with `jwks_uri`).
    pub id_token: String,
    /// The granted scopes, space-separated.
    pub scope: String,
}

impl Oidc {
    /// `POST /oauth2/token` for an authenticated client: checks the code's
    /// bindings and PKCE, and answers the tokens. A code presented again by
    /// the client it was issued to revokes the access token issued with it.
    pub async fn token(
        &self,
        client: &ClientSettings,
        req: TokenRequest,
    ) -> Result<TokenAnswer, OAuthError> {
        match req.grant_type.as_deref() {
            Some("authorization_code") => {}
            None => return Err(OAuthError::invalid_request("grant_type is missing")),
            Some(_) => {
                return Err(OAuthError::Refused {
                    code: "unsupported_grant_type",
                    description: "only authorization_code is supported".into(),
                });
            }
        }
        let (Some(code), Some(redirect_uri), Some(verifier)) =
            (req.code, req.redirect_uri, req.code_verifier)
        else {
            return Err(OAuthError::invalid_request(
                "code, redirect_uri and code_verifier are required",
            ));
        };
        let pkce_charset = verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        if !(43..=128).contains(&verifier.len()) || !pkce_charset {
            return Err(OAuthError::invalid_request(
                "code_verifier must be 43-128 characters of [A-Za-z0-9-._~]",
            ));
        }
        let now = now_ms();
        let Some(grant) = self.grants.by_code(&token_hash(&code)).await? else {
            return Err(OAuthError::invalid_grant("the code is unknown"));
        };
        // The client (authenticated by the caller) first: another client
        // presenting a used code must not revoke what it issued.
        if grant.client_id != client.client_id {
            return Err(OAuthError::invalid_grant(
                "the code was issued to another client",
            ));
        }
        if grant.code_used_at.is_some() {
            let n = self.grants.revoke_tokens(&grant.id_hash, now).await?;
            warn!(client_id = %grant.client_id, revoked = n, "authorization code used twice; its tokens are revoked");
            return Err(OAuthError::invalid_grant("the code was used already"));
        }
        if grant.code_expires_at.is_none_or(|t| t <= now) {
            return Err(OAuthError::invalid_grant("the code has expired"));
        }
        if grant.redirect_uri != redirect_uri {
            return Err(OAuthError::invalid_grant(
                "redirect_uri differs from the authorization request's",
            ));
        }
        let derived = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let pkce_ok: bool = derived
            .as_bytes()
            .ct_eq(grant.code_challenge.as_bytes())
            .into();
        if !pkce_ok {
            return Err(OAuthError::invalid_grant(
                "code_verifier does not match the code_challenge",
            ));
        }
        let claims_json = grant.claims.clone().unwrap_or_else(|| "{}".into());
        let user: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&claims_json)
                .map_err(|e| Fault::internal("stored claims").because(e))?;
        let access_token = random_token();
        let exchanged = self
            .grants
            .exchange(
                &grant,
                NewAccessToken {
                    token_hash: &token_hash(&access_token),
                    claims: &claims_json,
                    expires_at: now + ACCESS_TOKEN_TTL_SECS * 1000,
                },
                now,
            )
            .await?;
        if !exchanged {
            let n = self.grants.revoke_tokens(&grant.id_hash, now).await?;
            warn!(client_id = %grant.client_id, revoked = n, "authorization code used twice; its tokens are revoked");
            return Err(OAuthError::invalid_grant(
                "the code was used already or has expired",
            ));
        }
        let iat = now / 1000;
        let id_token = self
            .keys
            .sign(&IdTokenClaims {
                iss: self.issuer(),
                aud: &client.client_id,
                azp: None,
                exp: iat + ID_TOKEN_TTL_SECS,
                iat,
                auth_time: grant.auth_time.unwrap_or(now) / 1000,
                nonce: grant.nonce.as_deref(),
                user: &user,
            })
            .await?;
        info!(client_id = %client.client_id, "tokens issued");
        Ok(TokenAnswer {
            access_token,
            token_type: "Bearer",
            expires_in: ACCESS_TOKEN_TTL_SECS,
            id_token,
            scope: grant.scope,
        })
    }

    /// `GET /oauth2/userinfo`: the claims of a live access token.
    pub async fn userinfo(&self, access_token: Option<&str>) -> Result<String, OAuthError> {
        let token = access_token.ok_or(OAuthError::NoToken)?;
        self.grants
            .token_claims(&token_hash(token), now_ms())
            .await?
            .ok_or(OAuthError::InvalidToken(
                "the access token is unknown, expired or revoked",
            ))
    }

    /// An ID token for a person logged in inside the mini-program: signed
    /// like the OIDC ID token, `aud` = the app's `app_id`, so the
    /// mini-program's own backend can verify it with the JWKS. Returns the
    /// token and its life in seconds.
    pub async fn inside_id_token(
        &self,
        login: &crate::login::InsideLogin,
    ) -> Result<(String, i64), Fault> {
        let mut user = serde_json::Map::new();
        user.insert("sub".into(), serde_json::json!(login.user_id));
        if let Some(unionid) = &login.unionid {
            user.insert("unionid".into(), serde_json::json!(unionid));
        }
        let iat = now_ms() / 1000;
        let token = self
            .keys
            .sign(&IdTokenClaims {
                iss: self.issuer(),
                aud: &login.app_id,
                azp: Some(&login.app_id),
                exp: iat + ID_TOKEN_TTL_SECS,
                iat,
                auth_time: iat,
                nonce: None,
                user: &user,
            })
            .await?;
        Ok((token, ID_TOKEN_TTL_SECS))
    }
}

//! The hub as an OpenID Connect provider (SPEC "OpenID Connect provider"):
//! authorization code flow with PKCE S256, the hub's own authorize page that
//! shows the code, one-time codes, short-lived access tokens for userinfo,
//! and RS256 ID tokens. The phone side is the ordinary login flow: the page's
//! widget gets a ticket, which is redeemed here for the client it was made
//! for, and the person's identity becomes the code's claims.

pub mod claims;
pub mod error;
pub mod keys;
pub mod store;

use std::collections::HashSet;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::{info, warn};
use url::Url;

use crate::config::{ClientSettings, Settings};
use crate::db::Db;
use crate::http::error::ApiError;
use crate::keys::{now_ms, random_token, token_hash};
use crate::login::Login;
use crate::sealed::Sealer;

use self::claims::{IdTokenClaims, user_claims};
pub use self::error::{OAuthError, OAuthErrorBody};
use self::keys::{KeyError, SigningKeys};
use self::store::{CodeIssue, GrantStore, NewAccessToken, NewGrant};

/// How long an authorization code works.
pub const CODE_TTL_SECS: i64 = 60;
/// How long an access token works (userinfo only).
pub const ACCESS_TOKEN_TTL_SECS: i64 = 600;
/// How long an ID token is valid.
pub const ID_TOKEN_TTL_SECS: i64 = 600;
/// How long the authorize page can wait for the person (the widget makes a
/// new code when one expires).
pub const PENDING_TTL_SECS: i64 = 900;
/// Scopes the hub knows; others are ignored.
pub const SCOPES: [&str; 3] = ["openid", "profile", "phone"];

/// Longest `state` and `nonce` accepted.
const MAX_STATE: usize = 1024;
/// Longest `scope` accepted.
const MAX_SCOPE: usize = 256;

/// Whether `uri` may be registered as a redirect URI: an absolute http(s)
/// URL with a host and no fragment.
pub fn check_redirect_uri(uri: &str) -> Result<(), &'static str> {
    let url = Url::parse(uri).map_err(|_| "is not an absolute URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must use http or https");
    }
    if url.host_str().is_none() {
        return Err("has no host");
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment");
    }
    Ok(())
}

/// Whether `uri` is plain http to anything but a loopback address (a warning).
pub fn is_plain_http_off_loopback(uri: &str) -> bool {
    let Ok(url) = Url::parse(uri) else {
        return false;
    };
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    url.scheme() == "http" && !loopback
}

/// The issuer: `server.public_url` without a trailing slash.
pub fn issuer(settings: &Settings) -> String {
    settings
        .server
        .public_url
        .as_str()
        .trim_end_matches('/')
        .to_owned()
}

/// Whether `origin` is the hub's own, asking for a client that uses OpenID
/// Connect: the authorize page is served by the hub and creates that
/// client's scenes from there.
pub fn hub_page_origin(settings: &Settings, client: &ClientSettings, origin: &str) -> bool {
    !client.redirect_uris.is_empty()
        && settings.server.public_url.origin().ascii_serialization() == origin
}

/// Why an authorization request was refused.
#[derive(Debug)]
pub enum AuthorizeRefusal {
    /// The client or the redirect URI is not known good: a 400 page, no redirect.
    Page(String),
    /// Send the browser back with this URL (`error`, `state`, `iss`).
    Redirect(String),
}

/// A validated authorization request, waiting for the person.
#[derive(Debug, Clone)]
pub struct PendingAuthorization {
    /// The page's secret for completing this authorization.
    pub handle: String,
    pub client_id: String,
    pub client_name: String,
    pub redirect_uri: String,
}

/// How the authorize page ended.
pub enum Completion {
    /// The widget's ticket after the phone confirmed.
    Ticket(String),
    /// The person refused on the phone.
    Cancelled,
}

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

/// The provider.
pub struct Oidc {
    settings: Arc<Settings>,
    login: Arc<Login>,
    keys: SigningKeys,
    grants: GrantStore,
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Db(db) => db.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<KeyError> for OAuthError {
    fn from(e: KeyError) -> Self {
        Self::Api(e.into())
    }
}

impl Oidc {
    /// The provider on `db`, redeeming tickets through `login`.
    pub fn new(settings: Arc<Settings>, db: Db, sealer: Sealer, login: Arc<Login>) -> Self {
        Self {
            keys: SigningKeys::new(db.clone(), sealer),
            grants: GrantStore::new(db),
            settings,
            login,
        }
    }

    /// The signing keys (made on first start, rotated by `rotate-keys`).
    pub fn keys(&self) -> &SigningKeys {
        &self.keys
    }

    /// The issuer identifier.
    pub fn issuer(&self) -> String {
        issuer(&self.settings)
    }

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

    /// Validates `GET /oauth2/authorize` (its query as pairs) and records
    /// the pending authorization.
    pub async fn authorize(
        &self,
        pairs: &[(String, String)],
    ) -> Result<PendingAuthorization, AuthorizeRefusal> {
        let mut seen = HashSet::new();
        let mut twice = None;
        for (k, _) in pairs {
            if !seen.insert(k.as_str()) {
                twice = Some(k.clone());
            }
        }
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        let page = |m: &str| AuthorizeRefusal::Page(m.to_owned());
        if twice.as_deref() == Some("client_id") || twice.as_deref() == Some("redirect_uri") {
            return Err(page("client_id and redirect_uri may each be given once"));
        }
        let client_id = get("client_id").ok_or_else(|| page("client_id is missing"))?;
        let client = self
            .settings
            .client(client_id)
            .ok_or_else(|| page("this client is not known to the hub"))?;
        if client.redirect_uris.is_empty() {
            return Err(page("this client is not set up for OpenID Connect"));
        }
        let redirect_uri = get("redirect_uri").ok_or_else(|| page("redirect_uri is missing"))?;
        if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
            return Err(page("redirect_uri is not registered for this client"));
        }
        let state = get("state");
        if state.is_some_and(|s| s.len() > MAX_STATE) || twice.as_deref() == Some("state") {
            return Err(page("state is longer than 1024 bytes or given twice"));
        }
        let back = |error: &str, description: &str| {
            AuthorizeRefusal::Redirect(self.redirect(
                redirect_uri,
                &[("error", error), ("error_description", description)],
                state,
            ))
        };
        if let Some(k) = &twice {
            return Err(back(
                "invalid_request",
                &format!("parameter {k} is given more than once"),
            ));
        }
        if get("request").is_some() {
            return Err(back(
                "request_not_supported",
                "request objects are not supported",
            ));
        }
        if get("request_uri").is_some() {
            return Err(back(
                "request_uri_not_supported",
                "request_uri is not supported",
            ));
        }
        match get("response_type") {
            Some("code") => {}
            None => return Err(back("invalid_request", "response_type is missing")),
            Some(_) => {
                return Err(back(
                    "unsupported_response_type",
                    "only response_type=code is supported",
                ));
            }
        }
        if get("response_mode").is_some_and(|m| m != "query") {
            return Err(back(
                "invalid_request",
                "only response_mode=query is supported",
            ));
        }
        let scope = get("scope").unwrap_or("");
        let requested: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
        if scope.len() > MAX_SCOPE || !requested.contains(&"openid") {
            return Err(back("invalid_scope", "scope must contain openid"));
        }
        let granted: Vec<&str> = SCOPES
            .into_iter()
            .filter(|s| requested.contains(s))
            .collect();
        let challenge = get("code_challenge");
        match (challenge, get("code_challenge_method")) {
            (None, _) => {
                return Err(back(
                    "invalid_request",
                    "PKCE is required: code_challenge with code_challenge_method=S256",
                ));
            }
            (Some(_), Some("S256")) => {}
            (Some(_), _) => {
                return Err(back(
                    "invalid_request",
                    "code_challenge_method must be S256",
                ));
            }
        }
        let challenge = challenge.unwrap_or_default();
        let well_formed = challenge.len() == 43
            && URL_SAFE_NO_PAD
                .decode(challenge)
                .is_ok_and(|b| b.len() == 32);
        if !well_formed {
            return Err(back(
                "invalid_request",
                "code_challenge must be base64url of a SHA-256 digest (43 characters)",
            ));
        }
        let nonce = get("nonce");
        if nonce.is_some_and(|n| n.len() > MAX_STATE) {
            return Err(back("invalid_request", "nonce is longer than 1024 bytes"));
        }
        if get("prompt").is_some_and(|p| p.split(' ').any(|v| v == "none")) {
            return Err(back(
                "login_required",
                "the person must scan the code; prompt=none cannot be honoured",
            ));
        }
        let handle = random_token();
        let now = now_ms();
        let stored = self
            .grants
            .insert(NewGrant {
                id_hash: token_hash(&handle),
                client_id: client.client_id.clone(),
                redirect_uri: redirect_uri.to_owned(),
                scope: granted.join(" "),
                state: state.map(str::to_owned),
                nonce: nonce.map(str::to_owned),
                code_challenge: challenge.to_owned(),
                created_at: now,
                expires_at: now + PENDING_TTL_SECS * 1000,
            })
            .await;
        if let Err(e) = stored {
            warn!(error = %e, "could not store an authorization request");
            return Err(back(
                "temporarily_unavailable",
                "the hub cannot take logins right now; try again shortly",
            ));
        }
        Ok(PendingAuthorization {
            handle,
            client_id: client.client_id.clone(),
            client_name: client.name.clone(),
            redirect_uri: redirect_uri.to_owned(),
        })
    }

    /// `redirect_uri` with `params`, `state` (when sent) and `iss` added.
    fn redirect(&self, redirect_uri: &str, params: &[(&str, &str)], state: Option<&str>) -> String {
        let Ok(mut url) = Url::parse(redirect_uri) else {
            return redirect_uri.to_owned();
        };
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
            if let Some(s) = state {
                q.append_pair("state", s);
            }
            q.append_pair("iss", &self.issuer());
        }
        url.into()
    }

    /// Ends the authorize page: with the widget's ticket, redeems it for the
    /// client, issues the one-time code and answers where to send the
    /// browser; when cancelled, answers the `access_denied` redirect.
    pub async fn complete(&self, handle: &str, how: Completion) -> Result<String, ApiError> {
        let id_hash = token_hash(handle);
        let now = now_ms();
        let grant = self.grants.pending(&id_hash, now).await?.ok_or_else(|| {
            ApiError::InvalidRequest(
                "this login request is unknown, finished or expired; start again from the site"
                    .into(),
            )
        })?;
        let ticket = match how {
            Completion::Cancelled => {
                self.grants.cancel(&id_hash).await?;
                info!(client_id = %grant.client_id, "authorization cancelled on the phone");
                return Ok(self.redirect(
                    &grant.redirect_uri,
                    &[
                        ("error", "access_denied"),
                        ("error_description", "the person refused on the phone"),
                    ],
                    grant.state.as_deref(),
                ));
            }
            Completion::Ticket(t) => t,
        };
        let client = self
            .settings
            .client(&grant.client_id)
            .ok_or_else(|| ApiError::UnknownClient(grant.client_id.clone()))?;
        let redeemed = self.login.redeem(client, &ticket).await?;
        let scope: Vec<&str> = grant.scope.split(' ').collect();
        let claims = user_claims(&redeemed.user, &scope);
        let claims_json =
            serde_json::to_string(&claims).map_err(|e| ApiError::Internal(e.to_string()))?;
        let auth_time = chrono::DateTime::parse_from_rfc3339(&redeemed.confirmed_at)
            .map(|t| t.timestamp_millis())
            .unwrap_or(now);
        let code = random_token();
        let issued = self
            .grants
            .issue_code(
                &id_hash,
                CodeIssue {
                    code_hash: &token_hash(&code),
                    code_expires_at: now + CODE_TTL_SECS * 1000,
                    user_id: &redeemed.user.id,
                    auth_time,
                    claims: &claims_json,
                },
                now,
            )
            .await?;
        if !issued {
            return Err(ApiError::InvalidRequest(
                "this login request was finished meanwhile".into(),
            ));
        }
        info!(client_id = %grant.client_id, user_id = %redeemed.user.id, "authorization code issued");
        Ok(self.redirect(
            &grant.redirect_uri,
            &[("code", &code)],
            grant.state.as_deref(),
        ))
    }

    /// `POST /oauth2/token` for an authenticated client: checks the code's
    /// bindings and PKCE, and answers the tokens. A code presented again
    /// revokes the access token issued with it.
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
        if grant.code_used_at.is_some() {
            let n = self.grants.revoke_tokens(&grant.id_hash, now).await?;
            warn!(client_id = %grant.client_id, revoked = n, "authorization code used twice; its tokens are revoked");
            return Err(OAuthError::invalid_grant("the code was used already"));
        }
        if grant.client_id != client.client_id {
            return Err(OAuthError::invalid_grant(
                "the code was issued to another client",
            ));
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
            serde_json::from_str(&claims_json).map_err(|e| ApiError::Internal(e.to_string()))?;
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
    ) -> Result<(String, i64), ApiError> {
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
                exp: iat + ID_TOKEN_TTL_SECS,
                iat,
                auth_time: iat,
                nonce: None,
                user: &user,
            })
            .await?;
        Ok((token, ID_TOKEN_TTL_SECS))
    }

    /// `GET /oauth2/jwks`.
    pub async fn jwks(&self) -> Result<jsonwebtoken::jwk::JwkSet, ApiError> {
        Ok(self.keys.jwks().await?)
    }

    /// Deletes grants and tokens expired over an hour ago, in batches.
    pub async fn purge(&self, batch: u64) -> Result<u64, sea_orm::DbErr> {
        let cutoff = now_ms() - (ACCESS_TOKEN_TTL_SECS.max(3600) * 1000);
        let mut total = 0;
        for _ in 0..100 {
            let n = self.grants.purge_before(cutoff, batch).await?;
            total += n;
            if n == 0 {
                break;
            }
        }
        Ok(total)
    }
}

/// `scanlogin rotate-keys`: opens the database (migrating it when
/// configured), makes a new current signing key and says which.
pub async fn rotate_keys(settings: &Settings) -> anyhow::Result<keys::KeyInfo> {
    let key = crate::startup::server_key(settings)?;
    let db = crate::db::open(&settings.database).await?;
    if settings.database.migrate_on_start {
        crate::db::migrate(db.write()).await?;
    }
    let keys = SigningKeys::new(db.clone(), Sealer::new(&key));
    let made = keys.rotate().await;
    let _ = db.close().await;
    Ok(made?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        [wechat]
        mode = "simulator"
        [[apps]]
        app_id = "wxtest"
        secret = "s"
        [[clients]]
        client_id = "shop"
        name = "Shop"
        client_secret = "0123456789abcdef"
    "#;

    fn settings(redirect_uris: &str) -> Result<Settings, crate::config::ConfigError> {
        Settings::from_sources(
            &format!("{BASE}redirect_uris = {redirect_uris}\n"),
            Vec::<(String, String)>::new(),
        )
    }

    #[test]
    fn redirect_uris_must_be_absolute_http_urls_without_fragment() {
        for bad in [
            r#"["/callback"]"#,
            r#"["ftp://x/cb"]"#,
            r#"["https://x/cb#frag"]"#,
        ] {
            let err = settings(bad).expect_err(bad).to_string();
            assert!(err.contains("clients[0].redirect_uris"), "{err}");
        }
        assert!(settings(r#"["https://shop.example/cb", "http://127.0.0.1:9/cb"]"#).is_ok());
    }

    #[test]
    fn plain_http_off_loopback_is_a_warning_only() {
        let s = settings(r#"["http://shop.example/cb"]"#).expect("valid");
        let warnings = s.warnings().join("\n");
        assert!(warnings.contains("clients[0].redirect_uris"), "{warnings}");
        for quiet in [
            r#"["https://shop.example/cb"]"#,
            r#"["http://127.0.0.1:8080/cb"]"#,
            r#"["http://[::1]:8080/cb"]"#,
            r#"["http://localhost/cb"]"#,
        ] {
            let s = settings(quiet).expect("valid");
            assert!(
                !s.warnings().iter().any(|w| w.contains("redirect_uris")),
                "{quiet}"
            );
        }
    }

    #[test]
    fn the_hub_origin_counts_only_for_openid_clients() {
        let s = settings(r#"["https://shop.example/cb"]"#).expect("valid");
        let own = s.server.public_url.origin().ascii_serialization();
        let shop = s.client("shop").expect("shop");
        assert!(hub_page_origin(&s, shop, &own));
        assert!(!hub_page_origin(&s, shop, "https://evil.example"));
        let plain = settings("[]").expect("valid");
        assert!(!hub_page_origin(
            &plain,
            plain.client("shop").expect("shop"),
            &own
        ));
    }
}

//! The authorization request (`GET /oauth2/authorize`): validating it,
//! recording it as pending, and ending it from the hub's authorize page
//! with a one-time code (or `access_denied`).

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tracing::{info, warn};
use url::Url;

use super::claims::user_claims;
use super::store::{CodeIssue, NewGrant};
use super::{CODE_TTL_SECS, Oidc, PENDING_TTL_SECS, SCOPES};
use crate::clock::now_ms;
use crate::error::Fault;
use crate::keys::{random_token, token_hash};
use crate::live::ClientRef;
use crate::login::LoginError;

/// The refusal for a handle that is not (or no longer) pending.
fn not_pending() -> LoginError {
    LoginError::InvalidRequest(
        "this login request is unknown, finished or expired; start again from the site".into(),
    )
}

/// Longest `state` and `nonce` accepted.
const MAX_STATE: usize = 1024;
/// Longest `scope` accepted.
const MAX_SCOPE: usize = 256;

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

impl Oidc {
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
        let settings = self.settings.load();
        let client = settings
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

    /// Whether `handle` is a pending authorization of `client_id` (asked
    /// before its page's widget makes a scene for it).
    pub async fn page_pending(&self, handle: &str, client_id: &str) -> Result<bool, LoginError> {
        let grant = self.grants.pending(&token_hash(handle), now_ms()).await?;
        Ok(grant.is_some_and(|g| g.client_id == client_id))
    }

    /// The authorize page `handle` shows `scene_id` now: only that scene's
    /// ticket completes the authorization.
    pub async fn show_scene(
        &self,
        handle: &str,
        client_id: &str,
        scene_id: &str,
    ) -> Result<(), LoginError> {
        let shown = self
            .grants
            .show_scene(&token_hash(handle), client_id, scene_id, now_ms())
            .await?;
        if !shown {
            return Err(not_pending());
        }
        Ok(())
    }

    /// Ends the authorize page: with the widget's ticket, redeems it for the
    /// client, issues the one-time code and answers where to send the
    /// browser; when cancelled, answers the `access_denied` redirect.
    pub async fn complete(&self, handle: &str, how: Completion) -> Result<String, LoginError> {
        let id_hash = token_hash(handle);
        let now = now_ms();
        let grant = self
            .grants
            .pending(&id_hash, now)
            .await?
            .ok_or_else(not_pending)?;
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
        // Only the ticket of the scene this page showed: another scene's
        // (even of the same client) is refused before it is redeemed, so
        // it changes nothing.
        let ticket_scene = ticket.split_once('.').map(|(scene, _)| scene);
        if ticket_scene.is_none() || ticket_scene != grant.scene_id.as_deref() {
            warn!(client_id = %grant.client_id, "authorize page completed with another scene's ticket");
            return Err(LoginError::InvalidTicket);
        }
        let client = ClientRef::find(self.settings.get(), &grant.client_id)
            .ok_or_else(|| LoginError::UnknownClient(grant.client_id.clone()))?;
        let redeemed = self.redeemer.redeem(&client, &ticket).await?;
        let scope: Vec<&str> = grant.scope.split(' ').collect();
        let claims = user_claims(&redeemed.user, &scope);
        let claims_json = serde_json::to_string(&claims)
            .map_err(|e| Fault::internal("claims to JSON").because(e))?;
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
            return Err(LoginError::InvalidRequest(
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
}

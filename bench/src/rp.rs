//! A stock OpenID Connect relying party over plain HTTP (loopback): the
//! authorization code flow with PKCE S256, `client_secret_basic` at the
//! token endpoint, and userinfo with the access token. The browser's part
//! on the hub's authorize page (the page's own script) is played too: read
//! the page's handle, then end the authorization with the widget's ticket.
//!
//! The ID token's claims (`iss`, `aud`, `nonce`, `sub`) are checked; its
//! signature is not (that is the relying party's CPU, not the hub's).

use anyhow::{Context, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;

use crate::api::{Hub, expect_ok};

/// Where the authorize page keeps its data for its script.
const DATA_START: &str = r#"<script type="application/json" id="authorize-data">"#;

/// One OIDC client of the hub.
#[derive(Clone)]
pub struct Rp {
    hub: Hub,
    pub client_id: String,
    client_secret: String,
    redirect_uri: String,
}

/// One login's secrets, made by the relying party before it sends the
/// browser to the hub.
pub struct Request {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

/// 32 random bytes, base64url.
fn random() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Request {
    /// Fresh `state`, `nonce` and PKCE verifier.
    pub fn new() -> Self {
        Self {
            state: random(),
            nonce: random(),
            verifier: random(),
        }
    }

    /// The PKCE S256 challenge of the verifier.
    pub fn challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.verifier.as_bytes()))
    }
}

/// What the token endpoint answered.
pub struct Tokens {
    pub access_token: String,
    /// The ID token's `sub`.
    pub sub: String,
}

impl Rp {
    /// The relying party `client_id:client_secret` coming back to
    /// `redirect_uri` (which must be loopback: it is never loaded).
    pub fn new(
        hub: Hub,
        client_id: &str,
        client_secret: &str,
        redirect_uri: &str,
    ) -> anyhow::Result<Self> {
        crate::api::ensure_loopback(&Url::parse(redirect_uri).context("redirect URI")?)?;
        Ok(Self {
            hub,
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
        })
    }

    /// The hub it talks to.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// `GET /oauth2/authorize` (code, openid profile, state, nonce, PKCE):
    /// the hub's authorize page; returns the page's handle.
    pub async fn authorize(&self, r: &Request) -> anyhow::Result<String> {
        let mut url = self.hub.url("oauth2/authorize")?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", "openid profile")
            .append_pair("state", &r.state)
            .append_pair("nonce", &r.nonce)
            .append_pair("code_challenge", &r.challenge())
            .append_pair("code_challenge_method", "S256");
        let res = self
            .hub
            .http()
            .get(url)
            .header(reqwest::header::ACCEPT, "text/html")
            .send()
            .await?;
        if res.status().is_redirection() {
            let to = res
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            bail!("authorize redirected instead of showing the page: {to}");
        }
        let page = expect_ok(res, "authorize").await?.text().await?;
        page_handle(&page)
    }

    /// `POST /oauth2/authorize/complete` with the widget's ticket, as the
    /// page's script does; returns the authorization code from the redirect.
    pub async fn complete(
        &self,
        handle: &str,
        ticket: &str,
        r: &Request,
    ) -> anyhow::Result<String> {
        let res = self
            .hub
            .http()
            .post(self.hub.url("oauth2/authorize/complete")?)
            .header(reqwest::header::ORIGIN, self.hub.origin())
            .json(&json!({"handle": handle, "ticket": ticket}))
            .send()
            .await?;
        let body: Value = expect_ok(res, "authorize complete").await?.json().await?;
        let to = body["redirect_to"]
            .as_str()
            .with_context(|| format!("complete answered without redirect_to: {body}"))?;
        self.code_from(to, &r.state)
    }

    /// The `code` of the redirect back to the relying party, after checking
    /// that it goes to our redirect URI with our `state` and the hub's `iss`.
    fn code_from(&self, redirect_to: &str, state: &str) -> anyhow::Result<String> {
        let url = Url::parse(redirect_to).context("redirect_to")?;
        let mut bare = url.clone();
        bare.set_query(None);
        ensure!(
            bare.as_str() == self.redirect_uri,
            "sent back to {bare}, not {}",
            self.redirect_uri
        );
        let get = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        if let Some(error) = get("error") {
            bail!("authorization refused: {error}");
        }
        ensure!(get("state").as_deref() == Some(state), "state differs");
        let issuer = self.hub.origin();
        ensure!(get("iss").as_deref() == Some(issuer), "iss is not {issuer}");
        get("code").context("redirect without code")
    }

    /// `POST /oauth2/token` (`client_secret_basic`, the PKCE verifier);
    /// checks the ID token's claims.
    pub async fn token(&self, code: &str, r: &Request) -> anyhow::Result<Tokens> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("code_verifier", &r.verifier)
            .finish();
        let res = self
            .hub
            .http()
            .post(self.hub.url("oauth2/token")?)
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
            .send()
            .await?;
        let body: Value = expect_ok(res, "token").await?.json().await?;
        let access_token = body["access_token"]
            .as_str()
            .with_context(|| format!("token answered without access_token: {body}"))?
            .to_owned();
        let id_token = body["id_token"]
            .as_str()
            .context("token answered without id_token")?;
        let claims = id_token_claims(id_token)?;
        ensure!(claims["aud"] == self.client_id.as_str(), "aud is not ours");
        ensure!(claims["nonce"] == r.nonce.as_str(), "nonce differs");
        ensure!(claims["iss"] == self.hub.origin(), "iss is not the hub");
        let sub = claims["sub"].as_str().context("no sub")?.to_owned();
        Ok(Tokens { access_token, sub })
    }

    /// `GET /oauth2/userinfo` with the access token; its `sub` must be
    /// the ID token's.
    pub async fn userinfo(&self, tokens: &Tokens) -> anyhow::Result<()> {
        let res = self
            .hub
            .http()
            .get(self.hub.url("oauth2/userinfo")?)
            .bearer_auth(&tokens.access_token)
            .send()
            .await?;
        let body: Value = expect_ok(res, "userinfo").await?.json().await?;
        ensure!(
            body["sub"] == tokens.sub.as_str(),
            "userinfo's sub differs from the ID token's: {body}"
        );
        Ok(())
    }
}

/// The handle in the authorize page's data, as its script reads it.
fn page_handle(page: &str) -> anyhow::Result<String> {
    let start = page
        .find(DATA_START)
        .context("the authorize page has no authorize-data")?
        + DATA_START.len();
    let end = page[start..]
        .find("</script>")
        .context("authorize-data is not closed")?;
    let data: Value = serde_json::from_str(&page[start..start + end]).context("authorize-data")?;
    data["handle"]
        .as_str()
        .map(str::to_owned)
        .context("authorize-data without handle")
}

/// The claims of a JWT (its signature unchecked).
fn id_token_claims(jwt: &str) -> anyhow::Result<Value> {
    let payload = jwt.split('.').nth(1).context("ID token is not a JWT")?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .context("ID token payload is not base64url")?;
    serde_json::from_slice(&bytes).context("ID token payload is not JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_is_s256() {
        // RFC 7636 appendix B.
        let r = Request {
            state: String::new(),
            nonce: String::new(),
            verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
        };
        assert_eq!(r.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        let fresh = Request::new();
        assert_eq!(fresh.verifier.len(), 43);
        assert_ne!(fresh.state, fresh.nonce);
    }

    #[test]
    fn reads_the_handle_from_the_page() {
        let page = format!(
            "<html>{DATA_START}{{\"hub\":\"http://127.0.0.1:1\",\"handle\":\"h-1\",\"text\":{{\"x\":\"\\u003c/b\"}}}}</script></html>"
        );
        assert_eq!(page_handle(&page).expect("handle"), "h-1");
        assert!(page_handle("<html></html>").is_err());
    }

    #[test]
    fn reads_id_token_claims_and_checks_the_redirect() {
        let claims = URL_SAFE_NO_PAD.encode(br#"{"sub":"u1","nonce":"n"}"#);
        let jwt = format!("e30.{claims}.sig");
        assert_eq!(id_token_claims(&jwt).expect("claims")["sub"], "u1");
        assert!(id_token_claims("nope").is_err());

        let hub =
            Hub::new(Url::parse("http://127.0.0.1:9/").expect("url"), "c", "s", 1).expect("hub");
        let rp = Rp::new(hub, "c", "s", "http://127.0.0.1/cb").expect("rp");
        let ok = "http://127.0.0.1/cb?code=abc&state=st&iss=http%3A%2F%2F127.0.0.1%3A9";
        assert_eq!(rp.code_from(ok, "st").expect("code"), "abc");
        assert!(rp.code_from(ok, "other").is_err());
        assert!(
            rp.code_from(
                "http://127.0.0.1/elsewhere?code=abc&state=st&iss=http%3A%2F%2F127.0.0.1%3A9",
                "st"
            )
            .is_err()
        );
        assert!(
            rp.code_from("http://127.0.0.1/cb?error=access_denied&state=st", "st")
                .is_err()
        );
        assert!(
            Rp::new(
                Hub::new(Url::parse("http://127.0.0.1:9/").expect("url"), "c", "s", 1)
                    .expect("hub"),
                "c",
                "s",
                "https://example.com/cb"
            )
            .is_err()
        );
    }
}

//! The hub's public HTTP API as browsers, phones (through the simulator) and
//! site backends call it. Every request has a timeout.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

/// Longest any single HTTP request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A scene as `POST /api/v1/scenes` hands it to a browser.
#[derive(Debug, Clone, Deserialize)]
pub struct Scene {
    /// 32 hex characters.
    pub scene_id: String,
    /// The browser's secret for the socket and the long-poll.
    pub browser_token: String,
    /// Where the browser opens its WebSocket.
    pub ws_url: String,
    /// Where the browser loads the code image.
    pub qrcode_url: String,
}

/// A running hub, reached over loopback only.
#[derive(Clone)]
pub struct Hub {
    http: reqwest::Client,
    base: Url,
    client_id: String,
    client_secret: String,
    /// The hub's origin, which its own pages (the OIDC authorize page) send.
    origin: String,
}

/// Refuses any URL whose host is not a loopback address.
pub fn ensure_loopback(url: &Url) -> anyhow::Result<()> {
    let ok = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => {
            d == "localhost" || d.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    };
    ensure!(
        ok,
        "{url}: only loopback addresses (127.0.0.1) may be loaded"
    );
    Ok(())
}

pub(crate) async fn expect_ok(
    res: reqwest::Response,
    what: &str,
) -> anyhow::Result<reqwest::Response> {
    let status = res.status();
    if status.is_success() {
        return Ok(res);
    }
    let body = res.text().await.unwrap_or_default();
    let body: String = body.chars().take(300).collect();
    bail!("{what}: HTTP {status}: {body}")
}

impl Hub {
    /// A client for the hub at `base` (must be loopback), redeeming as
    /// `client_id:client_secret`.
    pub fn new(
        base: Url,
        client_id: &str,
        client_secret: &str,
        max_idle: usize,
    ) -> anyhow::Result<Self> {
        ensure_loopback(&base)?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(max_idle)
            // Below the hub's 5 s keep-alive: a connection the hub is closing
            // must not be picked for a request ("connection closed before
            // message completed", seen once in 4,000 confirms).
            .pool_idle_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .no_proxy()
            // A redirect is an answer to read (OIDC), never followed.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            origin: base.origin().ascii_serialization(),
            base,
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
        })
    }

    pub(crate) fn url(&self, path: &str) -> anyhow::Result<Url> {
        Ok(self.base.join(path)?)
    }

    /// The HTTP client (timeouts, no proxy, no redirects).
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The site client whose scenes are made and whose tickets are redeemed.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The hub's origin (`http://127.0.0.1:PORT`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// `GET /healthz`.
    pub async fn healthz(&self) -> anyhow::Result<()> {
        let res = self.http.get(self.url("healthz")?).send().await?;
        expect_ok(res, "healthz").await?;
        Ok(())
    }

    /// `POST /api/v1/scenes` for the configured client, without an
    /// `Origin` (as a script would).
    pub async fn create_scene(&self) -> anyhow::Result<Scene> {
        self.create_scene_for(&self.client_id, None, None).await
    }

    /// `POST /api/v1/scenes` for `client_id` as a page on `origin` does it;
    /// an authorize page names its handle (hubs before it ignore the field).
    pub async fn create_scene_for(
        &self,
        client_id: &str,
        origin: Option<&str>,
        authorize_handle: Option<&str>,
    ) -> anyhow::Result<Scene> {
        let mut body = json!({"client_id": client_id});
        if let Some(handle) = authorize_handle {
            body["authorize_handle"] = json!(handle);
        }
        let mut req = self.http.post(self.url("api/v1/scenes")?).json(&body);
        if let Some(o) = origin {
            req = req.header(reqwest::header::ORIGIN, o);
        }
        let scene: Scene = expect_ok(req.send().await?, "create scene")
            .await?
            .json()
            .await?;
        ensure_loopback(&Url::parse(&scene.ws_url).context("ws_url")?)?;
        ensure_loopback(&Url::parse(&scene.qrcode_url).context("qrcode_url")?)?;
        Ok(scene)
    }

    /// `GET qrcode_url`, as the widget's `<img>` loads it; checks that the
    /// answer is a non-empty image and returns its size in bytes.
    pub async fn code_image(&self, scene: &Scene) -> anyhow::Result<usize> {
        let res = self.http.get(scene.qrcode_url.as_str()).send().await?;
        let res = expect_ok(res, "code image").await?;
        let content_type = res
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = res.bytes().await?;
        ensure!(
            content_type.starts_with("image/") && !bytes.is_empty(),
            "code image answered {content_type:?}, {} bytes",
            bytes.len()
        );
        Ok(bytes.len())
    }

    /// `POST /api/v1/mp/scan` with a code, as the mini-program's page does
    /// when it opens; returns the `mp_token`.
    pub async fn scan(&self, scene_id: &str, code: &str) -> anyhow::Result<String> {
        let res = self
            .http
            .post(self.url("api/v1/mp/scan")?)
            .json(&json!({"scene_id": scene_id, "code": code}))
            .send()
            .await?;
        let body: Value = expect_ok(res, "scan").await?.json().await?;
        ensure!(body["state"] == "scanned", "scan answered {body}");
        body["mp_token"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("scan answered without mp_token: {body}"))
    }

    /// `POST /api/v1/mp/confirm` with the scan's `mp_token`: the person
    /// taps "confirm" on the page.
    pub async fn confirm_scanned(
        &self,
        scene_id: &str,
        mp_token: &str,
        nickname: &str,
    ) -> anyhow::Result<()> {
        let res = self
            .http
            .post(self.url("api/v1/mp/confirm")?)
            .json(&json!({"scene_id": scene_id, "mp_token": mp_token,
                "profile": {"nickname": nickname}}))
            .send()
            .await?;
        let body: Value = expect_ok(res, "confirm").await?.json().await?;
        ensure!(body["state"] == "confirmed", "confirm answered {body}");
        Ok(())
    }

    /// `POST /sim/api/login`: a fresh one-time `wx.login` code for `user`.
    pub async fn sim_code(&self, user: &str) -> anyhow::Result<String> {
        #[derive(Deserialize)]
        struct Code {
            code: String,
        }
        let res = self
            .http
            .post(self.url("sim/api/login")?)
            .json(&json!({"user": user}))
            .send()
            .await?;
        let code: Code = expect_ok(res, "simulator login").await?.json().await?;
        Ok(code.code)
    }

    /// `POST /api/v1/mp/confirm` with a code: scan and confirm in one step.
    pub async fn confirm(&self, scene_id: &str, code: &str, nickname: &str) -> anyhow::Result<()> {
        let res = self
            .http
            .post(self.url("api/v1/mp/confirm")?)
            .json(&json!({"scene_id": scene_id, "code": code, "profile": {"nickname": nickname}}))
            .send()
            .await?;
        let body: Value = expect_ok(res, "confirm").await?.json().await?;
        ensure!(body["state"] == "confirmed", "confirm answered {body}");
        Ok(())
    }

    /// `POST /api/v1/tickets/redeem` with HTTP Basic client credentials;
    /// returns the user id.
    pub async fn redeem(&self, ticket: &str) -> anyhow::Result<String> {
        let res = self
            .http
            .post(self.url("api/v1/tickets/redeem")?)
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .json(&json!({"ticket": ticket}))
            .send()
            .await?;
        let body: Value = expect_ok(res, "redeem").await?.json().await?;
        body["user"]["id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("redeem answered without user.id: {body}"))
    }

    /// `GET /api/v1/scenes/{id}/events?after=waiting&wait=0`: one short poll,
    /// as a polling page would make each second; returns the state.
    pub async fn poll(&self, scene: &Scene) -> anyhow::Result<String> {
        let res = self
            .http
            .get(self.url(&format!(
                "api/v1/scenes/{}/events?after=waiting&wait=0",
                scene.scene_id
            ))?)
            .bearer_auth(&scene.browser_token)
            .send()
            .await?;
        let body: Value = expect_ok(res, "events").await?.json().await?;
        body["state"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("events answered without state: {body}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback() {
        for ok in [
            "http://127.0.0.1:8080/",
            "ws://127.0.0.2/x",
            "http://localhost/",
            "http://[::1]:1/",
        ] {
            assert!(
                ensure_loopback(&Url::parse(ok).expect("url")).is_ok(),
                "{ok}"
            );
        }
        for bad in ["http://10.0.0.1/", "http://example.com/", "http://[::2]/"] {
            assert!(
                ensure_loopback(&Url::parse(bad).expect("url")).is_err(),
                "{bad}"
            );
        }
    }
}

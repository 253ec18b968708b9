//! The HTTP calls a browser, a phone or a site makes, as methods on
//! [`TestApp`].

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpStream;

use super::app::TestApp;
use super::config::app_client;
use super::problems::ok_json;
use super::{CLIENT_ID, CLIENT_SECRET, ORIGIN, WAIT, session_key, unique};

/// A scene as its browser holds it.
#[derive(Debug, Clone)]
pub struct Scene {
    pub id: String,
    pub browser_token: String,
    /// The whole 201 answer.
    pub body: Value,
}

impl TestApp {
    /// `POST /api/v1/scenes` with this body and `Origin` (if any).
    pub async fn post_scene(&self, body: &Value, origin: Option<&str>) -> Response {
        let mut req = self.http.post(self.url("/api/v1/scenes")).json(body);
        if let Some(o) = origin {
            req = req.header("Origin", o);
        }
        req.send().await.expect("POST /api/v1/scenes")
    }

    /// A new scene for the test client, from its allowed origin.
    pub async fn create_scene(&self) -> Scene {
        let res = self
            .post_scene(&json!({"client_id": CLIENT_ID}), Some(ORIGIN))
            .await;
        let status = res.status();
        let text = res.text().await.expect("body");
        assert_eq!(status, StatusCode::CREATED, "body: {text}");
        let body: Value = serde_json::from_str(&text).expect("JSON");
        Scene {
            id: body["scene_id"].as_str().expect("scene_id").to_owned(),
            browser_token: body["browser_token"]
                .as_str()
                .expect("browser_token")
                .to_owned(),
            body,
        }
    }

    /// A new scene of the client of `app_id` (see [`app_client`]).
    pub async fn create_scene_in(&self, app_id: &str) -> Scene {
        let res = self
            .post_scene(&json!({"client_id": app_client(app_id).0}), Some(ORIGIN))
            .await;
        let status = res.status();
        let text = res.text().await.expect("body");
        assert_eq!(status, StatusCode::CREATED, "body: {text}");
        let body: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(body["app_id"], app_id, "{body}");
        Scene {
            id: body["scene_id"].as_str().expect("scene_id").to_owned(),
            browser_token: body["browser_token"]
                .as_str()
                .expect("browser_token")
                .to_owned(),
            body,
        }
    }

    /// Redeems a ticket of a scene made by [`Self::create_scene_in`].
    pub async fn redeem_in(&self, app_id: &str, ticket: &str) -> Response {
        let (id, secret) = app_client(app_id);
        self.redeem_as(&id, &secret, ticket).await
    }

    /// A fresh `wx.login` code for `openid` (random session key, no unionid).
    pub fn login_code(&self, openid: &str) -> String {
        let code = unique("code");
        self.fake.add_code(&code, openid, None, &session_key());
        code
    }

    /// `POST /api/v1/mp/scan`.
    pub async fn scan(&self, scene_id: &str, code: &str) -> Response {
        self.post_json(
            "/api/v1/mp/scan",
            &json!({"scene_id": scene_id, "code": code}),
        )
        .await
    }

    /// Scans successfully and returns the `mp_token`.
    pub async fn scanned(&self, scene_id: &str, code: &str) -> String {
        let body = ok_json(self.scan(scene_id, code).await).await;
        assert_eq!(body["state"], "scanned", "{body}");
        body["mp_token"].as_str().expect("mp_token").to_owned()
    }

    /// `POST /api/v1/mp/confirm` with any body.
    pub async fn confirm(&self, body: &Value) -> Response {
        self.post_json("/api/v1/mp/confirm", body).await
    }

    /// Confirms with the scan's `mp_token`.
    pub async fn confirm_token(&self, scene_id: &str, mp_token: &str) -> Response {
        self.confirm(&json!({"scene_id": scene_id, "mp_token": mp_token}))
            .await
    }

    /// `POST /api/v1/mp/cancel` with any body.
    pub async fn cancel(&self, body: &Value) -> Response {
        self.post_json("/api/v1/mp/cancel", body).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// Redeems as the test client.
    pub async fn redeem(&self, ticket: &str) -> Response {
        self.redeem_as(CLIENT_ID, CLIENT_SECRET, ticket).await
    }

    /// Redeems with these HTTP Basic credentials.
    pub async fn redeem_as(&self, client_id: &str, secret: &str, ticket: &str) -> Response {
        self.http
            .post(self.url("/api/v1/tickets/redeem"))
            .basic_auth(client_id, Some(secret))
            .json(&json!({"ticket": ticket}))
            .send()
            .await
            .expect("POST redeem")
    }

    /// `GET events` (long-poll) with the scene's browser token.
    pub async fn events(&self, scene: &Scene, after: Option<&str>, wait: u64) -> Response {
        let mut url = format!("/api/v1/scenes/{}/events?wait={wait}", scene.id);
        if let Some(a) = after {
            url.push_str(&format!("&after={a}"));
        }
        self.http
            .get(self.url(&url))
            .bearer_auth(&scene.browser_token)
            .send()
            .await
            .expect("GET events")
    }

    /// A long-poll for a change from `after`, running in the background.
    pub fn spawn_long_poll(
        &self,
        scene: &Scene,
        after: &str,
        wait: u64,
    ) -> tokio::task::JoinHandle<reqwest::Result<Response>> {
        let request = self
            .http
            .get(self.url(&format!(
                "/api/v1/scenes/{}/events?after={after}&wait={wait}",
                scene.id
            )))
            .bearer_auth(&scene.browser_token);
        tokio::spawn(request.send())
    }

    /// The scene's current state as its browser is told (no waiting).
    pub async fn state_of(&self, scene: &Scene) -> String {
        let body = ok_json(self.events(scene, None, 0).await).await;
        body["state"].as_str().expect("state").to_owned()
    }

    /// `GET qrcode`.
    pub async fn qrcode(&self, scene_id: &str) -> Response {
        self.http
            .get(self.url(&format!("/api/v1/scenes/{scene_id}/qrcode")))
            .send()
            .await
            .expect("GET qrcode")
    }

    /// Sends `request` (a raw HTTP/1.1 head) on a new connection and reads
    /// the answer until the hub closes it: (status, body).
    pub async fn raw_http(&self, request: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect");
        conn.write_all(request.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        tokio::time::timeout(WAIT, conn.read_to_end(&mut answer))
            .await
            .expect("the hub did not close in time")
            .expect("read");
        let answer = String::from_utf8(answer).expect("UTF-8 answer");
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }
}

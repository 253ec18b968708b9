//! A browser's WebSocket: opening it, sending frames, reading events,
//! pings and the close.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::header::HeaderValue;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::app::TestApp;
use super::calls::Scene;
use super::{ORIGIN, WAIT};

impl TestApp {
    /// Opens the scene's WebSocket (no auth frame yet), optionally with an Origin.
    pub async fn ws_connect_raw(
        &self,
        scene_id: &str,
        origin: Option<&str>,
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let url = format!("ws://127.0.0.1:{}/api/v1/scenes/{scene_id}/ws", self.port);
        let mut req = url.into_client_request().expect("WebSocket request");
        if let Some(o) = origin {
            req.headers_mut()
                .insert("Origin", HeaderValue::from_str(o).expect("origin"));
        }
        let (stream, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
            .await
            .expect("WebSocket connect timed out")?;
        Ok(Ws { stream })
    }

    /// Opens the scene's WebSocket from the allowed origin and authenticates.
    pub async fn ws_connect(&self, scene: &Scene) -> Ws {
        let mut ws = self
            .ws_connect_raw(&scene.id, Some(ORIGIN))
            .await
            .expect("WebSocket upgrade");
        ws.send_json(&json!({"type": "auth", "browser_token": scene.browser_token}))
            .await;
        ws
    }
}

/// A browser's WebSocket.
pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a socket ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// A close frame with this code.
    Closed(u16),
    /// The connection ended without a close frame.
    Dropped,
}

impl Ws {
    /// Sends `text` as one message split into `parts` frames (a first text
    /// frame and continuations), as a client may.
    pub async fn send_fragmented(&mut self, text: &str, parts: usize) {
        use tokio_tungstenite::tungstenite::protocol::frame::Frame;
        use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
        let bytes = text.as_bytes();
        let size = bytes.len().div_ceil(parts.max(1)).max(1);
        let chunks: Vec<&[u8]> = bytes.chunks(size).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let op = if i == 0 { Data::Text } else { Data::Continue };
            let frame = Frame::message(chunk.to_vec(), OpCode::Data(op), i + 1 == chunks.len());
            tokio::time::timeout(WAIT, self.stream.send(Message::Frame(frame)))
                .await
                .expect("send timed out")
                .expect("send");
        }
    }

    /// Sends a ping; the next non-event frame must be its pong.
    pub async fn ping_pong(&mut self, payload: &[u8]) {
        tokio::time::timeout(
            WAIT,
            self.stream.send(Message::Ping(payload.to_vec().into())),
        )
        .await
        .expect("send timed out")
        .expect("send");
        let msg = tokio::time::timeout(WAIT, self.stream.next())
            .await
            .expect("no pong in time");
        match msg {
            Some(Ok(Message::Pong(p))) => assert_eq!(&p[..], payload),
            other => panic!("expected a pong, got {other:?}"),
        }
    }

    pub async fn send_json(&mut self, v: &Value) {
        tokio::time::timeout(WAIT, self.stream.send(Message::text(v.to_string())))
            .await
            .expect("send timed out")
            .expect("send");
    }

    /// The next JSON text frame (pings are skipped); panics on a close.
    pub async fn next_event(&mut self) -> Value {
        self.next_event_within(WAIT).await
    }

    pub async fn next_event_within(&mut self, limit: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("no WebSocket event in time");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(t.as_str()).expect("event is JSON");
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected an event, got {other:?}"),
            }
        }
    }

    /// Waits for a ping from the server (events are not expected meanwhile).
    pub async fn next_ping(&mut self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        for _ in 0..16 {
            let msg = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("no ping in time");
            match msg {
                Some(Ok(Message::Ping(_))) => return,
                Some(Ok(Message::Pong(_))) => continue,
                other => panic!("expected a ping, got {other:?}"),
            }
        }
        panic!("too many frames before a ping");
    }

    /// Reads until the server closes; returns the close code. Events that
    /// arrive first are returned too.
    pub async fn closing(&mut self, limit: Duration) -> (Vec<Value>, Ending) {
        let deadline = tokio::time::Instant::now() + limit;
        let mut events = Vec::new();
        for _ in 0..64 {
            let msg = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("the server did not close in time");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    events.push(serde_json::from_str(t.as_str()).expect("event is JSON"));
                }
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
                    return (events, Ending::Closed(code));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return (events, Ending::Dropped),
            }
        }
        panic!("too many frames before the close");
    }

    /// The close code, when nothing but a close may come.
    pub async fn close_code(&mut self, limit: Duration) -> Ending {
        let (events, ending) = self.closing(limit).await;
        assert!(
            events.is_empty(),
            "unexpected events before close: {events:?}"
        );
        ending
    }
}

//! A browser's WebSocket: connect, authenticate with the first frame, read
//! state events. Pings are answered by tungstenite while the socket is read.

use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::ORIGIN;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_with_config};

use crate::api::Scene;

/// An open browser socket.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest wait for the hub's handshake and first state.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Small buffers: the tool holds thousands of idle sockets.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024))
}

/// Opens the scene's socket, authenticates and checks that the first event
/// says `waiting`.
pub async fn open(scene: &Scene) -> anyhow::Result<Socket> {
    open_from(scene, None).await
}

/// [`open`] as a page on `origin` does it (with that `Origin` header).
pub async fn open_from(scene: &Scene, origin: Option<&str>) -> anyhow::Result<Socket> {
    let deadline = Instant::now() + OPEN_TIMEOUT;
    let mut request = scene
        .ws_url
        .as_str()
        .into_client_request()
        .context("ws_url")?;
    if let Some(o) = origin {
        request
            .headers_mut()
            .insert(ORIGIN, HeaderValue::from_str(o).context("origin")?);
    }
    let (mut ws, _) = timeout_at(
        deadline,
        connect_async_with_config(request, Some(config()), true),
    )
    .await
    .context("WebSocket connect timed out")?
    .context("WebSocket connect")?;
    let auth = json!({"type": "auth", "browser_token": scene.browser_token}).to_string();
    timeout_at(deadline, ws.send(Message::text(auth)))
        .await
        .context("auth send timed out")??;
    let first = next_event(&mut ws, deadline).await?;
    if first["state"] != "waiting" || first["scene_id"] != scene.scene_id.as_str() {
        bail!("first event was {first}, not waiting");
    }
    Ok(ws)
}

/// The next state event (a JSON text frame), answering pings meanwhile.
pub async fn next_event(ws: &mut Socket, deadline: Instant) -> anyhow::Result<Value> {
    loop {
        let msg = timeout_at(deadline, ws.next())
            .await
            .context("no state event in time")?;
        match msg {
            Some(Ok(Message::Text(text))) => {
                let v: Value = serde_json::from_str(text.as_str()).context("event JSON")?;
                if v["type"] == "state" {
                    return Ok(v);
                }
            }
            Some(Ok(Message::Close(frame))) => bail!("socket closed early: {frame:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => bail!("socket error: {e}"),
            None => bail!("socket ended early"),
        }
    }
}

/// Reads until the hub closes the socket (answering its close), bounded by
/// `limit`; the hub then closes the TCP connection first, as RFC 6455 wants.
pub async fn drain(mut ws: Socket, limit: Duration) {
    let deadline = Instant::now() + limit;
    while let Ok(Some(Ok(_))) = timeout_at(deadline, ws.next()).await {}
}

/// The next state event, which must say `state` (within `limit`).
pub async fn expect(ws: &mut Socket, state: &str, limit: Duration) -> anyhow::Result<Value> {
    let event = next_event(ws, Instant::now() + limit).await?;
    if event["state"] != state {
        bail!("expected {state}, heard {event}");
    }
    Ok(event)
}

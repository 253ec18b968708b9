//! `GET /api/v1/scenes/{scene_id}/ws`. The upgrade is taken out of the
//! HTTP/1 dispatcher (actix-http's upgrade hook, wired in `startup/serve.rs`):
//! [`upgrade`] checks the path, the handshake and the `Origin`, answers 101
//! and hands the bare stream to a session task, so a waiting browser keeps no
//! HTTP buffers. The session authenticates with its first frame, sends the
//! current state, then each change, pings every 20 s and ends with a close
//! code of docs/api.md.
//!
//! A scene holds at most [`MAX_SOCKETS_PER_SCENE`] authenticated sockets on
//! this node: one more is refused at the upgrade (429 `rate_limited`, no
//! 101), or, when it raced another past that check, closed with 1008 once
//! authenticated. Only authenticated sockets take a place, so someone who has
//! seen a scene id but not its browser token cannot crowd the browser out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_codec::Framed;
use actix_http::body::BodySize;
use actix_http::h1::{self, Message};
use actix_http::{ConnectionType, Method, Request, Response, ws};
use actix_web::ResponseError;
use actix_web::body::MessageBody;
use actix_web::http::StatusCode;
use futures_util::SinkExt;
use serde::Deserialize;
use tokio::net::TcpStream;
use tracing::{Instrument, debug};
use ws::{CloseCode, CloseReason};

use super::events::BrowserEvent;
use super::ws_conn::{Incoming, WsConn};
use crate::http::error::ApiError;
use crate::login::{LoginError, SocketScene};
use crate::origins;
use crate::push::{SocketSlot, Subscription};
use crate::scene::{SceneId, SceneView, State};
use crate::state::AppState;
use crate::telemetry::metrics;

const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
const PING_EVERY: Duration = Duration::from_secs(20);
const SILENCE_LIMIT: Duration = Duration::from_secs(60);
const MAX_FRAME: usize = 4 * 1024;
/// Authenticated WebSockets one scene may hold on this node (docs/api.md).
pub const MAX_SOCKETS_PER_SCENE: usize = 8;
/// The `Retry-After` of a refusal for a full scene: a place frees when one of
/// its browsers leaves.
const FULL_SCENE_RETRY_SECS: u64 = 10;
/// A scene's WebSocket: the upgrade hook answers upgrades here; the route
/// table registers the same path for plain requests. Metrics and logs name
/// the route so.
pub const PATH: &str = "/api/v1/scenes/{scene_id}/ws";

/// Close codes of docs/api.md.
pub mod close {
    pub const BAD_TOKEN: u16 = 4401;
    pub const UNKNOWN_SCENE: u16 = 4404;
    pub const EXPIRED: u16 = 4410;
}

/// The browser's first WebSocket message.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = WsAuthFrame)]
pub(crate) struct AuthFrame {
    /// `auth`.
    #[serde(rename = "type")]
    #[schema(pattern = "^auth$")]
    kind: String,
    /// The scene's `browser_token` from `POST /api/v1/scenes`.
    browser_token: String,
}

/// The socket path without an upgrade (no `Upgrade: websocket`): a plain
/// request gets a problem, not a socket. The upgrade itself is [`upgrade`];
/// the OpenAPI document describes the protocol here.
#[utoipa::path(
    get,
    path = PATH,
    tag = "browser",
    summary = "The scene's WebSocket (state pushes)",
    description = "A WebSocket upgrade (`Upgrade: websocket`). `Origin` is checked like \
        `POST /api/v1/scenes`. The browser's first frame must be the text message \
        `{\"type\": \"auth\", \"browser_token\": \"...\"}` (schema `WsAuthFrame`) within 10 s. The server then \
        sends the current state at once and each change, as text messages with the \
        `BrowserEvent` schema (the `confirmed` event adds `ticket` and `user`). The server \
        pings every 20 s and drops a socket silent for 60 s. Frames or messages larger \
        than 4 KiB are refused. Close codes: 1000 after a final state; 4401 bad or \
        missing auth frame (or none within 10 s); 4404 unknown scene; 4410 expired scene; \
        1009 frame or message over 4 KiB; 1007 text that is not UTF-8; 1002 a broken control \
        frame; 1008 the scene already has 8 sockets; 1012 the hub is restarting (reconnect to \
        the same scene); 1013 the hub could not read the scene (retry); 1001 no answer to \
        pings for 60 s.",
    params(("scene_id" = String, Path, description = "32 lowercase hex characters")),
    responses(
        (status = 101, description = "Switching Protocols: the socket is open"),
        (status = 400, description = "`invalid_request`: not a WebSocket upgrade request"),
        (status = 403, description = "`origin_not_allowed`"),
        (status = 429, description = "`rate_limited` (upgrades per IP, or the scene already \
            has 8 sockets)"),
        (status = 503, description = "`unavailable`"),
    )
)]
pub async fn plain_request() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::InvalidRequest(
        "a WebSocket upgrade request is required".into(),
    ))
}

/// actix-http's upgrade service: every request carrying
/// `Upgrade: websocket` (and any `CONNECT`) lands here instead of the app.
/// `state` is the worker's one shared copy: a waiting socket holds a
/// reference to it, not a copy of its handles (each handle is one more word
/// per waiting browser).
pub async fn upgrade(
    state: Arc<AppState>,
    req: Request,
    mut framed: Framed<TcpStream, h1::Codec>,
) -> Result<(), std::convert::Infallible> {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    // Every request that lands here takes a unit of its path's limit first
    // (the app's table), stray upgrades to any path included.
    let ip = super::client_ip::ip_of(
        req.peer_addr(),
        req.head().headers(),
        &state.settings.load().server.trusted_proxies,
    );
    let scope = super::throttle::scope_of(req.method(), req.path());
    let allowed = state
        .limits
        .load()
        .check_scope(scope, ip)
        .map_err(ApiError::from);
    let (route, checked) = match (allowed, scene_of(req.method(), req.path())) {
        (Ok(()), Ok(scene_id)) => (PATH, handshake(&state, scene_id, &req).await),
        (Err(e), Ok(_)) => (PATH, Err(e)),
        (Err(e), Err(_)) | (Ok(()), Err(e)) => ("unmatched", Err(e)),
    };
    let span = tracing::info_span!("request", method, route, status = tracing::field::Empty);
    let (status, written) = match checked {
        Ok(scene) => {
            let res = ws::handshake_response(req.head()).finish().drop_body();
            let written = framed.send(Message::Item((res, BodySize::None))).await;
            if written.is_ok() {
                let parts = framed.into_parts();
                // Whatever the browser sent behind its request head is kept;
                // the 8 KiB buffers of the HTTP connection are not.
                let conn = WsConn::new(parts.io, &parts.read_buf, MAX_FRAME);
                state
                    .sockets
                    .spawn(run(state.clone(), scene, conn).instrument(span.clone()));
            }
            (StatusCode::SWITCHING_PROTOCOLS, written)
        }
        Err(e) => (e.status_code(), write_problem(&mut framed, &e).await),
    };
    span.record("status", status.as_u16());
    span.in_scope(|| match written {
        // The browser left during the handshake: nothing to tell anyone.
        Err(e) => debug!(error = %e, "upgrade answer not delivered"),
        Ok(()) if status.is_server_error() => tracing::warn!("request failed"),
        Ok(()) => tracing::info!("request"),
    });
    metrics::http_request(
        route.to_owned(),
        &method,
        status.as_u16(),
        started.elapsed().as_secs_f64(),
    );
    Ok(())
}

/// The scene id in `/api/v1/scenes/{scene_id}/ws`, or the problem a
/// request to any other path (or method) gets.
fn scene_of<'a>(method: &Method, path: &'a str) -> Result<&'a str, ApiError> {
    let scene_id = path_scene_id(path).ok_or_else(ApiError::not_found)?;
    if method != Method::GET {
        return Err(ApiError::BadRequestStatus {
            status: StatusCode::METHOD_NOT_ALLOWED,
            detail: "method not allowed on this path".into(),
        });
    }
    Ok(scene_id)
}

/// The scene id in a [`PATH`] path.
fn path_scene_id(path: &str) -> Option<&str> {
    let (prefix, suffix) = PATH.split_once("{scene_id}")?;
    path.strip_prefix(prefix)?
        .strip_suffix(suffix)
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

/// What an accepted upgrade knows of its scene: its id, a subscription made
/// before the scene was read (so no change falls between the read and the
/// first push), and the row itself, whose browser token the first frame must
/// match.
struct Opened {
    id: SceneId,
    sub: Subscription<SceneView>,
    scene: SocketScene,
}

/// The WebSocket handshake headers, then the `Origin` against the scene's
/// client (or, for an unknown scene, against every client). The scene is
/// read once, here; `None` when the path names no scene (the socket then
/// closes 4404 once it has authenticated).
async fn handshake(
    state: &AppState,
    scene_id: &str,
    req: &Request,
) -> Result<Option<Opened>, ApiError> {
    ws::verify_handshake(req.head()).map_err(|e| {
        ApiError::InvalidRequest(format!("a WebSocket upgrade request is required: {e}"))
    })?;
    let origin = super::extract::origin(req.head().headers())?;
    let opened = match SceneId::parse(scene_id) {
        Some(id) => {
            let sub = state.registry.subscribe(id.as_str());
            state
                .scenes
                .socket_scene(&id)
                .await?
                .map(|scene| Opened { id, sub, scene })
        }
        None => None,
    };
    match (&opened, origin) {
        (Some(o), origin) => {
            if let Some(client) = state.settings.load().client(o.scene.client_id()) {
                state.scenes.check_origin(client, origin)?;
            }
        }
        (None, Some(o)) if !origins::any_client_allows(&state.settings.load(), o) => {
            return Err(ApiError::Flow(LoginError::OriginNotAllowed(o.to_owned())));
        }
        _ => {}
    }
    if state.registry.sockets_of(scene_id) >= MAX_SOCKETS_PER_SCENE {
        return Err(ApiError::RateLimited(FULL_SCENE_RETRY_SECS));
    }
    Ok(opened)
}

/// Answers a refused upgrade with its problem document and closes.
async fn write_problem(
    framed: &mut Framed<TcpStream, h1::Codec>,
    err: &ApiError,
) -> Result<(), std::io::Error> {
    let (head, body) = err.error_response().into_parts();
    let body = body.try_into_bytes().unwrap_or_default();
    let mut res: Response<()> = head.into();
    res.head_mut().set_connection_type(ConnectionType::Close);
    // Head and body in one write: a client that reads the answer in one go
    // (tungstenite does) sees the whole problem document.
    framed
        .feed(Message::Item((res, BodySize::Sized(body.len() as u64))))
        .await?;
    framed.feed(Message::Chunk(Some(body))).await?;
    framed.send(Message::Chunk(None)).await
}

fn reason(code: u16, text: &str) -> Option<CloseReason> {
    Some(CloseReason {
        code: CloseCode::Other(code),
        description: Some(text.to_owned()),
    })
}

fn normal(text: &str) -> Option<CloseReason> {
    Some(CloseReason {
        code: CloseCode::Normal,
        description: Some(text.to_owned()),
    })
}

async fn send(conn: &mut WsConn, state: &AppState, view: &SceneView) -> bool {
    let Some(text) = BrowserEvent::text(view, &state.minter) else {
        return false;
    };
    conn.text(text).await.is_ok()
}

/// The first frame must authenticate, within 10 s; the browser token, or
/// the reason to close.
async fn authenticate(conn: &mut WsConn) -> Result<String, Option<CloseReason>> {
    match tokio::time::timeout(AUTH_TIMEOUT, conn.recv()).await {
        Ok(Some(Ok(Incoming::Text(text)))) => match serde_json::from_slice::<AuthFrame>(&text) {
            Ok(f) if f.kind == "auth" => Ok(f.browser_token),
            _ => Err(reason(
                close::BAD_TOKEN,
                "first frame must be {\"type\":\"auth\",...}",
            )),
        },
        Ok(Some(Err(e))) => {
            debug!(error = %e, "socket protocol error before auth");
            Err(Some(CloseReason {
                code: e.close_code(),
                description: None,
            }))
        }
        Ok(None) => Err(None),
        _ => Err(reason(close::BAD_TOKEN, "no auth frame within 10 s")),
    }
}

/// Authenticates, takes a place among the scene's sockets and sends the
/// current state; what the session goes on to wait with, or how it ends.
async fn start(
    state: &AppState,
    opened: Option<Opened>,
    conn: &mut WsConn,
) -> Result<Started, Option<CloseReason>> {
    let token = authenticate(conn).await?;
    let Some(Opened { id, sub, scene }) = opened else {
        return Err(reason(close::UNKNOWN_SCENE, "unknown scene"));
    };
    // The `Origin` was checked with the handshake.
    let Ok(view) = scene.view_for(&token) else {
        return Err(reason(close::BAD_TOKEN, "bad browser token"));
    };
    drop((token, scene));
    let Some(slot) = state
        .registry
        .socket_slot(id.as_str(), MAX_SOCKETS_PER_SCENE)
    else {
        return Err(Some(CloseReason {
            code: CloseCode::Policy,
            description: Some("too many sockets for this scene".into()),
        }));
    };
    if view.state == State::Expired {
        let _ = send(conn, state, &view).await;
        return Err(reason(close::EXPIRED, "scene expired"));
    }
    if !send(conn, state, &view).await {
        return Err(None);
    }
    if view.state.is_final() {
        return Err(normal(view.state.as_str()));
    }
    Ok(Started {
        sub,
        slot,
        shown: view.state,
    })
}

/// An authenticated session that showed `shown` and waits for what follows.
struct Started {
    sub: Subscription<SceneView>,
    slot: SocketSlot<SceneView>,
    shown: State,
}

/// A session. Everything but the wait itself is boxed: those futures are
/// large and would otherwise sit inline in every idle session's task for its
/// whole life (docs/benchmarks.md).
async fn run(state: Arc<AppState>, opened: Option<Opened>, mut conn: WsConn) {
    let _open = state.open_socket();
    let end = match Box::pin(start(&state, opened, &mut conn)).await {
        Ok(Started { sub, slot, shown }) => {
            let end = wait(&state, &mut conn, sub, shown).await;
            // A closing socket gives its place back before it says so.
            drop(slot);
            end
        }
        Err(end) => end,
    };
    if let Some(reason) = end {
        Box::pin(conn.close(Some(reason))).await;
    }
}

/// Forwards changes until a final state, silence, the browser leaves or
/// shutdown; the close to send, if any. A change the bus missed reaches the
/// subscription through the node's catch-up (`crate::push::catch_up`): the
/// heartbeat only pings.
async fn wait(
    state: &AppState,
    conn: &mut WsConn,
    mut sub: Subscription<SceneView>,
    mut shown: State,
) -> Option<CloseReason> {
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let mut last_heard = Instant::now();
    loop {
        let view = tokio::select! {
            _ = state.shutdown.cancelled() => {
                return Some(CloseReason { code: CloseCode::Restart, description: Some("hub restarting".into()) });
            }
            view = sub.recv() => {
                if !shown.is_behind(view.state) {
                    continue;
                }
                view
            }
            msg = conn.recv() => {
                match msg {
                    Some(Ok(Incoming::Ping(bytes))) => {
                        last_heard = Instant::now();
                        if Box::pin(conn.send(ws::Message::Pong(bytes))).await.is_err() { return None; }
                    }
                    Some(Ok(Incoming::Pong | Incoming::Text(_) | Incoming::Binary(_))) => {
                        last_heard = Instant::now();
                    }
                    Some(Ok(Incoming::Close)) | None => return normal("bye"),
                    Some(Err(e)) => {
                        debug!(error = %e, "socket protocol error");
                        return Some(CloseReason { code: e.close_code(), description: None });
                    }
                }
                continue;
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT {
                    return Some(CloseReason { code: CloseCode::Away, description: Some("no answer for 60 s".into()) });
                }
                if Box::pin(conn.send(ws::Message::Ping(bytes::Bytes::new()))).await.is_err() { return None; }
                continue;
            }
        };
        if !Box::pin(send(conn, state, &view)).await {
            return None;
        }
        shown = view.state;
        if shown.is_final() {
            return normal(shown.as_str());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hand_router_finds_the_scene_id_and_nothing_else() {
        let id = "0123456789abcdef0123456789abcdef";
        let path = format!("/api/v1/scenes/{id}/ws");
        assert_eq!(path_scene_id(&path), Some(id));
        for other in [
            "/api/v1/scenes//ws",
            "/api/v1/scenes/a/b/ws",
            "/api/v1/scenes/ws",
            "/api/v1/scenes/a/ws/",
            "/api/v1/mp/a/ws",
        ] {
            assert_eq!(path_scene_id(other), None, "{other}");
        }
    }
}

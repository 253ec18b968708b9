//! `GET /api/v1/scenes/{scene_id}/ws`: the thin handler checks the `Origin`,
//! upgrades and spawns the session; the session authenticates with its first
//! frame, sends the current state, then each change, pings every 20 s and
//! ends with a close code of SPEC.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, Session};
use serde::Deserialize;
use tracing::debug;

use super::browser::origin;
use crate::error::ApiError;
use crate::scene::{SceneView, State};
use crate::state::AppState;

const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
const PING_EVERY: Duration = Duration::from_secs(20);
const SILENCE_LIMIT: Duration = Duration::from_secs(60);
const MAX_FRAME: usize = 4 * 1024;

/// Close codes of SPEC.md.
pub mod close {
    pub const BAD_TOKEN: u16 = 4401;
    pub const UNKNOWN_SCENE: u16 = 4404;
    pub const EXPIRED: u16 = 4410;
}

#[derive(Deserialize)]
struct AuthFrame {
    #[serde(rename = "type")]
    kind: String,
    browser_token: String,
}

/// The upgrade handler.
pub async fn socket(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let scene_id = path.into_inner();
    let client = state.login.scene_client(&scene_id).await?;
    match (client, origin(&req)) {
        (Some(c), o) => state.login.check_origin(c, o)?,
        (None, Some(o)) if !state.settings.any_client_allows(o) => {
            return Err(ApiError::OriginNotAllowed(o.to_owned()));
        }
        _ => {}
    }
    let (res, session, stream) = actix_ws::handle(&req, body)
        .map_err(|_| ApiError::InvalidRequest("a WebSocket upgrade request is required".into()))?;
    let stream = stream
        .max_frame_size(MAX_FRAME)
        .aggregate_continuations()
        .max_continuation_size(MAX_FRAME);
    actix_web::rt::spawn(run(state.into_inner(), scene_id, session, stream));
    Ok(res)
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

async fn send(session: &mut Session, state: &AppState, view: &SceneView) -> bool {
    session
        .text(state.login.browser_event(view).to_string())
        .await
        .is_ok()
}

async fn run(
    state: Arc<AppState>,
    scene_id: String,
    mut session: Session,
    mut stream: actix_ws::AggregatedMessageStream,
) {
    let _open = state.open_socket();
    // 1. The first frame must authenticate, within 10 s.
    let token = match tokio::time::timeout(AUTH_TIMEOUT, stream.recv()).await {
        Ok(Some(Ok(AggregatedMessage::Text(text)))) => {
            match serde_json::from_str::<AuthFrame>(&text) {
                Ok(f) if f.kind == "auth" => f.browser_token,
                _ => {
                    let _ = session
                        .close(reason(
                            close::BAD_TOKEN,
                            "first frame must be {\"type\":\"auth\",...}",
                        ))
                        .await;
                    return;
                }
            }
        }
        _ => {
            let _ = session
                .close(reason(close::BAD_TOKEN, "no auth frame within 10 s"))
                .await;
            return;
        }
    };
    // 2. Listen before reading the state, so no change falls in between.
    let mut sub = state.registry.subscribe(&scene_id);
    // Boxed: the database futures are large and would otherwise stay
    // inlined in every idle session's task for its whole life.
    let mut shown = match Box::pin(state.login.browser_view(&scene_id, &token)).await {
        Ok(view) => view,
        Err(ApiError::SceneNotFound) => {
            let _ = session
                .close(reason(close::UNKNOWN_SCENE, "unknown scene"))
                .await;
            return;
        }
        Err(ApiError::InvalidToken(_)) => {
            let _ = session
                .close(reason(close::BAD_TOKEN, "bad browser token"))
                .await;
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "socket could not read its scene");
            let _ = session
                .close(Some(CloseReason {
                    code: CloseCode::Again,
                    description: None,
                }))
                .await;
            return;
        }
    };
    drop(token);
    if shown.state == State::Expired {
        let _ = send(&mut session, &state, &shown).await;
        let _ = session.close(reason(close::EXPIRED, "scene expired")).await;
        return;
    }
    if !send(&mut session, &state, &shown).await {
        return;
    }
    if shown.state.is_final() {
        let _ = session.close(normal(shown.state.as_str())).await;
        return;
    }
    // 3. Forward changes until a final state, silence, the browser leaves or shutdown.
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let mut last_heard = Instant::now();
    let end = loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => {
                break Some(CloseReason { code: CloseCode::Restart, description: Some("hub restarting".into()) });
            }
            event = sub.rx.recv() => {
                let Some(view) = event else { break normal("closing") };
                if view.state == shown.state || view.state.rank() < shown.state.rank() {
                    continue;
                }
                shown = (*view).clone();
                if !send(&mut session, &state, &shown).await {
                    break None;
                }
                if shown.state.is_final() {
                    break normal(shown.state.as_str());
                }
            }
            msg = stream.recv() => match msg {
                Some(Ok(AggregatedMessage::Ping(bytes))) => {
                    last_heard = Instant::now();
                    if session.pong(&bytes).await.is_err() { break None; }
                }
                Some(Ok(AggregatedMessage::Pong(_) | AggregatedMessage::Text(_) | AggregatedMessage::Binary(_))) => {
                    last_heard = Instant::now();
                }
                Some(Ok(AggregatedMessage::Close(_))) | None => break normal("bye"),
                Some(Err(e)) => {
                    debug!(error = %e, "socket protocol error");
                    break Some(CloseReason { code: CloseCode::Protocol, description: None });
                }
            },
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT {
                    break Some(CloseReason { code: CloseCode::Away, description: Some("no answer for 60 s".into()) });
                }
                if session.ping(b"").await.is_err() { break None; }
                // A push this socket missed (full queue, bus hiccup) is caught
                // up from the database, which holds the truth.
                if let Ok(view) = Box::pin(state.login.browser_view_unchecked(&scene_id)).await
                    && view.state != shown.state
                {
                    shown = view;
                    if !send(&mut session, &state, &shown).await { break None; }
                    if shown.state.is_final() { break normal(shown.state.as_str()); }
                }
            }
        }
    };
    if let Some(reason) = end {
        let _ = session.close(Some(reason)).await;
    }
}

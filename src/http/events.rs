//! The event a browser receives over its WebSocket and from `events`,
//! rendered here, at the edge, from the flow's scene view and the ticket
//! minter.

use serde::Serialize;
use utoipa::ToSchema;

use crate::scene::{SceneView, State};
use crate::tickets::TicketMinter;

/// The kind of a browser event (always `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// A state event.
    State,
}

/// The event a browser receives over the WebSocket and from `events`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BrowserEvent {
    /// `state`.
    #[serde(rename = "type")]
    pub r#type: EventType,
    /// The scene the event is about.
    pub scene_id: String,
    /// The scene's state now.
    pub state: State,
    /// The one-time ticket for the site's backend (only when `confirmed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub ticket: Option<String>,
    /// Who logged in (only when `confirmed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub user: Option<EventUser>,
}

/// The person shown to the browser after a confirm.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventUser {
    /// The nickname the phone sent, if any.
    #[schema(required = true)]
    pub nickname: Option<String>,
    /// The avatar URL the phone sent, if any.
    #[schema(required = true)]
    pub avatar_url: Option<String>,
}

impl BrowserEvent {
    /// The event for `view`, with the ticket `minter` derives for it.
    pub fn of(view: &SceneView, minter: &TicketMinter) -> Self {
        let confirmed = view.confirmed.as_ref();
        Self {
            r#type: EventType::State,
            scene_id: view.scene_id.to_string(),
            state: view.state,
            ticket: minter.ticket_of(view),
            user: confirmed.map(|c| EventUser {
                nickname: c.nickname.clone(),
                avatar_url: c.avatar_url.clone(),
            }),
        }
    }

    /// The event as the JSON text a socket sends.
    pub fn text(view: &SceneView, minter: &TicketMinter) -> Option<String> {
        serde_json::to_string(&Self::of(view, minter)).ok()
    }
}

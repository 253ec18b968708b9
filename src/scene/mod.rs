//! The scene: one login attempt shown as one code, and its state machine
//! `waiting -> scanned -> confirmed | cancelled`, `waiting/scanned -> expired`.

pub mod codes;
pub mod store;

use serde::{Deserialize, Serialize};

pub use store::{Binding, NewScene, SceneStore};

/// A scene's state. Final states never change again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Waiting,
    Scanned,
    Confirmed,
    Cancelled,
    Expired,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Scanned => "scanned",
            Self::Confirmed => "confirmed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "waiting" => Self::Waiting,
            "scanned" => Self::Scanned,
            "confirmed" => Self::Confirmed,
            "cancelled" => Self::Cancelled,
            "expired" => Self::Expired,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Confirmed | Self::Cancelled | Self::Expired)
    }

    /// Order along the machine: a later state never goes back to an earlier one.
    pub fn rank(self) -> u8 {
        match self {
            Self::Waiting => 0,
            Self::Scanned => 1,
            _ => 2,
        }
    }
}

/// A validated scene id: 32 lowercase hex characters (a UUID v4 without dashes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SceneId(String);

impl SceneId {
    pub fn new_random() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }

    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SceneId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a browser is told about a scene (no secrets: the ticket is derived
/// from `issued_at` with the server key when the view reaches the browser).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SceneView {
    pub scene_id: String,
    pub state: State,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<ConfirmedView>,
}

/// The parts of a confirmed scene the browser sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmedView {
    pub ticket_issued_at: i64,
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
}

impl SceneView {
    /// The view of a stored scene at time `now` (overdue counts as expired
    /// even before the sweeper has marked it).
    pub fn of(row: &entity::scenes::Model, now: i64) -> Self {
        let mut state = State::parse(&row.state).unwrap_or(State::Expired);
        if !state.is_final() && row.expires_at <= now {
            state = State::Expired;
        }
        let confirmed = (state == State::Confirmed).then(|| ConfirmedView {
            ticket_issued_at: row.finished_at.unwrap_or(row.created_at),
            nickname: row.nickname.clone(),
            avatar_url: row.avatar_url.clone(),
        });
        Self {
            scene_id: row.id.clone(),
            state,
            confirmed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scene_ids() {
        let id = SceneId::new_random();
        assert!(SceneId::parse(id.as_str()).is_some());
        assert!(SceneId::parse("ABCDEF0123456789abcdef0123456789").is_none());
        assert!(SceneId::parse("abc").is_none());
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A scene id is exactly 32 lowercase hex characters.
        #[test]
        fn scene_ids_are_32_lowercase_hex(s in "\\PC{0,40}") {
            let ok = s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            prop_assert_eq!(SceneId::parse(&s).is_some(), ok);
        }

        #[test]
        fn valid_ids_round_trip(s in "[0-9a-f]{32}") {
            prop_assert_eq!(SceneId::parse(&s).map(|id| id.to_string()), Some(s));
        }
    }

    #[test]
    fn new_ids_parse() {
        let id = SceneId::new_random();
        assert_eq!(SceneId::parse(id.as_str()), Some(id));
    }
}

//! The scene: one login attempt shown as one mini-program code. Its state
//! machine is `machine.rs`; `store.rs` keeps the `scenes` table and
//! `code_images.rs` the code images.

pub mod code_images;
pub mod machine;
pub mod store;

use serde::{Deserialize, Serialize};

pub use machine::{Refusal, State, Step};
pub use store::{NewScene, Scanner, SceneStore};

/// A validated scene id: 32 lowercase hex characters (a UUID v4 without
/// dashes). Parsed once at the edge and carried typed to the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
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

    /// An id read back from the `scenes` table, which holds only ids that
    /// were made by [`SceneId::new_random`].
    pub(crate) fn stored(id: String) -> Self {
        Self(id)
    }
}

impl TryFrom<String> for SceneId {
    type Error = &'static str;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s).ok_or("a scene id is 32 lowercase hex characters")
    }
}

impl From<SceneId> for String {
    fn from(id: SceneId) -> Self {
        id.0
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
    pub scene_id: SceneId,
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
    /// A view of a step just taken, with nothing confirmed to show.
    pub fn plain(scene_id: SceneId, state: State) -> Self {
        Self {
            scene_id,
            state,
            confirmed: None,
        }
    }

    /// The view of a stored scene at time `now` (overdue counts as expired
    /// even before the sweeper has marked it).
    pub fn of(row: &entity::scenes::Model, now: i64) -> Self {
        let state = State::at(row, now);
        let confirmed = (state == State::Confirmed).then(|| ConfirmedView {
            ticket_issued_at: row.finished_at.unwrap_or(row.created_at),
            nickname: row.nickname.clone(),
            avatar_url: row.avatar_url.clone(),
        });
        Self {
            scene_id: SceneId::stored(row.id.clone()),
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

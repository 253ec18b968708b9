//! The scene's state machine, in one place: the states, which are final,
//! their order, who may take a scene from one state to the next, and why a
//! step was refused. `store.rs` writes each step as one conditional UPDATE
//! that says the same as these rules.
//!
//! ```text
//! waiting --scan--> scanned --confirm--> confirmed
//!    |                 |     --cancel--> cancelled
//!    +-- a fresh code confirms or cancels from waiting (single step)
//! waiting | scanned --(past expires_at)--> expired
//! ```

use entity::scenes;
use serde::{Deserialize, Serialize};

use super::store::Scanner;

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

    /// Whether a listener that has shown `self` should show `next`: only a
    /// step forward along the machine.
    pub fn is_behind(self, next: State) -> bool {
        self.rank() < next.rank()
    }

    /// The state as stored (an unreadable value counts as expired).
    pub fn stored(row: &scenes::Model) -> Self {
        Self::parse(&row.state).unwrap_or(Self::Expired)
    }

    /// The state at time `now`: overdue counts as expired even before the
    /// sweeper has marked it.
    pub fn at(row: &scenes::Model, now: i64) -> Self {
        let state = Self::stored(row);
        if !state.is_final() && row.expires_at <= now {
            Self::Expired
        } else {
            state
        }
    }
}

/// What a phone does to a scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Scan,
    Confirm,
    Cancel,
}

impl Step {
    /// The state the step leads to.
    pub fn leads_to(self) -> State {
        match self {
            Self::Scan => State::Scanned,
            Self::Confirm => State::Confirmed,
            Self::Cancel => State::Cancelled,
        }
    }
}

/// Whether the scene was scanned by this person.
pub fn is_bound_to(row: &scenes::Model, b: &Scanner) -> bool {
    row.app_id.as_deref() == Some(b.app_id.as_str()) && row.openid.as_deref() == Some(&b.openid)
}

/// Whether `step` was already done by this person: a retry of it gets the
/// same answer instead of a refusal.
pub fn already_done(row: &scenes::Model, b: &Scanner, step: Step) -> bool {
    is_bound_to(row, b) && State::stored(row) == step.leads_to()
}

/// Whether this person may confirm (or cancel) the scene now: it is scanned
/// by them, or, with a fresh code (`single_step`), still waiting.
pub fn may_finish(row: &scenes::Model, b: &Scanner, single_step: bool, now: i64) -> bool {
    match State::at(row, now) {
        State::Scanned => is_bound_to(row, b),
        State::Waiting => single_step,
        _ => false,
    }
}

/// Why a step did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The scene is past its life.
    Expired,
    /// Another person scanned it first.
    Taken,
    /// It already ended so.
    Final(State),
    /// It changed while the step was on its way.
    Changed,
}

/// Why a step by this person was refused, from the scene's current row.
pub fn refusal(row: &scenes::Model, b: &Scanner, now: i64) -> Refusal {
    let bound_other = row.openid.is_some() && !is_bound_to(row, b);
    match State::at(row, now) {
        State::Expired => Refusal::Expired,
        _ if bound_other => Refusal::Taken,
        s if s.is_final() => Refusal::Final(s),
        _ => Refusal::Changed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(state: State, openid: Option<&str>, expires_at: i64) -> scenes::Model {
        scenes::Model {
            id: "0".repeat(32),
            client_id: "c".into(),
            state: state.as_str().into(),
            browser_token_hash: String::new(),
            browser_ip: String::new(),
            browser_user_agent: String::new(),
            created_at: 0,
            expires_at,
            app_id: openid.map(|_| "wx1".into()),
            openid: openid.map(str::to_owned),
            unionid: None,
            session_key: None,
            mp_token_hash: None,
            scanned_at: None,
            user_id: None,
            nickname: None,
            avatar_url: None,
            finished_at: None,
            origin: None,
            code_app_id: None,
        }
    }

    fn person(openid: &str) -> Scanner {
        Scanner {
            app_id: "wx1".into(),
            openid: openid.into(),
            unionid: None,
            session_key: String::new(),
        }
    }

    #[test]
    fn overdue_counts_as_expired_and_final_states_stay() {
        assert_eq!(
            State::at(&row(State::Scanned, Some("a"), 10), 10),
            State::Expired
        );
        assert_eq!(
            State::at(&row(State::Confirmed, Some("a"), 10), 99),
            State::Confirmed
        );
        assert_eq!(State::at(&row(State::Waiting, None, 10), 9), State::Waiting);
    }

    #[test]
    fn who_may_finish() {
        let scanned = row(State::Scanned, Some("a"), 100);
        assert!(may_finish(&scanned, &person("a"), false, 1));
        assert!(!may_finish(&scanned, &person("b"), true, 1));
        assert!(!may_finish(&scanned, &person("a"), false, 100));
        let waiting = row(State::Waiting, None, 100);
        assert!(may_finish(&waiting, &person("b"), true, 1));
        assert!(!may_finish(&waiting, &person("b"), false, 1));
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(
            refusal(&row(State::Scanned, Some("a"), 100), &person("b"), 1),
            Refusal::Taken
        );
        assert_eq!(
            refusal(&row(State::Scanned, Some("a"), 100), &person("b"), 200),
            Refusal::Expired
        );
        assert_eq!(
            refusal(&row(State::Cancelled, Some("a"), 100), &person("a"), 1),
            Refusal::Final(State::Cancelled)
        );
        assert_eq!(
            refusal(&row(State::Scanned, Some("a"), 100), &person("a"), 1),
            Refusal::Changed
        );
    }

    #[test]
    fn only_forward() {
        assert!(State::Waiting.is_behind(State::Scanned));
        assert!(!State::Scanned.is_behind(State::Scanned));
        assert!(!State::Confirmed.is_behind(State::Expired));
    }
}

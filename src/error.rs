//! A failure that is no request's fault, shared by every scope: a dependency
//! that cannot answer now, or a bug. Each scope's error wraps a [`Fault`]
//! (the login flow's, OAuth's) or the edge takes it as it is; the edge
//! answers it 503 or 500 with an opaque body and logs its [`Chain`] once.

use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::sync::Arc;

use sea_orm::DbErr;

/// A cause kept behind a fault. Shared, so an error that holds one stays
/// `Clone` (the OAuth answer renders the flow's failure from a borrow).
type Cause = Arc<dyn Error + Send + Sync + 'static>;

/// A dependency failed or an invariant broke: the hub's problem, not the
/// request's.
#[derive(Debug, Clone)]
pub enum Fault {
    /// A dependency (the database, a turn at WeChat, the bus) cannot answer
    /// now: 503 with `Retry-After`.
    Unavailable {
        /// What is unavailable.
        what: Cow<'static, str>,
        /// Why, when a lower error says so.
        cause: Option<Cause>,
    },
    /// A bug or a broken invariant: 500.
    Internal {
        /// What failed.
        what: Cow<'static, str>,
        /// Why, when a lower error says so.
        cause: Option<Cause>,
    },
}

impl Fault {
    /// `what` cannot answer now.
    pub fn unavailable(what: impl Into<Cow<'static, str>>) -> Self {
        Self::Unavailable {
            what: what.into(),
            cause: None,
        }
    }

    /// `what` failed for a reason that is a bug.
    pub fn internal(what: impl Into<Cow<'static, str>>) -> Self {
        Self::Internal {
            what: what.into(),
            cause: None,
        }
    }

    /// The same fault, caused by `cause` (returned by `source()`).
    pub fn because(self, cause: impl Error + Send + Sync + 'static) -> Self {
        let cause: Option<Cause> = Some(Arc::new(cause));
        match self {
            Self::Unavailable { what, .. } => Self::Unavailable { what, cause },
            Self::Internal { what, .. } => Self::Internal { what, cause },
        }
    }

    /// Whether a retry later may succeed (503 rather than 500).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable { what, .. } => write!(f, "unavailable: {what}"),
            Self::Internal { what, .. } => write!(f, "internal error: {what}"),
        }
    }
}

impl Error for Fault {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        let (Self::Unavailable { cause, .. } | Self::Internal { cause, .. }) = self;
        cause.as_deref().map(|c| c as &(dyn Error + 'static))
    }
}

impl From<DbErr> for Fault {
    /// A database that is locked, busy, slow, full or gone is not the
    /// request's fault: `Unavailable`. Anything else is a bug.
    fn from(err: DbErr) -> Self {
        if crate::db::is_unavailable(&err) {
            Self::unavailable("database").because(err)
        } else {
            Self::internal("database").because(err)
        }
    }
}

/// An error and its causes on one line, `outer: inner: innermost`, for the
/// log. A cause whose text its parent already shows is not repeated.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut next = self.0.source();
        while let Some(cause) = next {
            let text = cause.to_string();
            if !shown.contains(&text) {
                write!(f, ": {text}")?;
            }
            shown = text;
            next = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_keeps_its_cause_and_the_chain_shows_it() {
        let fault = Fault::from(DbErr::Custom("disk on fire".into()));
        assert!(!fault.is_unavailable());
        let cause = fault.source().and_then(|s| s.downcast_ref::<DbErr>());
        assert!(matches!(cause, Some(DbErr::Custom(m)) if m == "disk on fire"));
        assert_eq!(
            Chain(&fault).to_string(),
            "internal error: database: Custom Error: disk on fire"
        );
    }

    #[test]
    fn the_chain_does_not_repeat_a_cause_its_parent_shows() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: {0}")]
        struct Outer(#[source] DbErr);
        let e = Outer(DbErr::Custom("x".into()));
        assert_eq!(Chain(&e).to_string(), "outer: Custom Error: x");
    }
}

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
pub struct Fault {
    kind: Kind,
    /// What is unavailable, or what failed.
    what: Cow<'static, str>,
    /// Why, when a lower error says so.
    cause: Option<Cause>,
}

/// Which of the two a fault is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A dependency (the database, a turn at WeChat, the bus) cannot answer
    /// now: 503 with `Retry-After`.
    Unavailable,
    /// A bug or a broken invariant: 500.
    Internal,
}

impl Fault {
    /// `what` cannot answer now.
    pub fn unavailable(what: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Kind::Unavailable, what.into())
    }

    /// `what` failed for a reason that is a bug.
    pub fn internal(what: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Kind::Internal, what.into())
    }

    fn new(kind: Kind, what: Cow<'static, str>) -> Self {
        Self {
            kind,
            what,
            cause: None,
        }
    }

    /// The same fault, caused by `cause` (kept: `source()` returns it).
    pub fn because(self, cause: impl Error + Send + Sync + 'static) -> Self {
        Self {
            cause: Some(Arc::new(cause)),
            ..self
        }
    }

    /// Whether a retry may succeed (503) rather than a bug (500).
    pub fn is_unavailable(&self) -> bool {
        self.kind == Kind::Unavailable
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Unavailable => write!(f, "unavailable: {}", self.what),
            Kind::Internal => write!(f, "internal error: {}", self.what),
        }
    }
}

impl Error for Fault {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.cause.as_deref().map(|c| c as &(dyn Error + 'static))
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

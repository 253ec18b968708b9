//! Counts of what the hub asks of its database: statements run and write
//! transactions committed, for `/metrics` and for tests that count the
//! statements of an endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Shared counters; clones count into the same totals.
#[derive(Clone, Debug, Default)]
pub struct Stats(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    statements: AtomicU64,
    commits: AtomicU64,
}

impl Stats {
    pub fn statement(&self) {
        self.0.statements.fetch_add(1, Relaxed);
    }

    /// A commit holding `jobs` requests' write transactions.
    pub fn commit(&self, jobs: usize) {
        self.0.commits.fetch_add(jobs as u64, Relaxed);
    }

    /// Statements run so far (reads and writes, BEGIN and COMMIT excluded).
    pub fn statements(&self) -> u64 {
        self.0.statements.load(Relaxed)
    }

    /// Write transactions committed so far, one per request that wrote.
    pub fn commits(&self) -> u64 {
        self.0.commits.load(Relaxed)
    }
}

//! Latency summaries (HdrHistogram), error tallies and the readable table.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency a histogram holds: 60 s, in nanoseconds.
const HIGHEST_NS: u64 = 60_000_000_000;
/// How many error messages are kept as samples.
const SAMPLES: usize = 5;

/// A latency histogram in nanoseconds, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_NS, 3).expect("valid histogram bounds")
}

/// Records `d` (saturating at the histogram's top).
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    h.saturating_record(ns.clamp(1, HIGHEST_NS));
}

/// Percentiles of a histogram, in microseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default)]
pub struct Summary {
    /// Values recorded.
    pub count: u64,
    /// Arithmetic mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest value.
    pub max_us: f64,
}

fn us(ns: u64) -> f64 {
    (ns as f64 / 100.0).round() / 10.0
}

impl Summary {
    /// Summarises `h`.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            mean_us: (h.mean() / 100.0).round() / 10.0,
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }

    /// One table row: `label  count  mean p50 p90 p99 p99.9 max` in ms.
    pub fn row(&self, label: &str) -> String {
        let ms = |v: f64| format!("{:>8.3}", v / 1000.0);
        format!(
            "  {label:<26}{:>8} {} {} {} {} {} {}",
            self.count,
            ms(self.mean_us),
            ms(self.p50_us),
            ms(self.p90_us),
            ms(self.p99_us),
            ms(self.p999_us),
            ms(self.max_us)
        )
    }
}

/// Header of the latency rows, in milliseconds.
pub const ROW_HEADER: &str =
    "  latency (ms)                 count     mean      p50      p90      p99    p99.9      max";

/// Errors of one phase: a count and the first few messages.
#[derive(Default)]
pub struct Errors {
    count: AtomicU64,
    samples: Mutex<Vec<String>>,
}

impl Errors {
    /// Counts an error and keeps its message if there is room.
    pub fn add(&self, what: &str, e: &anyhow::Error) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut s) = self.samples.lock()
            && s.len() < SAMPLES
        {
            s.push(format!("{what}: {e:#}"));
        }
    }

    /// Errors counted so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The kept messages.
    pub fn samples(&self) -> Vec<String> {
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_in_microseconds() {
        let mut h = histogram();
        for i in 1..=1000u64 {
            record(&mut h, Duration::from_micros(i));
        }
        let s = Summary::of(&h);
        assert_eq!(s.count, 1000);
        assert!((s.p50_us - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.p99_us - 990.0).abs() < 1.5, "{s:?}");
        assert!((s.max_us - 1000.0).abs() < 1.5, "{s:?}");
        assert!(s.row("x").contains("0.500"));
    }

    #[test]
    fn errors_keep_a_few_samples() {
        let e = Errors::default();
        for i in 0..10 {
            e.add("phase", &anyhow::anyhow!("boom {i}"));
        }
        assert_eq!(e.count(), 10);
        assert_eq!(e.samples().len(), SAMPLES);
        assert_eq!(e.samples()[0], "phase: boom 0");
    }
}

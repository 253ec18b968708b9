//! Workers doing whole flows (a login of one kind) until a count is done,
//! and the measured report of such a phase: hub CPU per flow, cores busy,
//! latency of the flow and of each step, errors.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Ctx, Done, STEP_TIMEOUT, per};
use crate::report::{Errors, Summary, histogram, record};

/// Times the steps of one flow.
pub struct Laps {
    t: Instant,
    laps: Vec<Duration>,
}

impl Laps {
    /// Starts timing now.
    pub fn start() -> Self {
        Self {
            t: Instant::now(),
            laps: Vec::with_capacity(12),
        }
    }

    /// Ends a step: its time since the previous one.
    pub fn lap(&mut self) {
        let now = Instant::now();
        self.laps.push(now - self.t);
        self.t = now;
    }

    /// The steps' times, in order.
    pub fn into_vec(self) -> Vec<Duration> {
        self.laps
    }
}

/// Runs `count` flows, `flow(i)` for i in 0..count, on `workers` workers;
/// each flow has `steps` timed steps and at most `STEP_TIMEOUT`; failures
/// are counted as `what`. Bounded by a deadline growing with `count`.
pub async fn drive<F, Fut>(
    count: usize,
    workers: usize,
    steps: usize,
    what: &'static str,
    flow: F,
) -> Done
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<Laps>> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(Errors::default());
    let deadline = Instant::now() + Duration::from_secs(120 + count as u64 / 20);
    let mut set = JoinSet::new();
    for _ in 0..workers.max(1) {
        let (next, errors, flow) = (next.clone(), errors.clone(), flow.clone());
        set.spawn(async move {
            let mut h = histogram();
            let mut per_step: Vec<_> = (0..steps).map(|_| histogram()).collect();
            loop {
                let j = next.fetch_add(1, Ordering::Relaxed);
                if j >= count || Instant::now() > deadline {
                    break;
                }
                let t = Instant::now();
                match tokio::time::timeout(STEP_TIMEOUT, flow(j)).await {
                    Ok(Ok(laps)) => {
                        record(&mut h, t.elapsed());
                        for (s, d) in per_step.iter_mut().zip(laps.into_vec()) {
                            record(s, d);
                        }
                    }
                    Ok(Err(e)) => errors.add(what, &e),
                    Err(_) => errors.add(what, &anyhow::anyhow!("flow timed out")),
                }
            }
            (h, per_step)
        });
    }
    let mut latency = histogram();
    let mut all_steps: Vec<_> = (0..steps).map(|_| histogram()).collect();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((h, s)) => {
                let _ = latency.add(&h);
                for (all, one) in all_steps.iter_mut().zip(&s) {
                    let _ = all.add(one);
                }
            }
            Err(e) => errors.add("worker", &e.into()),
        }
    }
    let errors = Arc::try_unwrap(errors).unwrap_or_default();
    Done {
        latency,
        steps: all_steps,
        errors,
    }
}

/// Runs `count` flows like [`drive`] while measuring the hub's, the tool's
/// and the fake WeChat's CPU; the phase's report (per-flow figures under
/// the `*_per_login` names) and whether any flow failed.
pub async fn measured<F, Fut>(
    ctx: &Ctx,
    count: usize,
    workers: usize,
    steps: &[&str],
    what: &'static str,
    flow: F,
) -> anyhow::Result<(Value, bool)>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<Laps>> + Send + 'static,
{
    let (before, t0) = (ctx.cpu()?, Instant::now());
    let done = drive(count, workers, steps.len(), what, flow).await;
    let wall = t0.elapsed();
    let used = ctx.cpu()?.since(&before);
    let ok = done.latency.len() as usize;
    let report = json!({
        "workers": workers,
        "flows": count,
        "ok": ok,
        "secs": (wall.as_secs_f64() * 1000.0).round() / 1000.0,
        "per_sec": (ok as f64 / wall.as_secs_f64()).round(),
        "hub_cpu_us_per_login": per(used.hub, ok),
        "hub_cores_busy": (used.hub.as_secs_f64() / wall.as_secs_f64() * 100.0).round() / 100.0,
        "tool_cpu_us_per_login": per(used.tool, ok),
        "wechat_cpu_us_per_login": used.wechat.map(|c| per(c, ok)),
        "flow": Summary::of(&done.latency),
        "steps": step_summaries(steps, &done.steps),
        "errors": done.errors.count(),
        "error_samples": done.errors.samples(),
    });
    let failed = done.errors.count() > 0 || ok < count;
    Ok((report, failed))
}

/// Each step's latency summary, named.
fn step_summaries(names: &[&str], steps: &[Histogram<u64>]) -> Vec<Value> {
    names
        .iter()
        .zip(steps)
        .map(|(name, h)| json!({"step": name, "latency": Summary::of(h)}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drives_every_flow_once_and_counts_failures() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        let done = drive(20, 3, 2, "flow", move |i| {
            let s = s.clone();
            async move {
                let mut laps = Laps::start();
                laps.lap();
                laps.lap();
                s.lock().expect("lock").push(i);
                anyhow::ensure!(i % 5 != 0, "flow {i} fails");
                Ok(laps)
            }
        })
        .await;
        let mut seen = seen.lock().expect("lock").clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..20).collect::<Vec<_>>());
        assert_eq!(done.errors.count(), 4);
        assert_eq!(done.latency.len(), 16);
        assert_eq!(done.steps.len(), 2);
        assert_eq!(done.steps[1].len(), 16);
    }
}

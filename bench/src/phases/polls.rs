//! The polling baseline: what a page that asks every second, instead of
//! listening, would cost the hub per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Ctx, Done, create_scenes, per};
use crate::api::{Hub, Scene};
use crate::cli::Args;
use crate::report::{Errors, Summary, histogram, record};

/// `--polls` short polls over `--poll-scenes` scenes; the report's `poll`
/// part and whether any failed.
pub async fn run(ctx: &Ctx, args: &Args) -> anyhow::Result<(Value, bool)> {
    eprintln!(
        "polls: {} requests over {} scenes",
        args.polls, args.poll_scenes
    );
    let errors = Errors::default();
    let scenes = create_scenes(&ctx.hub, args.poll_scenes.max(1), ctx.conc, &errors).await;
    let (c0, t0) = (ctx.hub_proc.cpu()?, Instant::now());
    let done = polls(&ctx.hub, Arc::new(scenes), args.polls, args.workers).await;
    let wall = t0.elapsed();
    let cpu = ctx.hub_proc.cpu()?.saturating_sub(c0);
    let ok = done.latency.len() as usize;
    let per_req = per(cpu, ok);
    // 10,000 browsers asking once a second each.
    let browsers = 10_000.0;
    let report = json!({
        "requests": ok,
        "secs": (wall.as_secs_f64() * 1000.0).round() / 1000.0,
        "per_sec": (ok as f64 / wall.as_secs_f64()).round(),
        "hub_cpu_us_per_request": per_req,
        "latency": Summary::of(&done.latency),
        "errors": errors.count() + done.errors.count(),
        "error_samples": done.errors.samples(),
        "baseline_10k_browsers_1s": {
            "requests_per_sec": browsers,
            "hub_cores_needed": (browsers * per_req / 1e6 * 100.0).round() / 100.0,
            "mean_delay_ms": (500.0 + Summary::of(&done.latency).mean_us / 1000.0).round(),
        },
    });
    Ok((report, errors.count() + done.errors.count() > 0))
}

/// `count` short polls over `scenes` with `workers` workers.
async fn polls(hub: &Hub, scenes: Arc<Vec<Scene>>, count: usize, workers: usize) -> Done {
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(Errors::default());
    let deadline = Instant::now() + Duration::from_secs(60 + count as u64 / 200);
    let mut set = JoinSet::new();
    for _ in 0..workers {
        let (hub, scenes, next, errors) =
            (hub.clone(), scenes.clone(), next.clone(), errors.clone());
        set.spawn(async move {
            let mut h = histogram();
            loop {
                let j = next.fetch_add(1, Ordering::Relaxed);
                if j >= count || scenes.is_empty() || Instant::now() > deadline {
                    break;
                }
                let t = Instant::now();
                match hub.poll(&scenes[j % scenes.len()]).await {
                    Ok(s) if s == "waiting" => record(&mut h, t.elapsed()),
                    Ok(s) => errors.add("poll", &anyhow::anyhow!("state {s}")),
                    Err(e) => errors.add("poll", &e),
                }
            }
            h
        });
    }
    let mut latency = histogram();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(h) => {
                let _ = latency.add(&h);
            }
            Err(e) => errors.add("poll worker", &e.into()),
        }
    }
    let errors = Arc::try_unwrap(errors).unwrap_or_default();
    Done {
        latency,
        steps: Vec::new(),
        errors,
    }
}

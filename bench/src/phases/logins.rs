//! Complete logins: the warm-up, and the phase that measures the hub's CPU
//! per login with `--workers` workers doing create -> socket -> confirm ->
//! pushed ticket -> redeem until `--logins` flows are done.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Ctx, Done, STEP_TIMEOUT, per};
use crate::api::Hub;
use crate::browser;
use crate::cli::Args;
use crate::report::{Errors, Summary, histogram, record};

/// Warm-up logins (not measured): pools, caches, allocator arenas.
pub async fn warm_up(ctx: &Ctx, args: &Args) -> anyhow::Result<()> {
    eprintln!("warm-up: {} logins", args.warmup);
    let codes = ctx.codes.get("bench-w", args.warmup).await?;
    let warm = logins(&ctx.hub, codes, args.workers.min(args.warmup.max(1))).await;
    ensure!(
        warm.errors.count() == 0,
        "warm-up failed: {:?}",
        warm.errors.samples()
    );
    Ok(())
}

/// The measured logins; the report's `logins` part and whether any failed.
pub async fn run(ctx: &Ctx, args: &Args) -> anyhow::Result<(Value, bool)> {
    eprintln!("logins: fetching {} codes", args.logins);
    let login_codes = ctx.codes.get("bench-l", args.logins).await?;
    eprintln!(
        "logins: {} flows with {} workers",
        args.logins, args.workers
    );
    let (before, t0) = (ctx.cpu()?, Instant::now());
    let done = logins(&ctx.hub, login_codes, args.workers).await;
    let wall = t0.elapsed();
    let used = ctx.cpu()?.since(&before);
    let ok = done.latency.len() as usize;
    let report = json!({
        "workers": args.workers,
        "flows": args.logins,
        "ok": ok,
        "secs": (wall.as_secs_f64() * 1000.0).round() / 1000.0,
        "per_sec": (ok as f64 / wall.as_secs_f64()).round(),
        "hub_cpu_us_per_login": per(used.hub, ok),
        "hub_cores_busy": (used.hub.as_secs_f64() / wall.as_secs_f64() * 100.0).round() / 100.0,
        "tool_cpu_us_per_login": per(used.tool, ok),
        "wechat_cpu_us_per_login": used.wechat.map(|c| per(c, ok)),
        "flow": Summary::of(&done.latency),
        "steps": step_summaries(&done.steps),
        "errors": done.errors.count(),
        "error_samples": done.errors.samples(),
    });
    let failed = done.errors.count() > 0 || ok < args.logins;
    Ok((report, failed))
}

/// Each login step's latency summary, named.
fn step_summaries(steps: &[Histogram<u64>]) -> Vec<Value> {
    STEPS
        .iter()
        .zip(steps)
        .map(|(name, h)| json!({"step": name, "latency": Summary::of(h)}))
        .collect()
}

/// Runs complete logins with `workers` workers, one per code.
pub async fn logins(hub: &Hub, codes: Vec<String>, workers: usize) -> Done {
    let count = codes.len();
    let codes = Arc::new(codes);
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(Errors::default());
    let deadline = Instant::now() + Duration::from_secs(120 + count as u64 / 20);
    let mut set = JoinSet::new();
    for _ in 0..workers {
        let (hub, codes, next, errors) = (hub.clone(), codes.clone(), next.clone(), errors.clone());
        set.spawn(async move {
            let mut h = histogram();
            let mut steps: Vec<_> = STEPS.iter().map(|_| histogram()).collect();
            loop {
                let j = next.fetch_add(1, Ordering::Relaxed);
                if j >= codes.len() || Instant::now() > deadline {
                    break;
                }
                let t = Instant::now();
                match tokio::time::timeout(STEP_TIMEOUT, login(&hub, &codes[j])).await {
                    Ok(Ok(laps)) => {
                        record(&mut h, t.elapsed());
                        for (s, d) in steps.iter_mut().zip(laps) {
                            record(s, d);
                        }
                    }
                    Ok(Err(e)) => errors.add("login", &e),
                    Err(_) => errors.add("login", &anyhow::anyhow!("flow timed out")),
                }
            }
            (h, steps)
        });
    }
    let mut latency = histogram();
    let mut steps: Vec<_> = STEPS.iter().map(|_| histogram()).collect();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((h, s)) => {
                let _ = latency.add(&h);
                for (all, one) in steps.iter_mut().zip(&s) {
                    let _ = all.add(one);
                }
            }
            Err(e) => errors.add("login worker", &e.into()),
        }
    }
    let errors = Arc::try_unwrap(errors).unwrap_or_default();
    Done {
        latency,
        steps,
        errors,
    }
}

/// The steps of a complete login, in order, as named in the report.
const STEPS: [&str; 5] = [
    "create scene",
    "socket open+auth+waiting",
    "confirm (HTTP answer)",
    "then confirmed pushed",
    "redeem",
];

/// One complete login: scene, socket, confirm, pushed ticket, redeem;
/// returns how long each step took.
async fn login(hub: &Hub, code: &str) -> anyhow::Result<[Duration; 5]> {
    let mut t = Instant::now();
    let mut lap = || {
        let now = Instant::now();
        let d = now - t;
        t = now;
        d
    };
    let scene = hub.create_scene().await?;
    let created = lap();
    let mut ws = browser::open(&scene).await?;
    let opened = lap();
    hub.confirm(&scene.scene_id, code, "bench").await?;
    let confirmed = lap();
    let event = browser::next_event(&mut ws, Instant::now() + STEP_TIMEOUT).await?;
    let pushed = lap();
    if event["state"] != "confirmed" {
        bail!("expected confirmed, heard {event}");
    }
    let ticket = event["ticket"]
        .as_str()
        .context("confirmed without a ticket")?;
    hub.redeem(ticket).await?;
    let redeemed = lap();
    tokio::spawn(browser::drain(ws, Duration::from_secs(2)));
    Ok([created, opened, confirmed, pushed, redeemed])
}

//! Confirms at `--rate` per second for `--secs` seconds, each on one waiting
//! browser with a code fetched beforehand: the time from just before the
//! request to that browser's `confirmed` event, and the hub's CPU per
//! confirm.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout_at};

use super::waiting::{Heard, Waiting};
use super::{Ctx, STEP_TIMEOUT, per};
use crate::cli::Args;
use crate::report::{Errors, Summary, histogram, record};

/// Confirms on the first `codes.len()` open browsers of `waiting`, then
/// closes them all; the report's `confirm` part and whether any failed.
pub async fn run(
    ctx: &Ctx,
    args: &Args,
    mut waiting: Waiting,
    codes: Vec<String>,
) -> anyhow::Result<(Value, bool)> {
    let m = codes.len().min(waiting.open.len());
    eprintln!("confirms: {m} at {}/s", args.rate);
    let confirm_errors = Arc::new(Errors::default());
    let period = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let before = ctx.cpu()?;
    let first = Instant::now() + Duration::from_millis(50);
    let mut sends = JoinSet::new();
    let mut max_lag = Duration::ZERO;
    for (k, (&i, code)) in waiting.open.iter().zip(codes).take(m).enumerate() {
        let at = first + period.mul_f64(k as f64);
        sleep_until(at).await;
        max_lag = max_lag.max(Instant::now().saturating_duration_since(at));
        let (hub, board, scene_id) = (
            ctx.hub.clone(),
            waiting.board.clone(),
            waiting.scenes[i].scene_id.clone(),
        );
        sends.spawn(async move {
            board.sent_at[i].store(board.now_ns(), Ordering::Release);
            let t = Instant::now();
            let res = hub.confirm(&scene_id, &code, "bench").await;
            (res, t.elapsed())
        });
    }
    let sent_all = Instant::now();
    let offered = sent_all.duration_since(first);
    let mut http = histogram();
    let send_deadline = sent_all + STEP_TIMEOUT;
    while let Ok(Some(joined)) = timeout_at(send_deadline, sends.join_next()).await {
        match joined {
            Ok((Ok(()), d)) => record(&mut http, d),
            Ok((Err(e), _)) => confirm_errors.add("confirm", &e),
            Err(e) => confirm_errors.add("confirm task", &e.into()),
        }
    }
    sends.abort_all();
    let mut push = histogram();
    let push_deadline = Instant::now() + STEP_TIMEOUT;
    let mut pushed = 0usize;
    while pushed < m {
        match timeout_at(push_deadline, waiting.heard.recv()).await {
            Ok(Some(Heard::Confirmed(d))) => {
                pushed += 1;
                record(&mut push, d);
            }
            Ok(Some(Heard::Failed(e))) => {
                pushed += 1;
                confirm_errors.add("push", &e);
            }
            _ => break,
        }
    }
    if pushed < m {
        confirm_errors.add(
            "push",
            &anyhow::anyhow!("{} browsers never heard `confirmed`", m - pushed),
        );
    }
    let used = ctx.cpu()?.since(&before);
    let wall = first.elapsed();
    let push_s = Summary::of(&push);
    let mut report = json!({
        "rate": args.rate,
        "secs": args.secs,
        "sent": m,
        "pushed": push_s.count,
        "offered_secs": (offered.as_secs_f64() * 1000.0).round() / 1000.0,
        "max_send_lag_us": max_lag.as_micros() as u64,
        "push": push_s,
        "http": Summary::of(&http),
        "hub_cpu_us_per_confirm": per(used.hub, m),
        // From the first send to the last push heard (or given up on).
        "hub_cores_busy": (used.hub.as_secs_f64() / wall.as_secs_f64().max(1e-3) * 100.0).round() / 100.0,
        "tool_cpu_us_per_confirm": per(used.tool, m),
        "wechat_cpu_us_per_confirm": used.wechat.map(|c| per(c, m)),
    });
    for e in waiting.close().await {
        confirm_errors.add("push", &e);
    }
    report["errors"] = json!(confirm_errors.count());
    report["error_samples"] = json!(confirm_errors.samples());
    Ok((report, confirm_errors.count() > 0))
}

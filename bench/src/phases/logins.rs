//! Complete logins: the warm-up, and the phase that measures the hub's CPU
//! per login with `--workers` workers doing create -> socket -> confirm ->
//! pushed ticket -> redeem until `--logins` flows are done.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::Value;

use super::workers::{Laps, drive, measured};
use super::{Ctx, Done, STEP_TIMEOUT};
use crate::api::Hub;
use crate::browser;
use crate::cli::Args;

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
    let codes = Arc::new(ctx.codes.get("bench-l", args.logins).await?);
    eprintln!(
        "logins: {} flows with {} workers",
        args.logins, args.workers
    );
    let hub = ctx.hub.clone();
    measured(ctx, args.logins, args.workers, &STEPS, "login", move |i| {
        let (hub, codes) = (hub.clone(), codes.clone());
        async move { login(&hub, &codes[i]).await }
    })
    .await
}

/// Runs complete logins with `workers` workers, one per code.
pub async fn logins(hub: &Hub, codes: Vec<String>, workers: usize) -> Done {
    let (hub, codes) = (hub.clone(), Arc::new(codes));
    drive(codes.len(), workers, STEPS.len(), "login", move |i| {
        let (hub, codes) = (hub.clone(), codes.clone());
        async move { login(&hub, &codes[i]).await }
    })
    .await
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
/// times each step.
async fn login(hub: &Hub, code: &str) -> anyhow::Result<Laps> {
    let mut laps = Laps::start();
    let scene = hub.create_scene().await?;
    laps.lap();
    let mut ws = browser::open(&scene).await?;
    laps.lap();
    hub.confirm(&scene.scene_id, code, "bench").await?;
    laps.lap();
    let event = browser::expect(&mut ws, "confirmed", STEP_TIMEOUT).await?;
    laps.lap();
    let ticket = event["ticket"]
        .as_str()
        .context("confirmed without a ticket")?;
    hub.redeem(ticket).await?;
    laps.lap();
    tokio::spawn(browser::drain(ws, Duration::from_secs(2)));
    Ok(laps)
}

//! Complete logins in the full flow, as the widget and the mini-program do
//! them: create scene -> the code image (`qrcode_url`) -> socket, auth,
//! `waiting` -> `POST /api/v1/mp/scan` with a code -> `scanned` pushed ->
//! `POST /api/v1/mp/confirm` with the `mp_token` -> `confirmed` pushed with
//! the ticket -> redeem. The page's requests carry the hub's origin, which
//! the demo client always allows. Hub CPU per full login.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::Value;

use super::workers::{Laps, drive, measured};
use super::{Ctx, STEP_TIMEOUT};
use crate::api::Hub;
use crate::browser;
use crate::cli::Args;

/// Flows run before measuring (the code-image path, its WeChat token).
const WARM_UP: usize = 50;

/// The steps of a full login, in order, as named in the report.
const STEPS: [&str; 8] = [
    "create scene",
    "code image",
    "socket open+auth+waiting",
    "scan (HTTP answer)",
    "then scanned pushed",
    "confirm (HTTP answer)",
    "then confirmed pushed",
    "redeem",
];

/// The measured full logins (`--full-logins`); the report's `full` part and
/// whether any failed.
pub async fn run(ctx: &Ctx, args: &Args) -> anyhow::Result<(Value, bool)> {
    let count = args.full_logins;
    let warm = WARM_UP.min(count);
    let codes = ctx.codes.get("bench-fw", warm).await?;
    let done = drive(warm, args.workers.min(warm), STEPS.len(), "full login", {
        let (hub, codes) = (ctx.hub.clone(), Arc::new(codes));
        move |i| {
            let (hub, codes) = (hub.clone(), codes.clone());
            async move { full_login(&hub, &codes[i]).await }
        }
    })
    .await;
    ensure!(
        done.errors.count() == 0,
        "full logins: warm-up failed: {:?}",
        done.errors.samples()
    );
    eprintln!("full logins: fetching {count} codes");
    let codes = Arc::new(ctx.codes.get("bench-f", count).await?);
    eprintln!("full logins: {count} flows with {} workers", args.workers);
    let hub = ctx.hub.clone();
    measured(ctx, count, args.workers, &STEPS, "full login", move |i| {
        let (hub, codes) = (hub.clone(), codes.clone());
        async move { full_login(&hub, &codes[i]).await }
    })
    .await
}

/// One full login with the `wx.login` code `code`; times each step.
async fn full_login(hub: &Hub, code: &str) -> anyhow::Result<Laps> {
    let origin = hub.origin().to_owned();
    let mut laps = Laps::start();
    let scene = hub
        .create_scene_for(hub.client_id(), Some(&origin), None)
        .await?;
    laps.lap();
    hub.code_image(&scene).await?;
    laps.lap();
    let mut ws = browser::open_from(&scene, Some(&origin)).await?;
    laps.lap();
    let mp_token = hub.scan(&scene.scene_id, code).await?;
    laps.lap();
    browser::expect(&mut ws, "scanned", STEP_TIMEOUT).await?;
    laps.lap();
    hub.confirm_scanned(&scene.scene_id, &mp_token, "bench")
        .await?;
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

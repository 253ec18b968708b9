//! `scanlogin-bench`: drives a running hub through its public API only, as
//! browsers, phones and site backends do, and reports memory per waiting
//! browser, confirm-to-push latency, hub CPU per complete login and the cost
//! of polling instead of pushing.
//!
//! WeChat's side (`--wechat`): `fake` (default) for a hub in live mode
//! talking to `scanlogin-bench fake-wechat` on loopback, a separate process
//! as WeChat is in production; the tool makes the one-time codes itself.
//! `simulator` for a hub with its built-in simulator: codes come from the
//! hub's `/sim/api/login` and the hub exchanges them with itself, so its CPU
//! figures include WeChat's side.
//!
//! Phases, in order (each bounded in count and time):
//! 1. warm-up logins (not measured);
//! 2. `--waiting` scenes, then one socket each (auth, `waiting`, idle):
//!    hub RSS before and after;
//! 3. idle: hub CPU while those sockets only wait (pings, catch-up reads);
//! 4. confirms at `--rate` per second for `--secs` seconds, each on one
//!    waiting browser with a code fetched beforehand: time from just before
//!    the request to that browser's `confirmed` event;
//! 5. `--workers` workers doing create -> socket -> confirm -> pushed ticket
//!    -> redeem until `--logins` flows are done: hub CPU per login;
//! 6. `--full-logins` logins in the full flow (create -> code image ->
//!    socket -> scan -> `scanned` -> confirm -> `confirmed` -> redeem): hub
//!    CPU per full login;
//! 7. `--oidc-logins` OpenID Connect logins (authorize page -> the full
//!    flow -> complete -> token -> userinfo): hub CPU per OIDC login;
//! 8. optional short polls (`--polls`): hub CPU per `GET events` request.
//!
//! Output: a readable table on stderr, one JSON line on stdout.
//! `scanlogin-bench compare FILE...` sets the JSON lines of a baseline's
//! and a new build's runs side by side (median, min-max, ratio).

mod api;
mod browser;
mod cli;
mod compare;
mod fake_wechat;
mod phases;
mod procfs;
mod report;
mod rp;
mod table;

use std::time::Duration;

use anyhow::{Context, ensure};
use clap::Parser;
use serde_json::json;
use tokio::time::{Instant, sleep};

use api::Hub;
use cli::{Args, Cli, Command};
use phases::{Codes, Ctx, confirms, full, logins, oidc, polls, waiting};
use procfs::Proc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::FakeWechat(fake)) => return fake_wechat::run(&fake),
        Some(Command::Compare(c)) => return compare::run(&c),
        None => {}
    }
    let args = cli.run;
    ensure!(
        args.waiting <= 19_000,
        "--waiting: at most 19,000 sockets per process (fd limit 20,000)"
    );
    ensure!(
        args.rate > 0 && args.workers > 0 && args.setup_concurrency > 0,
        "rates and worker counts must be positive"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let limit = Duration::from_secs(args.max_secs);
    let result = rt.block_on(async {
        tokio::time::timeout(limit, run(args))
            .await
            .context("the run went past --max-secs")?
    });
    // Leftover drain tasks end with the runtime.
    rt.shutdown_timeout(Duration::from_secs(2));
    let failed = result?;
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

/// Runs every phase in order; returns whether any error happened.
async fn run(args: Args) -> anyhow::Result<bool> {
    let hub = Hub::new(args.hub.clone(), &args.client_id, &args.client_secret, 256)?;
    let ctx = Ctx {
        hub_proc: Proc::new(args.pid.context("--pid is required")?)?,
        me: Proc::current()?,
        wechat_proc: args
            .wechat_pid
            .map(Proc::new)
            .transpose()
            .context("--wechat-pid")?,
        codes: Codes {
            hub: hub.clone(),
            wechat: args.wechat,
            conc: args.setup_concurrency,
        },
        conc: args.setup_concurrency,
        hub,
    };
    ctx.hub
        .healthz()
        .await
        .context("the hub does not answer /healthz")?;
    let started = Instant::now();
    let mut out = json!({
        "tool": "scanlogin-bench",
        "label": args.label,
        "side": args.side,
        "wechat": args.wechat.name(),
        "params": {"waiting": args.waiting, "rate": args.rate, "secs": args.secs,
            "workers": args.workers, "logins": args.logins, "polls": args.polls,
            "full_logins": args.full_logins, "oidc_logins": args.oidc_logins,
            "poll_scenes": args.poll_scenes, "idle_secs": args.idle_secs,
            "warmup": args.warmup, "setup_concurrency": args.setup_concurrency},
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    });

    logins::warm_up(&ctx, &args).await?;
    let confirm_codes = ctx
        .codes
        .get(
            "bench-c",
            args.waiting.min(args.rate as usize * args.secs as usize),
        )
        .await?;
    sleep(Duration::from_secs(1)).await;
    let (browsers, memory, mut failed) = waiting::open(&ctx, &args).await?;
    out["memory"] = memory;
    if args.idle_secs > 0 {
        out["idle"] = waiting::idle(&ctx, args.idle_secs, browsers.open.len()).await?;
    }
    let (confirm, confirm_failed) = confirms::run(&ctx, &args, browsers, confirm_codes).await?;
    out["confirm"] = confirm;
    let (logins, logins_failed) = logins::run(&ctx, &args).await?;
    out["logins"] = logins;
    failed |= confirm_failed || logins_failed;
    if args.full_logins > 0 {
        let (report, full_failed) = full::run(&ctx, &args).await?;
        out["full"] = report;
        failed |= full_failed;
    }
    if args.oidc_logins > 0 {
        let (report, oidc_failed) = oidc::run(&ctx, &args).await?;
        out["oidc"] = report;
        failed |= oidc_failed;
    }
    if args.polls > 0 {
        let (poll, poll_failed) = polls::run(&ctx, &args).await?;
        out["poll"] = poll;
        failed |= poll_failed;
    }

    out["run_secs"] = json!(started.elapsed().as_secs());
    out["targets"] = table::targets(&out);
    eprint!("{}", table::table(&out));
    println!("{out}");
    Ok(failed)
}

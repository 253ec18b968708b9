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
//! 6. optional short polls (`--polls`): hub CPU per `GET events` request.
//!
//! Output: a readable table on stderr, one JSON line on stdout.

mod api;
mod browser;
mod fake_wechat;
mod procfs;
mod report;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until, timeout_at};
use tokio_tungstenite::tungstenite::Message;
use url::Url;

use api::{Hub, Scene};
use procfs::Proc;
use report::{Errors, ROW_HEADER, Summary, histogram, record};

/// Targets of issue 4 (2 cores, N = 10,000, R = 1,000/s, D = 10 s).
const TARGET_BYTES_PER_BROWSER: f64 = 4096.0;
const TARGET_PUSH_P99_US: f64 = 1500.0;
const TARGET_CPU_PER_LOGIN_US: f64 = 300.0;

/// Longest a single login flow, confirm or setup step may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Parser, Debug)]
#[command(
    name = "scanlogin-bench",
    about = "Load tool for a running scanlogin hub (loopback only)",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: Args,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Serve a fake WeChat (stable_token, jscode2session) on loopback for a
    /// hub in live mode; runs until SIGTERM.
    FakeWechat(fake_wechat::FakeArgs),
}

/// Where the hub's WeChat is, and so where one-time codes come from.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Wechat {
    /// A hub in live mode against `scanlogin-bench fake-wechat`: the tool
    /// makes the codes itself.
    Fake,
    /// A hub with its built-in simulator: codes from `/sim/api/login`.
    Simulator,
}

impl Wechat {
    fn name(self) -> &'static str {
        match self {
            Self::Fake => "fake",
            Self::Simulator => "simulator",
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
struct Args {
    /// Base URL of the hub (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:18181/")]
    hub: Url,
    /// The hub's process id, to read /proc/PID/status and /proc/PID/stat.
    #[arg(long, required = true)]
    pid: Option<u32>,
    /// The hub's WeChat: a fake on loopback (the tool makes codes) or the
    /// hub's built-in simulator (codes from /sim/api/login).
    #[arg(long, value_enum, default_value_t = Wechat::Fake)]
    wechat: Wechat,
    /// The fake WeChat's process id, to report its CPU (not the hub's) per
    /// confirm and per login.
    #[arg(long)]
    wechat_pid: Option<u32>,
    /// N: waiting browsers held open at once.
    #[arg(long, default_value_t = 10_000)]
    waiting: usize,
    /// R: confirms per second.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// D: seconds of confirms (R * D confirms, at most N).
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// K: concurrent workers doing complete logins.
    #[arg(long, default_value_t = 32)]
    workers: usize,
    /// F: complete logins to do.
    #[arg(long, default_value_t = 20_000)]
    logins: usize,
    /// Short polls (`GET events`) to time for the polling baseline; 0 skips.
    #[arg(long, default_value_t = 0)]
    polls: usize,
    /// Scenes the polls spread over.
    #[arg(long, default_value_t = 100)]
    poll_scenes: usize,
    /// Seconds to watch the hub's CPU while the N browsers only wait (the
    /// hub pings every 20 s); 0 skips.
    #[arg(long, default_value_t = 25)]
    idle_secs: u64,
    /// Warm-up logins before anything is measured.
    #[arg(long, default_value_t = 500)]
    warmup: usize,
    /// Concurrent requests while setting up (codes, scenes, sockets).
    #[arg(long, default_value_t = 64)]
    setup_concurrency: usize,
    /// The site client whose scenes are made and whose tickets are redeemed.
    #[arg(long, default_value = "demo")]
    client_id: String,
    /// That client's secret (HTTP Basic on redeem).
    #[arg(long, default_value = "demo-client-secret")]
    client_secret: String,
    /// A free-form label copied into the JSON line.
    #[arg(long, default_value = "")]
    label: String,
    /// Upper bound on the whole run, in seconds.
    #[arg(long, default_value_t = 1200)]
    max_secs: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::FakeWechat(fake)) = cli.command {
        return fake_wechat::run(&fake);
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

/// Shared by the waiting browsers and the confirm sender.
struct Board {
    /// When each browser's confirm was sent: ns since `base`, 0 = not yet.
    sent_at: Vec<AtomicU64>,
    base: std::time::Instant,
}

impl Board {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// What a waiting browser reports when its socket says something.
enum Heard {
    /// `confirmed` arrived this long after the confirm was sent.
    Confirmed(Duration),
    /// Anything that should not happen.
    Failed(anyhow::Error),
}

/// Runs every phase; returns whether any error happened.
async fn run(args: Args) -> anyhow::Result<bool> {
    let hub = Hub::new(args.hub.clone(), &args.client_id, &args.client_secret, 256)?;
    let hub_proc = Proc::new(args.pid.context("--pid is required")?)?;
    let wechat_proc = args
        .wechat_pid
        .map(Proc::new)
        .transpose()
        .context("--wechat-pid")?;
    let wechat_cpu =
        || -> anyhow::Result<Option<Duration>> { wechat_proc.as_ref().map(Proc::cpu).transpose() };
    let codes = Codes {
        hub: hub.clone(),
        wechat: args.wechat,
        conc: args.setup_concurrency,
    };
    let me = Proc::current()?;
    hub.healthz()
        .await
        .context("the hub does not answer /healthz")?;
    let started = Instant::now();
    let conc = args.setup_concurrency;
    let mut out = json!({
        "tool": "scanlogin-bench",
        "label": args.label,
        "wechat": args.wechat.name(),
        "params": {"waiting": args.waiting, "rate": args.rate, "secs": args.secs,
            "workers": args.workers, "logins": args.logins, "polls": args.polls,
            "poll_scenes": args.poll_scenes, "idle_secs": args.idle_secs,
            "warmup": args.warmup, "setup_concurrency": conc},
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    });
    let mut failed = false;

    // 1. Warm-up: pools, caches, allocator arenas.
    eprintln!("warm-up: {} logins", args.warmup);
    let warm_codes = codes.get("bench-w", args.warmup).await?;
    let warm = logins(&hub, warm_codes, args.workers.min(args.warmup.max(1))).await;
    ensure!(
        warm.errors.count() == 0,
        "warm-up failed: {:?}",
        warm.errors.samples()
    );

    // 2. Waiting browsers: scenes first, then sockets, memory around each.
    let n = args.waiting;
    let m = n.min(args.rate as usize * args.secs as usize);
    let confirm_codes = codes.get("bench-c", m).await?;
    sleep(Duration::from_secs(1)).await;
    let rss0 = hub_proc.rss_kib()?;
    eprintln!("waiting browsers: creating {n} scenes");
    let setup_errors = Errors::default();
    let scenes = create_scenes(&hub, n, conc, &setup_errors).await;
    sleep(Duration::from_secs(1)).await;
    let rss_scenes = hub_proc.rss_kib()?;
    eprintln!("waiting browsers: opening {} sockets", scenes.len());
    let board = Arc::new(Board {
        sent_at: (0..scenes.len()).map(|_| AtomicU64::new(0)).collect(),
        base: std::time::Instant::now(),
    });
    let (heard_tx, mut heard_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let open_gate = Arc::new(tokio::sync::Semaphore::new(conc));
    let (opened_tx, mut opened_rx) = mpsc::unbounded_channel::<(usize, anyhow::Result<()>)>();
    let mut browsers = JoinSet::new();
    let life = Instant::now() + Duration::from_secs(args.max_secs);
    for (i, scene) in scenes.iter().cloned().enumerate() {
        browsers.spawn(waiting_browser(
            i,
            scene,
            open_gate.clone(),
            opened_tx.clone(),
            heard_tx.clone(),
            board.clone(),
            stop_rx.clone(),
            life,
        ));
    }
    drop(opened_tx);
    let mut open_ok = Vec::with_capacity(scenes.len());
    let open_deadline = Instant::now() + Duration::from_secs(120 + scenes.len() as u64 / 50);
    while let Ok(Some((i, res))) = timeout_at(open_deadline, opened_rx.recv()).await {
        match res {
            Ok(()) => open_ok.push(i),
            Err(e) => setup_errors.add("open socket", &e),
        }
    }
    sleep(Duration::from_secs(2)).await;
    let rss_open = hub_proc.rss_kib()?;
    let open_n = open_ok.len().max(1) as f64;
    let mut mem = json!({
        "rss_before_kib": rss0,
        "rss_after_scenes_kib": rss_scenes,
        "rss_waiting_kib": rss_open,
        "browsers": open_ok.len(),
        "bytes_per_waiting_browser": ((rss_open as f64 - rss0 as f64) * 1024.0 / open_n).round(),
        "bytes_per_scene_row": ((rss_scenes as f64 - rss0 as f64) * 1024.0 / scenes.len().max(1) as f64).round(),
        "bytes_per_socket": ((rss_open as f64 - rss_scenes as f64) * 1024.0 / open_n).round(),
        "errors": setup_errors.count(),
        "error_samples": setup_errors.samples(),
    });
    if open_ok.is_empty() {
        for k in [
            "bytes_per_waiting_browser",
            "bytes_per_scene_row",
            "bytes_per_socket",
        ] {
            mem[k] = Value::Null;
        }
    }
    failed |= setup_errors.count() > 0 || open_ok.len() < n;
    out["memory"] = mem;

    // 3. Idle: what the waiting sockets cost while nothing happens.
    if args.idle_secs > 0 {
        eprintln!(
            "idle: {} s with {} waiting sockets",
            args.idle_secs,
            open_ok.len()
        );
        let c0 = hub_proc.cpu()?;
        sleep(Duration::from_secs(args.idle_secs)).await;
        let cpu = hub_proc.cpu()?.saturating_sub(c0);
        out["idle"] = json!({
            "secs": args.idle_secs,
            "hub_cpu_ms": cpu.as_millis() as u64,
            "hub_cpu_pct_of_one_core": (cpu.as_secs_f64() * 1000.0 / args.idle_secs as f64).round() / 10.0,
        });
    }

    // 4. Confirms at a fixed rate on waiting browsers.
    let m = m.min(open_ok.len());
    eprintln!("confirms: {m} at {}/s", args.rate);
    let confirm_errors = Arc::new(Errors::default());
    let period = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let (c0, me0, w0) = (hub_proc.cpu()?, me.cpu()?, wechat_cpu()?);
    let first = Instant::now() + Duration::from_millis(50);
    let mut sends = JoinSet::new();
    let mut max_lag = Duration::ZERO;
    for (k, (&i, code)) in open_ok.iter().zip(confirm_codes).take(m).enumerate() {
        let at = first + period.mul_f64(k as f64);
        sleep_until(at).await;
        max_lag = max_lag.max(Instant::now().saturating_duration_since(at));
        let (hub, board, scene_id) = (hub.clone(), board.clone(), scenes[i].scene_id.clone());
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
        match timeout_at(push_deadline, heard_rx.recv()).await {
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
    let (cpu, me_cpu, wechat_used) = (
        hub_proc.cpu()?.saturating_sub(c0),
        me.cpu()?.saturating_sub(me0),
        cpu_since(wechat_cpu()?, w0),
    );
    let push_s = Summary::of(&push);
    out["confirm"] = json!({
        "rate": args.rate,
        "secs": args.secs,
        "sent": m,
        "pushed": push_s.count,
        "offered_secs": (offered.as_secs_f64() * 1000.0).round() / 1000.0,
        "max_send_lag_us": max_lag.as_micros() as u64,
        "push": push_s,
        "http": Summary::of(&http),
        "hub_cpu_us_per_confirm": per(cpu, m),
        "tool_cpu_us_per_confirm": per(me_cpu, m),
        "wechat_cpu_us_per_confirm": wechat_used.map(|c| per(c, m)),
        "errors": confirm_errors.count(),
        "error_samples": confirm_errors.samples(),
    });
    failed |= confirm_errors.count() > 0;
    let _ = stop_tx.send(true);
    let browsers_deadline = Instant::now() + STEP_TIMEOUT;
    while let Ok(Some(_)) = timeout_at(browsers_deadline, browsers.join_next()).await {}
    browsers.abort_all();
    drop(heard_tx);
    // Anything heard after the count (a browser hearing more than it should).
    while let Ok(Heard::Failed(e)) = heard_rx.try_recv() {
        confirm_errors.add("push", &e);
    }

    // 5. Complete logins with K workers.
    eprintln!("logins: fetching {} codes", args.logins);
    let login_codes = codes.get("bench-l", args.logins).await?;
    eprintln!(
        "logins: {} flows with {} workers",
        args.logins, args.workers
    );
    let (c0, me0, w0, t0) = (hub_proc.cpu()?, me.cpu()?, wechat_cpu()?, Instant::now());
    let done = logins(&hub, login_codes, args.workers).await;
    let wall = t0.elapsed();
    let (cpu, me_cpu, wechat_used) = (
        hub_proc.cpu()?.saturating_sub(c0),
        me.cpu()?.saturating_sub(me0),
        cpu_since(wechat_cpu()?, w0),
    );
    let ok = done.latency.len() as usize;
    out["logins"] = json!({
        "workers": args.workers,
        "flows": args.logins,
        "ok": ok,
        "secs": (wall.as_secs_f64() * 1000.0).round() / 1000.0,
        "per_sec": (ok as f64 / wall.as_secs_f64()).round(),
        "hub_cpu_us_per_login": per(cpu, ok),
        "hub_cores_busy": (cpu.as_secs_f64() / wall.as_secs_f64() * 100.0).round() / 100.0,
        "tool_cpu_us_per_login": per(me_cpu, ok),
        "wechat_cpu_us_per_login": wechat_used.map(|c| per(c, ok)),
        "flow": Summary::of(&done.latency),
        "steps": step_summaries(&done.steps),
        "errors": done.errors.count(),
        "error_samples": done.errors.samples(),
    });
    failed |= done.errors.count() > 0 || ok < args.logins;

    // 6. Short polls: the cost of a page that asks every second instead.
    if args.polls > 0 {
        eprintln!(
            "polls: {} requests over {} scenes",
            args.polls, args.poll_scenes
        );
        let errors = Errors::default();
        let scenes = create_scenes(&hub, args.poll_scenes.max(1), conc, &errors).await;
        let (c0, t0) = (hub_proc.cpu()?, Instant::now());
        let done = polls(&hub, Arc::new(scenes), args.polls, args.workers).await;
        let wall = t0.elapsed();
        let cpu = hub_proc.cpu()?.saturating_sub(c0);
        let ok = done.latency.len() as usize;
        let per_req = per(cpu, ok);
        // 10,000 browsers asking once a second each.
        let browsers = 10_000.0;
        out["poll"] = json!({
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
        failed |= errors.count() + done.errors.count() > 0;
    }

    out["run_secs"] = json!(started.elapsed().as_secs());
    out["targets"] = targets(&out);
    eprint!("{}", table(&out));
    println!("{out}");
    Ok(failed)
}

/// Each login step's latency summary, named.
fn step_summaries(steps: &[Histogram<u64>]) -> Vec<Value> {
    STEPS
        .iter()
        .zip(steps)
        .map(|(name, h)| json!({"step": name, "latency": Summary::of(h)}))
        .collect()
}

/// Microseconds of `cpu` per item, one decimal.
fn per(cpu: Duration, items: usize) -> f64 {
    if items == 0 {
        return 0.0;
    }
    (cpu.as_secs_f64() * 1e7 / items as f64).round() / 10.0
}

/// CPU used since `before`, when both readings exist.
fn cpu_since(now: Option<Duration>, before: Option<Duration>) -> Option<Duration> {
    Some(now?.saturating_sub(before?))
}

/// Where one-time `wx.login` codes come from.
struct Codes {
    hub: Hub,
    wechat: Wechat,
    conc: usize,
}

impl Codes {
    /// `count` fresh codes for users `{prefix}-{i}`: made here for the fake
    /// WeChat, fetched from the hub's simulator otherwise.
    async fn get(&self, prefix: &str, count: usize) -> anyhow::Result<Vec<String>> {
        match self.wechat {
            Wechat::Fake => Ok((0..count)
                .map(|i| fake_wechat::new_code(&format!("{prefix}-{i}")))
                .collect()),
            Wechat::Simulator => fetch_codes(&self.hub, prefix, count, self.conc).await,
        }
    }
}

/// Fetches `count` one-time codes for users `{prefix}-{i}` from the simulator.
async fn fetch_codes(
    hub: &Hub,
    prefix: &str,
    count: usize,
    conc: usize,
) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(60 + count as u64 / 20);
    let fut = futures_util::stream::iter(0..count)
        .map(|i| {
            let (hub, user) = (hub.clone(), format!("{prefix}-{i}"));
            tokio::spawn(async move { hub.sim_code(&user).await })
        })
        .buffered(conc)
        .collect::<Vec<_>>();
    let results = timeout_at(deadline, fut)
        .await
        .context("fetching codes took too long")?;
    let mut codes = Vec::with_capacity(count);
    for r in results {
        codes.push(r.context("code task")?.context("fetching a code")?);
    }
    Ok(codes)
}

/// Creates up to `count` scenes; failures are counted in `errors`.
async fn create_scenes(hub: &Hub, count: usize, conc: usize, errors: &Errors) -> Vec<Scene> {
    let deadline = Instant::now() + Duration::from_secs(60 + count as u64 / 20);
    let fut = futures_util::stream::iter(0..count)
        .map(|_| {
            let hub = hub.clone();
            tokio::spawn(async move { hub.create_scene().await })
        })
        .buffer_unordered(conc)
        .collect::<Vec<_>>();
    let Ok(results) = timeout_at(deadline, fut).await else {
        errors.add(
            "create scene",
            &anyhow::anyhow!("creating scenes took too long"),
        );
        return Vec::new();
    };
    let mut scenes = Vec::with_capacity(count);
    for r in results {
        match r.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok(s) => scenes.push(s),
            Err(e) => errors.add("create scene", &e),
        }
    }
    scenes
}

/// One waiting browser: open (a few at a time), report, then idle until
/// `confirmed`, the stop signal or the end of its life.
#[allow(clippy::too_many_arguments)]
async fn waiting_browser(
    i: usize,
    scene: Scene,
    gate: Arc<tokio::sync::Semaphore>,
    opened: mpsc::UnboundedSender<(usize, anyhow::Result<()>)>,
    heard: mpsc::UnboundedSender<Heard>,
    board: Arc<Board>,
    mut stop: watch::Receiver<bool>,
    life: Instant,
) {
    let permit = gate.acquire().await;
    let ws = browser::open(&scene).await;
    drop(permit);
    let mut ws = match ws {
        Ok(ws) => {
            let _ = opened.send((i, Ok(())));
            ws
        }
        Err(e) => {
            let _ = opened.send((i, Err(e)));
            return;
        }
    };
    drop(opened);
    loop {
        tokio::select! {
            _ = stop.changed() => {
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.send(Message::Close(None))).await;
                browser::drain(ws, Duration::from_secs(2)).await;
                return;
            }
            _ = sleep_until(life) => return,
            msg = ws.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None => {
                        let _ = heard.send(Heard::Failed(anyhow::anyhow!("socket closed while waiting")));
                        return;
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        let _ = heard.send(Heard::Failed(anyhow::anyhow!("socket error while waiting: {e}")));
                        return;
                    }
                };
                let now = board.now_ns();
                let event: Value = match serde_json::from_str(text.as_str()) {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = heard.send(Heard::Failed(anyhow::anyhow!("bad event: {e}")));
                        return;
                    }
                };
                let sent = board.sent_at[i].load(Ordering::Acquire);
                let heard_now = if event["state"] != "confirmed" {
                    Heard::Failed(anyhow::anyhow!("unexpected event {event}"))
                } else if sent == 0 || sent > now {
                    Heard::Failed(anyhow::anyhow!("`confirmed` before its confirm was sent"))
                } else if !event["ticket"].is_string() {
                    Heard::Failed(anyhow::anyhow!("`confirmed` without a ticket"))
                } else {
                    Heard::Confirmed(Duration::from_nanos(now - sent))
                };
                let _ = heard.send(heard_now);
                browser::drain(ws, Duration::from_secs(2)).await;
                return;
            }
        }
    }
}

/// Latencies and errors of a set of workers.
struct Done {
    latency: Histogram<u64>,
    /// Per step of a login (empty for polls).
    steps: Vec<Histogram<u64>>,
    errors: Errors,
}

/// Runs complete logins with `workers` workers, one per code.
async fn logins(hub: &Hub, codes: Vec<String>, workers: usize) -> Done {
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

/// Each target, its measured value and whether it is met.
fn targets(out: &Value) -> Value {
    let mem = out["memory"]["bytes_per_waiting_browser"].as_f64();
    let p99 = out["confirm"]["push"]["p99_us"].as_f64();
    let cpu = out["logins"]["hub_cpu_us_per_login"].as_f64();
    let login_errors = out["logins"]["errors"].as_u64().unwrap_or(1);
    let check = |v: Option<f64>, limit: f64| json!({"value": v, "limit": limit, "met": v.is_some_and(|v| v <= limit)});
    let mut cpu_check = check(cpu, TARGET_CPU_PER_LOGIN_US);
    cpu_check["met"] = json!(cpu_check["met"] == true && login_errors == 0);
    json!({
        "bytes_per_waiting_browser": check(mem, TARGET_BYTES_PER_BROWSER),
        "push_p99_us": check(p99, TARGET_PUSH_P99_US),
        "hub_cpu_us_per_login": cpu_check,
    })
}

/// Where WeChat's CPU went, after a hub CPU figure.
fn wechat_note(out: &Value, cpu: &Value, per_what: &str) -> String {
    match (out["wechat"].as_str(), cpu.as_f64()) {
        (Some("simulator"), _) => {
            "\n      (includes the built-in WeChat simulator's side)".to_owned()
        }
        (_, Some(us)) => format!("\n      (not counted there: fake WeChat CPU {us} us/{per_what})"),
        _ => String::new(),
    }
}

/// The readable table.
fn table(out: &Value) -> String {
    let f = |v: &Value| v.as_f64().map_or("-".to_owned(), |x| format!("{x}"));
    let mut t = String::new();
    let mem = &out["memory"];
    t += "\nscanlogin-bench results\n";
    t += &format!(
        "  waiting browsers          {:>8}   hub RSS {} -> {} -> {} KiB (before, scenes, sockets)\n",
        f(&mem["browsers"]),
        f(&mem["rss_before_kib"]),
        f(&mem["rss_after_scenes_kib"]),
        f(&mem["rss_waiting_kib"])
    );
    t += &format!(
        "  memory per waiting browser {:>7} B   (scene {} B + socket {} B)   target <= 4096 B\n",
        f(&mem["bytes_per_waiting_browser"]),
        f(&mem["bytes_per_scene_row"]),
        f(&mem["bytes_per_socket"])
    );
    if out["idle"].is_object() {
        t += &format!(
            "  idle hub CPU              {:>7} % of one core over {} s\n",
            f(&out["idle"]["hub_cpu_pct_of_one_core"]),
            f(&out["idle"]["secs"])
        );
    }
    let c = &out["confirm"];
    t += &format!(
        "  confirms                  {:>8}   at {}/s, pushed {}, errors {}, max send lag {} us, hub CPU {} us/confirm{}\n",
        f(&c["sent"]),
        f(&c["rate"]),
        f(&c["pushed"]),
        f(&c["errors"]),
        f(&c["max_send_lag_us"]),
        f(&c["hub_cpu_us_per_confirm"]),
        wechat_note(out, &c["wechat_cpu_us_per_confirm"], "confirm")
    );
    let l = &out["logins"];
    t += &format!(
        "  logins                    {:>8}   {}/s with {} workers, errors {}, hub CPU {} us/login ({} cores busy)  target <= 300 us{}\n",
        f(&l["ok"]),
        f(&l["per_sec"]),
        f(&l["workers"]),
        f(&l["errors"]),
        f(&l["hub_cpu_us_per_login"]),
        f(&l["hub_cores_busy"]),
        wechat_note(out, &l["wechat_cpu_us_per_login"], "login")
    );
    if out["poll"].is_object() {
        let p = &out["poll"];
        t += &format!(
            "  short polls               {:>8}   {}/s, hub CPU {} us/request; 10,000 browsers at 1/s need {} cores, mean delay {} ms\n",
            f(&p["requests"]),
            f(&p["per_sec"]),
            f(&p["hub_cpu_us_per_request"]),
            f(&p["baseline_10k_browsers_1s"]["hub_cores_needed"]),
            f(&p["baseline_10k_browsers_1s"]["mean_delay_ms"])
        );
    }
    t += ROW_HEADER;
    t += "\n";
    let row = |label: &str, v: &Value| -> String {
        serde_json::from_value::<Summary>(v.clone())
            .map(|s| s.row(label))
            .unwrap_or_default()
    };
    t += &row("confirm -> push", &c["push"]);
    t += "\n";
    t += &row("confirm HTTP answer", &c["http"]);
    t += "\n";
    t += &row("complete login flow", &l["flow"]);
    t += "\n";
    for step in l["steps"].as_array().into_iter().flatten() {
        t += &row(
            &format!(" - {}", step["step"].as_str().unwrap_or("")),
            &step["latency"],
        );
        t += "\n";
    }
    if out["poll"].is_object() {
        t += &row("short poll", &out["poll"]["latency"]);
        t += "\n";
    }
    for (name, v) in out["targets"].as_object().into_iter().flatten() {
        t += &format!(
            "  target {name:<22} {} (limit {}): {}\n",
            f(&v["value"]),
            f(&v["limit"]),
            if v["met"] == true { "met" } else { "NOT met" }
        );
    }
    t
}

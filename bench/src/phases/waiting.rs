//! Waiting browsers: `--waiting` scenes, then one socket each (auth,
//! `waiting`, idle), with the hub's RSS before and after each; then the
//! hub's CPU while those sockets only wait (pings, catch-up reads).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until, timeout_at};
use tokio_tungstenite::tungstenite::Message;

use super::{Ctx, STEP_TIMEOUT, create_scenes};
use crate::api::Scene;
use crate::browser;
use crate::cli::Args;
use crate::report::Errors;

/// Shared by the waiting browsers and the confirm sender.
pub struct Board {
    /// When each browser's confirm was sent: ns since `base`, 0 = not yet.
    pub sent_at: Vec<AtomicU64>,
    base: std::time::Instant,
}

impl Board {
    /// Nanoseconds since the board was made.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// What a waiting browser reports when its socket says something.
pub enum Heard {
    /// `confirmed` arrived this long after the confirm was sent.
    Confirmed(Duration),
    /// Anything that should not happen.
    Failed(anyhow::Error),
}

/// Browsers holding a socket each, waiting for `confirmed`.
pub struct Waiting {
    pub scenes: Vec<Scene>,
    /// Indexes (into `scenes`) of the browsers whose socket opened.
    pub open: Vec<usize>,
    pub board: Arc<Board>,
    /// What the browsers report, as they hear it.
    pub heard: mpsc::UnboundedReceiver<Heard>,
    heard_tx: mpsc::UnboundedSender<Heard>,
    stop: watch::Sender<bool>,
    browsers: JoinSet<()>,
}

/// Makes the scenes and opens their sockets; the report's `memory` part and
/// whether anything failed.
pub async fn open(ctx: &Ctx, args: &Args) -> anyhow::Result<(Waiting, Value, bool)> {
    let n = args.waiting;
    let conc = ctx.conc;
    let rss0 = ctx.hub_proc.rss_kib()?;
    eprintln!("waiting browsers: creating {n} scenes");
    let setup_errors = Errors::default();
    let scenes = create_scenes(&ctx.hub, n, conc, &setup_errors).await;
    sleep(Duration::from_secs(1)).await;
    let rss_scenes = ctx.hub_proc.rss_kib()?;
    eprintln!("waiting browsers: opening {} sockets", scenes.len());
    let board = Arc::new(Board {
        sent_at: (0..scenes.len()).map(|_| AtomicU64::new(0)).collect(),
        base: std::time::Instant::now(),
    });
    let (heard_tx, heard_rx) = mpsc::unbounded_channel();
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
    let rss_open = ctx.hub_proc.rss_kib()?;
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
    let failed = setup_errors.count() > 0 || open_ok.len() < n;
    let waiting = Waiting {
        scenes,
        open: open_ok,
        board,
        heard: heard_rx,
        heard_tx,
        stop: stop_tx,
        browsers,
    };
    Ok((waiting, mem, failed))
}

/// The hub's CPU over `secs` while `sockets` browsers only wait: the
/// report's `idle` part.
pub async fn idle(ctx: &Ctx, secs: u64, sockets: usize) -> anyhow::Result<Value> {
    eprintln!("idle: {secs} s with {sockets} waiting sockets");
    let c0 = ctx.hub_proc.cpu()?;
    sleep(Duration::from_secs(secs)).await;
    let cpu = ctx.hub_proc.cpu()?.saturating_sub(c0);
    Ok(json!({
        "secs": secs,
        "hub_cpu_ms": cpu.as_millis() as u64,
        "hub_cpu_pct_of_one_core": (cpu.as_secs_f64() * 1000.0 / secs as f64).round() / 10.0,
    }))
}

impl Waiting {
    /// Tells every browser to leave, waits for them (bounded), and returns
    /// what went wrong after the count (a browser hearing more than it
    /// should).
    pub async fn close(mut self) -> Vec<anyhow::Error> {
        let _ = self.stop.send(true);
        let deadline = Instant::now() + STEP_TIMEOUT;
        while let Ok(Some(_)) = timeout_at(deadline, self.browsers.join_next()).await {}
        self.browsers.abort_all();
        drop(self.heard_tx);
        let mut late = Vec::new();
        while let Ok(Heard::Failed(e)) = self.heard.try_recv() {
            late.push(e);
        }
        late
    }
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

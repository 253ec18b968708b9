//! The phases of a run, one file each, in the order `main` runs them:
//! warm-up and complete logins (`logins`), waiting browsers and their idle
//! cost (`waiting`), confirms at a fixed rate on them (`confirms`), logins
//! in the full flow with code image and scan (`full`), OpenID Connect logins
//! (`oidc`) and the polling baseline (`polls`); `workers` runs whole flows
//! on K workers for the login phases. Each is bounded in count and time.

pub mod confirms;
pub mod full;
pub mod logins;
pub mod oidc;
pub mod polls;
pub mod waiting;
pub mod workers;

use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use tokio::time::{Instant, timeout_at};

use crate::api::{Hub, Scene};
use crate::cli::Wechat;
use crate::fake_wechat;
use crate::procfs::Proc;
use crate::report::Errors;

/// Longest a single login flow, confirm or setup step may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// What every phase works with: the hub, the processes whose CPU is
/// measured, and where codes come from.
pub struct Ctx {
    pub hub: Hub,
    pub hub_proc: Proc,
    pub me: Proc,
    pub wechat_proc: Option<Proc>,
    pub codes: Codes,
    /// Concurrent requests while setting up.
    pub conc: usize,
}

/// CPU used so far by the hub, this tool and the fake WeChat (when watched).
#[derive(Clone, Copy)]
pub struct CpuMark {
    pub hub: Duration,
    pub tool: Duration,
    pub wechat: Option<Duration>,
}

impl Ctx {
    /// The CPU each process has used until now.
    pub fn cpu(&self) -> anyhow::Result<CpuMark> {
        Ok(CpuMark {
            hub: self.hub_proc.cpu()?,
            tool: self.me.cpu()?,
            wechat: self.wechat_proc.as_ref().map(Proc::cpu).transpose()?,
        })
    }
}

impl CpuMark {
    /// What each process used between `before` and this mark.
    pub fn since(&self, before: &CpuMark) -> CpuMark {
        CpuMark {
            hub: self.hub.saturating_sub(before.hub),
            tool: self.tool.saturating_sub(before.tool),
            wechat: cpu_since(self.wechat, before.wechat),
        }
    }
}

/// Microseconds of `cpu` per item, one decimal.
pub fn per(cpu: Duration, items: usize) -> f64 {
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
pub struct Codes {
    pub hub: Hub,
    pub wechat: Wechat,
    pub conc: usize,
}

impl Codes {
    /// `count` fresh codes for users `{prefix}-{i}`: made here for the fake
    /// WeChat, fetched from the hub's simulator otherwise.
    pub async fn get(&self, prefix: &str, count: usize) -> anyhow::Result<Vec<String>> {
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
pub async fn create_scenes(hub: &Hub, count: usize, conc: usize, errors: &Errors) -> Vec<Scene> {
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

/// Latencies and errors of a set of workers.
pub struct Done {
    pub latency: Histogram<u64>,
    /// Per step of a login (empty for polls).
    pub steps: Vec<Histogram<u64>>,
    pub errors: Errors,
}

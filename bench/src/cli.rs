//! The command line: a run's sizes and the hub to drive, or the fake WeChat.

use clap::Parser;
use url::Url;

use crate::fake_wechat;

#[derive(Parser, Debug)]
#[command(
    name = "scanlogin-bench",
    about = "Load tool for a running scanlogin hub (loopback only)",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
/// `scanlogin-bench [OPTIONS]` runs the phases; `fake-wechat` serves a fake;
/// `compare` sets runs of two builds side by side.
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: Args,
}

/// The other things the tool does.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Serve a fake WeChat (stable_token, jscode2session) on loopback for a
    /// hub in live mode; runs until SIGTERM.
    FakeWechat(fake_wechat::FakeArgs),
    /// Read JSON lines of runs (files), group them by `side` (`baseline`,
    /// `new`) and print each figure's median, min-max and ratio as a
    /// Markdown table.
    Compare(crate::compare::CompareArgs),
}

/// Where the hub's WeChat is, and so where one-time codes come from.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wechat {
    /// A hub in live mode against `scanlogin-bench fake-wechat`: the tool
    /// makes the codes itself.
    Fake,
    /// A hub with its built-in simulator: codes from `/sim/api/login`.
    Simulator,
}

impl Wechat {
    /// The name the JSON line uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fake => "fake",
            Self::Simulator => "simulator",
        }
    }
}

/// The sizes of a run and the hub it drives.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Base URL of the hub (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:18181/")]
    pub hub: Url,
    /// The hub's process id, to read /proc/PID/status and /proc/PID/stat.
    #[arg(long, required = true)]
    pub pid: Option<u32>,
    /// The hub's WeChat: a fake on loopback (the tool makes codes) or the
    /// hub's built-in simulator (codes from /sim/api/login).
    #[arg(long, value_enum, default_value_t = Wechat::Fake)]
    pub wechat: Wechat,
    /// The fake WeChat's process id, to report its CPU (not the hub's) per
    /// confirm and per login.
    #[arg(long)]
    pub wechat_pid: Option<u32>,
    /// N: waiting browsers held open at once.
    #[arg(long, default_value_t = 10_000)]
    pub waiting: usize,
    /// R: confirms per second.
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// D: seconds of confirms (R * D confirms, at most N).
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
    /// K: concurrent workers doing complete logins.
    #[arg(long, default_value_t = 32)]
    pub workers: usize,
    /// F: complete logins to do.
    #[arg(long, default_value_t = 20_000)]
    pub logins: usize,
    /// Complete logins in the full flow (code image, scan, then confirm);
    /// 0 skips.
    #[arg(long, default_value_t = 3000)]
    pub full_logins: usize,
    /// Complete OpenID Connect logins (authorize, the full flow, token,
    /// userinfo); 0 skips. Needs `--oidc-client-id` with
    /// `--oidc-redirect-uri` among its `redirect_uris`.
    #[arg(long, default_value_t = 1000)]
    pub oidc_logins: usize,
    /// The OpenID Connect client (relying party) of the OIDC phase.
    #[arg(long, default_value = "bench-rp")]
    pub oidc_client_id: String,
    /// Its secret (`client_secret_basic` at the token endpoint).
    #[arg(long, default_value = "bench-rp-secret-not-a-real-one")]
    pub oidc_client_secret: String,
    /// Its registered redirect URI (loopback; never loaded, only read).
    #[arg(long, default_value = "http://127.0.0.1/scanlogin-bench/callback")]
    pub oidc_redirect_uri: String,
    /// Short polls (`GET events`) to time for the polling baseline; 0 skips.
    #[arg(long, default_value_t = 0)]
    pub polls: usize,
    /// Scenes the polls spread over.
    #[arg(long, default_value_t = 100)]
    pub poll_scenes: usize,
    /// Seconds to watch the hub's CPU while the N browsers only wait (the
    /// hub pings every 20 s); 0 skips.
    #[arg(long, default_value_t = 25)]
    pub idle_secs: u64,
    /// Warm-up logins before anything is measured.
    #[arg(long, default_value_t = 500)]
    pub warmup: usize,
    /// Concurrent requests while setting up (codes, scenes, sockets).
    #[arg(long, default_value_t = 64)]
    pub setup_concurrency: usize,
    /// The site client whose scenes are made and whose tickets are redeemed.
    #[arg(long, default_value = "demo")]
    pub client_id: String,
    /// That client's secret (HTTP Basic on redeem).
    #[arg(long, default_value = "demo-client-secret")]
    pub client_secret: String,
    /// A free-form label copied into the JSON line.
    #[arg(long, default_value = "")]
    pub label: String,
    /// Which build this run measures, copied into the JSON line as `side`
    /// (`compare` groups by it): `baseline` or `new` in an A/B comparison.
    #[arg(long, default_value = "")]
    pub side: String,
    /// Upper bound on the whole run, in seconds.
    #[arg(long, default_value_t = 1200)]
    pub max_secs: u64,
}

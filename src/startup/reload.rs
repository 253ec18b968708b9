//! Reloading the configuration without a restart (SIGHUP): the file and the
//! environment are read through the same loader and checks as at start. A
//! configuration with any mistake is refused whole (each mistake logged, the
//! old settings stay); otherwise `clients`, `apps`, `rate_limit`,
//! `webhooks` and `geoip` apply to new requests, every other key keeps its
//! old value with a warning naming it (`Settings::restart_keys`). Open
//! sockets and scenes are not touched.

use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::Settings;
use crate::db::Db;
use crate::geoip::GeoIp;
use crate::live::{Live, LiveSettings};
use crate::login::BrowserScenes;
use crate::ratelimit::RateLimits;
use crate::simulator::Simulator;
use crate::telemetry::metrics;
use crate::webhooks::Wake;

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The new settings are in force; these changed keys wait for a restart.
    Applied { restart_keys: Vec<&'static str> },
    /// Nothing changed; one line per mistake.
    Refused(Vec<String>),
}

/// Everything a reload replaces, held by the running hub.
pub struct Reloader {
    pub(super) settings: LiveSettings,
    pub(super) limits: Live<RateLimits>,
    pub(super) geoip: Live<Option<GeoIp>>,
    /// Chooses the apps a code comes from (a reload reorders them).
    pub(super) scenes: Arc<BrowserScenes>,
    /// In simulator mode, the stand-in for WeChat, which knows the apps.
    pub(super) simulator: Option<Arc<Simulator>>,
    pub(super) webhooks: WebhookWorker,
}

impl Reloader {
    /// Reads `path` and the environment and applies what may change, logging
    /// each mistake or each key that waits for a restart, and counting the
    /// outcome in `scanlogin_config_reloads_total`.
    pub fn reload(&self, path: &Path) -> ReloadOutcome {
        let outcome = self.try_reload(path);
        match &outcome {
            ReloadOutcome::Applied { restart_keys } => {
                metrics::config_reload("ok");
                for key in restart_keys {
                    warn!(
                        key,
                        "configuration reload: {key} changed, but only a restart applies it; \
                         it keeps its old value"
                    );
                }
                let now = self.settings.load();
                for w in now.warnings() {
                    warn!("{w}");
                }
                info!(
                    clients = now.clients.len(),
                    apps = now.apps.len(),
                    "configuration reloaded"
                );
            }
            ReloadOutcome::Refused(mistakes) => {
                metrics::config_reload("refused");
                for mistake in mistakes {
                    error!("configuration reload refused: {mistake}");
                }
                warn!(
                    mistakes = mistakes.len(),
                    "configuration reload refused; the settings in force stay"
                );
            }
        }
        outcome
    }

    fn try_reload(&self, path: &Path) -> ReloadOutcome {
        let new = match Settings::load(path) {
            Ok(new) => new,
            Err(e) => return ReloadOutcome::Refused(e.0),
        };
        let old = self.settings.get();
        let restart_keys = old.restart_keys(&new);
        let stored = old.reloaded(new);
        // The kept keys with the new ones must still make sense together.
        let problems = stored.problems();
        if !problems.is_empty() {
            return ReloadOutcome::Refused(problems);
        }
        // Opened again even under the same path: the file may be a newer one.
        let geoip = match stored.geoip.database.as_deref().map(GeoIp::open) {
            None => None,
            Some(Ok(g)) => Some(g),
            Some(Err(e)) => return ReloadOutcome::Refused(vec![e.to_string()]),
        };
        let limits = (stored.rate_limit.named() != old.rate_limit.named())
            .then(|| RateLimits::new(&stored.rate_limit));
        let stored = Arc::new(stored);
        self.settings.set(stored.clone());
        self.scenes.reloaded(&stored);
        if let Some(simulator) = &self.simulator {
            simulator.set_apps(&stored.apps);
        }
        if let Some(limits) = limits {
            // Counts start afresh under the new limits.
            self.limits.set(Arc::new(limits));
        }
        self.geoip.set(Arc::new(geoip));
        if let Err(e) = self.webhooks.start_if_needed(&stored) {
            error!(error = %e, "the webhook worker cannot start");
        }
        ReloadOutcome::Applied { restart_keys }
    }

    /// The webhook worker's task, when it runs (for shutdown to wait on).
    pub(super) fn take_webhook_worker(&self) -> Option<JoinHandle<()>> {
        self.webhooks.task.lock().ok()?.take()
    }
}

/// The webhook worker, started when a client has a webhook: at start, or by
/// the first reload that gives one a webhook. Once started it runs until
/// shutdown (it reads the clients in force at each attempt).
pub(super) struct WebhookWorker {
    pub settings: LiveSettings,
    pub db: Db,
    pub wake: Wake,
    pub shutdown: CancellationToken,
    /// Touched only at start, on reload and at shutdown.
    pub task: Mutex<Option<JoinHandle<()>>>,
}

impl WebhookWorker {
    /// Starts the worker when it is not running and a client has a webhook.
    pub fn start_if_needed(&self, settings: &Settings) -> anyhow::Result<()> {
        if !super::steps::any_webhook(settings) {
            return Ok(());
        }
        let mut task = self
            .task
            .lock()
            .map_err(|_| anyhow::anyhow!("the webhook worker's slot is poisoned"))?;
        if task.is_none() {
            *task = Some(crate::webhooks::worker::spawn(
                self.settings.clone(),
                self.db.clone(),
                self.wake.clone(),
                self.shutdown.clone(),
            )?);
        }
        Ok(())
    }
}

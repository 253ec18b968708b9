//! The delivery worker: one per node, started with the hub and stopped by
//! its shutdown token. It claims due events from the outbox (woken by a
//! login on this node, and polling for the rest, e.g. after a restart or from
//! other nodes), sends each signed, at most `webhooks.concurrency` at once,
//! and records the outcome: delivered on a 2xx; otherwise retried with
//! growing, jittered delays until the retry window ends, then failed. It
//! also purges delivered events past the retention and keeps the backlog
//! gauges current. A login never waits for it.
//!
//! It reads the settings in force at each step, so a reload's clients,
//! webhook URLs and secrets and `[webhooks]` timings apply to the next
//! attempt; only `webhooks.concurrency` stays as it started.

use std::sync::Arc;
use std::time::Duration;

use entity::webhook_events::Model;
use rand::Rng;
use reqwest::header::CONTENT_TYPE;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::outbox::{self, DELIVERED, FAILED, Outcome, PENDING};
use super::{Wake, target};
use crate::clock::now_ms;
use crate::config::WebhookSettings;
use crate::db::Db;
use crate::live::LiveSettings;
use crate::telemetry::metrics;

/// How long past its timeout a claimed attempt holds its event.
const LEASE_MARGIN_MS: i64 = 5_000;
/// How often the backlog gauges are refreshed.
const GAUGE_EVERY: Duration = Duration::from_secs(5);
/// How long shutdown waits for attempts in flight to report.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Starts the worker; it ends when `shutdown` is cancelled.
pub fn spawn(
    settings: LiveSettings,
    db: Db,
    wake: Wake,
    shutdown: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    let now = settings.get();
    // Each attempt sets its own timeout (`webhooks.timeout_ms` then).
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("scanlogin-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let worker = Arc::new(Worker {
        permits: Arc::new(Semaphore::new(now.webhooks.concurrency)),
        retention_ms: now.housekeeping.retention_secs as i64 * 1000,
        purge_every: Duration::from_secs(now.housekeeping.interval_secs),
        batch: now.housekeeping.batch,
        settings,
        db,
        http,
    });
    Ok(tokio::spawn(worker.run(wake, shutdown)))
}

struct Worker {
    /// The settings in force: clients' webhooks and `[webhooks]` timings.
    settings: LiveSettings,
    retention_ms: i64,
    purge_every: Duration,
    batch: u64,
    db: Db,
    http: reqwest::Client,
    permits: Arc<Semaphore>,
}

/// The delay before retry number `attempts` (1 = the first retry): the
/// first delay doubled per attempt, capped, less a random part of up to half.
pub fn retry_delay(config: &WebhookSettings, attempts: i64) -> i64 {
    let doublings = attempts.saturating_sub(1).clamp(0, 40) as u32;
    let nominal = config
        .retry_first_ms
        .saturating_mul(1u64 << doublings)
        .min(config.retry_max_ms)
        .max(1);
    let half = nominal / 2;
    (nominal - half + rand::rng().random_range(0..=half)) as i64
}

impl Worker {
    async fn run(self: Arc<Self>, wake: Wake, shutdown: CancellationToken) {
        let mut attempts = JoinSet::new();
        let mut last_purge: Option<tokio::time::Instant> = None;
        let mut last_gauges: Option<tokio::time::Instant> = None;
        let now = now_ms();
        let horizon = now + self.lease_ms(&self.settings.load().webhooks);
        match outbox::due_after_restart(self.db.write(), now, horizon).await {
            Ok(0) => {}
            Ok(n) => info!(events = n, "webhooks: events left pending are due now"),
            Err(e) => warn!(error = %e, "webhooks: rescheduling pending events failed"),
        }
        loop {
            while attempts.try_join_next().is_some() {}
            self.claim_and_send(&mut attempts).await;
            if last_gauges.is_none_or(|t| t.elapsed() >= GAUGE_EVERY) {
                last_gauges = Some(tokio::time::Instant::now());
                self.gauges().await;
            }
            if last_purge.is_none_or(|t| t.elapsed() >= self.purge_every) {
                last_purge = Some(tokio::time::Instant::now());
                self.purge().await;
            }
            let poll = Duration::from_millis(self.settings.load().webhooks.poll_interval_ms);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                Some(_) = attempts.join_next(), if !attempts.is_empty() => {}
            }
        }
        // Attempts still running keep their lease and are tried again after it.
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while attempts.join_next().await.is_some() {}
        })
        .await;
        attempts.abort_all();
    }

    /// How long a claimed attempt holds its event.
    fn lease_ms(&self, config: &WebhookSettings) -> i64 {
        config.timeout_ms as i64 + LEASE_MARGIN_MS
    }

    /// Claims as many due events as there are free slots and starts them.
    async fn claim_and_send(self: &Arc<Self>, attempts: &mut JoinSet<()>) {
        let free = self.permits.available_permits();
        if free == 0 {
            return;
        }
        let now = now_ms();
        match outbox::any_due(self.db.read(), now).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                warn!(error = %e, "webhooks: looking for due events failed");
                return;
            }
        }
        let lease_until = now + self.lease_ms(&self.settings.load().webhooks);
        let claimed = match outbox::claim(self.db.write(), now, lease_until, free as u64).await {
            Ok(rows) => rows,
            Err(e) => {
                warn!(error = %e, "webhooks: claiming due events failed");
                return;
            }
        };
        for event in claimed {
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                break;
            };
            let worker = self.clone();
            attempts.spawn(async move {
                worker.attempt(event).await;
                drop(permit);
            });
        }
    }

    /// One attempt at `e`, and its outcome recorded.
    async fn attempt(&self, e: Model) {
        let settings = self.settings.get();
        let config = &settings.webhooks;
        let Some(target) = settings.client(&e.client_id).and_then(target) else {
            let why = "the client has no webhook_url and webhook_secret now";
            self.record(&e, FAILED, 0, None, Some(why)).await;
            return;
        };
        let timestamp = now_ms() / 1000;
        let signature = target.signature(&e.id, timestamp, &e.payload);
        let sent = self
            .http
            .post(target.url.clone())
            .timeout(Duration::from_millis(config.timeout_ms))
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", &e.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(e.payload.clone())
            .send()
            .await;
        let (result, status, error) = match sent {
            Ok(res) if res.status().is_success() => ("2xx", Some(res.status().as_u16()), None),
            Ok(res) => {
                let code = res.status().as_u16();
                ("non_2xx", Some(code), Some(format!("HTTP {code}")))
            }
            Err(err) if err.is_timeout() => ("timeout", None, Some("timed out".to_owned())),
            // Without the URL: a webhook URL may carry a token of the site's.
            Err(err) => ("error", None, Some(err.without_url().to_string())),
        };
        metrics::webhook_attempt(result);
        let now = now_ms();
        if error.is_none() {
            self.record(&e, DELIVERED, now, status, None).await;
        } else if now - e.queued_at >= config.retry_for_secs as i64 * 1000 {
            self.record(&e, FAILED, now, status, error.as_deref()).await;
        } else {
            let next = now + retry_delay(config, e.attempts);
            self.record(&e, PENDING, next, status, error.as_deref())
                .await;
        }
    }

    async fn record(
        &self,
        e: &Model,
        state: &str,
        next_attempt_at: i64,
        status: Option<u16>,
        error: Option<&str>,
    ) {
        let outcome = Outcome { status, error };
        let now = now_ms();
        match outbox::finish(self.db.write(), e, state, next_attempt_at, outcome, now).await {
            Ok(true) => {}
            Ok(false) => {
                warn!(event_id = %e.id, "webhooks: the event was claimed again meanwhile");
                return;
            }
            Err(err) => {
                warn!(event_id = %e.id, error = %err, "webhooks: recording an attempt failed; it is tried again after its lease");
                return;
            }
        }
        let client_id = e.client_id.as_str();
        match state {
            DELIVERED => {
                metrics::webhook_delivery("delivered");
                info!(event_id = %e.id, client_id, attempts = e.attempts, "webhook delivered");
            }
            FAILED => {
                metrics::webhook_delivery("failed");
                warn!(event_id = %e.id, client_id, attempts = e.attempts, error = error.unwrap_or(""), "webhook failed; kept for `scanlogin webhooks retry`");
            }
            _ => {
                info!(event_id = %e.id, client_id, attempts = e.attempts, error = error.unwrap_or(""),
                    retry_in_ms = next_attempt_at - now, "webhook attempt failed; will retry");
            }
        }
    }

    async fn gauges(&self) {
        match outbox::backlog(self.db.read()).await {
            Ok((oldest, failed)) => {
                let age = oldest.map_or(0.0, |t| (now_ms() - t).max(0) as f64 / 1000.0);
                metrics::webhook_backlog(age, failed);
            }
            Err(e) => warn!(error = %e, "webhooks: reading the backlog failed"),
        }
    }

    async fn purge(&self) {
        let cutoff = now_ms() - self.retention_ms;
        let mut total = 0;
        for _ in 0..100 {
            match outbox::purge_delivered(self.db.write(), cutoff, self.batch).await {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) => {
                    warn!(error = %e, "webhooks: purging delivered events failed");
                    break;
                }
            }
        }
        if total > 0 {
            info!(
                rows = total,
                "housekeeping deleted delivered webhook events"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_stay_jittered_and_capped() {
        let c = WebhookSettings::default();
        for _ in 0..100 {
            let first = retry_delay(&c, 1);
            assert!((2_500..=5_000).contains(&first), "{first}");
            let third = retry_delay(&c, 3);
            assert!((10_000..=20_000).contains(&third), "{third}");
            let late = retry_delay(&c, 30);
            assert!((1_800_000..=3_600_000).contains(&late), "{late}");
        }
    }
}

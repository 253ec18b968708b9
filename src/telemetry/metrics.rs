//! Prometheus metrics (`metrics` facade + `metrics-exporter-prometheus`):
//! open sockets, scenes created and ended by outcome, confirm-to-push
//! latency, WeChat calls by API and outcome with latency, HTTP requests by
//! route template and status with latency, the bus listener's drops and
//! resyncs, logins each site's backend completed or had refused, and
//! configuration reloads.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::scene::State;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets in seconds, 100 µs to 10 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Installs the process-wide recorder once; later calls reuse it. `None`
/// when another recorder was installed first (metrics are then not served).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS);
            match builder.and_then(|b| b.install_recorder()) {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .clone()
}

fn describe() {
    ::metrics::describe_gauge!(
        "scanlogin_open_sockets",
        "Browser WebSockets open on this node"
    );
    ::metrics::describe_counter!("scanlogin_scenes_created_total", "Scenes created");
    ::metrics::describe_counter!(
        "scanlogin_scenes_ended_total",
        "Scenes that reached a final state, by outcome"
    );
    ::metrics::describe_histogram!(
        "scanlogin_confirm_to_push_seconds",
        "From a confirm request's arrival to the hand-off of `confirmed` to the bus"
    );
    ::metrics::describe_counter!(
        "scanlogin_wechat_calls_total",
        "Calls to WeChat by API and outcome (ok or errcode)"
    );
    ::metrics::describe_counter!(
        "scanlogin_wechat_code_calls_total",
        "Code image calls (getwxacodeunlimit) by app and outcome (ok or errcode)"
    );
    ::metrics::describe_counter!(
        "scanlogin_wechat_quota_errors_total",
        "45009 answers (WeChat's per-minute limit) from getwxacodeunlimit by app; the app is \
         skipped for the rest of that minute and the next app is used"
    );
    ::metrics::describe_gauge!(
        "scanlogin_wechat_app_skipped_until_seconds",
        "Unix time until which this node skips an app for codes after a 45009 (the end of \
         that minute plus jitter)"
    );
    ::metrics::describe_histogram!(
        "scanlogin_wechat_call_seconds",
        "Latency of calls to WeChat by API"
    );
    ::metrics::describe_counter!(
        "scanlogin_http_requests_total",
        "HTTP requests by route template, method and status"
    );
    ::metrics::describe_histogram!(
        "scanlogin_http_request_seconds",
        "HTTP request latency by route template"
    );
    ::metrics::describe_gauge!(
        "scanlogin_bus_listening",
        "1 while this node's LISTEN connection listens (PostgreSQL), else 0"
    );
    ::metrics::describe_counter!(
        "scanlogin_bus_drops_total",
        "Times this node's LISTEN connection was lost"
    );
    ::metrics::describe_counter!(
        "scanlogin_bus_resyncs_total",
        "Re-reads of the listened scenes after the LISTEN connection (re)connected"
    );
    ::metrics::describe_counter!(
        "scanlogin_bus_resynced_scenes_total",
        "Scenes re-read by those resyncs"
    );
    ::metrics::describe_counter!(
        "scanlogin_webhook_attempts_total",
        "Webhook delivery attempts by result (2xx, non_2xx, timeout, error)"
    );
    ::metrics::describe_counter!(
        "scanlogin_webhook_deliveries_total",
        "Webhook events finished, by outcome (delivered, failed)"
    );
    ::metrics::describe_gauge!(
        "scanlogin_webhook_oldest_pending_seconds",
        "Age of the oldest webhook event not yet delivered (0 when none)"
    );
    ::metrics::describe_gauge!(
        "scanlogin_webhook_failed_events",
        "Webhook events given up and kept for `scanlogin webhooks retry`"
    );
    ::metrics::describe_counter!(
        "scanlogin_logins_total",
        "Tickets redeemed and OpenID Connect codes exchanged, by client, via and outcome"
    );
    ::metrics::describe_counter!(
        "scanlogin_config_reloads_total",
        "Configuration reloads (SIGHUP) by outcome: ok, or refused (the old settings stay)"
    );
    // Both outcomes exist from the start, so a rate or an alert sees the
    // first refusal as a change from 0.
    for outcome in ["ok", "refused"] {
        ::metrics::counter!("scanlogin_config_reloads_total", "outcome" => outcome).absolute(0);
    }
}

/// The text exposition, with the open-socket gauge set to `open_sockets`.
pub fn render(handle: &PrometheusHandle, open_sockets: i64) -> String {
    ::metrics::gauge!("scanlogin_open_sockets").set(open_sockets as f64);
    handle.run_upkeep();
    handle.render()
}

/// A scene was created.
pub fn scene_created() {
    ::metrics::counter!("scanlogin_scenes_created_total").increment(1);
}

/// A scene reached a final state.
pub fn scene_ended(outcome: State) {
    ::metrics::counter!("scanlogin_scenes_ended_total", "outcome" => outcome.as_str()).increment(1);
}

/// A confirm was handed to the bus `seconds` after the request arrived.
pub fn confirm_to_push(seconds: f64) {
    ::metrics::histogram!("scanlogin_confirm_to_push_seconds").record(seconds);
}

/// One call to WeChat.
pub fn wechat_call(api: &'static str, outcome: &str, seconds: f64) {
    ::metrics::counter!("scanlogin_wechat_calls_total", "api" => api, "outcome" => outcome.to_owned()).increment(1);
    ::metrics::histogram!("scanlogin_wechat_call_seconds", "api" => api).record(seconds);
}

/// One `getwxacodeunlimit` call for `app_id` (a configured app, so the
/// labels are bounded), and whether WeChat said its quota is spent.
pub fn code_call(app_id: &str, outcome: &str) {
    ::metrics::counter!("scanlogin_wechat_code_calls_total", "app_id" => app_id.to_owned(),
        "outcome" => outcome.to_owned())
    .increment(1);
    if outcome == "45009" {
        ::metrics::counter!("scanlogin_wechat_quota_errors_total", "app_id" => app_id.to_owned())
            .increment(1);
    }
}

/// After a 45009 this node skips `app_id` (a configured app) for codes
/// until `until_ms` (the end of that minute plus jitter).
pub fn app_skipped_until(app_id: &str, until_ms: i64) {
    ::metrics::gauge!("scanlogin_wechat_app_skipped_until_seconds", "app_id" => app_id.to_owned())
        .set(until_ms as f64 / 1000.0);
}

/// A method as a label: the standard ones by name, anything a client made
/// up as `other`, so requests cannot add series without bound.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN.into_iter().find(|m| *m == method).unwrap_or("other")
}

/// One HTTP request (`route` is a route template or `unmatched`; statuses
/// are the hub's own, so both are bounded).
pub fn http_request(route: String, method: &str, status: u16, seconds: f64) {
    ::metrics::counter!("scanlogin_http_requests_total", "route" => route.clone(), "method" => method_label(method),
        "status" => status.to_string())
    .increment(1);
    ::metrics::histogram!("scanlogin_http_request_seconds", "route" => route).record(seconds);
}

/// Whether this node's bus listener listens.
pub fn bus_listening(up: bool) {
    ::metrics::gauge!("scanlogin_bus_listening").set(if up { 1.0 } else { 0.0 });
}

/// This node's bus listener lost its connection.
pub fn bus_dropped() {
    ::metrics::counter!("scanlogin_bus_drops_total").increment(1);
}

/// The bus listener re-read `scenes` listened scenes after (re)connecting.
pub fn bus_resynced(scenes: usize) {
    ::metrics::counter!("scanlogin_bus_resyncs_total").increment(1);
    ::metrics::counter!("scanlogin_bus_resynced_scenes_total").increment(scenes as u64);
}

/// One webhook delivery attempt, by result (`2xx`, `non_2xx`, `timeout`, `error`).
pub fn webhook_attempt(result: &'static str) {
    ::metrics::counter!("scanlogin_webhook_attempts_total", "result" => result).increment(1);
}

/// A webhook event's final outcome (`delivered` or `failed`).
pub fn webhook_delivery(outcome: &'static str) {
    ::metrics::counter!("scanlogin_webhook_deliveries_total", "outcome" => outcome).increment(1);
}

/// The age of the oldest pending webhook event (0 when none) and how many
/// failed events are kept.
pub fn webhook_backlog(oldest_pending_seconds: f64, failed: i64) {
    ::metrics::gauge!("scanlogin_webhook_oldest_pending_seconds").set(oldest_pending_seconds);
    ::metrics::gauge!("scanlogin_webhook_failed_events").set(failed as f64);
}

/// A configuration reload: `ok` (applied) or `refused` (the old settings stay).
pub fn config_reload(outcome: &'static str) {
    ::metrics::counter!("scanlogin_config_reloads_total", "outcome" => outcome).increment(1);
}

/// A site's backend redeemed a ticket (`via` = `ticket`) or exchanged an
/// OpenID Connect code (`oidc`): `ok`, or `failed` (an unknown, used,
/// expired or foreign ticket or code, or the database unavailable). Only
/// clients that authenticated count, so `client_id` is a configured one and
/// the labels stay bounded.
pub fn client_login(client_id: &str, via: &'static str, ok: bool) {
    ::metrics::counter!("scanlogin_logins_total", "client_id" => client_id.to_owned(),
        "via" => via, "outcome" => if ok { "ok" } else { "failed" })
    .increment(1);
}

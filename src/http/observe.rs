//! One span per request, named by route template (never the raw URL, which
//! could carry anything a client put there), with status and duration; the
//! same figures go to the HTTP metrics. The line here records the request;
//! a 5xx's error, with its causes, is logged where it is rendered
//! (`src/http/error.rs`), inside this span.

use std::time::Instant;

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use tracing::{Instrument, field};

use crate::telemetry::metrics;

/// The middleware (`middleware::from_fn(observe)`).
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let span = tracing::info_span!(
        "request",
        method,
        route,
        status = field::Empty,
        duration_ms = field::Empty
    );
    let started = Instant::now();
    let res = next.call(req).instrument(span.clone()).await;
    let status = match &res {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    let elapsed = started.elapsed();
    span.record("status", status);
    span.record("duration_ms", elapsed.as_secs_f64() * 1000.0);
    span.in_scope(|| tracing::info!("request"));
    metrics::http_request(route, &method, status, elapsed.as_secs_f64());
    res
}

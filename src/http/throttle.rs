//! The per-IP ceiling for every request that no endpoint limits itself
//! (pages, the widget, health, the simulator): the `/api/` endpoints and the
//! WebSocket upgrade apply their own, finer limits.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError, web};

use super::client_ip::client_ip;
use crate::http::error::ApiError;
use crate::ratelimit::RateLimits;
use crate::state::AppState;

/// The middleware (`middleware::from_fn(throttle)`).
pub async fn throttle(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    if !req.path().starts_with("/api/")
        && let Some(state) = req.app_data::<web::Data<AppState>>()
    {
        let ip = client_ip(req.request(), &state.settings.server.trusted_proxies);
        if let Err(t) = RateLimits::by_ip(&state.limits.other, ip) {
            let res = ApiError::from(t).error_response();
            return Ok(req.into_response(res).map_into_right_body());
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

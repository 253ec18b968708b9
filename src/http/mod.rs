//! The HTTP edge, one file per audience: browsers, the mini-program, site
//! backends, operators, plus the static web pages; every path is listed in
//! [`routes`], the route table.

pub mod account;
pub mod avatars;
pub mod browser;
pub mod client_ip;
pub mod demo;
pub mod demo_oidc;
pub mod error;
pub mod events;
pub mod extract;
pub mod miniprogram;
pub mod observe;
pub mod oidc;
pub mod openapi;
pub mod ops;
pub mod routes;
pub mod site;
pub mod socket;
pub mod throttle;
pub mod web_assets;
pub mod ws_conn;

use actix_web::ResponseError;
use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::{StatusCode, header};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};

use crate::error::Fault;
use crate::http::error::ApiError;
use crate::login::LoginError;

pub use routes::MAX_JSON;

/// A scene id from a path or body, parsed once here and carried typed from
/// here to the store; one that cannot be an id names no scene.
pub(crate) fn scene_id(raw: &str) -> Result<crate::scene::SceneId, ApiError> {
    crate::scene::SceneId::parse(raw).ok_or(ApiError::Flow(LoginError::SceneNotFound))
}

/// Turns any error answer that is not already problem+json (405 from the
/// router, 400 from a failed WebSocket handshake, ...) into one.
pub fn problem_bodies<B: MessageBody + 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(|res: ServiceResponse<B>| {
        // OAuth errors are RFC 6749 JSON and the authorize page's refusal is
        // HTML: both are answers of their own, not framework errors.
        let is_problem = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
            let v = v.as_bytes();
            v.starts_with(b"application/problem+json")
                || v.starts_with(b"application/json")
                || v.starts_with(b"text/html")
        });
        if is_problem {
            return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
        }
        let status = res.status();
        let err = if status.is_server_error() {
            ApiError::Fault(Fault::internal(format!("framework answered {status}")))
        } else {
            let detail = match status {
                StatusCode::NOT_FOUND => "no such path".to_owned(),
                StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this path".to_owned(),
                s => s.canonical_reason().unwrap_or("bad request").to_owned(),
            };
            ApiError::BadRequestStatus { status, detail }
        };
        let (req, _) = res.into_parts();
        let mut problem = err.error_response();
        if status.is_server_error() {
            *problem.status_mut() = status;
        }
        let res: ServiceResponse<EitherBody<B, BoxBody>> =
            ServiceResponse::new(req, problem.map_into_boxed_body()).map_into_right_body();
        Ok(ErrorHandlerResponse::Response(res))
    })
}

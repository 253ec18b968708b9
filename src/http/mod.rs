//! Routes, one file per audience: browsers, the mini-program, site backends,
//! operators, plus the static web pages and the simulator when enabled.

pub mod avatars;
pub mod browser;
pub mod client_ip;
pub mod demo;
pub mod demo_oidc;
pub mod error;
pub mod events;
pub mod miniprogram;
pub mod observe;
pub mod oidc;
pub mod openapi;
pub mod ops;
pub mod site;
pub mod socket;
pub mod throttle;
pub mod web_assets;
pub mod ws_conn;

use actix_cors::Cors;
use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::error::JsonPayloadError;
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{HttpRequest, ResponseError, web};

use crate::http::error::ApiError;
use crate::state::AppState;

/// Largest JSON body accepted.
pub const MAX_JSON: usize = 16 * 1024;

/// Registers every route on an `App`.
pub fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        let settings = state.settings.clone();
        let cors = Cors::default()
            .allowed_origin_fn(move |origin, _| {
                origin.to_str().is_ok_and(|o| settings.any_client_allows(o))
            })
            .allowed_methods([Method::GET, Method::POST])
            .allowed_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
            .block_on_origin_mismatch(false)
            .max_age(600);
        let simulator = state.simulator.clone();
        let public_metrics = state.settings.server.metrics_bind.is_none();
        // The demo redeems without a secret: like the simulator, it exists
        // only in simulator mode.
        let has_demo = simulator.is_some() && state.settings.client(demo::DEMO_CLIENT).is_some();
        cfg.app_data(web::Data::new(state))
            .app_data(json_config())
            .app_data(
                web::PathConfig::default()
                    .error_handler(|e, _| ApiError::InvalidRequest(e.to_string()).into()),
            )
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|e, _| ApiError::InvalidRequest(e.to_string()).into()),
            )
            .service(
                web::scope("/api/v1/scenes")
                    .wrap(cors)
                    .service(web::resource("").post(browser::create_scene))
                    .service(web::resource("/{scene_id}/qrcode").get(browser::qrcode))
                    .service(web::resource("/{scene_id}/events").get(browser::events))
                    .service(web::resource("/{scene_id}/ws").get(socket::plain_request)),
            )
            .service(
                web::scope("/api/v1/mp")
                    .service(web::resource("/scan").post(miniprogram::scan))
                    .service(web::resource("/login").post(miniprogram::login))
                    .service(web::resource("/confirm").post(miniprogram::confirm))
                    .service(web::resource("/cancel").post(miniprogram::cancel))
                    .service(web::resource("/avatar").post(avatars::upload)),
            )
            .service(web::resource("/api/v1/avatars/{id}").get(avatars::serve))
            .service(web::resource("/api/v1/tickets/redeem").post(site::redeem))
            .service(web::resource("/healthz").get(ops::healthz))
            .service(web::resource("/readyz").get(ops::readyz))
            .configure(web_assets::configure)
            .configure(oidc::configure);
        if public_metrics {
            cfg.service(web::resource("/metrics").get(ops::metrics));
        }
        if has_demo {
            cfg.app_data(web::Data::new(demo_oidc::DemoRp::default()))
                .service(web::resource("/demo/redeem").post(demo::redeem))
                .service(web::resource("/demo/oidc").get(demo_oidc::start))
                .service(web::resource(crate::config::DEMO_OIDC_CALLBACK).get(demo_oidc::callback));
        }
        cfg.service(web::resource("/openapi.json").get(openapi::document));
        if let Some(sim) = simulator {
            cfg.app_data(web::Data::new(sim))
                .configure(crate::wechat::simulator::Simulator::configure)
                .configure(web_assets::configure_simulator);
        }
        cfg.default_service(web::to(not_found));
    }
}

/// The routes of the `server.metrics_bind` listener: `/metrics` only.
pub fn configure_metrics(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").get(ops::metrics))
        .default_service(web::to(not_found));
}

fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_JSON)
        .error_handler(|err, _req: &HttpRequest| {
            let (status, detail) = match &err {
                JsonPayloadError::ContentType => (
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "Content-Type must be application/json".to_owned(),
                ),
                JsonPayloadError::Overflow { limit }
                | JsonPayloadError::OverflowKnownLength { limit, .. } => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("body larger than {limit} bytes"),
                ),
                other => (
                    StatusCode::BAD_REQUEST,
                    format!("invalid JSON body: {other}"),
                ),
            };
            ApiError::BadRequestStatus { status, detail }.into()
        })
}

/// A scene id from a path or body, parsed once here and carried typed from
/// here to the store; one that cannot be an id names no scene.
pub(crate) fn scene_id(raw: &str) -> Result<crate::scene::SceneId, ApiError> {
    crate::scene::SceneId::parse(raw).ok_or(ApiError::SceneNotFound)
}

async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found())
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
            ApiError::Internal(format!("framework answered {status}"))
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

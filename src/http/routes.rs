//! The route table: every path the hub serves, top to bottom, in the order
//! actix-web matches them. Two listeners: the hub's ([`configure`]) and, when
//! `server.metrics_bind` is set, the metrics one ([`configure_metrics`]).
//! WebSocket upgrades never reach the app: the upgrade hook matches
//! [`socket::PATH`] itself (`socket::scene_of`); the table registers the
//! same path for plain requests.

use std::sync::Arc;

use actix_cors::Cors;
use actix_web::error::JsonPayloadError;
use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, web};

use super::error::ApiError;
use super::{
    account, avatars, browser, demo, demo_oidc, miniprogram, oidc, openapi, ops, site, socket,
    web_assets,
};
use crate::origins;
use crate::simulator::{self, Simulator};
use crate::state::AppState;

/// Largest JSON body accepted.
pub const MAX_JSON: usize = 16 * 1024;

/// Where browsers create and watch scenes (CORS applies under it).
pub const SCENES: &str = "/api/v1/scenes";

/// Registers every route of the hub's listener on an `App`.
pub fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        let cors = browser_cors(&state);
        let simulator = state.simulator.clone();
        let public_metrics = state.settings.load().server.metrics_bind.is_none();
        // The demo redeems without a secret: like the simulator, it exists
        // only in simulator mode.
        let has_demo =
            simulator.is_some() && state.settings.load().client(demo::DEMO_CLIENT).is_some();
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
            // Browsers (cross-origin, from the sites' pages).
            .service(
                web::scope(SCENES)
                    .wrap(cors)
                    .service(web::resource("").post(browser::create_scene))
                    .service(web::resource("/{scene_id}/qrcode").get(browser::qrcode))
                    .service(web::resource("/{scene_id}/events").get(browser::events))
                    .service(web::resource(socket_under_scenes()).get(socket::plain_request)),
            )
            // The mini-program.
            .service(
                web::scope("/api/v1/mp")
                    .service(web::resource("/scan").post(miniprogram::scan))
                    .service(web::resource("/login").post(miniprogram::login))
                    .service(web::resource("/confirm").post(miniprogram::confirm))
                    .service(web::resource("/cancel").post(miniprogram::cancel))
                    .service(web::resource("/account").post(account::show))
                    .service(web::resource("/account/delete").post(account::delete))
                    .service(web::resource("/avatar").post(avatars::upload)),
            )
            .service(web::resource("/api/v1/avatars/{id}").get(avatars::serve))
            // Sites' backends.
            .service(web::resource("/api/v1/tickets/redeem").post(site::redeem))
            // Operators.
            .service(web::resource("/healthz").get(ops::healthz))
            .service(web::resource("/readyz").get(ops::readyz))
            // `/`, `/scanlogin.js`, `/scanlogin.d.ts`.
            .configure(web_assets::configure)
            // `/.well-known/openid-configuration` and `/oauth2/...`.
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
            mount_simulator(cfg, sim);
        }
        cfg.default_service(web::to(not_found));
    }
}

/// The simulator (simulator mode only): WeChat's API, the simulated phone's
/// WeChat app, and its pages.
fn mount_simulator(cfg: &mut web::ServiceConfig, sim: Arc<Simulator>) {
    use simulator::routes as sim;
    cfg.app_data(web::Data::new(sim))
        .service(
            web::scope("/sim/wechat")
                .route("/cgi-bin/stable_token", web::post().to(sim::stable_token))
                .route(
                    "/wxa/getwxacodeunlimit",
                    web::post().to(sim::getwxacodeunlimit),
                )
                .route("/sns/jscode2session", web::get().to(sim::jscode2session))
                .route(
                    "/wxa/business/getuserphonenumber",
                    web::post().to(sim::getuserphonenumber),
                ),
        )
        .service(
            web::scope("/sim/api")
                .route("/login", web::post().to(sim::sim_login))
                .route("/userinfo", web::post().to(sim::sim_userinfo))
                .route("/phone", web::post().to(sim::sim_phone_code))
                .route("/quota", web::post().to(sim::sim_quota)),
        )
        // `/sim/phone`, `/sim/miniprogram/logic.js`, `/sim/avatars/*.svg`.
        .configure(|cfg| web_assets::register(cfg, simulator::assets::PAGES));
}

/// The routes of the `server.metrics_bind` listener: `/metrics` only.
pub fn configure_metrics(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").get(ops::metrics))
        .default_service(web::to(not_found));
}

/// [`socket::PATH`] relative to [`SCENES`].
fn socket_under_scenes() -> &'static str {
    socket::PATH.strip_prefix(SCENES).unwrap_or(socket::PATH)
}

/// Browsers may call the scene routes from any origin some client allows.
fn browser_cors(state: &AppState) -> Cors {
    let settings = state.settings.clone();
    Cors::default()
        .allowed_origin_fn(move |origin, _| {
            origins::cors_allows(&settings.load(), origin.as_bytes())
        })
        .allowed_methods([Method::GET, Method::POST])
        .allowed_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .block_on_origin_mismatch(false)
        .max_age(600)
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

async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_path_lies_under_the_scenes() {
        assert_eq!(socket_under_scenes(), "/{scene_id}/ws");
    }
}

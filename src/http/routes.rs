//! The route table: every path the hub serves, top to bottom, in the order
//! actix-web matches them. Two listeners: the hub's ([`configure`]) and, when
//! `server.metrics_bind` is set, the metrics one ([`configure_metrics`]).
//! The JSON API is [`api`]: one line per handler, whose `#[utoipa::path]`
//! gives both its route and its part of the OpenAPI document.
//! WebSocket upgrades never reach the app: the upgrade hook matches
//! [`socket::PATH`] itself (`socket::scene_of`); the table registers the
//! same path for plain requests.

use std::sync::Arc;

use actix_cors::Cors;
use actix_web::error::JsonPayloadError;
use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, web};

use super::error::ApiError;
use super::openapi::{Document, Endpoint};
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

/// The JSON API, in the document's order: each line is a handler and its
/// `#[utoipa::path]` (`__path_<handler>`), which alone says the path and
/// methods. [`configure`] mounts these, and nothing else, under `/api/v1`,
/// `/oauth2` (but the authorize page), `/.well-known`, `/healthz` and
/// `/readyz`; the document shows exactly these. No two paths overlap, so
/// their order does not change which one matches.
pub fn api() -> Vec<Endpoint> {
    vec![
        // Browsers (cross-origin, from the sites' pages): under [`SCENES`].
        Endpoint::new(browser::__path_create_scene, browser::create_scene),
        Endpoint::new(browser::__path_qrcode, browser::qrcode),
        Endpoint::new(browser::__path_events, browser::events),
        Endpoint::new(socket::__path_plain_request, socket::plain_request),
        // The mini-program.
        Endpoint::new(miniprogram::__path_scan, miniprogram::scan),
        Endpoint::new(miniprogram::__path_confirm, miniprogram::confirm),
        Endpoint::new(miniprogram::__path_cancel, miniprogram::cancel),
        Endpoint::new(miniprogram::__path_login, miniprogram::login),
        Endpoint::new(account::__path_show, account::show),
        Endpoint::new(account::__path_delete, account::delete),
        Endpoint::new(avatars::__path_upload, avatars::upload),
        Endpoint::new(avatars::__path_serve, avatars::serve),
        // Sites' backends.
        Endpoint::new(site::__path_redeem, site::redeem),
        // Operators.
        Endpoint::new(ops::__path_healthz, ops::healthz),
        Endpoint::new(ops::__path_readyz, ops::readyz),
        Endpoint::new(openapi::__path_document, openapi::document),
        // The OpenID Connect provider (its authorize page: [`oidc::configure`]).
        Endpoint::new(oidc::__path_discovery, oidc::discovery),
        Endpoint::new(oidc::__path_complete, oidc::complete),
        Endpoint::new(oidc::__path_token, oidc::token)
            .app_data(web::PayloadConfig::new(oidc::MAX_FORM)),
        Endpoint::new(oidc::__path_userinfo, oidc::userinfo)
            .and(oidc::__path_userinfo_post, oidc::userinfo_post),
        Endpoint::new(oidc::__path_jwks, oidc::jwks),
    ]
}

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
        let api = api();
        let document = Document::of(&api);
        let (browsers, others): (Vec<_>, Vec<_>) =
            api.into_iter().partition(|e| e.is_under(SCENES));
        cfg.app_data(web::Data::new(state))
            .app_data(web::Data::new(document))
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
                browsers
                    .into_iter()
                    .fold(web::scope(SCENES).wrap(cors), |scope, e| {
                        scope.service(e.into_resource(SCENES))
                    }),
            );
        // The mini-program, sites' backends, operators, OpenID Connect.
        for endpoint in others {
            cfg.service(endpoint.into_resource(""));
        }
        // `/`, `/scanlogin.js`, `/scanlogin.d.ts`.
        cfg.configure(web_assets::configure)
            // `/oauth2/authorize`, an HTML page.
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
        assert_eq!(socket::PATH.strip_prefix(SCENES), Some("/{scene_id}/ws"));
        let socket = api().into_iter().find(|e| e.is_under(socket::PATH));
        assert!(socket.is_some_and(|e| e.is_under(SCENES)));
    }

    #[test]
    fn no_two_endpoints_share_a_path() {
        // The first resource of a path answers every method on it (405 for
        // the ones it lacks): a second would never be reached.
        let api = api();
        let paths: std::collections::BTreeSet<&str> = api.iter().map(Endpoint::path).collect();
        assert_eq!(paths.len(), api.len());
    }
}

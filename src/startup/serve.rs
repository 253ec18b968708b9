//! The HTTP server: actix-web's app for requests, actix-http's upgrade hook
//! for WebSockets.

use std::time::Duration;

use actix_http::{HttpService, Request, h1};
use actix_service::{
    IntoServiceFactory, ServiceFactoryExt as _, fn_factory, fn_service, map_config,
};
use actix_web::dev::{AppConfig, Server};
use actix_web::{App, middleware};
use tokio::net::TcpStream;

use super::steps::Listeners;
use crate::state::AppState;

/// The HTTP server on the listeners: actix-web's app for requests, and
/// WebSocket upgrades taken out of the HTTP/1 dispatcher (actix-http's
/// upgrade hook, which actix-web's `HttpServer` does not expose) so an open
/// socket keeps no HTTP buffers (`http::socket`). Timeouts are actix-web's
/// defaults.
pub(super) fn serve(listeners: Listeners, state: &AppState) -> std::io::Result<Server> {
    let Listeners {
        main: listener,
        addr,
        metrics: metrics_listener,
        ..
    } = listeners;
    let settings = state.settings.get();
    let stop = state.shutdown.clone();
    let sockets = state.sockets.clone();
    let grace = Duration::from_secs(settings.server.shutdown_timeout_secs);
    let metrics_state = actix_web::web::Data::new(state.clone());
    let state = state.clone();
    let mut builder = Server::build()
        .shutdown_timeout(settings.server.shutdown_timeout_secs)
        .shutdown_signal(async move {
            stop.cancelled().await;
            // Each session sees the same token and sends 1012; the workers
            // (whose threads run the sessions) stop once they have.
            sockets.close();
            let _ = tokio::time::timeout(grace, sockets.wait()).await;
        })
        .listen("scanlogin", listener, move || {
            let app_state = state.clone();
            let app = App::new()
                .wrap(crate::http::problem_bodies())
                .wrap(middleware::from_fn(crate::http::throttle::throttle))
                .wrap(middleware::from_fn(crate::http::observe::observe))
                .configure(crate::http::routes::configure(app_state))
                .into_factory()
                .map_err(|err| err.error_response());
            let upgrade_state = std::sync::Arc::new(state.clone());
            let upgrade = fn_factory(move || {
                let state = upgrade_state.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(fn_service(
                        move |(req, framed): (
                            Request,
                            actix_codec::Framed<TcpStream, h1::Codec>,
                        )| {
                            crate::http::socket::upgrade(state.clone(), req, framed)
                        },
                    ))
                }
            });
            HttpService::build()
                .client_request_timeout(Duration::from_secs(5))
                .client_disconnect_timeout(Duration::from_secs(1))
                // Small frames (a push right after `waiting`, the close after
                // `confirmed`) must not wait for the peer's delayed ACK.
                .tcp_nodelay(true)
                .local_addr(addr)
                .upgrade(upgrade)
                // Nothing here reads the config's host or address (links are
                // built from `server.public_url`).
                .finish(map_config(app, |_| AppConfig::default()))
                .tcp()
        })?;
    if let Some(metrics_listener) = metrics_listener {
        builder = builder.listen("scanlogin-metrics", metrics_listener, move || {
            let app = App::new()
                .app_data(metrics_state.clone())
                .wrap(crate::http::problem_bodies())
                .configure(crate::http::routes::configure_metrics)
                .into_factory()
                .map_err(|err| err.error_response());
            HttpService::build()
                .client_request_timeout(Duration::from_secs(5))
                .finish(map_config(app, |_| AppConfig::default()))
                .tcp()
        })?;
    }
    if settings.server.workers > 0 {
        builder = builder.workers(settings.server.workers);
    }
    Ok(builder.run())
}

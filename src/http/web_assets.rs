//! The web pages and scripts under `web/`, built into the binary.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../../web/index.html"),
    },
    Asset {
        path: "/scanlogin.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/scanlogin.js"),
    },
];

/// Pages served only in simulator mode.
const SIMULATOR_ASSETS: &[Asset] = &[Asset {
    path: "/sim/phone",
    content_type: "text/html; charset=utf-8",
    body: include_str!("../../web/phone.html"),
}];

/// Registers one GET route per asset.
pub fn configure(cfg: &mut web::ServiceConfig) {
    register(cfg, ASSETS);
}

/// Registers the simulated phone's pages.
pub fn configure_simulator(cfg: &mut web::ServiceConfig) {
    register(cfg, SIMULATOR_ASSETS);
}

fn register(cfg: &mut web::ServiceConfig, assets: &'static [Asset]) {
    for asset in assets {
        cfg.route(
            asset.path,
            web::get().to(move || async move {
                HttpResponse::Ok()
                    .content_type(asset.content_type)
                    .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
                    .insert_header(("X-Content-Type-Options", "nosniff"))
                    .body(asset.body)
            }),
        );
    }
}

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
    Asset {
        path: "/scanlogin.d.ts",
        content_type: "text/plain; charset=utf-8",
        body: include_str!("../../web/scanlogin.d.ts"),
    },
];

/// Served only in simulator mode: the simulated phone, the reference
/// mini-program logic it runs, and the pretend avatars it offers.
const SIMULATOR_ASSETS: &[Asset] = &[
    Asset {
        path: "/sim/phone",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../../web/phone.html"),
    },
    Asset {
        path: "/sim/miniprogram/logic.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/miniprogram/pages/scanlogin/logic.js"),
    },
    avatar(
        "/sim/avatars/1.svg",
        include_str!("../../web/avatars/1.svg"),
    ),
    avatar(
        "/sim/avatars/2.svg",
        include_str!("../../web/avatars/2.svg"),
    ),
    avatar(
        "/sim/avatars/3.svg",
        include_str!("../../web/avatars/3.svg"),
    ),
    avatar(
        "/sim/avatars/4.svg",
        include_str!("../../web/avatars/4.svg"),
    ),
];

const fn avatar(path: &'static str, body: &'static str) -> Asset {
    Asset {
        path,
        content_type: "image/svg+xml",
        body,
    }
}

/// Registers one GET route per asset.
pub fn configure(cfg: &mut web::ServiceConfig) {
    register(cfg, ASSETS);
}

/// Registers the simulated phone's pages.
pub fn configure_simulator(cfg: &mut web::ServiceConfig) {
    register(cfg, SIMULATOR_ASSETS);
}

/// One resource per asset, answering GET and HEAD (other methods get 405).
fn register(cfg: &mut web::ServiceConfig, assets: &'static [Asset]) {
    for asset in assets {
        let serve = move || async move {
            HttpResponse::Ok()
                .content_type(asset.content_type)
                .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
                .insert_header(("X-Content-Type-Options", "nosniff"))
                .body(asset.body)
        };
        cfg.service(
            web::resource(asset.path)
                .route(web::get().to(serve))
                .route(web::head().to(serve)),
        );
    }
}

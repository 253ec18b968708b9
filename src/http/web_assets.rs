//! The web pages and scripts under `web/`, built into the binary (the
//! simulator's own are in `crate::simulator::assets`).

use actix_web::http::header;
use actix_web::{HttpResponse, web};

/// A page or script served as is.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
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

/// Registers one GET route per asset.
pub fn configure(cfg: &mut web::ServiceConfig) {
    register(cfg, ASSETS);
}

/// One resource per asset, answering GET and HEAD (other methods get 405).
pub fn register(cfg: &mut web::ServiceConfig, assets: &'static [Asset]) {
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

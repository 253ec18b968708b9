//! The web pages and scripts under `web/`, built into the binary (the
//! simulator's own are listed in `crate::simulator::assets`).

use actix_web::http::header;
use actix_web::{HttpResponse, web};

/// A file served as is: (path, content type, body).
pub type Asset = (&'static str, &'static str, &'static str);

const ASSETS: &[Asset] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../../web/index.html"),
    ),
    (
        "/scanlogin.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/scanlogin.js"),
    ),
    (
        "/scanlogin.d.ts",
        "text/plain; charset=utf-8",
        include_str!("../../web/scanlogin.d.ts"),
    ),
];

/// Registers one GET route per asset.
pub fn configure(cfg: &mut web::ServiceConfig) {
    register(cfg, ASSETS);
}

/// One resource per asset, answering GET and HEAD (other methods get 405).
pub fn register(cfg: &mut web::ServiceConfig, assets: &'static [Asset]) {
    for &(path, content_type, body) in assets {
        let serve = move || async move {
            HttpResponse::Ok()
                .content_type(content_type)
                .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
                .insert_header(("X-Content-Type-Options", "nosniff"))
                .body(body)
        };
        cfg.service(
            web::resource(path)
                .route(web::get().to(serve))
                .route(web::head().to(serve)),
        );
    }
}

//! The simulated phone's pages, served only in simulator mode: the phone
//! itself, the reference mini-program logic it runs, and the pretend avatars
//! it offers.

use actix_web::web;

use crate::http::web_assets::{Asset, register};

/// Path, type and body of each page.
pub const ASSETS: &[Asset] = &[
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

/// Registers one GET (and HEAD) route per page.
pub fn configure(cfg: &mut web::ServiceConfig) {
    register(cfg, ASSETS);
}

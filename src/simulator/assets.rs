//! The simulated phone's pages, served only in simulator mode: the phone
//! itself, the reference mini-program logic it runs, and the pretend avatars
//! it offers. The route table serves them as it serves the hub's own pages
//! (`crate::http::web_assets`).

const SVG: &str = "image/svg+xml";

/// Each page as (path, content type, body).
pub const PAGES: &[(&str, &str, &str)] = &[
    (
        "/sim/phone",
        "text/html; charset=utf-8",
        include_str!("../../web/phone.html"),
    ),
    (
        "/sim/miniprogram/logic.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/miniprogram/pages/scanlogin/logic.js"),
    ),
    (
        "/sim/avatars/1.svg",
        SVG,
        include_str!("../../web/avatars/1.svg"),
    ),
    (
        "/sim/avatars/2.svg",
        SVG,
        include_str!("../../web/avatars/2.svg"),
    ),
    (
        "/sim/avatars/3.svg",
        SVG,
        include_str!("../../web/avatars/3.svg"),
    ),
    (
        "/sim/avatars/4.svg",
        SVG,
        include_str!("../../web/avatars/4.svg"),
    ),
];

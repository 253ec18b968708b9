//! The built-in WeChat simulator (`wechat.mode = "simulator"`), mounted by
//! the route table (`crate::http::routes`) only in simulator mode. It serves
//! WeChat's own endpoints under `/sim/wechat/` with WeChat's wire format (JSON
//! errors, image bytes with `Content-Type: image/png`), so the hub's client
//! talks to it exactly as to WeChat. For the simulated phone it also plays
//! the WeChat app: `/sim/api/login` hands out `wx.login` codes for a pretend
//! user, `/sim/api/userinfo` the legacy encrypted profile and
//! `/sim/api/phone` the `getPhoneNumber` button's code, which
//! `getuserphonenumber` turns into the pretend user's number ([`sim_phone`]);
//! `/sim/api/quota` makes an app's next code requests answer 45009.
//!
//! - [`routes`]: the handlers (WeChat's API and the simulated phone's);
//! - `state`: the tokens, codes and sessions it holds, and their bounds;
//! - [`assets`]: the simulated phone's pages.

pub mod assets;
pub mod routes;
mod state;

use std::collections::HashMap;
use std::io::Cursor;

use arc_swap::ArcSwap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::config::AppSettings;
use state::Held;

pub use state::MAX_HELD;

/// The simulator: the apps it knows (the configured ones, which a reload
/// may change) and what it handed out.
pub struct Simulator {
    apps: ArcSwap<HashMap<String, AppSettings>>,
    public_url: String,
    held: Held,
}

/// Why the simulator hands out no code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimRefusal {
    UnknownApp,
    /// It holds [`MAX_HELD`] codes or sessions already.
    Full,
}

/// A pretend person's identity in one app.
pub fn sim_openid(app_id: &str, user: &str) -> String {
    format!(
        "o{}",
        &URL_SAFE_NO_PAD.encode(Sha256::digest(format!("openid|{app_id}|{user}")))[..27]
    )
}

/// A pretend person's phone number: 11 digits starting with 1, made from the
/// name, the same in every app.
pub fn sim_phone(user: &str) -> String {
    let digest = Sha256::digest(format!("phone|{user}"));
    let mut n = String::from("13");
    for b in digest.iter().take(9) {
        n.push(char::from(b'0' + b % 10));
    }
    n
}

/// A pretend person's unionid (the same in every app, as on one Open Platform account).
pub fn sim_unionid(user: &str) -> String {
    format!(
        "u{}",
        &URL_SAFE_NO_PAD.encode(Sha256::digest(format!("unionid|{user}")))[..27]
    )
}

/// A scannable QR code of `text`, about `width` pixels wide, as PNG.
pub fn qr_png(text: &str, width: u32) -> Result<Vec<u8>, String> {
    let code = qrcode::QrCode::new(text.as_bytes()).map_err(|e| e.to_string())?;
    let img = code
        .render::<image::Luma<u8>>()
        .min_dimensions(width, width)
        .max_dimensions(width.max(300), width.max(300))
        .build();
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageLuma8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| e.to_string())?;
    Ok(out.into_inner())
}

impl Simulator {
    pub fn new(apps: &[AppSettings], public_url: &str) -> Self {
        Self {
            apps: ArcSwap::from_pointee(by_id(apps)),
            public_url: public_url.trim_end_matches('/').to_owned(),
            held: Held::default(),
        }
    }

    /// The configured apps are now `apps` (after a reload).
    pub fn set_apps(&self, apps: &[AppSettings]) {
        self.apps.store(std::sync::Arc::new(by_id(apps)));
    }

    /// The app `app_id`, when configured.
    fn app(&self, app_id: &str) -> Option<AppSettings> {
        self.apps.load().get(app_id).cloned()
    }

    /// Whether `app_id` is configured.
    fn knows(&self, app_id: &str) -> bool {
        self.apps.load().contains_key(app_id)
    }

    /// Plays the `getPhoneNumber` button for `user` in `app_id`: a fresh
    /// one-time code for `getuserphonenumber`.
    pub fn phone_code(&self, app_id: &str, user: &str) -> Result<String, SimRefusal> {
        if !self.knows(app_id) {
            return Err(SimRefusal::UnknownApp);
        }
        self.held.phone_code(app_id, user)
    }

    /// Plays `wx.login` for `user` in `app_id`: a fresh one-time code.
    pub fn login(&self, app_id: &str, user: &str) -> Result<String, SimRefusal> {
        if !self.knows(app_id) {
            return Err(SimRefusal::UnknownApp);
        }
        self.held.login(app_id, user)
    }

    /// The app a request names, else the first configured one (by id).
    fn app_or_first(&self, app_id: Option<&String>) -> String {
        app_id
            .cloned()
            .or_else(|| self.apps.load().keys().min().cloned())
            .unwrap_or_default()
    }
}

fn by_id(apps: &[AppSettings]) -> HashMap<String, AppSettings> {
    apps.iter().map(|a| (a.app_id.clone(), a.clone())).collect()
}

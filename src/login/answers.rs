//! What the flow answers the phone after a scan: which site asks and which
//! browser, so the person can refuse a login they did not start.

use std::net::IpAddr;

use serde::Serialize;

use crate::geoip::{GeoIp, Location, far_apart};
use crate::scene::State;

/// The answer to a scan.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScanAnswer {
    /// The mini-program's credential for `confirm` and `cancel` of this
    /// scene, bound to this scene and this openid. A secret: send it only
    /// in request bodies.
    pub mp_token: String,
    pub state: State,
    /// When the scene expires (RFC 3339).
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub client: ClientView,
    pub browser: BrowserView,
}

/// Which site asks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClientView {
    pub id: String,
    pub name: String,
    /// The `Origin` the browser sent when it made the scene (one of the
    /// client's allowed origins); `null` when the scene was made without one.
    #[schema(required = true)]
    pub origin: Option<String>,
    /// Whether the site asks for the phone number (`phone = true`): the
    /// phone then offers the "share my phone number" button.
    pub wants_phone: bool,
}

/// Who made the scene: a web page (it sent an `Origin`) or a program that
/// did not say, which is what a QRLJacking script looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BrowserKind {
    Browser,
    Server,
}

/// Which browser asks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BrowserView {
    pub kind: BrowserKind,
    pub ip: String,
    pub user_agent: String,
    /// Where the address that created the scene is, roughly (only with a
    /// `[geoip]` database, and when it knows the address).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub location: Option<Location>,
    /// `true` when the phone's and the browser's countries differ or, in one
    /// country, their regions differ; `false` when both are known and
    /// match; absent when either is unknown (or without a database).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub far_from_phone: Option<bool>,
}

impl BrowserView {
    /// Adds where the browser is and whether the phone (at `phone_ip`) is
    /// far from it, from `geo`.
    pub fn locate(&mut self, geo: &GeoIp, phone_ip: Option<IpAddr>) {
        self.location = geo.locate_str(&self.ip);
        let phone = phone_ip.and_then(|ip| geo.locate(ip));
        self.far_from_phone = far_apart(self.location.as_ref(), phone.as_ref());
    }
}

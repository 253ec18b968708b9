//! OpenID Connect endpoints (thin: the work is in `crate::oidc`): discovery
//! and JWKS here, the authorize page and its completion in `authorize` (the
//! page's HTML in `page`), token and userinfo in `token`.

mod authorize;
pub mod error;
mod page;
mod schemas;
mod token;

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use crate::http::error::ApiError;
use crate::state::AppState;

pub use self::authorize::{__path_complete, CompleteBody, Completed, authorize, complete};
pub(crate) use self::page::escape;
pub use self::token::{
    __path_token, __path_userinfo, __path_userinfo_post, token, userinfo, userinfo_post,
};

/// Largest token request body.
pub const MAX_FORM: usize = 8 * 1024;

/// Registers the authorize page, the one OpenID Connect route outside the
/// JSON API (an HTML page and a redirect); the others are endpoints of
/// `http::routes::api`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/oauth2/authorize").get(authorize));
}

/// `GET /.well-known/openid-configuration`
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    tag = "openid-connect",
    summary = "OpenID Connect discovery",
    responses(
        (status = 200, description = "The provider's metadata", body = crate::oidc::Discovery),
        (status = 429, description = "`rate_limited` (per client IP)"),
    )
)]
pub async fn discovery(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(state.oidc.discovery())
}

/// `GET /oauth2/jwks`
#[utoipa::path(
    get,
    path = "/oauth2/jwks",
    tag = "openid-connect",
    summary = "The public keys that sign ID tokens (RFC 7517)",
    responses(
        (status = 200, description = "The JWK set", body = schemas::Jwks),
        (status = 429, description = "`rate_limited` (per client IP)"),
        (status = 503, description = "`unavailable`"),
    )
)]
pub async fn jwks(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let set = state.oidc.jwks().await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(set))
}

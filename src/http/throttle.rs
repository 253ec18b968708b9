//! Rate limits as middleware: [`SCOPES`] is the one place that says which
//! per-address limit covers which path; [`throttle`] applies it to every
//! request of the app before routing, and the WebSocket upgrade hook
//! (`http::socket`) applies it to every request it takes, stray upgrades
//! included. A path the table does not name (pages, OpenID Connect,
//! avatars, the simulator, unknown paths under `/api/` or anywhere) falls
//! under [`Scope::Other`]. Limits that need what only the handler knows
//! follow there: per scene for the mini-program (the scene is in the body)
//! and per client for site backends (once authenticated).

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, ResponseError, web};

use super::extract::ClientAddr;
use crate::http::error::ApiError;
use crate::ratelimit::Scope;
use crate::state::AppState;

/// Which per-address limit covers which path: the first row whose pattern
/// matches the whole path decides (`*` is one non-empty segment). Paths as
/// the router sees them (`match_info().as_str()`).
pub const SCOPES: &[(&str, Scope)] = &[
    ("/api/v1/scenes", Scope::Scenes),
    ("/api/v1/scenes/*/qrcode", Scope::Qrcodes),
    ("/api/v1/scenes/*/events", Scope::Polls),
    ("/api/v1/scenes/*/ws", Scope::Sockets),
    ("/api/v1/mp/*", Scope::MiniProgram),
    ("/api/v1/mp/account/delete", Scope::MiniProgram),
    ("/api/v1/tickets/redeem", Scope::Site),
];

/// The scope of a request. CORS preflights (`OPTIONS`) are the browser's
/// own questions, not calls: they count as [`Scope::Other`] wherever they go.
pub fn scope_of(method: &Method, path: &str) -> Scope {
    if method == Method::OPTIONS {
        return Scope::Other;
    }
    SCOPES
        .iter()
        .find(|(pattern, _)| matches(pattern, path))
        .map_or(Scope::Other, |(_, scope)| *scope)
}

/// Whether `path` matches `pattern` segment by segment.
fn matches(pattern: &str, path: &str) -> bool {
    let mut want = pattern.split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return true,
            (Some("*"), Some(seg)) if !seg.is_empty() => {}
            (Some(w), Some(seg)) if w == seg => {}
            _ => return false,
        }
    }
}

/// The middleware (`middleware::from_fn(throttle)`): works out the
/// client's address once (kept for [`ClientAddr`]) and takes one unit of
/// the path's scope; over it, a 429 `rate_limited` problem.
pub async fn throttle(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    if let Some(state) = req.app_data::<web::Data<AppState>>() {
        let addr = ClientAddr::of(req.request());
        req.extensions_mut().insert(addr);
        let scope = scope_of(req.method(), req.match_info().as_str());
        if let Err(t) = state.limits.load().check_scope(scope, addr.0) {
            let res = ApiError::from(t).error_response();
            return Ok(req.into_response(res).map_into_right_body());
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_has_one_scope() {
        let id = "0123456789abcdef0123456789abcdef";
        let get = Method::GET;
        let post = Method::POST;
        for (method, path, scope) in [
            (&post, "/api/v1/scenes".to_owned(), Scope::Scenes),
            (&get, format!("/api/v1/scenes/{id}/qrcode"), Scope::Qrcodes),
            (&get, format!("/api/v1/scenes/{id}/events"), Scope::Polls),
            (&get, format!("/api/v1/scenes/{id}/ws"), Scope::Sockets),
            (&post, "/api/v1/mp/scan".to_owned(), Scope::MiniProgram),
            (&post, "/api/v1/mp/avatar".to_owned(), Scope::MiniProgram),
            (&post, "/api/v1/mp/account".to_owned(), Scope::MiniProgram),
            (
                &post,
                "/api/v1/mp/account/delete".to_owned(),
                Scope::MiniProgram,
            ),
            (&post, "/api/v1/tickets/redeem".to_owned(), Scope::Site),
            (&get, format!("/api/v1/avatars/{id}"), Scope::Other),
            (&get, "/api/v1/nothing/here".to_owned(), Scope::Other),
            (&get, "/api/v1/scenes/".to_owned(), Scope::Other),
            (&get, "/api/v1/scenes//qrcode".to_owned(), Scope::Other),
            (&get, "/api/v1/mp/scan/more".to_owned(), Scope::Other),
            (&post, "/oauth2/token".to_owned(), Scope::Other),
            (&get, "/".to_owned(), Scope::Other),
            (&Method::OPTIONS, "/api/v1/scenes".to_owned(), Scope::Other),
        ] {
            assert_eq!(scope_of(method, &path), scope, "{method} {path}");
        }
    }
}

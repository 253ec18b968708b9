//! Typed extractors for what handlers read from request headers: the
//! client's address, the `Origin`, a bearer token and HTTP Basic client
//! credentials. Each header is parsed once, here, with one set of rules;
//! handlers take the typed value as an argument.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::client_ip::client_ip;
use crate::http::error::ApiError;
use crate::login::LoginError;
use crate::state::AppState;

/// Longest bearer token taken (the hub's own tokens are far shorter).
const MAX_BEARER: usize = 1024;

/// The client's address as the hub believes it (`http::client_ip`):
/// worked out once per request by the throttle and kept in the request.
/// `None` only for a request that did not come over TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    /// The request's address (from its extensions when already known).
    pub fn of(req: &HttpRequest) -> Self {
        if let Some(known) = req.extensions().get::<ClientAddr>() {
            return *known;
        }
        let settings = req
            .app_data::<web::Data<AppState>>()
            .map(|s| s.settings.load());
        let trusted = settings
            .as_ref()
            .map(|s| s.server.trusted_proxies.as_slice())
            .unwrap_or_default();
        Self(client_ip(req, trusted))
    }

    /// The address as text (`""` when unknown), as the phone is shown it.
    pub fn text(&self) -> String {
        self.0.map(|ip| ip.to_string()).unwrap_or_default()
    }
}

impl FromRequest for ClientAddr {
    type Error = Infallible;
    type Future = Ready<Result<Self, Infallible>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self::of(req)))
    }
}

/// The request's `Origin` as [`crate::origins::read`] reads it: `None` when
/// absent (not a browser); one it cannot read is 403 `origin_not_allowed`.
pub(crate) fn origin(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let values = headers.get_all(header::ORIGIN).map(|v| v.as_bytes());
    crate::origins::read(values)
        .map_err(|e| ApiError::Flow(LoginError::OriginNotAllowed(e.to_string())))
}

/// The request's `Origin` ([`origin`]'s rules; a refused one is 403
/// `origin_not_allowed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestOrigin(pub Option<String>);

impl RequestOrigin {
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl FromRequest for RequestOrigin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(origin(req.headers()).map(|o| Self(o.map(str::to_owned))))
    }
}

/// `Authorization: Bearer <token>` (the scheme in any case, RFC 9110 11.1).
/// Take `Option<Bearer>` and name the missing token in the handler's own
/// words; a bare `Bearer` answers 401 `invalid_token`.
#[derive(Clone, PartialEq, Eq)]
pub struct Bearer(pub String);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer([REDACTED])")
    }
}

impl Bearer {
    /// The token of a well-formed header, if any.
    pub fn parse(headers: &HeaderMap) -> Option<Self> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= MAX_BEARER)
            .then(|| Self(token.to_owned()))
    }
}

impl FromRequest for Bearer {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            Self::parse(req.headers()).ok_or(ApiError::Flow(LoginError::InvalidToken(
                "Authorization: Bearer <token> is required",
            ))),
        )
    }
}

/// Why `Authorization` holds no Basic credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasicError {
    /// No `Authorization` header.
    Missing,
    /// Another scheme (Bearer, Digest, ...).
    OtherScheme,
    /// `Basic` with something that is not base64 of UTF-8 `id:secret`.
    Malformed,
}

/// `(client_id, client_secret)` from `Authorization: Basic ...` (RFC 7617;
/// the scheme name is case-insensitive). As an extractor, anything but
/// well-formed credentials is 401 `unauthorized`; malformed ones (or
/// another scheme) count as a failed authentication of an unknown client
/// from the client's address, like a wrong secret, so a source cannot send
/// them without limit; none at all takes a unit of `other_per_minute`.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    pub client_id: String,
    pub secret: String,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("client_id", &self.client_id)
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

impl BasicCredentials {
    /// The credentials of the request's `Authorization` header.
    pub fn parse(headers: &HeaderMap) -> Result<Self, BasicError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or(BasicError::Missing)?
            .to_str()
            .map_err(|_| BasicError::Malformed)?;
        let (scheme, encoded) = value.split_once(' ').ok_or(BasicError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(BasicError::OtherScheme);
        }
        let decoded = STANDARD
            .decode(encoded.trim())
            .map_err(|_| BasicError::Malformed)?;
        let text = String::from_utf8(decoded).map_err(|_| BasicError::Malformed)?;
        let (id, secret) = text.split_once(':').ok_or(BasicError::Malformed)?;
        Ok(Self {
            client_id: id.to_owned(),
            secret: secret.to_owned(),
        })
    }
}

impl FromRequest for BasicCredentials {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Self::parse(req.headers()).map_err(|why| {
            let missing = ApiError::Flow(LoginError::Unauthorized(
                "HTTP Basic client_id:client_secret is required",
            ));
            let Some(state) = req.app_data::<web::Data<AppState>>() else {
                return missing;
            };
            let ip = ClientAddr::of(req).0;
            // No header at all is how some clients (Java's among them) ask
            // for the challenge before sending credentials: not a failure,
            // but under the address's ceiling for everything else.
            if why == BasicError::Missing {
                return match state.limits.load().other.check(ip) {
                    Ok(()) => missing,
                    Err(t) => t.into(),
                };
            }
            if let Err(t) = state.limits.load().auth_allowed("", false, ip) {
                return t.into();
            }
            state.limits.load().auth_failed("", false, ip);
            missing
        }))
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use actix_web::test::TestRequest;
    use proptest::prelude::*;

    fn with_authorization(value: &[u8]) -> HeaderMap {
        let mut req = TestRequest::default();
        if let Ok(v) = header::HeaderValue::from_bytes(value) {
            req = req.insert_header((header::AUTHORIZATION, v));
        }
        req.to_http_request().headers().clone()
    }

    proptest! {
        /// Any Authorization header: credentials or a reason, never a panic.
        #[test]
        fn any_header_is_credentials_or_a_reason(value in prop::collection::vec(any::<u8>(), 0..200)) {
            let headers = with_authorization(&value);
            let _ = BasicCredentials::parse(&headers);
            let _ = Bearer::parse(&headers);
        }

        /// What a stock client sends comes back as it was, in any case of "Basic".
        #[test]
        fn credentials_round_trip(id in "[^:\\p{C}]{1,30}", secret in "\\PC{0,40}", upper: bool) {
            let scheme = if upper { "BASIC" } else { "basic" };
            let value = format!("{scheme} {}", STANDARD.encode(format!("{id}:{secret}")));
            let got = BasicCredentials::parse(&with_authorization(value.as_bytes())).ok();
            prop_assert_eq!(got, Some(BasicCredentials { client_id: id, secret }));
        }

        /// A bearer token comes back trimmed, in any case of "Bearer".
        #[test]
        fn bearer_round_trips(token in "[A-Za-z0-9._~+/=-]{1,100}", upper: bool) {
            let scheme = if upper { "BEARER" } else { "Bearer" };
            let value = format!("{scheme} {token}");
            prop_assert_eq!(Bearer::parse(&with_authorization(value.as_bytes())), Some(Bearer(token)));
        }
    }
}

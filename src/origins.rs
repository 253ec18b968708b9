//! The origin policy: how a request's `Origin` header is read, which origins
//! a client allows, and which ones may call the browser routes across
//! origins (CORS). Plain rules over settings and header bytes; the HTTP edge
//! applies them (the `Origin` extractor in `http::extract`, the CORS of
//! `http::routes`, the socket's upgrade, the authorize page's completion) and
//! the flow checks a scene's client with them.

use crate::config::{ClientSettings, Settings};

/// Why an `Origin` header cannot be read; it is refused like an origin no
/// client allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error("several Origin headers")]
    Several,
    #[error("an Origin that is not ASCII")]
    NotAscii,
}

/// A request's `Origin` from the values of its `Origin` headers: `None` when
/// there is none (not a browser). More than one, or one that is not visible
/// ASCII, is refused: a browser never sends either, so treating them as "no
/// Origin" would let a script pass as a server.
pub fn read<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Result<Option<&'a str>, Unreadable> {
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Unreadable::Several);
    }
    visible_ascii(first).map(Some).ok_or(Unreadable::NotAscii)
}

/// The bytes as text when each is visible ASCII or a tab (what a header
/// value's `to_str` accepts).
fn visible_ascii(bytes: &[u8]) -> Option<&str> {
    bytes
        .iter()
        .all(|&b| b == b'\t' || (32..127).contains(&b))
        .then(|| std::str::from_utf8(bytes).ok())
        .flatten()
}

/// Whether `origin` may make and watch scenes for `client`: one of its own
/// `allowed_origins`, or the hub's own for a client that uses OpenID Connect
/// (the hub's authorize page creates that client's scenes).
pub fn client_allows(settings: &Settings, client: &ClientSettings, origin: &str) -> bool {
    client.allows_origin(origin) || !client.redirect_uris.is_empty() && is_hub(settings, origin)
}

/// Whether `origin` is the hub's own (its `server.public_url`).
pub fn is_hub(settings: &Settings, origin: &str) -> bool {
    settings.server.public_url.origin().ascii_serialization() == origin
}

/// Whether some client lists `origin`: who may watch a scene that does not
/// exist (so the answer does not tell which scenes exist).
pub fn any_client_allows(settings: &Settings, origin: &str) -> bool {
    settings.clients.iter().any(|c| c.allows_origin(origin))
}

/// The CORS rule of the browser routes: an `Origin` header value some
/// client lists.
pub fn cors_allows(settings: &Settings, origin: &[u8]) -> bool {
    visible_ascii(origin).is_some_and(|o| any_client_allows(settings, o))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigError;
    use crate::config::fixtures::shop_with;

    fn settings(redirect_uris: &str) -> Result<Settings, ConfigError> {
        shop_with(&format!("redirect_uris = {redirect_uris}"))
    }

    #[test]
    fn the_hub_origin_counts_only_for_openid_clients() {
        let s = settings(r#"["https://shop.example/cb"]"#).expect("valid");
        let own = s.server.public_url.origin().ascii_serialization();
        let shop = s.client("shop").expect("shop");
        assert!(client_allows(&s, shop, &own));
        assert!(!client_allows(&s, shop, "https://evil.example"));
        let plain = settings("[]").expect("valid");
        assert!(!client_allows(
            &plain,
            plain.client("shop").expect("shop"),
            &own
        ));
    }

    #[test]
    fn an_origin_is_read_like_a_header_value() {
        for b in 0..=u8::MAX {
            let bytes = [b'a', b];
            let Ok(value) = actix_web::http::header::HeaderValue::from_bytes(&bytes) else {
                continue;
            };
            assert_eq!(visible_ascii(&bytes), value.to_str().ok(), "byte {b}");
        }
        assert_eq!(read([].into_iter()), Ok(None));
        assert_eq!(
            read([&b"https://a.example"[..]].into_iter()),
            Ok(Some("https://a.example"))
        );
        assert_eq!(
            read([&b"a"[..], &b"b"[..]].into_iter()),
            Err(Unreadable::Several)
        );
        assert_eq!(
            read([&b"h\xc3\xa9"[..]].into_iter()),
            Err(Unreadable::NotAscii)
        );
    }
}

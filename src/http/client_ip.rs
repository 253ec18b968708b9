//! The address a request comes from: the peer, or, when the peer is a
//! trusted proxy, what `X-Forwarded-For` says, walked from the right while
//! the hops are trusted proxies. The first entry that is not an IP address
//! (`1.2.3.4:5678`, `unknown`, an empty entry, a header that is not text)
//! ends the walk: the request then counts as coming from the last trusted
//! hop, never from what an attacker wrote further left. IPv4-mapped IPv6
//! addresses (`::ffff:10.0.0.1`) count as their IPv4 form everywhere.

use std::net::{IpAddr, SocketAddr};

use actix_web::HttpRequest;
use actix_web::http::header::HeaderMap;

/// The client's IP as the hub believes it.
pub fn client_ip(req: &HttpRequest, trusted: &[IpAddr]) -> Option<IpAddr> {
    ip_of(req.peer_addr(), req.headers(), trusted)
}

/// [`client_ip`] from a connection's peer and a request's headers (for the
/// WebSocket upgrade, which is not an actix-web request).
pub fn ip_of(peer: Option<SocketAddr>, headers: &HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|t| t.to_canonical() == ip);
    let mut hop = peer?.ip().to_canonical();
    if !is_trusted(hop) {
        return Some(hop);
    }
    // Several headers are one list, in order (RFC 9110 5.3).
    let values: Vec<&[u8]> = headers
        .get_all("x-forwarded-for")
        .map(|v| v.as_bytes())
        .collect();
    for value in values.iter().rev() {
        let Ok(text) = std::str::from_utf8(value) else {
            return Some(hop);
        };
        for entry in text.rsplit(',') {
            let Ok(ip) = entry.trim().parse::<IpAddr>() else {
                return Some(hop);
            };
            let ip = ip.to_canonical();
            if !is_trusted(ip) {
                return Some(ip);
            }
            hop = ip;
        }
    }
    Some(hop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn from(peer: &str, forwarded: &[&str], trusted: &[&str]) -> Option<IpAddr> {
        let mut req = TestRequest::default().peer_addr(peer.parse().expect("addr"));
        for f in forwarded {
            req = req.append_header(("X-Forwarded-For", *f));
        }
        let trusted: Vec<IpAddr> = trusted.iter().map(|t| ip(t)).collect();
        client_ip(&req.to_http_request(), &trusted)
    }

    #[test]
    fn forwarded_only_from_trusted_proxies() {
        let chain = ["1.2.3.4, 5.6.7.8, 10.0.0.1"];
        assert_eq!(
            from("10.0.0.1:4000", &chain, &["10.0.0.1"]),
            Some(ip("5.6.7.8"))
        );
        assert_eq!(from("10.0.0.1:4000", &chain, &[]), Some(ip("10.0.0.1")));
        assert_eq!(
            from("10.0.0.1:4000", &["1.2.3.4", "5.6.7.8"], &["10.0.0.1"]),
            Some(ip("5.6.7.8")),
            "several headers are one list"
        );
    }

    #[test]
    fn an_entry_that_is_not_an_address_ends_the_walk_at_the_last_trusted_hop() {
        let trusted = ["10.0.0.1", "10.0.0.2"];
        for junk in [
            "1.2.3.4:5678",
            "unknown",
            "",
            "[2001:db8::1]:443",
            "_hidden",
        ] {
            let chain = format!("6.6.6.6, {junk}, 10.0.0.2");
            assert_eq!(
                from("10.0.0.1:4000", &[&chain], &trusted),
                Some(ip("10.0.0.2")),
                "{junk:?}"
            );
        }
        assert_eq!(
            from("10.0.0.1:4000", &["6.6.6.6, junk"], &trusted),
            Some(ip("10.0.0.1"))
        );
    }

    #[test]
    fn an_ipv4_mapped_peer_matches_its_ipv4_form() {
        assert_eq!(
            from("[::ffff:10.0.0.1]:4000", &["5.6.7.8"], &["10.0.0.1"]),
            Some(ip("5.6.7.8"))
        );
        assert_eq!(
            from("10.0.0.1:4000", &["5.6.7.8"], &["::ffff:10.0.0.1"]),
            Some(ip("5.6.7.8"))
        );
        assert_eq!(
            from("[::ffff:192.0.2.9]:4000", &["5.6.7.8"], &["10.0.0.1"]),
            Some(ip("192.0.2.9")),
            "an untrusted mapped peer is itself, in IPv4 form"
        );
    }
}

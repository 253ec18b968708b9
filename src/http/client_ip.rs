//! The address a request comes from: the peer, or, when the peer is a trusted
//! proxy, the last address in `X-Forwarded-For` that is not a trusted proxy.

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
    let peer = peer?.ip();
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .iter()
            .rev()
            .find(|ip| !trusted.contains(ip))
            .copied()
            .unwrap_or(peer),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn forwarded_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        let req = TestRequest::default()
            .peer_addr("10.0.0.1:4000".parse().expect("addr"))
            .insert_header(("X-Forwarded-For", "1.2.3.4, 5.6.7.8, 10.0.0.1"))
            .to_http_request();
        assert_eq!(
            client_ip(&req, &[proxy]),
            Some("5.6.7.8".parse().expect("ip"))
        );
        assert_eq!(client_ip(&req, &[]), Some(proxy));
    }
}

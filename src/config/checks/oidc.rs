//! The OpenID Connect keys of `[[clients]]`: `redirect_uris`.

use url::Url;

/// Whether `uri` may be registered as a redirect URI: an absolute http(s)
/// URL with a host and no fragment.
pub fn check_redirect_uri(uri: &str) -> Result<(), &'static str> {
    let url = Url::parse(uri).map_err(|_| "is not an absolute URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must use http or https");
    }
    if url.host_str().is_none() {
        return Err("has no host");
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment");
    }
    Ok(())
}

/// Whether `uri` is plain http to anything but a loopback address (a warning).
pub fn is_plain_http_off_loopback(uri: &str) -> bool {
    let Ok(url) = Url::parse(uri) else {
        return false;
    };
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    url.scheme() == "http" && !loopback
}

#[cfg(test)]
mod tests {
    use crate::config::fixtures::shop_with;
    use crate::config::{ConfigError, Settings};

    fn settings(redirect_uris: &str) -> Result<Settings, ConfigError> {
        shop_with(&format!("redirect_uris = {redirect_uris}"))
    }

    #[test]
    fn redirect_uris_must_be_absolute_http_urls_without_fragment() {
        for bad in [
            r#"["/callback"]"#,
            r#"["ftp://x/cb"]"#,
            r#"["https://x/cb#frag"]"#,
        ] {
            let err = settings(bad).expect_err(bad).to_string();
            assert!(err.contains("clients[0].redirect_uris"), "{err}");
        }
        assert!(settings(r#"["https://shop.example/cb", "http://127.0.0.1:9/cb"]"#).is_ok());
    }

    #[test]
    fn plain_http_off_loopback_is_a_warning_only() {
        let s = settings(r#"["http://shop.example/cb"]"#).expect("valid");
        let warnings = s.warnings().join("\n");
        assert!(warnings.contains("clients[0].redirect_uris"), "{warnings}");
        for quiet in [
            r#"["https://shop.example/cb"]"#,
            r#"["http://127.0.0.1:8080/cb"]"#,
            r#"["http://[::1]:8080/cb"]"#,
            r#"["http://localhost/cb"]"#,
        ] {
            let s = settings(quiet).expect("valid");
            assert!(
                !s.warnings().iter().any(|w| w.contains("redirect_uris")),
                "{quiet}"
            );
        }
    }
}

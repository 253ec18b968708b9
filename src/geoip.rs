//! Where a browser is (SPEC v3 "Where the browser is"): the one thing a
//! phishing relay cannot fake. With `[geoip] database`, the scan answer
//! tells the phone the approximate place of the address that created the
//! scene, and whether it is far from the phone's own. The database is a
//! MaxMind DB city database read with the `maxminddb` crate; names are
//! Chinese where it has them, else English.

use std::net::IpAddr;
use std::path::Path;

use maxminddb::{Reader, geoip2};
use serde::Serialize;
use utoipa::ToSchema;

/// An approximate place; a field the database does not know is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Location {
    /// ISO 3166-1 alpha-2 country code.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, pattern = "^[A-Z]{2}$")]
    pub country: Option<String>,
    /// The first-level region (province, state).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub city: Option<String>,
}

/// An open city database.
pub struct GeoIp {
    reader: Reader<Vec<u8>>,
}

/// Why the database cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("geoip.database {path}: {source}")]
pub struct GeoIpError {
    path: String,
    #[source]
    source: maxminddb::MaxMindDbError,
}

/// The name to show: Chinese (zh-CN) where the database has it, else English.
fn name(names: &geoip2::Names<'_>) -> Option<String> {
    names
        .simplified_chinese
        .or(names.english)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

impl GeoIp {
    /// Reads the database at `path` into memory.
    pub fn open(path: &Path) -> Result<Self, GeoIpError> {
        let reader = Reader::open_readfile(path).map_err(|source| GeoIpError {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self { reader })
    }

    /// The place of `ip`; `None` when the database does not know it.
    pub fn locate(&self, ip: IpAddr) -> Option<Location> {
        let found = self.reader.lookup(ip).ok()?;
        let city = found.decode::<geoip2::City>().ok()??;
        let place = Location {
            country: city
                .country
                .iso_code
                .filter(|c| c.len() == 2)
                .map(str::to_owned),
            region: city.subdivisions.first().and_then(|s| name(&s.names)),
            city: name(&city.city.names),
        };
        (place != Location::default()).then_some(place)
    }

    /// The place of an address as stored (a scene's `browser_ip`).
    pub fn locate_str(&self, ip: &str) -> Option<Location> {
        self.locate(ip.parse().ok()?)
    }
}

/// Whether two places are far apart: `true` when the countries differ or,
/// in one country, the regions differ; `false` when both countries and both
/// regions are known and match; `None` when that cannot be told.
pub fn far_apart(browser: Option<&Location>, phone: Option<&Location>) -> Option<bool> {
    let (b, p) = (browser?, phone?);
    let (bc, pc) = (b.country.as_deref()?, p.country.as_deref()?);
    if bc != pc {
        return Some(true);
    }
    match (b.region.as_deref(), p.region.as_deref()) {
        (Some(br), Some(pr)) => Some(br != pr),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> GeoIp {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/geoip-test.mmdb");
        GeoIp::open(&path).expect("the test database opens")
    }

    fn at(country: &str, region: Option<&str>) -> Location {
        Location {
            country: Some(country.into()),
            region: region.map(str::to_owned),
            city: None,
        }
    }

    #[test]
    fn names_are_chinese_where_the_database_has_them_else_english() {
        let geo = fixture();
        let shenzhen = geo.locate("192.0.2.7".parse().expect("ip")).expect("known");
        assert_eq!(shenzhen.country.as_deref(), Some("CN"));
        assert_eq!(shenzhen.region.as_deref(), Some("广东"));
        assert_eq!(shenzhen.city.as_deref(), Some("深圳"));
        let sf = geo.locate_str("198.51.100.200").expect("known");
        assert_eq!(sf.region.as_deref(), Some("California"));
        assert_eq!(sf.city.as_deref(), Some("San Francisco"));
        // A field the database lacks is absent.
        let guangdong = geo.locate_str("203.0.113.9").expect("known");
        assert_eq!(guangdong.city, None);
        let japan = geo.locate_str("2001:db8::1").expect("known");
        assert_eq!((japan.country.as_deref(), japan.region), (Some("JP"), None));
        assert_eq!(geo.locate_str("10.1.2.3"), None);
        assert_eq!(geo.locate_str("not an ip"), None);
    }

    #[test]
    fn far_means_another_country_or_another_region() {
        let gd = at("CN", Some("广东"));
        assert_eq!(far_apart(Some(&gd), Some(&at("US", None))), Some(true));
        assert_eq!(
            far_apart(Some(&gd), Some(&at("CN", Some("北京")))),
            Some(true)
        );
        assert_eq!(
            far_apart(Some(&gd), Some(&at("CN", Some("广东")))),
            Some(false)
        );
        assert_eq!(far_apart(Some(&gd), Some(&at("CN", None))), None);
        assert_eq!(far_apart(Some(&gd), None), None);
        assert_eq!(far_apart(None, Some(&gd)), None);
    }
}

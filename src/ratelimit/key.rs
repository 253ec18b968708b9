//! Client addresses as the limits count them: an IPv4 address, and for
//! IPv6 both the /64 (the block one subscriber gets) and the /48 (the block
//! one site gets), so neither a /64 nor a /48 is 2^64 or 2^80 fresh buckets.

use std::net::IpAddr;

/// One counted block: an IPv4 address, an IPv6 /64 or an IPv6 /48. The low
/// bits tag the kind, so no key of one kind equals a key of another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpKey(u128);

/// Tags in the low bits of an IPv6 key (IPv4 keys are below 2^32).
const TAG_64: u128 = 1;
const TAG_48: u128 = 2;

impl IpKey {
    /// The /48 an IPv6 address belongs to; `None` for IPv4 (and
    /// IPv4-mapped IPv6), which is counted per address only.
    pub fn wide(ip: IpAddr) -> Option<Self> {
        match ip.to_canonical() {
            IpAddr::V4(_) => None,
            IpAddr::V6(v6) => Some(Self((u128::from(v6) & !((1u128 << 80) - 1)) | TAG_48)),
        }
    }
}

impl From<IpAddr> for IpKey {
    /// The address (IPv4, IPv4-mapped IPv6 as its IPv4 form) or its /64.
    fn from(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => Self((u128::from(v6) & !((1u128 << 64) - 1)) | TAG_64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn ipv6_counts_per_64_and_per_48_and_ipv4_mapped_as_ipv4() {
        let a = ip("2001:db8:1:2::1");
        let b = ip("2001:db8:1:2:ffff::9");
        let c = ip("2001:db8:1:3::1");
        let d = ip("2001:db8:2:2::1");
        assert_eq!(IpKey::from(a), IpKey::from(b));
        assert_ne!(IpKey::from(a), IpKey::from(c));
        assert_eq!(IpKey::wide(a), IpKey::wide(c), "one /48");
        assert_ne!(IpKey::wide(a), IpKey::wide(d));
        assert_ne!(IpKey::wide(a), Some(IpKey::from(a)), "kinds never collide");
        let v4 = ip("192.0.2.7");
        let mapped = ip("::ffff:192.0.2.7");
        assert_eq!(IpKey::from(v4), IpKey::from(mapped));
        assert_eq!(IpKey::wide(v4), None);
        assert_eq!(IpKey::wide(mapped), None);
        assert_ne!(IpKey::from(v4), IpKey::from(ip("::c000:207")));
    }
}

//! The order of a name's addresses, as Go's resolver sorts what DNS gave (RFC 6724 §6, the rules
//! Go implements: usable destinations first, matching scope, matching label, higher precedence,
//! smaller scope, and for IPv6 the longest prefix shared with the source), so that a connection
//! tries them in Go's order. The source of each destination is what the kernel would pick: a UDP
//! socket connected to it (which sends nothing) says so. Addresses from `/etc/hosts` are sorted
//! too, as Go sorts them.

use std::cmp::Ordering;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket};

/// `addresses` in the order RFC 6724 prefers them; equal ones keep their order.
pub fn by_rfc6724(addresses: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let mut ranked: Vec<(SocketAddr, Option<IpAddr>)> = addresses
        .into_iter()
        .map(|address| (address, source_of(address)))
        .collect();
    if ranked.len() > 1 {
        ranked.sort_by(|a, b| compare((a.0.ip(), a.1), (b.0.ip(), b.1)));
    }
    ranked.into_iter().map(|(address, _)| address).collect()
}

/// The local address the kernel would send to `destination` (its scope included) from, if it
/// has a route.
fn source_of(mut destination: SocketAddr) -> Option<IpAddr> {
    let any: IpAddr = match destination {
        SocketAddr::V4(_) => IpAddr::from([0, 0, 0, 0]),
        SocketAddr::V6(_) => IpAddr::from(Ipv6Addr::UNSPECIFIED),
    };
    let socket = UdpSocket::bind((any, 0)).ok()?;
    destination.set_port(53);
    socket.connect(destination).ok()?;
    Some(socket.local_addr().ok()?.ip())
}

/// RFC 6724 §2.1's policy table: (prefix as IPv6, its length, precedence, label), longest
/// prefix first.
const POLICY: [([u8; 16], u8, u8, u8); 9] = [
    ([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 128, 50, 0),
    (
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0],
        96,
        35,
        4,
    ),
    ([0; 16], 96, 1, 3),
    (
        [0x20, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        32,
        5,
        5,
    ),
    (
        [0x20, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        16,
        30,
        2,
    ),
    (
        [0x3f, 0xfe, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        16,
        1,
        12,
    ),
    (
        [0xfe, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        10,
        1,
        11,
    ),
    (
        [0xfc, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        7,
        3,
        13,
    ),
    ([0; 16], 0, 40, 1),
];

/// An address's scope, precedence and label (RFC 6724 §3.1 and §2.1).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Attributes {
    scope: u8,
    precedence: u8,
    label: u8,
}

fn attributes(ip: IpAddr) -> Attributes {
    let v6 = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let bits = u128::from(v6);
    let (_, _, precedence, label) = POLICY
        .iter()
        .find(|(prefix, length, _, _)| {
            let mask = u128::MAX.checked_shl(128 - u32::from(*length)).unwrap_or(0);
            bits & mask == u128::from_be_bytes(*prefix) & mask
        })
        .copied()
        .unwrap_or(([0; 16], 0, 0, 0));
    Attributes {
        scope: scope(ip),
        precedence,
        label,
    }
}

/// RFC 6724 §3.1: loopback and link-local are link scope; IPv6 multicast its own; site-local
/// site scope; the rest global.
fn scope(ip: IpAddr) -> u8 {
    const LINK: u8 = 0x2;
    const SITE: u8 = 0x5;
    const GLOBAL: u8 = 0xe;
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() || v4.is_link_local() => LINK,
        IpAddr::V4(_) => GLOBAL,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return scope(IpAddr::V4(v4));
            }
            let octets = v6.octets();
            if v6.is_loopback() || (octets[0] == 0xfe && octets[1] & 0xc0 == 0x80) {
                LINK
            } else if octets[0] == 0xff {
                octets[1] & 0xf
            } else if octets[0] == 0xfe && octets[1] & 0xc0 == 0xc0 {
                SITE
            } else {
                GLOBAL
            }
        }
    }
}

/// The bits two addresses of one family share, counted only within an IPv6 address's first 64.
fn common_prefix(a: IpAddr, b: IpAddr) -> u32 {
    match (a, b) {
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let (a, b) = (u128::from(a) >> 64, u128::from(b) >> 64);
            (a ^ b).leading_zeros().saturating_sub(64).min(64)
        }
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) ^ u32::from(b)).leading_zeros(),
        _ => 0,
    }
}

/// RFC 6724 §6 as Go applies it: `Less` when destination `a` (with its source) is preferred.
fn compare(a: (IpAddr, Option<IpAddr>), b: (IpAddr, Option<IpAddr>)) -> Ordering {
    use Ordering::{Equal, Greater, Less};
    let ((da, sa), (db, sb)) = (a, b);
    // Rule 1: avoid unusable destinations.
    let (sa, sb) = match (sa, sb) {
        (None, None) => return Equal,
        (Some(_), None) => return Less,
        (None, Some(_)) => return Greater,
        (Some(sa), Some(sb)) => (sa, sb),
    };
    let (ada, adb, asa, asb) = (
        attributes(da),
        attributes(db),
        attributes(sa),
        attributes(sb),
    );
    let prefer = |a_wins: bool, b_wins: bool| match (a_wins, b_wins) {
        (true, false) => Some(Less),
        (false, true) => Some(Greater),
        _ => None,
    };
    // Rule 2: prefer matching scope. Rule 5: prefer matching label.
    let rules = [
        prefer(ada.scope == asa.scope, adb.scope == asb.scope),
        prefer(asa.label == ada.label, asb.label == adb.label),
    ];
    if let Some(order) = rules.into_iter().flatten().next() {
        return order;
    }
    // Rule 6: prefer higher precedence. Rule 8: prefer smaller scope.
    let order = adb
        .precedence
        .cmp(&ada.precedence)
        .then(ada.scope.cmp(&adb.scope));
    if order != Equal {
        return order;
    }
    // Rule 9, for IPv6 only (Go leaves IPv4 alone: issues 13283 and 18518).
    if da.is_ipv6() && db.is_ipv6() {
        return common_prefix(sb, db).cmp(&common_prefix(sa, da));
    }
    Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn rfc_6724_prefers_as_go_does() {
        let loopback = ip("127.0.0.1");
        let v6 = ip("::1");
        // Both reachable (loopback): ::1's precedence (50) beats IPv4's (35).
        assert_eq!(
            compare((loopback, Some(loopback)), (v6, Some(v6))),
            Ordering::Greater
        );
        // Without a source a destination goes last.
        assert_eq!(
            compare((v6, None), (loopback, Some(loopback))),
            Ordering::Greater
        );
        // Global IPv6 against a ULA, both from a global source: label and precedence.
        let global = ip("2001:db8::1");
        let source = ip("2001:db8::2");
        let ula = ip("fd00::1");
        assert_eq!(
            compare((global, Some(source)), (ula, Some(source))),
            Ordering::Less
        );
        // IPv4 addresses keep their order (no rule 9 for IPv4).
        let (a, b) = (ip("10.0.0.1"), ip("192.168.0.1"));
        let s = ip("192.168.0.2");
        assert_eq!(compare((a, Some(s)), (b, Some(s))), Ordering::Equal);
    }

    #[test]
    fn scopes_and_prefixes_of_each_kind() {
        assert_eq!(scope(ip("127.0.0.1")), 0x2);
        assert_eq!(scope(ip("fe80::1")), 0x2);
        assert_eq!(scope(ip("fec0::1")), 0x5);
        assert_eq!(scope(ip("ff05::1")), 0x5);
        assert_eq!(scope(ip("8.8.8.8")), 0xe);
        assert_eq!(common_prefix(ip("2001:db8::1"), ip("2001:db8::2")), 64);
        assert_eq!(common_prefix(ip("10.0.0.1"), ip("10.0.0.2")), 30);
        assert_eq!(common_prefix(ip("10.0.0.1"), ip("::1")), 0);
        assert_eq!(attributes(ip("::1")).precedence, 50);
        assert_eq!(attributes(ip("10.0.0.1")).precedence, 35);
        assert_eq!(attributes(ip("fd00::1")).label, 13);
    }
}

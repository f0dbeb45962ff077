//! Which proxy, if any, the sink is reached through: `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY`
//! (upper case first, then lower case) with the rules of Go's `golang.org/x/net/http/httpproxy`,
//! which the Go image uses. The sink is fixed, so this is decided once at start-up. How the
//! connection then goes through the proxy (absolute-form requests for http, a `CONNECT` tunnel
//! for https) is the transport's business.

use std::net::IpAddr;

pub const HTTP_PROXY: &str = "HTTP_PROXY";
pub const HTTPS_PROXY: &str = "HTTPS_PROXY";
pub const NO_PROXY: &str = "NO_PROXY";

use super::env::Env;
use super::url::{
    SinkUrl, go_split_host_port, redact_userinfo, split_host_port, split_userinfo, unescape,
};
use crate::error::Error;

/// The proxy the sink is reached through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// The variable that named it, for messages.
    pub variable: &'static str,
    /// The sink's host (lower case) and port: the one destination that goes through the proxy.
    pub sink_host: String,
    pub sink_port: u16,
    /// Host (bracketed if IPv6) and port to connect to.
    pub host: String,
    pub port: u16,
    /// The proxy URL's userinfo, percent-decoded as Go does: `Proxy-Authorization: Basic`.
    pub userinfo: Option<Vec<u8>>,
    /// The proxy URL as given (`http://` added when it has no scheme), as logs show it: its
    /// userinfo hidden.
    pub shown: String,
}

impl Proxy {
    /// Whether requests to `uri` go through this proxy: those to the sink, nothing else (the
    /// Istio sidecar on loopback goes direct).
    pub fn serves(&self, uri: &ureq::http::Uri) -> bool {
        let (host, port) = super::url::host_port(uri);
        host.eq_ignore_ascii_case(&self.sink_host) && port == self.sink_port
    }

    /// `http://host:port`, for the start-up line: never the credentials.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

/// The proxy for `sink`, from the environment. A proxy URL a person wrote wrongly is an error
/// naming its variable.
pub fn for_sink(sink: &SinkUrl, env: Env) -> Result<Option<Proxy>, Error> {
    let (host, port) = sink.host_port();
    let host = host.to_ascii_lowercase();
    let names = if sink.is_https() {
        [HTTPS_PROXY, "https_proxy"]
    } else {
        [HTTP_PROXY, "http_proxy"]
    };
    let Some((variable, value)) = env.first(&names)? else {
        return Ok(None);
    };
    let no_proxy = env
        .first(&[NO_PROXY, "no_proxy"])?
        .map(|(_, v)| v)
        .unwrap_or_default();
    if !use_proxy(&host, port, &no_proxy) {
        return Ok(None);
    }
    let mut proxy = parse_proxy(variable, &value)?;
    (proxy.sink_host, proxy.sink_port) = (host, port);
    Ok(Some(proxy))
}

/// Go's `useProxy` (golang.org/x/net/http/httpproxy): never for `localhost` or a loopback
/// address (an IPv4-mapped IPv6 one included); not for a host that an entry of `NO_PROXY`
/// matches. An entry is `*`; a CIDR; an IP (IPv6 bare or in brackets), optionally with a port;
/// or a name, optionally with a port: `example.com` is the name and its subdomains, `.example.com`
/// and `*.example.com` its subdomains only. A port is compared as text (`:abc` matches nothing),
/// a `*` anywhere else is a character like any other, and an entry without a host is ignored.
fn use_proxy(host: &str, port: u16, no_proxy: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim()
        .to_ascii_lowercase();
    let ip = host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    if host == "localhost" || ip.is_some_and(|ip| ip.is_loopback()) {
        return false;
    }
    let port = port.to_string();
    for entry in no_proxy.split(',').map(|e| e.trim().to_ascii_lowercase()) {
        if entry.is_empty() {
            continue;
        }
        if entry == "*" {
            return false;
        }
        if let Some((net, bits)) = cidr(&entry) {
            if ip.is_some_and(|ip| in_cidr(ip, net, bits)) {
                return false;
            }
            continue;
        }
        let (entry_host, entry_port) = match go_split_host_port(&entry) {
            Some(("", _)) => continue,
            Some((h, p)) => (h.trim_start_matches('[').trim_end_matches(']'), p),
            None => (entry.as_str(), ""),
        };
        let port_matches = entry_port.is_empty() || entry_port == port;
        if let Ok(entry_ip) = entry_host.parse::<IpAddr>() {
            if ip == Some(entry_ip.to_canonical()) && port_matches {
                return false;
            }
            continue;
        }
        if entry_host.is_empty() {
            continue;
        }
        // `*.example.com` is `.example.com`; `example.com` also matches itself.
        let entry_host = entry_host
            .strip_prefix('*')
            .filter(|h| h.starts_with('.'))
            .unwrap_or(entry_host);
        let matched = match entry_host.strip_prefix('.') {
            Some(_) => host.ends_with(entry_host),
            None => host == entry_host || host.ends_with(&format!(".{entry_host}")),
        };
        if matched && port_matches {
            return false;
        }
    }
    true
}

/// `ip/bits` as Go's `net.ParseCIDR` takes it.
fn cidr(entry: &str) -> Option<(IpAddr, u32)> {
    let (net, bits) = entry.split_once('/')?;
    let net = net.parse::<IpAddr>().ok()?;
    if bits.is_empty() || !bits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits = bits.parse::<u32>().ok()?;
    let max = if net.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((net, bits))
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u32) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// A proxy URL as Go reads it: a missing scheme means `http://`. Only `http` proxies are
/// supported (an `https` or `socks5` proxy is refused by name rather than bypassed).
fn parse_proxy(variable: &'static str, value: &str) -> Result<Proxy, Error> {
    let with_scheme = if value.contains("://") {
        value.to_owned()
    } else {
        format!("http://{value}")
    };
    let shown = redact_userinfo(&with_scheme).into_owned();
    let refuse = |why: &str| Error::invalid(variable, &shown, why);
    let (without_userinfo, userinfo) = split_userinfo(&with_scheme);
    let (scheme, rest) = without_userinfo
        .split_once("://")
        .unwrap_or(("http", &without_userinfo));
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(refuse("only http:// proxies are supported"));
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let (host, port) = split_host_port(authority);
    let port = match port {
        None | Some("") => 80,
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(refuse("expected a port from 1 to 65535")),
        },
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(refuse("expected http://host:port"));
    }
    let userinfo = match userinfo {
        Some(info) => {
            Some(unescape(info).ok_or_else(|| refuse("the userinfo holds an invalid %-escape"))?)
        }
        None => None,
    };
    Ok(Proxy {
        variable,
        sink_host: String::new(),
        sink_port: 0,
        host: host.to_owned(),
        port,
        userinfo,
        shown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::FakeHost;

    fn proxy_for(sink: &str, vars: &[(&'static str, &str)]) -> Result<Option<Proxy>, Error> {
        let sink = SinkUrl::parse("K_SINK", sink).unwrap();
        for_sink(&sink, Env(&FakeHost::new(vars)))
    }

    #[test]
    fn the_scheme_picks_the_variable_upper_case_first() {
        let vars = [
            ("HTTP_PROXY", "http://up:1"),
            ("http_proxy", "http://low:2"),
            ("https_proxy", "tls:3"),
        ];
        assert_eq!(
            proxy_for("http://sink/", &vars).unwrap().unwrap().host,
            "up"
        );
        let p = proxy_for("https://sink/", &vars).unwrap().unwrap();
        assert_eq!(
            (p.variable, p.host.as_str(), p.port),
            ("https_proxy", "tls", 3)
        );
        assert_eq!(proxy_for("https://sink/", &vars[..2]).unwrap(), None);
    }

    #[test]
    fn loopback_and_localhost_are_never_proxied() {
        let vars = [("HTTP_PROXY", "proxy:3128")];
        for sink in [
            "http://localhost:8080/",
            "http://127.0.0.1/",
            "http://[::1]:9/",
        ] {
            assert_eq!(proxy_for(sink, &vars).unwrap(), None, "{sink}");
        }
        assert!(proxy_for("http://10.0.0.1/", &vars).unwrap().is_some());
    }

    /// The rules of Go's httpproxy, case by case: which hosts a list of every kind of entry
    /// exempts from the proxy (requests on port 80).
    #[test]
    fn no_proxy_matches_as_go_httpproxy_does() {
        let no_proxy = "one.test, .sub.test, *.wild.test, *glob.test, port.test:abc, 10.9.9.1, \
            10.9.9.2:81, 10.9.9.3:80, 10.8.0.0/16, 2001:db8::7, [2001:db8::8]:443, \
            [2001:db8::9]:80, 2001:db9::/32, :1, [broken";
        let cases = [
            // Never through a proxy: localhost and loopback, however written.
            ("localhost", false),
            ("127.0.0.5", false),
            ("[::1]", false),
            ("[::ffff:127.0.0.1]", false),
            ("[::2]", true),
            // IPs, with and without ports, and CIDRs (IPv4-mapped IPv6 included).
            ("10.9.9.1", false),
            ("10.9.9.2", true),
            ("10.9.9.3", false),
            ("10.9.9.4", true),
            ("10.8.3.4", false),
            ("[::ffff:10.8.3.4]", false),
            ("10.7.0.1", true),
            ("[2001:db8::7]", false),
            ("[2001:db8::8]", true),
            ("[2001:db8::9]", false),
            ("[2001:db9::42]", false),
            ("[2001:dba::1]", true),
            // Names: the name and its subdomains; `.` and `*.` subdomains only; a `*` elsewhere
            // is a character; a port that is not 80 (or not a number) matches nothing.
            ("one.test", false),
            ("a.one.test", false),
            ("xone.test", true),
            ("sub.test", true),
            ("a.sub.test", false),
            ("wild.test", true),
            ("a.wild.test", false),
            ("glob.test", true),
            ("aglob.test", true),
            ("port.test", true),
        ];
        for (host, proxied) in cases {
            let sink = format!("http://{host}/");
            let vars = [("HTTP_PROXY", "proxy:3128"), ("NO_PROXY", no_proxy)];
            let got = proxy_for(&sink, &vars).unwrap().is_some();
            assert_eq!(got, proxied, "{host}");
        }
        // An IPv6 entry without brackets covers the host on any port.
        let vars = [("HTTP_PROXY", "proxy:3128"), ("NO_PROXY", "fd00::5")];
        assert_eq!(proxy_for("http://[fd00::5]:8080/", &vars).unwrap(), None);
        // `*` covers everything; names are compared without case.
        for (no_proxy, sink) in [
            ("*", "http://anything/"),
            (" Sink.Local ", "http://sink.local/"),
        ] {
            let vars = [("HTTP_PROXY", "proxy:3128"), ("NO_PROXY", no_proxy)];
            assert_eq!(proxy_for(sink, &vars).unwrap(), None, "{no_proxy}");
        }
    }

    #[test]
    fn proxy_credentials_are_decoded_and_never_shown() {
        let vars = [("HTTP_PROXY", "http://al%40ce:p%23ss@proxy:3128")];
        let p = proxy_for("http://sink/", &vars).unwrap().unwrap();
        assert_eq!(p.userinfo.as_deref(), Some(&b"al@ce:p#ss"[..]));
        assert_eq!(p.shown(), "http://***@proxy:3128");
        for bad in [
            "socks5://u:secret@proxy:1080",
            "http://u:secret@proxy:99999",
            "https://u:secret@p",
        ] {
            let vars = [("HTTP_PROXY", bad)];
            let line = proxy_for("http://sink/", &vars).unwrap_err().to_string();
            assert!(line.starts_with("invalid HTTP_PROXY"), "{line}");
            assert!(!line.contains("secret"), "{line}");
        }
    }
}

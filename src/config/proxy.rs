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
use super::url::{SinkUrl, split_host_port, unescape};
use crate::error::Error;
use crate::log::redact_userinfo;

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

/// Go's `useProxy`: never for `localhost` or a loopback address; not for a host `NO_PROXY`
/// matches: `*`, an IP, a CIDR, a host name (with its subdomains; with a leading `.` or `*.`,
/// its subdomains only), each optionally with `:port`.
fn use_proxy(host: &str, port: u16, no_proxy: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ip = bare.parse::<IpAddr>().ok();
    if bare == "localhost" || ip.is_some_and(|ip| ip.is_loopback()) {
        return false;
    }
    for entry in no_proxy.split(',').map(|e| e.trim().to_ascii_lowercase()) {
        if entry.is_empty() {
            continue;
        }
        if entry == "*" {
            return false;
        }
        if let Some((net, bits)) = entry.split_once('/') {
            if let (Some(ip), Some(net), Ok(bits)) = (ip, net.parse::<IpAddr>().ok(), bits.parse())
            {
                if in_cidr(ip, net, bits) {
                    return false;
                }
            }
            continue;
        }
        let (entry_host, entry_port) = split_host_port(&entry);
        let entry_port = entry_port.and_then(|p| p.parse::<u16>().ok());
        if entry_port.is_some_and(|p| p != port) {
            continue;
        }
        let entry_bare = entry_host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(entry_ip) = entry_bare.parse::<IpAddr>() {
            if ip == Some(entry_ip) {
                return false;
            }
            continue;
        }
        let entry_host = entry_host.strip_prefix('*').unwrap_or(entry_host);
        let matched = match entry_host.strip_prefix('.') {
            // `.example.com`: subdomains only.
            Some(_) => host.ends_with(entry_host),
            // `example.com`: itself and its subdomains.
            None => host == entry_host || host.ends_with(&format!(".{entry_host}")),
        };
        if matched {
            return false;
        }
    }
    true
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u32) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
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
    let (scheme, rest) = with_scheme
        .split_once("://")
        .unwrap_or(("http", &with_scheme));
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(refuse("only http:// proxies are supported"));
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let (userinfo, host_port) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let (host, port) = split_host_port(host_port);
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

    #[test]
    fn no_proxy_matches_as_go_httpproxy_does() {
        let cases = [
            ("example.com", "http://example.com/", false),
            ("example.com", "http://a.example.com/", false),
            ("example.com", "http://notexample.com/", true),
            (".example.com", "http://example.com/", true),
            (".example.com", "http://a.example.com/", false),
            ("*.example.com", "http://a.example.com/", false),
            ("*", "http://anything/", false),
            ("example.com:8080", "http://example.com:8080/", false),
            ("example.com:8080", "http://example.com/", true),
            ("10.1.2.3", "http://10.1.2.3/", false),
            ("10.0.0.0/8", "http://10.1.2.3:99/", false),
            ("10.0.0.0/8", "http://11.1.2.3/", true),
            ("fd00::/8", "http://[fd12::1]/", false),
            (" Sink.Local , other", "http://sink.local/", false),
            ("", "http://sink/", true),
        ];
        for (no_proxy, sink, proxied) in cases {
            let vars = [("HTTP_PROXY", "proxy:3128"), ("NO_PROXY", no_proxy)];
            let got = proxy_for(sink, &vars).unwrap().is_some();
            assert_eq!(got, proxied, "NO_PROXY={no_proxy:?} sink={sink}");
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

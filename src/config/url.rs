//! URLs from configuration: the sink, parsed once into the [`SinkUrl`] every layer uses, and the
//! pieces of URL syntax that the sink, proxies and endpoints share: the userinfo as Go's `net/url`
//! splits and decodes it, and `host:port`.

use ureq::http::Uri;

use crate::error::Error;
use crate::log::redact_userinfo;

/// The sink: an absolute http or https URL with a host and a port that fits 16 bits, without
/// its userinfo (kept apart, decoded).
#[derive(Debug, Clone, PartialEq)]
pub struct SinkUrl {
    /// The URL as given, without its userinfo.
    pub url: String,
    /// The URL as logs show it (see [`redact_userinfo`]).
    shown: String,
    /// The same, parsed (a clone is a reference count).
    pub uri: Uri,
    /// The userinfo, percent-decoded (`user:password`), sent as Basic auth.
    pub userinfo: Option<Vec<u8>>,
}

impl SinkUrl {
    /// The sink URL `text` from flag or variable `name`. Anything but an absolute `http`/`https`
    /// URL with a host and a port from 1 to 65535 could never be delivered to; the userinfo is
    /// decoded as Go's `net/url` does (an invalid escape is refused). An error never shows it.
    pub fn parse(name: &str, text: &str) -> Result<SinkUrl, Error> {
        let shown = redact_userinfo(text);
        let refuse = |expected: &str| Error::invalid(name, &shown, expected);
        let expected = "expected an absolute http:// or https:// URL with a host";
        let (url, userinfo) = split_userinfo(text);
        let userinfo = match userinfo {
            Some(info) => Some(
                unescape(info).ok_or_else(|| refuse("the userinfo holds an invalid %-escape"))?,
            ),
            None => None,
        };
        let uri: Uri = url.parse().map_err(|_| refuse(expected))?;
        let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
        let host_ok = uri.host().is_some_and(|h| !h.is_empty());
        if !scheme_ok || !host_ok {
            return Err(refuse(expected));
        }
        // `http` reports no port when it does not fit a u16, and ureq then quietly uses 80 or
        // 443: read the port's text. An empty one (`host:`) is the default, as in Go.
        let authority = uri.authority().map_or("", |a| a.as_str());
        if let (_, Some(port)) = split_host_port(authority) {
            if !port.is_empty() && port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(refuse("expected a port from 1 to 65535"));
            }
        }
        Ok(SinkUrl {
            url,
            shown: shown.into_owned(),
            uri,
            userinfo,
        })
    }

    pub fn is_https(&self) -> bool {
        self.uri.scheme_str() == Some("https")
    }

    /// The host as written (an IPv6 address in brackets) and the port, the scheme's default
    /// when none is given.
    pub fn host_port(&self) -> (&str, u16) {
        host_port(&self.uri)
    }

    /// The URL as logs show it: `***` from `://` to the last `@`.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

/// A URI's host (an IPv6 address in brackets) and port, the scheme's default when it has none.
pub fn host_port(uri: &Uri) -> (&str, u16) {
    let https = uri.scheme_str() == Some("https");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    (uri.host().unwrap_or_default(), port)
}

/// `host:port`, `[v6]:port`, `host`, `[v6]` → (host, the port's text if there is a colon). A
/// bracketed IPv6 address keeps its brackets; the port may be empty or not a number.
pub fn split_host_port(text: &str) -> (&str, Option<&str>) {
    let after_host = text.rfind(']').map_or(0, |i| i + 1);
    match text[after_host..].rfind(':') {
        Some(colon) => (
            &text[..after_host + colon],
            Some(&text[after_host + colon + 1..]),
        ),
        None => (text, None),
    }
}

/// Go's `net.SplitHostPort`: `host:port`, `:port` or `[host]:port` (the port may be any text,
/// empty included) → the host without brackets and the port; `None` where Go returns an error
/// (no port, more than one colon outside brackets, text between `]` and the port's colon).
pub fn go_split_host_port(text: &str) -> Option<(&str, &str)> {
    let (host, port) = text.rsplit_once(':')?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    Some((host, port))
}

/// `scheme://user:pass@host/path` → (`scheme://host/path`, `user:pass`), as Go's `net/url`
/// splits it: the authority ends at the first `/`, `?` or `#`, the userinfo at its last `@`.
pub fn split_userinfo(url: &str) -> (String, Option<&str>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None);
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => (format!("{scheme}://{}", &rest[at + 1..]), Some(&rest[..at])),
        None => (url.to_owned(), None),
    }
}

/// `%XX` escapes decoded, as Go's `net/url` unescapes a userinfo; `None` for a `%` not followed
/// by two hex digits, which Go refuses (the percent-encoding crate alone would keep it).
pub fn unescape(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let escapes_ok = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    escapes_ok.then(|| percent_encoding::percent_decode(bytes).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_split_at_the_last_at_sign_of_the_authority() {
        assert_eq!(
            split_userinfo("https://a@b:c@h:1/x@y"),
            ("https://h:1/x@y".to_owned(), Some("a@b:c"))
        );
        assert_eq!(
            split_userinfo("http://h/a@b"),
            ("http://h/a@b".to_owned(), None)
        );
    }

    #[test]
    fn percent_decoding_refuses_what_go_refuses() {
        assert_eq!(unescape("al%40ce:p%23ss").unwrap(), b"al@ce:p#ss");
        for bad in ["%", "%4", "%zz", "%+1", "a%4"] {
            assert_eq!(unescape(bad), None, "{bad}");
        }
    }

    #[test]
    fn host_and_port_split_around_brackets() {
        assert_eq!(split_host_port("h:80"), ("h", Some("80")));
        assert_eq!(split_host_port("[::1]:9"), ("[::1]", Some("9")));
        assert_eq!(split_host_port("[::1]"), ("[::1]", None));
        assert_eq!(split_host_port("h"), ("h", None));
        assert_eq!(split_host_port(":9092"), ("", Some("9092")));
        assert_eq!(split_host_port("h:"), ("h", Some("")));
    }

    #[test]
    fn go_split_host_port_refuses_what_gos_refuses() {
        assert_eq!(go_split_host_port("h:80"), Some(("h", "80")));
        assert_eq!(go_split_host_port(":9092"), Some(("", "9092")));
        assert_eq!(go_split_host_port("[::1]:9"), Some(("::1", "9")));
        assert_eq!(go_split_host_port("h:"), Some(("h", "")));
        for refused in ["h", "[::1]", "::1:80", "[::1]x:80", "[::1]:80:90"] {
            assert_eq!(go_split_host_port(refused), None, "{refused}");
        }
    }

    #[test]
    fn the_sink_userinfo_is_split_off_and_percent_decoded_as_go_does() {
        let sink = SinkUrl::parse("K_SINK", "https://al%40ce:p%23ss@h:8443/e?q=a@b").unwrap();
        assert_eq!(sink.url, "https://h:8443/e?q=a@b");
        assert_eq!(sink.userinfo.as_deref(), Some(&b"al@ce:p#ss"[..]));
        // An `@` in the query cannot be told from one in a password: the log hides up to it.
        assert_eq!(sink.shown(), "https://***@b");
        assert_eq!(sink.host_port(), ("h", 8443));
        let sink = SinkUrl::parse("--sink", "http://[::1]/").unwrap();
        assert_eq!((sink.host_port(), &sink.userinfo), (("[::1]", 80), &None));
    }
}

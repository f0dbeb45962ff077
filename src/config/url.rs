//! URLs from configuration: the sink, parsed once into the [`SinkUrl`] every layer uses, and the
//! pieces of URL syntax that the sink, proxies and endpoints share: the userinfo as Go's `net/url`
//! splits and decodes it, and `host:port`.

use std::borrow::Cow;

use ureq::http::Uri;

use crate::error::Error;

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
        if let Some(host) = international_host(&url) {
            // Go converts such a name (IDNA's lookup profile); the tables that takes cost more
            // than this whole program's budget allows (README, Differences).
            let how = format!(
                "the host {host:?} is an international name, which is not converted here: write \
                 it in its ASCII form, with xn-- labels (as `idn2 {host}` prints it)"
            );
            return Err(refuse(&how));
        }
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

/// The host of `url` (userinfo already split off) when it is not ASCII.
fn international_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (host, _) = split_host_port(authority);
    (!host.is_ascii()).then_some(host)
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

/// Which end of a URL's userinfo is meant: where Go's `net/url` ends it, or where no message
/// may show anything up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ends {
    /// At the last `@` of the authority, which ends at the first `/`, `?` or `#`: what is
    /// sent (Basic credentials) and where the request goes, as Go parses it.
    AsParsed,
    /// At the last `@` anywhere: a password may hold `/`, `?` or `#`, where a parser ends the
    /// userinfo early and takes the rest for a port, a path or a query. So what a message hides
    /// always covers what was parsed as the userinfo, and whatever may have been one.
    Hidden,
}

/// The userinfo of `url` (the bytes between `://` and the `@` that `ends` says), if any: the
/// one rule for where a URL's credentials stand.
fn userinfo_span(url: &str, ends: Ends) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let rest = &url[start..];
    let searched = match ends {
        Ends::AsParsed => &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())],
        Ends::Hidden => rest,
    };
    let at = searched.rfind('@')?;
    Some((start, start + at))
}

/// `scheme://user:pass@host/path` → (`scheme://host/path`, `user:pass`), as Go's `net/url`
/// splits it ([`Ends::AsParsed`]).
pub fn split_userinfo(url: &str) -> (String, Option<&str>) {
    match userinfo_span(url, Ends::AsParsed) {
        Some((start, end)) => (
            format!("{}{}", &url[..start], &url[end + 1..]),
            Some(&url[start..end]),
        ),
        None => (url.to_owned(), None),
    }
}

/// `https://user:secret@host/` → `https://***@host/`: a URL may carry credentials, which no
/// message shows ([`Ends::Hidden`]: everything between `://` and the last `@` goes).
pub fn redact_userinfo(url: &str) -> Cow<'_, str> {
    match userinfo_span(url, Ends::Hidden) {
        // Cut out where it stands: the same text may also come earlier (`https://s@h`).
        Some((start, end)) => Cow::Owned(format!("{}***{}", &url[..start], &url[end..])),
        None => Cow::Borrowed(url),
    }
}

/// What [`redact_userinfo`] hides, if anything: to take out of text that might quote it.
pub fn userinfo_part(url: &str) -> Option<&str> {
    userinfo_span(url, Ends::Hidden).map(|(start, end)| &url[start..end])
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
    fn an_international_host_is_refused_with_how_to_write_it() {
        let error = SinkUrl::parse("K_SINK", "http://u:secret@bücher.test:8080/x")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("invalid K_SINK"), "{error}");
        assert!(
            error.contains("\"bücher.test\" is an international name"),
            "{error}"
        );
        assert!(
            error.contains("xn--") && !error.contains("secret"),
            "{error}"
        );
        // ASCII (an xn-- form) goes through; a non-ASCII path is not the host's business.
        assert!(SinkUrl::parse("K_SINK", "http://xn--bcher-kva.test:8080/ü").is_ok());
    }

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
    fn credentials_in_a_url_are_not_logged() {
        assert_eq!(redact_userinfo("https://u:p@h:1/x"), "https://***@h:1/x");
        assert_eq!(redact_userinfo("ftp://alice:secret@h"), "ftp://***@h");
        assert_eq!(redact_userinfo("http://h/a"), "http://h/a");
        assert_eq!(redact_userinfo("no scheme@all"), "no scheme@all");
        // Passwords with what ends a userinfo for a parser: all of it goes, to the last `@`.
        for url in [
            "http://u:pa/ss@h:1/x",
            "http://u:pa?ss@h/",
            "http://u:pa#ss@h",
            "http://u:p@a/s?s#@h/",
        ] {
            let shown = redact_userinfo(url);
            assert!(!shown.contains("pa") && !shown.contains("ss"), "{shown}");
            assert!(shown.starts_with("http://***@"), "{shown}");
        }
        // An `@` in a path or query cannot be told from a password's: it is hidden too.
        assert_eq!(redact_userinfo("http://h/a@b"), "http://***@b");
        // What is hidden always covers what Go parses as the userinfo.
        for url in [
            "http://a@b:c@h/x@y",
            "http://h/a@b",
            "https://u:p@h?q@r",
            "x://@h",
        ] {
            if let (_, Some(parsed)) = split_userinfo(url) {
                assert!(userinfo_part(url).unwrap().contains(parsed), "{url}");
            }
        }
        // A userinfo that also stands in the scheme is cut where it is, not where it first is.
        assert_eq!(redact_userinfo("https://tps@h"), "https://***@h");
        assert_eq!(redact_userinfo("https://s:@h"), "https://***@h");
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

//! A scrape request's head as Go's `net/http` server reads it, routed as knative.dev/pkg's
//! Prometheus server routes it (a `ServeMux` with the one pattern `GET /metrics`): the same
//! statuses for the same bytes (tests/http_oracle.rs replays what Go answered). Only the answer
//! is decided here; [`super::scrape`] reads and writes.

/// What the head asks for, and so what the answer is.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET` or `HEAD` (true) of `/metrics`.
    Metrics { head: bool },
    /// `OPTIONS *`: 200 with no body, as Go's general options handler answers.
    Options,
    /// 307 to this location: the path as Go's mux cleans it, with the query.
    Redirect(String, bool),
    /// 405: another method of `/metrics`.
    NotAllowed,
    /// 404: another path (no body for `HEAD`).
    NotFound(bool),
    /// A head Go refuses before routing: the status line's code and text, and why.
    Refused(&'static str, &'static str),
}

const BAD: &str = "400 Bad Request";

/// The route of a request `head`: complete (up to its empty line), or cut at the size limit.
pub fn route(head: &[u8], complete: bool) -> Route {
    if !complete {
        return Route::Refused("431 Request Header Fields Too Large", "");
    }
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let Some((method, target, version)) = split_request_line(request_line) else {
        return Route::Refused(BAD, "malformed HTTP request");
    };
    if method.is_empty() || !method.iter().all(|&b| is_token(b)) {
        return Route::Refused(BAD, "invalid method");
    }
    let Some((major, minor)) = http_version(version) else {
        return Route::Refused(BAD, "malformed HTTP version");
    };
    if major != 1 {
        return Route::Refused(
            "505 HTTP Version Not Supported",
            "unsupported protocol version",
        );
    }
    // CONNECT's target is an authority (Go reads it as one); it matches no route.
    let authority = method == b"CONNECT" && !target.starts_with(b"/");
    let Some(path_and_query) = request_target(target).or(authority.then_some(&b""[..])) else {
        return Route::Refused(BAD, "invalid request URI");
    };
    if let Err(why) = check_headers(lines, method, minor) {
        return Route::Refused(
            if why == UNSUPPORTED_TE {
                "501 Not Implemented"
            } else {
                BAD
            },
            why,
        );
    }
    let head_only = method == b"HEAD";
    if method == b"OPTIONS" && target == b"*" {
        return Route::Options;
    }
    let (path, query) = match path_and_query.iter().position(|&b| b == b'?') {
        Some(at) => (&path_and_query[..at], &path_and_query[at + 1..]),
        None => (path_and_query, &b""[..]),
    };
    // Go does not clean a CONNECT's path.
    let cleaned = if method == b"CONNECT" {
        path.to_vec()
    } else {
        clean_path(path)
    };
    if cleaned != path {
        let mut location = String::from_utf8_lossy(&cleaned).into_owned();
        if !query.is_empty() {
            location.push('?');
            location.push_str(&String::from_utf8_lossy(query));
        }
        return Route::Redirect(location, head_only);
    }
    if unescape(path).as_deref() != Some(&b"/metrics"[..]) {
        return Route::NotFound(head_only);
    }
    match method {
        b"GET" => Route::Metrics { head: false },
        b"HEAD" => Route::Metrics { head: true },
        _ => Route::NotAllowed,
    }
}

/// Go's reason for a transfer coding it does not implement (a 501, not a 400).
const UNSUPPORTED_TE: &str = "unsupported transfer encoding";

/// `METHOD SP TARGET SP VERSION`, split at single spaces as Go splits it.
fn split_request_line(line: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let space = line.iter().position(|&b| b == b' ')?;
    let (method, rest) = (&line[..space], &line[space + 1..]);
    let space = rest.iter().position(|&b| b == b' ')?;
    Some((method, &rest[..space], &rest[space + 1..]))
}

/// Go's `ParseHTTPVersion`: exactly `HTTP/X.Y`, one digit each.
fn http_version(version: &[u8]) -> Option<(u8, u8)> {
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Some((major - b'0', minor - b'0'))
        }
        _ => None,
    }
}

/// The path and query of a request target as Go's `url.ParseRequestURI` takes it: `*`, an
/// origin form (`/…`) or an absolute form (`scheme://authority/…`, whose path may be empty);
/// no control byte, and each `%` starting an escape.
fn request_target(target: &[u8]) -> Option<&[u8]> {
    if target.iter().any(|&b| b < 0x20 || b == 0x7f) || !escapes_are_whole(target) {
        return None;
    }
    if target == b"*" || target.starts_with(b"/") {
        return Some(target);
    }
    let colon = target.iter().position(|&b| b == b':')?;
    let scheme = &target[..colon];
    let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    let rest = target[colon + 1..].strip_prefix(b"//")?;
    if !scheme_ok {
        return None;
    }
    let path = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .map_or(&b""[..], |at| &rest[at..]);
    Some(path)
}

fn escapes_are_whole(text: &[u8]) -> bool {
    let mut at = 0;
    while at < text.len() {
        if text[at] == b'%' {
            let hex = text.get(at + 1..at + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            at += 3;
        } else {
            at += 1;
        }
    }
    true
}

/// The header lines (after the request line, up to the empty one) as Go's `readMIMEHeader`
/// and `readRequest` check them: names are tokens right before their colon, values hold no
/// control byte but tab, a line starting with white space continues the one before (not the
/// first), one valid `Host` (required from HTTP/1.1 on), agreeing decimal `Content-Length`s,
/// and no transfer coding but `chunked`.
fn check_headers<'a>(
    lines: impl Iterator<Item = &'a [u8]>,
    method: &[u8],
    minor: u8,
) -> Result<(), &'static str> {
    let (mut hosts, mut length, mut codings) = (0, None::<&[u8]>, 0);
    let mut first = true;
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if first {
                return Err("malformed MIME header initial line");
            }
            check_value(line)?;
            continue;
        }
        first = false;
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or("missing colon")?;
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return Err("invalid header name");
        }
        check_value(value)?;
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            if !value.iter().all(|&b| is_host_byte(b)) {
                return Err("malformed Host header");
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            if length.is_some_and(|l| l != value) {
                return Err("multiple Content-Length headers");
            }
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return Err("bad Content-Length");
            }
            length = Some(value);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            codings += 1;
            if codings > 1 || !value.eq_ignore_ascii_case(b"chunked") {
                return Err(UNSUPPORTED_TE);
            }
        }
    }
    if hosts > 1 {
        return Err("too many Host headers");
    }
    if hosts == 0 && minor >= 1 && method != b"CONNECT" {
        return Err("missing required Host header");
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<(), &'static str> {
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err("invalid header value");
    }
    Ok(())
}

fn trim(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|&b| b != b' ' && b != b'\t');
    let end = value.iter().rposition(|&b| b != b' ' && b != b'\t');
    match (start, end) {
        (Some(start), Some(end)) => &value[start..=end],
        _ => &[],
    }
}

/// RFC 9110's tchar.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// What Go's `httpguts.ValidHostHeader` lets through.
fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!$%&'()*+,-.:;=[]_~".contains(&b)
}

/// Go's mux `cleanPath`: a leading `/`, `.` and `..` segments and repeated slashes resolved as
/// `path.Clean` does, a trailing slash kept.
fn clean_path(path: &[u8]) -> Vec<u8> {
    if path.is_empty() {
        return b"/".to_vec();
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    for segment in path.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut cleaned = Vec::with_capacity(path.len() + 1);
    for segment in &segments {
        cleaned.push(b'/');
        cleaned.extend_from_slice(segment);
    }
    if cleaned.is_empty() || path.ends_with(b"/") {
        cleaned.push(b'/');
    }
    cleaned
}

/// The path with its escapes decoded; `None` when one is broken.
fn unescape(path: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(path.len());
    let mut at = 0;
    while at < path.len() {
        if path[at] == b'%' {
            let hex = std::str::from_utf8(path.get(at + 1..at + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            at += 3;
        } else {
            out.push(path[at]);
            at += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(head: &str) -> Route {
        route(head.as_bytes(), true)
    }

    #[test]
    fn paths_are_cleaned_and_routed_as_gos_mux_does() {
        assert_eq!(clean_path(b"//metrics"), b"/metrics");
        assert_eq!(clean_path(b"/a/../metrics/"), b"/metrics/");
        assert_eq!(clean_path(b"/.."), b"/");
        assert_eq!(clean_path(b""), b"/");
        assert_eq!(
            of("GET /./metrics?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"),
            Route::Redirect("/metrics?x=1".into(), false)
        );
        assert_eq!(
            of("GET http://h HTTP/1.1\r\nHost: h\r\n\r\n"),
            Route::Redirect("/".into(), false)
        );
        assert_eq!(
            of("HEAD /metric%73 HTTP/1.0\r\n\r\n"),
            Route::Metrics { head: true }
        );
        assert_eq!(
            of("GET /metrics#x HTTP/1.1\r\nHost: h\r\n\r\n"),
            Route::NotFound(false)
        );
        assert_eq!(of("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), Route::Options);
    }

    #[test]
    fn heads_go_refuses_are_refused_with_its_status() {
        let code = |head: &str| match of(head) {
            Route::Refused(status, _) => &status[..3],
            _ => "ok",
        };
        assert_eq!(
            code("GET /metrics HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n"),
            "ok"
        );
        assert_eq!(
            code("GET /metrics HTTP/1.1\r\n X: a\r\nHost: h\r\n\r\n"),
            "400"
        );
        assert_eq!(
            code("GET /metrics HTTP/1.1\r\nHost: h\r\nX:\x01\r\n\r\n"),
            "400"
        );
        assert_eq!(code("GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n"), "400");
        assert_eq!(
            code(
                "GET /metrics HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\n"
            ),
            "ok"
        );
        assert_eq!(
            code(
                "GET /metrics HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
            ),
            "501"
        );
        assert_eq!(code("GET /metrics HTTP/0.9\r\n\r\n"), "505");
        assert_eq!(code("GET /metrics HTTP/1.10\r\n\r\n"), "400");
        assert_eq!(of("CONNECT h:1 HTTP/1.1\r\n\r\n"), Route::NotFound(false));
    }
}

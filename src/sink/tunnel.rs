//! Through an http proxy, as Go's transport goes: a plain-http request in absolute form (RFC
//! 9112 §3.2.2) with `Proxy-Authorization`, an https one inside a `CONNECT` tunnel (RFC 9110
//! §9.3.6). Neither is ureq's: ureq 3.5 sends plain-http requests through `CONNECT` too, and
//! reports a `CONNECT` answer it cannot parse as a silent proxy.

use ureq::http::Uri;

use super::credentials;
use crate::config::proxy::Proxy;
use crate::config::url::host_port;
use crate::log::Bounded;

/// The longest `CONNECT` answer head read.
const MAX_CONNECT_HEAD: usize = 8 * 1024;

/// Rewrites each request's first line for an http proxy: the target in absolute form, and
/// `Proxy-Authorization` after it when the proxy URL had credentials. Requests pass through in
/// pieces as ureq writes them; only the request line is held until it is whole.
#[derive(Debug)]
pub struct AbsoluteForm {
    /// `http://host:port`, put before the origin-form target.
    origin: String,
    /// `proxy-authorization: Basic …\r\n`, or empty.
    authorization: String,
    /// The request line so far, while it is not complete; `None` once it was rewritten.
    line: Option<Vec<u8>>,
}

impl AbsoluteForm {
    pub fn new(uri: &Uri, proxy: &Proxy) -> AbsoluteForm {
        let (host, port) = host_port(uri);
        AbsoluteForm {
            origin: format!("http://{host}:{port}"),
            authorization: proxy
                .userinfo
                .as_ref()
                .map_or_else(String::new, |userinfo| {
                    format!("proxy-authorization: {}\r\n", credentials::basic(userinfo))
                }),
            line: Some(Vec::new()),
        }
    }

    /// A new request begins with the next bytes.
    pub fn next_request(&mut self) {
        self.line = Some(Vec::new());
    }

    /// Appends `bytes` of the request to `out`, the request line rewritten once it is whole.
    /// A line that is not `METHOD /target HTTP/1.1` is left as it is.
    pub fn write(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let Some(line) = &mut self.line else {
            out.extend_from_slice(bytes);
            return;
        };
        let Some(end) = memchr::memchr(b'\n', bytes) else {
            line.extend_from_slice(bytes);
            return;
        };
        line.extend_from_slice(&bytes[..=end]);
        let line = self.line.take().unwrap_or_default();
        let text = line.strip_suffix(b"\r\n").unwrap_or(&line);
        let space = text.iter().position(|&b| b == b' ');
        match space {
            Some(space)
                if space > 0
                    && text[..space].iter().all(u8::is_ascii_uppercase)
                    && text.get(space + 1) == Some(&b'/')
                    && text.ends_with(b" HTTP/1.1") =>
            {
                out.extend_from_slice(&text[..=space]);
                out.extend_from_slice(self.origin.as_bytes());
                out.extend_from_slice(&text[space + 1..]);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(self.authorization.as_bytes());
            }
            _ => out.extend_from_slice(&line),
        }
        out.extend_from_slice(&bytes[end + 1..]);
    }
}

/// The `CONNECT` request for a tunnel to `uri`'s host and port through `proxy`.
pub fn connect_request(uri: &Uri, proxy: &Proxy) -> Vec<u8> {
    let (host, port) = host_port(uri);
    let authorization = proxy
        .userinfo
        .as_ref()
        .map_or_else(String::new, |userinfo| {
            format!("Proxy-Authorization: {}\r\n", credentials::basic(userinfo))
        });
    format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n{authorization}\r\n")
        .into_bytes()
}

/// What `head` (the proxy's answer so far) says: `Ok(Some(n))` the tunnel is open and its
/// first `n` bytes were the answer; `Ok(None)` more is needed; `Err` the proxy refused, or
/// answered something that is not an HTTP head, or one too long.
pub fn connect_answer(head: &[u8], proxy: &Proxy) -> Result<Option<usize>, ureq::Error> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(len)) if response.code == Some(200) => Ok(Some(len)),
        Ok(httparse::Status::Complete(_)) => {
            let version = response.version.unwrap_or(1);
            let code = response.code.unwrap_or_default();
            let reason = response.reason.unwrap_or_default();
            let answer = format!("HTTP/1.{version} {code} {reason}");
            Err(proxy_failed(
                proxy,
                &format!("answered CONNECT with {}", Bounded(&answer, 80)),
            ))
        }
        Ok(httparse::Status::Partial) if head.len() > MAX_CONNECT_HEAD => Err(proxy_failed(
            proxy,
            &format!("answered CONNECT with a head over {MAX_CONNECT_HEAD} bytes"),
        )),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(error) => Err(proxy_failed(
            proxy,
            &format!("answered CONNECT with something that is not HTTP ({error})"),
        )),
    }
}

/// A failure of the proxy, named as such.
pub fn proxy_failed(proxy: &Proxy, what: &str) -> ureq::Error {
    ureq::Error::ConnectProxyFailed(format!("proxy {} {what}", proxy.shown()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(userinfo: Option<&[u8]>) -> Proxy {
        Proxy {
            variable: "HTTP_PROXY",
            sink_host: "sink".into(),
            sink_port: 80,
            host: "proxy".into(),
            port: 3128,
            userinfo: userinfo.map(<[u8]>::to_vec),
            shown: "http://proxy:3128".into(),
        }
    }

    #[test]
    fn the_request_line_is_rewritten_however_the_request_is_cut() {
        let uri: Uri = "http://sink:8080/e?x=1".parse().unwrap();
        let request = b"POST /e?x=1 HTTP/1.1\r\nhost: sink:8080\r\n\r\nbody";
        let expected = b"POST http://sink:8080/e?x=1 HTTP/1.1\r\n\
            proxy-authorization: Basic dTpw\r\nhost: sink:8080\r\n\r\nbody";
        for piece in 1..request.len() {
            let mut form = AbsoluteForm::new(&uri, &proxy(Some(b"u:p")));
            let mut out = Vec::new();
            for _ in 0..2 {
                form.next_request();
                for chunk in request.chunks(piece) {
                    form.write(chunk, &mut out);
                }
                assert_eq!(
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(expected),
                    "{piece}"
                );
                out.clear();
            }
        }
    }

    #[test]
    fn a_connect_answer_opens_the_tunnel_only_on_200_and_says_what_else_came() {
        let p = proxy(None);
        let open = b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03";
        assert_eq!(connect_answer(open, &p).unwrap(), Some(39));
        assert_eq!(connect_answer(b"HTTP/1.1 200 OK\r\n", &p).unwrap(), None);
        let refused = connect_answer(b"HTTP/1.1 407 Auth\r\n\r\n", &p).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "CONNECT proxy failed: proxy http://proxy:3128 answered CONNECT with \"HTTP/1.1 407 Auth\""
        );
        let long = format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(MAX_CONNECT_HEAD));
        let too_long = connect_answer(long.as_bytes(), &p).unwrap_err().to_string();
        assert!(
            too_long.ends_with("answered CONNECT with a head over 8192 bytes"),
            "{too_long}"
        );
        let garbage = connect_answer(b"SSH-2.0-OpenSSH\r\n\r\n", &p)
            .unwrap_err()
            .to_string();
        assert!(garbage.contains("something that is not HTTP"), "{garbage}");
    }

    #[test]
    fn a_line_that_is_not_a_request_line_is_left_alone() {
        let uri: Uri = "http://sink/".parse().unwrap();
        let mut form = AbsoluteForm::new(&uri, &proxy(None));
        form.next_request();
        let mut out = Vec::new();
        form.write(b"weird line\r\nrest", &mut out);
        assert_eq!(out, b"weird line\r\nrest");
    }
}

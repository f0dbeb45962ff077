//! OTLP over gRPC: unary `Export` calls (`TraceService`, `MetricsService`) over HTTP/2, on the
//! one thread. `http://` endpoints speak HTTP/2 in the clear with prior knowledge, `https://` ones
//! TLS with ALPN `h2`. One connection is kept between exports, as Go's `ClientConn` keeps one,
//! and a new one is made after it fails or the collector sends GOAWAY. The answer's status is
//! read as the OTLP specification says: `grpc-status` from the trailers (or a trailers-only
//! answer); the retryable codes are worth trying again later, `RESOURCE_EXHAUSTED` only with a
//! `RetryInfo`, whose delay is then the wait; every other code refuses the batch.

mod h2;
mod hpack;
mod huffman;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;

use super::Links;
use super::protobuf::{Value, fields};
use crate::config::url::split_host_port;
use crate::log::Bounded;

/// The longest `grpc-message` a warning quotes.
const MAX_SHOWN_MESSAGE: usize = 200;
const USER_AGENT: &str = concat!("heartbeats/", env!("CARGO_PKG_VERSION"), " grpc");

/// Why an export call did not go through.
#[derive(Debug)]
pub enum Failure {
    /// A stop signal ended it.
    Stopped,
    /// Worth trying again later: the connection failed, or a retryable status; after this long
    /// when the collector said (RetryInfo).
    Retry(String, Option<Duration>),
    /// The collector refused the batch for good.
    Refused(String),
}

/// Where the collector is, how to reach it, and the connection kept.
pub struct Client {
    host: String,
    port: u16,
    /// `host:port` as `:authority`.
    authority: String,
    /// TLS for `https://`, or why it cannot be had.
    tls: Option<Result<Arc<ClientConfig>, String>>,
    links: Arc<dyn Links>,
    connection: Option<h2::Connection>,
}

impl Client {
    /// A client of the gRPC endpoint `url` (`http://host:port` or `https://host:port`), with
    /// TLS from `tls` for https; it connects at its first call.
    pub fn new(
        url: &str,
        tls: Option<Result<Arc<ClientConfig>, String>>,
        links: Arc<dyn Links>,
    ) -> Client {
        let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
        let (host, port) = split_host_port(authority);
        let https = url.starts_with("https://");
        let port = port
            .and_then(|p| p.parse().ok())
            .unwrap_or(if https { 443 } else { 80 });
        Client {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            authority: authority.to_owned(),
            tls: if https { tls } else { None },
            links,
            connection: None,
        }
    }

    /// Calls `path` (`/opentelemetry.proto.collector.trace.v1.TraceService/Export`) with
    /// `message`, gzip-compressed if asked, sending `headers` too, by `deadline`: the answer's
    /// message.
    pub fn export(
        &mut self,
        path: &str,
        message: &[u8],
        headers: &[(String, String)],
        gzip: bool,
        deadline: Instant,
    ) -> Result<Vec<u8>, Failure> {
        let payload = if gzip {
            super::gzip::compress(message)
        } else {
            message.to_vec()
        };
        let mut body = Vec::with_capacity(payload.len() + 5);
        body.push(u8::from(gzip));
        body.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        body.extend_from_slice(&payload);
        let timeout = deadline
            .saturating_duration_since(Instant::now())
            .as_millis()
            .clamp(1, 99_999_999);
        let timeout = format!("{timeout}m");
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let authority = self.authority.clone();
        let mut request: Vec<(&str, &str)> = vec![
            (":method", "POST"),
            (":scheme", scheme),
            (":path", path),
            (":authority", &authority),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("user-agent", USER_AGENT),
            ("grpc-timeout", &timeout),
        ];
        if gzip {
            request.push(("grpc-encoding", "gzip"));
        }
        for (name, value) in headers {
            if !matches!(
                name.as_str(),
                "te" | "connection" | "content-type" | "user-agent"
            ) && !name.starts_with(':')
            {
                request.push((name, value));
            }
        }
        // A kept connection may have been closed by the collector meanwhile: then once more on
        // a new one.
        let reused = self.connection.as_ref().is_some_and(|c| !c.finished);
        let response = match self.call(&request, &body, deadline) {
            Err(h2::Error::Closed(_)) if reused => {
                self.connection = None;
                self.call(&request, &body, deadline)
            }
            other => other,
        };
        let response = response.map_err(|error| match error {
            h2::Error::Stopped(_) => Failure::Stopped,
            h2::Error::TimedOut => {
                Failure::Retry("no answer in time (DEADLINE_EXCEEDED)".into(), None)
            }
            h2::Error::Closed(why) | h2::Error::Refused(why) => Failure::Retry(why, None),
            h2::Error::Protocol(why) => Failure::Retry(why, None),
        })?;
        answer(&response)
    }

    fn call(
        &mut self,
        request: &[(&str, &str)],
        body: &[u8],
        deadline: Instant,
    ) -> Result<h2::Response, h2::Error> {
        if self.connection.as_ref().is_none_or(|c| c.finished) {
            self.connection = None;
            self.connection = Some(self.connect(deadline)?);
        }
        let connection = self.connection.as_mut().expect("connected just now");
        let result = connection.call(request, body, deadline);
        if connection.finished {
            self.connection = None;
        }
        result
    }

    fn connect(&self, deadline: Instant) -> Result<h2::Connection, h2::Error> {
        let tls = match &self.tls {
            Some(Ok(config)) => {
                let name = ServerName::try_from(self.host.clone()).map_err(|_| {
                    h2::Error::Protocol(format!("{:?} is no TLS server name", self.host))
                })?;
                Some(
                    rustls::ClientConnection::new(config.clone(), name)
                        .map_err(|e| h2::Error::Protocol(format!("TLS: {e}")))?,
                )
            }
            Some(Err(why)) => return Err(h2::Error::Protocol(why.clone())),
            None => None,
        };
        let stream = self
            .links
            .dial(&self.host, self.port, deadline)
            .map_err(|e| match self.links.waiter().stopped() {
                Some(stop) => h2::Error::Stopped(stop),
                None if e.kind() == std::io::ErrorKind::TimedOut => h2::Error::TimedOut,
                None => h2::Error::Closed(format!("connecting to {}: {e}", self.authority)),
            })?;
        let mut io = h2::Io::new(stream, tls, self.links.waiter());
        io.handshake(deadline)?;
        h2::Connection::open(io, deadline)
    }
}

/// The answer's message, or why the call failed, from its headers, body and trailers.
fn answer(response: &h2::Response) -> Result<Vec<u8>, Failure> {
    let field = |fields: &[hpack::Field], name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let status = field(&response.headers, ":status").unwrap_or_default();
    if status != "200" {
        // As gRPC maps HTTP statuses to codes.
        let code = match status.as_str() {
            "400" => 13,
            "401" => 16,
            "403" => 7,
            "404" => 12,
            "429" | "502" | "503" | "504" => 14,
            _ => 2,
        };
        return Err(failure(
            code,
            &format!("HTTP {}", Bounded(&status, 10)),
            None,
        ));
    }
    let content_type = field(&response.headers, "content-type").unwrap_or_default();
    if !content_type.starts_with("application/grpc") {
        return Err(Failure::Refused(format!(
            "the answer is not gRPC (content-type {})",
            Bounded(&content_type, 60)
        )));
    }
    let Some(code) = field(&response.trailers, "grpc-status") else {
        return Err(failure(2, "no grpc-status in the answer", None));
    };
    let code: u32 = code.trim().parse().unwrap_or(2);
    if code != 0 {
        let message = field(&response.trailers, "grpc-message")
            .map(|m| percent_decoded(&m))
            .unwrap_or_default();
        let retry =
            field(&response.trailers, "grpc-status-details-bin").and_then(|d| retry_delay(&d));
        return Err(failure(code, &message, retry));
    }
    let body = &response.body;
    if body.is_empty() {
        return Ok(Vec::new());
    }
    if body.len() < 5 {
        return Err(Failure::Refused("a gRPC message cut short".into()));
    }
    if body[0] != 0 {
        return Err(Failure::Refused(
            "a compressed message, which was not asked for".into(),
        ));
    }
    let length = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    body.get(5..5 + length)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| Failure::Refused("a gRPC message cut short".into()))
}

/// The failure a non-OK status `code` means (OTLP's retryable codes), with `message`.
fn failure(code: u32, message: &str, retry: Option<Duration>) -> Failure {
    let name = match code {
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "an unknown code",
    };
    let reason = if message.is_empty() {
        format!("gRPC {name} ({code})")
    } else {
        format!(
            "gRPC {name} ({code}): {}",
            Bounded(message, MAX_SHOWN_MESSAGE)
        )
    };
    match code {
        1 | 4 | 10 | 11 | 14 | 15 => Failure::Retry(reason, None),
        8 if retry.is_some() => Failure::Retry(reason, retry),
        _ => Failure::Refused(reason),
    }
}

/// `grpc-message`'s percent-encoding undone (invalid escapes kept as they are).
fn percent_decoded(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// The delay of a `google.rpc.RetryInfo` in `grpc-status-details-bin` (a base64
/// `google.rpc.Status`, its `details` a list of `Any`).
fn retry_delay(details: &str) -> Option<Duration> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let status = engine.decode(details.trim()).ok()?;
    for (number, value) in fields(&status)? {
        let (3, Value::Bytes(any)) = (number, value) else {
            continue;
        };
        let any = fields(any)?;
        let type_url = any.iter().find_map(|(n, v)| match (n, v) {
            (1, Value::Bytes(url)) => Some(*url),
            _ => None,
        })?;
        if !type_url.ends_with(b"google.rpc.RetryInfo") {
            continue;
        }
        let info = any.iter().find_map(|(n, v)| match (n, v) {
            (2, Value::Bytes(info)) => Some(*info),
            _ => None,
        })?;
        for (number, value) in fields(info)? {
            let (1, Value::Bytes(duration)) = (number, value) else {
                continue;
            };
            let (mut seconds, mut nanos) = (0, 0);
            for (number, value) in fields(duration)? {
                match (number, value) {
                    (1, Value::Varint(s)) => seconds = s,
                    (2, Value::Varint(n)) => nanos = n as u32,
                    _ => {}
                }
            }
            return Some(Duration::new(seconds, nanos.min(999_999_999)));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::protobuf::Message;

    #[test]
    fn statuses_are_retried_or_refused_as_otlp_says() {
        for code in [1, 4, 10, 11, 14, 15] {
            assert!(
                matches!(failure(code, "", None), Failure::Retry(..)),
                "{code}"
            );
        }
        for code in [2, 3, 5, 7, 8, 9, 12, 13, 16] {
            assert!(
                matches!(failure(code, "", None), Failure::Refused(_)),
                "{code}"
            );
        }
        let retry = failure(8, "slow down", Some(Duration::from_secs(3)));
        assert!(
            matches!(retry, Failure::Retry(reason, Some(d)) if d == Duration::from_secs(3) && reason.contains("slow down"))
        );
    }

    #[test]
    fn a_retry_info_gives_its_delay() {
        let mut duration = Message::new();
        duration.uint(1, 2).uint(2, 500_000_000);
        let mut info = Message::new();
        info.bytes(1, &duration.into_bytes());
        let mut any = Message::new();
        any.string(1, "type.googleapis.com/google.rpc.RetryInfo")
            .bytes(2, &info.into_bytes());
        let mut status = Message::new();
        status
            .uint(1, 8)
            .string(2, "busy")
            .bytes(3, &any.into_bytes());
        let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(status.into_bytes());
        assert_eq!(retry_delay(&encoded), Some(Duration::from_millis(2500)));
        assert_eq!(retry_delay("not base64!"), None);
    }
}

//! Delivery of one event to the sink: the ureq agent (keep-alive pool, per-attempt timeout, no
//! redirects, our TLS connector and a resolver that keeps to one thread), the OIDC token, and
//! the retry policy of sdk-go with what users need beyond it (jitter, `Retry-After`, a deadline,
//! no retry of certificate failures).

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ureq::unversioned::transport::Connector;
use ureq::{Agent, Body};

use crate::config::Config;
use crate::error::Error;
use crate::event::{Event, Template};
use crate::metrics::ErrorType;
use crate::observer::Observer;
use crate::sys::Stop;
use crate::tls;
use crate::token::{Token, TokenFile};
use crate::transport::{ConnectorResolves, TcpConnector, system_lookup};
use ureq::http::{HeaderName, HeaderValue, Method, Request, Uri};

/// Retries after the first attempt, as sdk-go: 11 attempts in all.
pub const MAX_RETRIES: u32 = 10;
/// The first retry's wait; each later one doubles it (40 ms … 20.48 s).
pub const FIRST_BACKOFF: Duration = Duration::from_millis(40);
/// The longest a `Retry-After` may make us wait: the last backoff step.
pub const MAX_RETRY_AFTER: Duration = Duration::from_millis(20_480);
/// Statuses retried by sdk-go's default policy.
pub const RETRIED_STATUSES: [u16; 7] = [404, 413, 425, 429, 502, 503, 504];
/// Istio's sidecar shutdown endpoint; an IP literal, since a scratch image has no `/etc/hosts`.
pub const ISTIO_QUIT_URL: &str = "http://127.0.0.1:15020/quitquitquit";
/// How much of a response body is read to keep the connection; a longer one closes it.
const MAX_DRAINED_BODY: u64 = 64 * 1024;
/// Idle keep-alive connections are kept this long, as Go's `http.Transport`.
const MAX_IDLE: Duration = Duration::from_secs(90);
/// The most characters of a `Location` a log line shows: the sink controls it.
const MAX_SHOWN_LOCATION: usize = 200;
/// The export agent's input and output buffers.
const EXPORT_BUFFER: usize = 16 * 1024;
/// Headers a request carries besides the extensions: ours, the token, `traceparent`, ureq's.
const HEADER_ROOM: usize = 16;
const USER_AGENT: &str = concat!("heartbeats/", env!("CARGO_PKG_VERSION"));

/// How the delivery of one event ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// A 2xx after `attempts` attempts.
    Acked { status: u16, attempts: u32 },
    /// Given up after `attempts` attempts; `reason` says why, for the log.
    Failed { reason: String, attempts: u32 },
    /// This stop signal arrived while waiting to retry.
    Stopped(Stop),
}

/// One attempt's result.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Ack(u16),
    /// Worth another attempt, after at least `retry_after` when the sink asked for it.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    Fatal(String),
}

/// Sends events to the sink over one keep-alive agent.
pub struct Sender {
    agent: Agent,
    /// K_SINK as parsed when configured (a clone is a reference count).
    sink: Uri,
    /// `Authorization: Basic …` from the sink URL's userinfo; a token takes its place.
    basic_auth: Option<HeaderValue>,
    token: std::cell::RefCell<TokenFile>,
    tls: Arc<rustls::ClientConfig>,
    /// The template's fixed headers, parsed once: a clone is a reference count, where parsing
    /// them again on every beat cost an allocation each and a tenth of a beat's instructions.
    fixed_headers: Vec<(HeaderName, HeaderValue)>,
}

impl Sender {
    /// The agent for `config` sending `template`'s events; fails on unusable CA certificates,
    /// before anything is sent.
    pub fn new(config: &Config, template: &Template) -> Result<Self, Error> {
        let mut fixed_headers = Vec::new();
        for (name, value) in template.fixed_headers() {
            // Validated when configured (overrides, source, type): a failure here is a bug.
            let parsed = HeaderName::try_from(name)
                .ok()
                .zip(HeaderValue::try_from(value).ok())
                .ok_or_else(|| Error::invalid(name, value, "not a valid HTTP header"))?;
            fixed_headers.push(parsed);
        }
        let mut trust = tls::TrustSources {
            extra: config
                .ca_certs
                .as_ref()
                .map(|ca| (ca.name.as_str(), ca.value.as_str())),
            bundle_dir: &config.trust_bundle_dir,
            cert_file: config.ssl_cert_file.as_deref(),
            cert_dirs: &config.ssl_cert_dirs,
        };
        let (tls, warnings) = match tls::client_config(trust, &config.tls) {
            // CA material only matters for https: for an http sink a bad one is a warning.
            Err(error) if !config.sink.starts_with("https:") && trust.extra.is_some() => {
                crate::log::line(format_args!(
                    "warning: {error}; ignored, since the sink is plain http"
                ));
                trust.extra = None;
                tls::client_config(trust, &config.tls)?
            }
            result => result?,
        };
        for warning in warnings {
            crate::log::line(format_args!("warning: {warning}"));
        }
        let settings = Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .max_idle_age(MAX_IDLE)
            // As much head as the input buffer holds: twice ureq's default (Go takes 10 MB).
            .max_response_header_size(crate::head::MAX_HEAD);
        // "Basic " and base64: always a valid value.
        let basic_auth = match config.sink_userinfo.as_deref() {
            Some(userinfo) => Some(
                HeaderValue::try_from(crate::userinfo::basic_auth(userinfo))
                    .map_err(|_| Error::unusable("K_SINK", "userinfo: not a header value"))?,
            ),
            None => None,
        };
        Ok(Sender {
            agent: agent(settings, config.proxy.clone().map(Arc::new), &tls),
            sink: config.sink_uri.clone(),
            basic_auth,
            token: std::cell::RefCell::new(TokenFile::new(config.token_file.clone())),
            tls,
            fixed_headers,
        })
    }

    /// An agent for telemetry exports: the sink's TLS trust, no proxy, no pool kept long.
    pub fn export_agent(&self) -> Agent {
        // A collector's answer is small: buffers of 16 KiB, not the sink agent's 128 KiB.
        let settings = Agent::config_builder()
            .input_buffer_size(EXPORT_BUFFER)
            .output_buffer_size(EXPORT_BUFFER)
            .max_response_header_size(EXPORT_BUFFER);
        agent(settings, None, &self.tls)
    }

    /// Sends `event`, retrying as sdk-go does until acknowledged, out of retries, or `give_up_at`
    /// (when the next beat is due) would pass before the next attempt.
    pub fn deliver(
        &self,
        event: &Event,
        give_up_at: Option<Instant>,
        observer: &mut Observer,
    ) -> Delivery {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (reason, retry_after) = match self.attempt(event, observer) {
                Attempt::Ack(status) => return Delivery::Acked { status, attempts },
                Attempt::Fatal(reason) => return Delivery::Failed { reason, attempts },
                Attempt::Retry {
                    reason,
                    retry_after,
                } => (reason, retry_after),
            };
            if attempts > MAX_RETRIES {
                let reason = format!("{reason}; gave up after {MAX_RETRIES} retries");
                return Delivery::Failed { reason, attempts };
            }
            let wait = backoff(attempts, jitter(), retry_after);
            let retry_at = Instant::now() + wait;
            if give_up_at.is_some_and(|end| retry_at > end) {
                let reason = format!("{reason}; gave up: the next beat is due");
                return Delivery::Failed { reason, attempts };
            }
            match observer.sleep_until(Some(retry_at)) {
                Ok(None) => {}
                Ok(Some(signal)) => return Delivery::Stopped(signal),
                Err(e) => {
                    return Delivery::Failed {
                        reason: format!("{reason}; cannot wait to retry: {e}"),
                        attempts,
                    };
                }
            }
        }
    }

    fn attempt(&self, event: &Event, observer: &mut Observer) -> Attempt {
        // An http::Request filled in place and handed to the agent whole: ureq's request
        // builder moves itself through every `.header()` call.
        let mut request = Request::new(&event.body[..]);
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.sink.clone();
        let headers = request.headers_mut();
        // Room for every header at once: growing the map allocates and frees a size class per
        // beat, which musl's allocator answers with an mmap and a munmap.
        headers.reserve(HEADER_ROOM);
        for (name, value) in event.headers() {
            let Ok(value) = HeaderValue::from_str(value) else {
                return Attempt::Fatal(format!("{name}: not a valid HTTP header value"));
            };
            headers.append(HeaderName::from_static(name), value);
        }
        for (name, value) in &self.fixed_headers {
            headers.append(name.clone(), value.clone());
        }
        if let Some(traceparent) = observer.start_attempt() {
            // Owned, so the value is not copied; the name is static, so it is not parsed.
            if let Ok(value) = HeaderValue::try_from(traceparent) {
                headers.append(HeaderName::from_static("traceparent"), value);
            }
        }
        let authorization = match self.token.borrow_mut().read() {
            // Visible ASCII only (see the token module), so always a valid value.
            Ok(Token::Present(token)) => match HeaderValue::try_from(format!("Bearer {token}")) {
                Ok(value) => Some(value),
                Err(_) => return Attempt::Fatal("the OIDC token is not a header value".to_owned()),
            },
            // As Go's net/http: the URL's userinfo only when no Authorization is set.
            Ok(Token::Absent(_)) => self.basic_auth.clone(),
            Err(reason) => return Attempt::Fatal(reason),
        };
        if let Some(mut value) = authorization {
            value.set_sensitive(true);
            headers.append(ureq::http::header::AUTHORIZATION, value);
        }
        let body = event.body.len();
        match self.agent.run(request) {
            Ok(response) => {
                let (head, response_body) = response.into_parts();
                let status = head.status.as_u16();
                let attempt = classify_status(status, &head.headers, response_body);
                let error = (status >= 400).then_some(ErrorType::Status(status));
                observer.end_attempt(Some(status), error, body);
                attempt
            }
            Err(error) => {
                observer.end_attempt(None, Some(ErrorType::Failure(failure(&error))), body);
                classify_error(&error)
            }
        }
    }

    /// Asks an Istio sidecar to exit, best effort: silent when nothing listens.
    pub fn quit_sidecar(&self) {
        let request = self
            .agent
            .post(ISTIO_QUIT_URL)
            .config()
            .timeout_global(Some(Duration::from_secs(1)))
            .build();
        match request.send_empty() {
            Ok(_) => {}
            Err(ureq::Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(ureq::Error::ConnectionFailed) => {}
            Err(e) => crate::log::line(format_args!(
                "could not reach the Istio sidecar at {ISTIO_QUIT_URL}: {e}"
            )),
        }
    }
}

/// An agent with `settings` and what every agent here shares: a status is an answer, not an
/// error; redirects are not followed; our user agent; our TLS; proxies by our connector (through
/// `proxy`, if any; ureq's own proxy support off).
fn agent(
    settings: ureq::config::ConfigBuilder<ureq::typestate::AgentScope>,
    proxy: Option<Arc<crate::proxy::Proxy>>,
    tls: &Arc<rustls::ClientConfig>,
) -> Agent {
    let config = settings
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(USER_AGENT)
        .proxy(None)
        .build();
    let tcp = TcpConnector {
        proxy,
        lookup: system_lookup,
    };
    let connector = ().chain(tcp).chain(tls::TlsConnector(tls.clone()));
    Agent::with_parts(config, connector, ConnectorResolves)
}

/// 2xx is an ACK; sdk-go's retried statuses are retried (honouring `Retry-After` on 429 and
/// 503); redirects are reported, not followed; anything else fails at once.
fn classify_status(status: u16, headers: &ureq::http::HeaderMap, mut body: Body) -> Attempt {
    // Read the body to the end so the connection goes back to the pool.
    let _ = std::io::copy(
        &mut body.as_reader().take(MAX_DRAINED_BODY),
        &mut std::io::sink(),
    );
    if (200..300).contains(&status) {
        return Attempt::Ack(status);
    }
    let location = headers.get("location").and_then(|v| v.to_str().ok());
    let reason = match location {
        Some(to) if (300..400).contains(&status) => {
            let to = crate::log::Bounded(to, MAX_SHOWN_LOCATION);
            format!("HTTP {status} redirect to {to} (not followed)")
        }
        _ => format!("HTTP {status}"),
    };
    if !RETRIED_STATUSES.contains(&status) {
        return Attempt::Fatal(reason);
    }
    let retry_after = match status {
        429 | 503 => headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now())),
        _ => None,
    };
    Attempt::Retry {
        reason,
        retry_after,
    }
}

/// Connection failures and timeouts are retried; a certificate the sink's name or our roots do
/// not accept is not (it will not change in 40 ms), nor is a request we could not build, nor an
/// answer that began but could not be read, nor a request that cannot be written.
fn classify_error(error: &ureq::Error) -> Attempt {
    use ureq::Error as E;
    let tls = match error {
        E::Io(io) => io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    if let Some(tls) = tls {
        return Attempt::Fatal(format!("TLS: {tls}"));
    }
    match error {
        E::BadUri(_) | E::Http(_) | E::Tls(_) | E::TlsRequired => Attempt::Fatal(error.to_string()),
        // A request that cannot be written (it does not fit) fails the same way every time; an
        // answer that began but cannot be parsed may mean the sink took the event, and sending
        // it again could make a duplicate. Go's client reads what we read (see the head module).
        E::Protocol(_) => Attempt::Fatal(format!(
            "{error}; not retried: it would recur, or the sink may already have taken the event"
        )),
        E::LargeResponseHeader(..) => Attempt::Fatal(format!(
            "the sink's answer could not be read ({error}); not retried: the sink may already \
             have taken the event"
        )),
        _ => Attempt::Retry {
            reason: error.to_string(),
            retry_after: None,
        },
    }
}

/// `error.type` of an attempt that got no answer, in OTel's lower_snake style.
fn failure(error: &ureq::Error) -> &'static str {
    use std::io::ErrorKind as K;
    use ureq::Error as E;
    match error {
        E::Timeout(_) => "timeout",
        E::HostNotFound => "host_not_found",
        E::ConnectionFailed => "connection_failed",
        E::Protocol(_) | E::LargeResponseHeader(..) => "protocol",
        E::Io(io) if io.get_ref().is_some_and(|e| e.is::<rustls::Error>()) => "tls",
        E::Io(io) => match io.kind() {
            K::ConnectionRefused => "connection_refused",
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => "connection_reset",
            K::TimedOut | K::WouldBlock => "timeout",
            K::UnexpectedEof => "connection_closed",
            _ => "io",
        },
        _ => "other",
    }
}

/// The wait before retry number `retry` (from 1): 40 ms doubling, scaled by `jitter` (0.8–1.2),
/// replaced by the sink's `Retry-After` when that is longer, up to [`MAX_RETRY_AFTER`].
fn backoff(retry: u32, jitter: f64, retry_after: Option<Duration>) -> Duration {
    let computed = FIRST_BACKOFF.mul_f64(f64::from(1u32 << (retry - 1).min(20)) * jitter);
    match retry_after {
        Some(asked) if asked > computed => asked.min(MAX_RETRY_AFTER),
        _ => computed,
    }
}

/// A factor in [0.8, 1.2): ±20 % jitter, so many sources do not retry in lockstep.
fn jitter() -> f64 {
    let mut b = [0u8; 2];
    // Without randomness, retry unjittered rather than not at all.
    if getrandom::fill(&mut b).is_err() {
        return 1.0;
    }
    0.8 + 0.4 * f64::from(u16::from_le_bytes(b)) / 65_536.0
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds, or an IMF-fixdate relative to `now`.
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = crate::time::parse_imf_fixdate(value)?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_40ms_and_retry_after_only_lengthens_it() {
        let ms = Duration::from_millis;
        assert_eq!(backoff(1, 1.0, None), ms(40));
        assert_eq!(backoff(2, 1.0, None), ms(80));
        assert_eq!(backoff(10, 1.0, None), ms(20_480));
        assert_eq!(backoff(1, 0.8, None), ms(32));
        assert_eq!(backoff(1, 1.2, None), ms(48));
        assert_eq!(backoff(1, 1.0, Some(ms(5))), ms(40));
        assert_eq!(backoff(1, 1.0, Some(ms(3000))), ms(3000));
        assert_eq!(
            backoff(1, 1.0, Some(Duration::from_secs(3600))),
            MAX_RETRY_AFTER
        );
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        for _ in 0..1000 {
            let j = jitter();
            assert!((0.8..1.2).contains(&j), "{j}");
        }
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:40 GMT", now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        for bad in [
            "",
            "-1",
            "soon",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 32 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
    }
}

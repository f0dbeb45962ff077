//! The way to the sink: delivering one event ([`Sender::deliver`]) with sdk-go's retries and what
//! users need beyond them ([`retry`]), over ureq with our own pieces: the agents ([`agent`]), a
//! TCP transport ([`transport`]), TLS ([`tls`]), proxies ([`tunnel`]), the response head
//! ([`head`]), credentials ([`credentials`]) and the OIDC [`token`]. What happened is told
//! through [`crate::report::Report`], and every wait goes through the [`Waiter`].

mod agent;
mod buffers;
mod credentials;
mod date;
mod dead_letter;
mod head;
mod resolve;
mod retry;
mod tls;
mod token;
mod transport;
mod tunnel;

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ureq::Agent;
use ureq::http::{HeaderName, HeaderValue, Method, Request, Uri};

use crate::config::delivery::Retries;
use crate::config::flags::{self, named};
use crate::config::tls::{TlsSettings, Trust};
use crate::config::url::SinkUrl;
use crate::config::{K_SINK, Named, SinkSettings};
use crate::error::Error;
use crate::event::{Event, Template};
use crate::report::{ErrorType, Report, Silent};
use crate::wait::{OnStop, Stop, Waiter};
use agent::Connections;
use buffers::LineRoom;
use dead_letter::Answer;
use resolve::Resolver;
use retry::Attempt;
use rustls::ClientConfig;
use token::{Token, TokenFile};

/// Headers a request carries besides the extensions: ours, the token, `traceparent`, ureq's.
const HEADER_ROOM: usize = 16;

/// The longest line `request`'s head can have as ureq writes it: the request line, `host`, a
/// header (`name: value`), or one of ureq's own (a user agent, a length), with room to spare.
fn longest_line(request: &Request<&[u8]>) -> usize {
    const SPARE: usize = 128;
    let uri = request.uri();
    let target = uri.path_and_query().map_or(1, |p| p.as_str().len());
    let host = uri.authority().map_or(0, |a| a.as_str().len());
    let headers = request.headers().iter();
    let header = headers.map(|(n, v)| n.as_str().len() + v.len()).max();
    target.max(host).max(header.unwrap_or(0)) + SPARE
}

/// How the delivery of one event ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// A 2xx after `attempts` attempts.
    Acked { status: u16, attempts: u32 },
    /// The sink did not take it after `attempts` attempts (`reason` says why); the dead-letter
    /// sink did, answering `status`.
    DeadLettered {
        reason: String,
        attempts: u32,
        status: u16,
    },
    /// Given up after `attempts` attempts; `reason` says why, for the log.
    Failed { reason: String, attempts: u32 },
    /// This stop signal arrived while waiting to retry, after `attempts` attempts.
    Stopped { stop: Stop, attempts: u32 },
}

/// The addresses of `host` (a name, or an IP literal as it is) as a connection to the sink
/// would look them up, within `timeout`: each as text (an IPv6 address's scope after a `%`), in
/// the order a connection tries them.
pub fn lookup(
    names: &crate::config::NameService,
    host: &str,
    waiter: &Waiter,
    timeout: Duration,
) -> Result<Vec<String>, resolve::LookupError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(vec![ip.to_string()]);
    }
    let found = Resolver::new(names.clone()).lookup(waiter, bare, Instant::now() + timeout)?;
    Ok(found
        .into_iter()
        .map(|address| match address {
            std::net::SocketAddr::V6(v6) if v6.scope_id() != 0 => {
                format!("{}%{}", v6.ip(), v6.scope_id())
            }
            other => other.ip().to_string(),
        })
        .collect())
}

/// Where requests go: the sink, or the dead-letter sink.
struct Target {
    /// The URL as configured, without its userinfo (a clone is a reference count).
    uri: Uri,
    /// The same as text, for `knativeerrordest`.
    url: String,
    /// `Authorization: Basic …` from the URL's userinfo; a token takes its place.
    basic_auth: Option<HeaderValue>,
}

impl Target {
    fn of(url: &SinkUrl, name: &str) -> Result<Target, Error> {
        // "Basic " and base64: always a valid value.
        let basic_auth = match url.userinfo.as_deref() {
            Some(userinfo) => Some(
                HeaderValue::try_from(credentials::basic(userinfo))
                    .map_err(|_| Error::unusable(name, "userinfo: not a header value"))?,
            ),
            None => None,
        };
        Ok(Target {
            uri: url.uri.clone(),
            url: url.url.clone(),
            basic_auth,
        })
    }
}

/// How the attempts at one target ended.
enum Sent {
    Acked {
        status: u16,
        attempts: u32,
    },
    /// With the last answer, if one came.
    Failed {
        reason: String,
        attempts: u32,
        answer: Option<Answer>,
    },
    Stopped {
        stop: Stop,
        attempts: u32,
    },
}

/// Sends events to the sink over one keep-alive agent.
pub struct Sender {
    agent: Agent,
    sink: Target,
    /// `--dead-letter-sink`, where an event goes when its attempts at the sink ran out.
    dead_letter: Option<Target>,
    token: RefCell<TokenFile>,
    /// How many retries, and the waits before them.
    retries: Retries,
    /// The TLS client configuration: built at start for an https sink, else only when https
    /// exports ask for it ([`Sender::export_agent`]); an http sink alone never reads a
    /// certificate file.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// What the TLS configuration is built from, kept for the exports.
    trust: Trust,
    tls_settings: TlsSettings,
    resolver: Resolver,
    /// The template's fixed headers, parsed once: a clone is a reference count, where parsing
    /// them on every beat would allocate for each.
    fixed_headers: Vec<(HeaderName, HeaderValue)>,
    /// The longest line of the request about to go out: its connection's output buffer.
    room: LineRoom,
    waiter: Arc<Waiter>,
    /// Istio's sidecar shutdown endpoint; an IP literal, since a scratch image has no
    /// `/etc/hosts`.
    quit_url: String,
}

impl Sender {
    /// The sender for the `settings`' sink and `template`'s events, waiting through `waiter`;
    /// fails on unusable CA certificates for an https sink, before anything is sent.
    pub fn new(
        settings: &SinkSettings,
        template: &Template,
        waiter: Arc<Waiter>,
    ) -> Result<Self, Error> {
        let mut fixed_headers = Vec::new();
        for (name, value) in template.fixed_headers() {
            // Validated when configured (overrides, source, type): a failure here is a bug.
            let parsed = HeaderName::try_from(name)
                .ok()
                .zip(HeaderValue::try_from(value).ok())
                .ok_or_else(|| Error::invalid(name, value, "not a valid HTTP header"))?;
            fixed_headers.push(parsed);
        }
        let extra = settings.trust.extra.as_ref();
        let dead_letter = settings.dead_letter.as_ref();
        let https = settings.url.is_https() || dead_letter.is_some_and(|d| d.url.is_https());
        let tls = if https {
            Some(client_config(&settings.trust, extra, &settings.tls)?)
        } else {
            // CA material only matters for https: for an http sink, text that holds no usable
            // certificate is a warning (no file is read for it).
            if let Some(Err(error)) = extra.map(tls::check_extra) {
                crate::log::line(format_args!(
                    "warning: {error}; ignored, since the sink is plain http"
                ));
            }
            None
        };
        let sink = Target::of(&settings.url, K_SINK)?;
        let dead_letter = match dead_letter {
            Some(d) => Some(Target::of(&d.url, &named(flags::DEAD_LETTER_SINK))?),
            None => None,
        };
        let resolver = Resolver::new(settings.names.clone());
        let room = LineRoom::new(0);
        let proxies = [
            &settings.proxy,
            &settings.dead_letter.as_ref().and_then(|d| d.proxy.clone()),
        ];
        let connections = Connections {
            proxies: proxies.into_iter().flatten().cloned().collect(),
            resolver: resolver.clone(),
            waiter: waiter.clone(),
            // An exchange with the sink may finish: the event is not left half-sent.
            on_stop: OnStop::Defer,
            room: room.clone(),
        };
        Ok(Sender {
            agent: agent::sink(settings.timeout, connections, tls.clone()),
            sink,
            dead_letter,
            token: RefCell::new(TokenFile::new(settings.token_file.clone())),
            retries: settings.retries.clone(),
            tls,
            trust: settings.trust.clone(),
            tls_settings: settings.tls.clone(),
            resolver,
            fixed_headers,
            room,
            waiter,
            quit_url: format!("http://127.0.0.1:{}/quitquitquit", settings.sidecar_port),
        })
    }

    /// What telemetry's exports need to connect as the sink does.
    pub fn export_links(&self) -> ExportLinks {
        ExportLinks {
            resolver: self.resolver.clone(),
            waiter: self.waiter.clone(),
            tls: self.tls.clone(),
            trust: self.trust.clone(),
            tls_settings: self.tls_settings.clone(),
        }
    }

    /// Sends `event`, retrying as sdk-go does until acknowledged, out of retries, or `give_up_at`
    /// (when the next beat is due) would pass before the next attempt; then, if its attempts ran
    /// out and there is a dead-letter sink, there, with Knative's error extensions and the same
    /// retries. Attempts at the dead-letter sink are not reported: they are not the sink's.
    pub fn deliver(
        &self,
        event: &Event,
        give_up_at: Option<Instant>,
        report: &mut dyn Report,
    ) -> Delivery {
        let (reason, attempts, answer) = match self.send(&self.sink, event, &[], give_up_at, report)
        {
            Sent::Acked { status, attempts } => return Delivery::Acked { status, attempts },
            Sent::Stopped { stop, attempts } => return Delivery::Stopped { stop, attempts },
            Sent::Failed {
                reason,
                attempts,
                answer,
            } => (reason, attempts, answer),
        };
        let Some(dead_letter) = &self.dead_letter else {
            return Delivery::Failed { reason, attempts };
        };
        let extensions = dead_letter::extensions(&self.sink.url, answer.as_ref(), &reason);
        match self.send(dead_letter, event, &extensions, give_up_at, &mut Silent) {
            Sent::Acked { status, .. } => Delivery::DeadLettered {
                reason,
                attempts,
                status,
            },
            Sent::Failed {
                reason: also,
                attempts: tried,
                ..
            } => Delivery::Failed {
                reason: format!("{reason}; the dead-letter sink too: {also}, {tried} attempt(s)"),
                attempts,
            },
            Sent::Stopped { stop, .. } => Delivery::Stopped { stop, attempts },
        }
    }

    /// Sends `event` with `extra` headers to `target` until acknowledged, out of retries, or
    /// `give_up_at` would pass before the next attempt.
    fn send(
        &self,
        target: &Target,
        event: &Event,
        extra: &[(&'static str, String)],
        give_up_at: Option<Instant>,
        report: &mut dyn Report,
    ) -> Sent {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (attempt, answer) = self.attempt(target, event, extra, report);
            if let (Some(stop), false) = (self.waiter.stopped(), matches!(attempt, Attempt::Ack(_)))
            {
                // A lookup or a connect ended by the signal, or an exchange that failed while it
                // waited: stop here rather than retry.
                return Sent::Stopped { stop, attempts };
            }
            let failed = |reason| Sent::Failed {
                reason,
                attempts,
                answer: answer.clone(),
            };
            let (reason, retry_after) = match attempt {
                Attempt::Ack(status) => return Sent::Acked { status, attempts },
                Attempt::Fatal(reason) => return failed(reason),
                Attempt::Retry {
                    reason,
                    retry_after,
                } => (reason, retry_after),
            };
            let retries = self.retries.retries;
            if attempts > retries {
                return failed(format!("{reason}; gave up after {retries} retries"));
            }
            let wait = retry::backoff(&self.retries, attempts, retry::jitter(), retry_after);
            let retry_at = Instant::now() + wait;
            if give_up_at.is_some_and(|end| retry_at > end) {
                return failed(format!("{reason}; gave up: the next beat is due"));
            }
            if let Err(stop) = self.waiter.sleep_until(Some(retry_at)) {
                return Sent::Stopped { stop, attempts };
            }
        }
    }

    /// One attempt at `target`: how it ended, and the answer, when one came that was not a 2xx.
    fn attempt(
        &self,
        target: &Target,
        event: &Event,
        extra: &[(&'static str, String)],
        report: &mut dyn Report,
    ) -> (Attempt, Option<Answer>) {
        // An http::Request filled in place and handed to the agent whole: ureq's request
        // builder moves itself through every `.header()` call.
        let mut request = Request::new(&event.body[..]);
        *request.method_mut() = Method::POST;
        *request.uri_mut() = target.uri.clone();
        let headers = request.headers_mut();
        // Room for every header at once: growing the map allocates and frees a size class per
        // beat, which musl's allocator answers with an mmap and a munmap.
        headers.reserve(HEADER_ROOM);
        for (name, value) in event
            .headers()
            .chain(extra.iter().map(|(n, v)| (*n, v.as_str())))
        {
            let Ok(value) = HeaderValue::from_str(value) else {
                let reason = format!("{name}: not a valid HTTP header value");
                return (Attempt::Fatal(reason), None);
            };
            headers.append(HeaderName::from_static(name), value);
        }
        for (name, value) in &self.fixed_headers {
            // An extension the extra headers set is theirs (a dead letter's `knativeerror*`).
            if extra.iter().all(|(n, _)| *n != name.as_str()) {
                headers.append(name.clone(), value.clone());
            }
        }
        if let Some(traceparent) = report.start_attempt() {
            // Owned, so the value is not copied; the name is static, so it is not parsed.
            if let Ok(value) = HeaderValue::try_from(traceparent) {
                headers.append(HeaderName::from_static("traceparent"), value);
            }
        }
        let authorization = match self.token.borrow_mut().read() {
            // Visible ASCII only (see the token module), so always a valid value.
            Ok(Token::Present(token)) => match HeaderValue::try_from(format!("Bearer {token}")) {
                Ok(value) => Some(value),
                Err(_) => {
                    let reason = "the OIDC token is not a header value".to_owned();
                    return (Attempt::Fatal(reason), None);
                }
            },
            // As Go's net/http: the URL's userinfo only when no Authorization is set.
            Ok(Token::Absent(_)) => target.basic_auth.clone(),
            Err(reason) => return (Attempt::Fatal(reason), None),
        };
        if let Some(mut value) = authorization {
            value.set_sensitive(true);
            headers.append(ureq::http::header::AUTHORIZATION, value);
        }
        self.room.set(longest_line(&request));
        let body = event.body.len();
        match self.agent.run(request) {
            Ok(response) => {
                let (head, response_body) = response.into_parts();
                let status = head.status.as_u16();
                let (attempt, start) = retry::classify_status(status, &head.headers, response_body);
                let error = (status >= 400).then_some(ErrorType::Status(status));
                report.end_attempt(Some(status), error, body);
                let answer = (!matches!(attempt, Attempt::Ack(_))).then_some(Answer {
                    status,
                    body: start,
                });
                (attempt, answer)
            }
            Err(error) => {
                let failure = ErrorType::Failure(retry::failure(&error));
                report.end_attempt(None, Some(failure), body);
                (retry::classify_error(&error), None)
            }
        }
    }

    /// Asks an Istio sidecar to exit, best effort: silent when nothing listens.
    pub fn quit_sidecar(&self) {
        let request = self
            .agent
            .post(&self.quit_url)
            .config()
            .timeout_global(Some(Duration::from_secs(1)))
            .build();
        match request.send_empty() {
            Ok(_) => {}
            Err(ureq::Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(ureq::Error::ConnectionFailed) => {}
            Err(e) => crate::log::line(format_args!(
                "could not reach the Istio sidecar at {}: {e}",
                self.quit_url
            )),
        }
    }
}

/// The TLS client configuration `trust` (with `extra` for its `K_CA_CERTS`) and `settings`
/// describe; the files of trust that were skipped are logged as warnings.
fn client_config(
    trust: &Trust,
    extra: Option<&Named>,
    settings: &TlsSettings,
) -> Result<Arc<rustls::ClientConfig>, Error> {
    let (tls, warnings) = tls::client_config(trust, extra, settings)?;
    for warning in warnings {
        crate::log::line(format_args!("warning: {warning}"));
    }
    Ok(tls)
}

/// What telemetry's exports need from the way to the sink (see [`Sender::export_links`]): the
/// resolver and waiter, and the sink's TLS trust and settings.
pub struct ExportLinks {
    resolver: Resolver,
    waiter: Arc<Waiter>,
    tls: Option<Arc<ClientConfig>>,
    trust: Trust,
    tls_settings: TlsSettings,
}

impl ExportLinks {
    /// A TCP connection to `host:port` by `deadline`, as the sink's are made, every wait
    /// ended by a stop signal.
    pub fn dial(
        &self,
        host: &str,
        port: u16,
        deadline: Instant,
    ) -> std::io::Result<std::net::TcpStream> {
        let dialer = transport::Dialer {
            resolver: self.resolver.clone(),
            waiter: self.waiter.clone(),
        };
        dialer.dial(host, port, deadline)
    }

    pub fn waiter(&self) -> Arc<Waiter> {
        self.waiter.clone()
    }

    /// The TLS configuration of exports to a collector with `tls` files, offering `alpn`: the
    /// sink's trust unless they name CAs of their own (see [`tls::export_config`]).
    pub fn export_tls(
        &self,
        export: &crate::config::observability::ExportTls,
        alpn: &[&[u8]],
    ) -> Result<Arc<ClientConfig>, String> {
        // K_CA_CERTS was checked at start: what was a warning then is left out now.
        let extra = self
            .trust
            .extra
            .as_ref()
            .filter(|e| tls::check_extra(e).is_ok());
        let base = match &self.tls {
            Some(tls) => tls.clone(),
            None => {
                client_config(&self.trust, extra, &self.tls_settings).map_err(|e| e.to_string())?
            }
        };
        tls::export_config(
            &base,
            (&self.trust, extra),
            export,
            &self.tls_settings,
            alpn,
        )
    }

    /// An agent for telemetry's exports: no proxy, every wait ended by a stop signal, and, when
    /// an export goes to an `https` collector, the sink's TLS trust (built now if the sink is
    /// plain http, with its warnings) or the collector's own files.
    pub fn export_agent(
        &self,
        https: bool,
        export: &crate::config::observability::ExportTls,
    ) -> Agent {
        let connections = Connections {
            proxies: Vec::new(),
            resolver: self.resolver.clone(),
            waiter: self.waiter.clone(),
            on_stop: OnStop::End,
            room: LineRoom::new(0),
        };
        if !https {
            return agent::export(connections, None);
        }
        let tls = match self.export_tls(export, &[]) {
            Ok(tls) => Some(tls),
            Err(error) => {
                crate::log::line(format_args!(
                    "warning: {error}; exports to https collectors will fail"
                ));
                None
            }
        };
        agent::export(connections, tls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::sinked;
    use crate::event::{Fire, Ids};
    use crate::report::{Outcome, Silent};
    use crate::testing::{Answer, Memory, status};
    use std::time::{Duration, SystemTime};

    /// A sender for `args` (beside `--sink`) whose requests go to `memory`, and an event to send.
    fn sender(args: &[&str], memory: &Memory) -> (Sender, Event) {
        let config = sinked(args).unwrap();
        let template = Template::new(&config.event);
        let waiter = Arc::new(Waiter::new().unwrap());
        let mut sender = Sender::new(&config.sink, &template, waiter).unwrap();
        sender.agent = memory.agent(agent::sink_config(config.sink.timeout));
        let event = template
            .event(
                1,
                SystemTime::UNIX_EPOCH,
                Fire::default(),
                &mut Ids::default(),
            )
            .unwrap();
        (sender, event)
    }

    /// What a sender told its report, in order.
    #[derive(Default)]
    struct Told(Vec<String>);

    impl Report for Told {
        fn start_event(&mut self, event: &Event) {
            self.0.push(format!("event {}", event.id));
        }
        fn start_attempt(&mut self) -> Option<String> {
            self.0.push("attempt".into());
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into())
        }
        fn end_attempt(&mut self, status: Option<u16>, error: Option<ErrorType>, body: usize) {
            let error = error.map(|e| e.to_string());
            self.0.push(format!("ended {status:?} {error:?} {body}"));
        }
        fn end_event(&mut self, outcome: Outcome) {
            self.0.push(format!("{outcome:?}"));
        }
        fn skipped(&mut self, beats: u64) {
            self.0.push(format!("skipped {beats}"));
        }
    }

    #[test]
    fn an_event_goes_out_as_one_post_with_every_header_once_in_order() {
        let memory = Memory::new([]);
        let (sender, event) = sender(&["--sink=http://al%40ce:pw@sink.test/e?q=1"], &memory);
        let mut told = Told::default();
        let delivery = sender.deliver(&event, None, &mut told);
        assert_eq!(
            delivery,
            Delivery::Acked {
                status: 200,
                attempts: 1
            }
        );
        let head = memory.head(0).to_ascii_lowercase();
        let names: Vec<&str> = head
            .lines()
            .skip(1)
            .map(|l| l.split_once(':').unwrap().0)
            .collect();
        assert_eq!(
            names,
            [
                "content-length",
                "user-agent",
                "accept",
                "host",
                "ce-specversion",
                "ce-id",
                "ce-time",
                "ce-source",
                "ce-type",
                "ce-the",
                "ce-heart",
                "ce-beats",
                "content-type",
                "traceparent",
                "authorization",
            ],
            "{head}"
        );
        assert!(head.starts_with("post /e?q=1 http/1.1"), "{head}");
        // `al@ce:pw` (decoded), as Go's net/http sends a URL's userinfo.
        assert!(head.contains("authorization: basic ywxay2u6chc="), "{head}");
        assert!(head.contains(&format!("ce-id: {}", event.id)), "{head}");
        assert_eq!(memory.body(0), *event.body);
        assert_eq!(told.0, ["attempt", "ended Some(200) None 19"]);
    }

    #[test]
    fn retried_statuses_and_failures_are_retried_with_the_same_event_until_acknowledged() {
        let memory = Memory::new([
            status(503, &[]),
            Answer::Fail(std::io::ErrorKind::ConnectionReset),
            status(202, &[]),
        ]);
        let (sender, event) = sender(&[], &memory);
        let mut told = Told::default();
        let started = Instant::now();
        let delivery = sender.deliver(&event, None, &mut told);
        assert_eq!(
            delivery,
            Delivery::Acked {
                status: 202,
                attempts: 3
            }
        );
        // Two waits: 40 ms and 80 ms, each ±20 %.
        assert!(
            started.elapsed() >= Duration::from_millis(96),
            "{:?}",
            started.elapsed()
        );
        let requests = memory.requests();
        assert_eq!(requests.len(), 3);
        // The 503's connection was kept; the reset one was replaced.
        assert_eq!(memory.connections(), 2);
        assert_eq!(memory.body(0), memory.body(2));
        assert_eq!(
            memory.head(0),
            memory.head(2),
            "a retry is the same request"
        );
        assert_eq!(
            told.0,
            [
                "attempt",
                "ended Some(503) Some(\"503\") 19",
                "attempt",
                "ended None Some(\"connection_reset\") 19",
                "attempt",
                "ended Some(202) None 19"
            ]
        );
    }

    #[test]
    fn a_status_sdk_go_does_not_retry_fails_at_once_and_a_redirect_is_not_followed() {
        for (answer, reason) in [
            (status(400, &[]), "HTTP 400".to_owned()),
            (
                status(302, &[("location", "http://elsewhere.test/")]),
                "HTTP 302 redirect to \"http://elsewhere.test/\" (not followed)".to_owned(),
            ),
        ] {
            let memory = Memory::new([answer]);
            let (sender, event) = sender(&[], &memory);
            let delivery = sender.deliver(&event, None, &mut Silent);
            let attempts = 1;
            assert_eq!(delivery, Delivery::Failed { reason, attempts });
            assert_eq!(memory.requests().len(), 1);
        }
    }

    #[test]
    fn retries_end_when_the_next_wait_would_pass_the_next_beat() {
        let memory = Memory::new(vec![status(503, &[]); 20]);
        let (sender, event) = sender(&[], &memory);
        // The first wait (32–48 ms) fits in 100 ms; the second (64–96 ms more) does not.
        let give_up_at = Instant::now() + Duration::from_millis(100);
        match sender.deliver(&event, Some(give_up_at), &mut Silent) {
            Delivery::Failed { reason, attempts } => {
                assert_eq!(reason, "HTTP 503; gave up: the next beat is due");
                assert_eq!(attempts, 2);
            }
            other => panic!("{other:?}"),
        }
        assert!(Instant::now() < give_up_at, "waited past the next beat");
    }

    #[test]
    fn a_retry_after_longer_than_the_backoff_is_waited_for() {
        let memory = Memory::new([status(429, &[("retry-after", "1")])]);
        let (sender, event) = sender(&[], &memory);
        let started = Instant::now();
        let delivery = sender.deliver(&event, None, &mut Silent);
        assert!(
            matches!(delivery, Delivery::Acked { attempts: 2, .. }),
            "{delivery:?}"
        );
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
}

//! Observability at run time, on the loop's one thread: it records what the sender did (into
//! [`Metrics`] and the [`Tracer`]), and it owns the loop's waiting, since while the loop waits
//! a scrape may need an answer or an export may fall due. With observability off it is empty:
//! waiting is one `sigtimedwait` as before, and recording does nothing.
//!
//! With it on, waiting is one `ppoll` over a signalfd and the metrics listener, up to the
//! nearest of the caller's deadline and the next export. A scrape is answered inline within
//! [`SCRAPE_BUDGET`]; an export gets at most [`EXPORT_TIMEOUT`] and is never retried: metrics
//! are cumulative (the next push carries them), spans of a failed export are dropped and counted.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant, SystemTime};

use ureq::Agent;

use crate::config::Config;
use crate::event::{Event, Ids};
use crate::log::{self, Bounded};
use crate::metrics::{AttemptRecord, ErrorType, Metrics, Outcome, Server};
use crate::observability::{self, Otlp};
use crate::sys::{self, SignalFd, Stop};
use crate::trace::{EventTrace, Sampler, Tracer};

/// The longest a scrape may take from accept to the last byte written.
pub const SCRAPE_BUDGET: Duration = Duration::from_millis(100);
/// The longest one export may take.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(1);
/// The least an export is given when a beat is due sooner than [`EXPORT_TIMEOUT`].
const MIN_EXPORT_TIMEOUT: Duration = Duration::from_millis(100);
/// The longest the exports at exit may take together.
pub const FLUSH_BUDGET: Duration = Duration::from_secs(1);
/// The most of a scrape request's head that is read.
const MAX_REQUEST_HEAD: usize = 8192;
/// How much of an exporter's error a warning quotes.
const MAX_SHOWN_ERROR: usize = 200;

struct Push {
    endpoint: Otlp,
    interval: Duration,
    next: Instant,
    failing: bool,
}

struct TraceExport {
    endpoint: Otlp,
    failing: bool,
}

/// See the module documentation.
#[derive(Default)]
pub struct Observer {
    signals: Option<SignalFd>,
    metrics: Option<Metrics>,
    listener: Option<TcpListener>,
    push: Option<Push>,
    tracer: Option<Tracer>,
    trace_export: Option<TraceExport>,
    agent: Option<Agent>,
    service_name: String,
    ids: Ids,
    event: Option<EventTrace>,
    attempt_started: Option<Instant>,
}

impl Observer {
    /// Observability as `config` asks for it; `agent` makes the exports (the sink's TLS trust,
    /// no proxy). What cannot be set up (a port in use) is a warning, and that part is off.
    pub fn new(config: &Config, agent: impl FnOnce() -> Agent) -> Observer {
        let settings = &config.observability;
        if settings.is_off() {
            return Observer::default();
        }
        let signals = match SignalFd::new() {
            Ok(signals) => signals,
            Err(error) => {
                log::line(format_args!(
                    "warning: {}: cannot wait on signals and sockets together ({error}); \
                     metrics and tracing are off",
                    observability::CONFIG_VAR
                ));
                return Observer::default();
            }
        };
        let server = server_of(&config.sink);
        let mut observer = Observer {
            signals: Some(signals),
            service_name: settings.service_name.clone(),
            ..Observer::default()
        };
        observer.set_up_metrics(&settings.metrics, &server);
        observer.set_up_tracing(&settings.tracing, config, server);
        if observer.push.is_some() || observer.trace_export.is_some() {
            observer.agent = Some(agent());
        }
        if observer.tracer.is_none() && observer.metrics.is_none() {
            return Observer::default();
        }
        observer
    }

    fn set_up_metrics(&mut self, settings: &observability::Metrics, server: &Server) {
        match settings {
            observability::Metrics::Off => return,
            observability::Metrics::Prometheus { host, port } => match listen(host, *port) {
                Ok(listener) => {
                    let at = listener
                        .local_addr()
                        .map_or("?".to_owned(), |a| a.to_string());
                    log::line(format_args!(
                        "metrics: serving Prometheus text at http://{at}/metrics"
                    ));
                    self.listener = Some(listener);
                }
                Err(error) => {
                    log::line(format_args!(
                        "warning: {}: cannot listen on {host}:{port} for metrics ({error}); \
                         metrics are off",
                        observability::CONFIG_VAR
                    ));
                    return;
                }
            },
            observability::Metrics::Otlp { endpoint, interval } => {
                log::line(format_args!(
                    "metrics: pushing OTLP to {} every {interval:?}",
                    log::redact_userinfo(&endpoint.url)
                ));
                self.push = Some(Push {
                    endpoint: endpoint.clone(),
                    interval: *interval,
                    next: Instant::now() + *interval,
                    failing: false,
                });
            }
        }
        self.metrics = Some(Metrics::new(
            server.clone(),
            &self.service_name,
            SystemTime::now(),
        ));
    }

    fn set_up_tracing(
        &mut self,
        settings: &observability::Tracing,
        config: &Config,
        server: Server,
    ) {
        let event = (config.source.as_str(), config.event_type.as_str());
        self.tracer = match settings {
            observability::Tracing::Off => None,
            observability::Tracing::Stdout => {
                log::never_block_stdout();
                log::line(format_args!(
                    "tracing: every event's spans as JSON lines on stdout"
                ));
                Some(Tracer::new(
                    Sampler::Always,
                    true,
                    &config.sink,
                    server,
                    event,
                ))
            }
            observability::Tracing::Otlp { endpoint, sampling } => {
                log::line(format_args!(
                    "tracing: OTLP to {}, sampling {sampling}",
                    log::redact_userinfo(&endpoint.url)
                ));
                self.trace_export = Some(TraceExport {
                    endpoint: endpoint.clone(),
                    failing: false,
                });
                let sampler = Sampler::ratio(*sampling);
                Some(Tracer::new(sampler, false, &config.sink, server, event))
            }
        };
    }

    /// Whether attempts are measured at all: when not, an attempt costs no clock read.
    fn is_recording(&self) -> bool {
        self.metrics.is_some() || self.tracer.is_some()
    }

    pub fn start_event(&mut self, event: &Event) {
        if let Some(tracer) = &mut self.tracer {
            self.event = tracer.start_event(event, &mut self.ids);
        }
    }

    /// Marks an attempt's start; returns the `traceparent` it carries when its event is traced.
    pub fn start_attempt(&mut self) -> Option<String> {
        if !self.is_recording() {
            return None;
        }
        self.attempt_started = Some(Instant::now());
        let (tracer, trace) = (self.tracer.as_mut()?, self.event.as_mut()?);
        tracer.start_attempt(trace, &mut self.ids)
    }

    pub fn end_attempt(&mut self, status: Option<u16>, error: Option<ErrorType>, body: usize) {
        let Some(started) = self.attempt_started.take() else {
            return;
        };
        let record = AttemptRecord {
            status,
            error_type: error,
            duration: started.elapsed(),
            body_size: body,
        };
        if let Some(metrics) = &mut self.metrics {
            metrics.attempt(&record);
        }
        if let (Some(tracer), Some(trace)) = (&mut self.tracer, &mut self.event) {
            tracer.end_attempt(trace, &record);
        }
    }

    pub fn end_event(&mut self, outcome: Outcome) {
        if let Some(metrics) = &mut self.metrics {
            metrics.event(outcome, 1);
        }
        if let (Some(tracer), Some(trace)) = (&mut self.tracer, self.event.take()) {
            tracer.end_event(trace, outcome);
        }
    }

    pub fn skipped(&mut self, beats: u64) {
        if let Some(metrics) = &mut self.metrics {
            metrics.event(Outcome::Skipped, beats);
        }
    }

    /// Sleeps until `deadline` (forever when `None`) unless a stop signal arrives first or is
    /// already pending, answering scrapes and making exports that fall due meanwhile.
    pub fn sleep_until(&mut self, deadline: Option<Instant>) -> io::Result<Option<Stop>> {
        loop {
            let Some(signals) = &self.signals else {
                return sys::wait_until(deadline);
            };
            let export_due = self.export_due();
            let wake = earliest(deadline, export_due);
            let ready = match &self.listener {
                Some(listener) => sys::poll(&[signals.as_fd(), listener.as_fd()], wake)?,
                None => sys::poll(&[signals.as_fd()], wake)?,
            };
            if ready & 1 != 0 {
                if let Some(stop) = signals.take()? {
                    return Ok(Some(stop));
                }
            }
            if ready & 2 != 0 {
                self.serve_scrape();
            }
            let now = Instant::now();
            if export_due.is_some_and(|e| e <= now) {
                let left = deadline.map_or(EXPORT_TIMEOUT, |d| d.saturating_duration_since(now));
                self.export(now, left.clamp(MIN_EXPORT_TIMEOUT, EXPORT_TIMEOUT));
            }
            if deadline.is_some_and(|d| d <= Instant::now()) {
                return Ok(None);
            }
        }
    }

    fn export_due(&self) -> Option<Instant> {
        let push = self.push.as_ref().map(|p| p.next);
        let spans = self.trace_export.as_ref().and(self.tracer.as_ref()?.due());
        earliest(push, spans)
    }

    /// Makes the exports that are due at `now`, each within `timeout`.
    fn export(&mut self, now: Instant, timeout: Duration) {
        if self
            .tracer
            .as_ref()
            .and_then(Tracer::due)
            .is_some_and(|d| d <= now)
        {
            self.export_spans(timeout);
        }
        if self.push.as_ref().is_some_and(|p| p.next <= now) {
            self.push_metrics(timeout);
        }
    }

    fn export_spans(&mut self, timeout: Duration) {
        let (Some(tracer), Some(export), Some(agent)) =
            (&mut self.tracer, &mut self.trace_export, &self.agent)
        else {
            return;
        };
        let Some((body, count)) = tracer.take_batch(&self.service_name) else {
            return;
        };
        let result = post(agent, &export.endpoint, &body, timeout);
        if result.is_err() {
            tracer.dropped += count as u64;
        }
        report(
            &mut export.failing,
            "traces",
            result,
            Some(&mut tracer.dropped),
        );
    }

    fn push_metrics(&mut self, timeout: Duration) {
        let (Some(metrics), Some(push), Some(agent)) = (&self.metrics, &mut self.push, &self.agent)
        else {
            return;
        };
        let body = metrics.otlp(SystemTime::now(), crate::trace::SCOPE);
        let result = post(agent, &push.endpoint, &body, timeout);
        push.next = Instant::now() + push.interval;
        report(&mut push.failing, "metrics", result, None);
    }

    /// The exports at exit: pending spans, then the metrics, within [`FLUSH_BUDGET`] together.
    pub fn flush(&mut self) {
        let end = Instant::now() + FLUSH_BUDGET;
        let left = || end.saturating_duration_since(Instant::now());
        if self.trace_export.is_some() {
            self.export_spans(left().min(EXPORT_TIMEOUT));
        }
        if self.push.is_some() && !left().is_zero() {
            self.push_metrics(left());
        }
    }

    /// Answers one scrape, if one is waiting, within [`SCRAPE_BUDGET`].
    fn serve_scrape(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let end = Instant::now() + SCRAPE_BUDGET;
        let Some(head) = read_head(&mut stream, end) else {
            return;
        };
        let mut words = head.split(' ');
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let path = path.split('?').next().unwrap_or("");
        let (status, body) = match (method, path) {
            ("GET", "/metrics") => match &self.metrics {
                Some(metrics) => ("200 OK", metrics.prometheus()),
                None => ("404 Not Found", String::new()),
            },
            (_, "/metrics") => ("405 Method Not Allowed", String::new()),
            _ => ("404 Not Found", String::new()),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_write_timeout(Some(left)).is_err() {
            return;
        }
        let _ = stream.write_all(response.as_bytes());
    }
}

/// The earlier of two optional times (`None` is never).
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The request line of a scrape, once its whole head arrived by `end`.
fn read_head(stream: &mut TcpStream, end: Instant) -> Option<String> {
    stream.set_nonblocking(false).ok()?;
    let mut head = Vec::with_capacity(512);
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() || head.len() > MAX_REQUEST_HEAD {
            return None;
        }
        stream.set_read_timeout(Some(left)).ok()?;
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let line = head.split(|&b| b == b'\r').next()?;
    String::from_utf8(line.to_vec()).ok()
}

/// Binds the metrics listener, non-blocking; an empty host is every address, IPv6 and IPv4.
fn listen(host: &str, port: u16) -> io::Result<TcpListener> {
    let listener = match host {
        "" => TcpListener::bind(("::", port)).or_else(|_| TcpListener::bind(("0.0.0.0", port)))?,
        host => TcpListener::bind((host, port))?,
    };
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// POSTs one OTLP request; the error says what failed, never the endpoint's credentials.
fn post(agent: &Agent, endpoint: &Otlp, body: &[u8], timeout: Duration) -> Result<(), String> {
    let mut request = agent
        .post(&endpoint.url)
        .config()
        .timeout_global(Some(timeout))
        .build()
        .header("content-type", "application/x-protobuf");
    for (name, value) in &endpoint.headers {
        request = request.header(name, value);
    }
    match request.send(body) {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(format!("HTTP {}", response.status().as_u16())),
        Err(error) => {
            // ureq 3.5's errors do not quote the URL; should one ever, never its credentials.
            let mut text = error.to_string();
            if let (_, Some(userinfo)) = crate::userinfo::split(&endpoint.url) {
                text = text.replace(userinfo, "***");
            }
            Err(Bounded(&text, MAX_SHOWN_ERROR).to_string())
        }
    }
}

/// One line when an export starts failing and one when it works again, not one per export.
fn report(failing: &mut bool, what: &str, result: Result<(), String>, dropped: Option<&mut u64>) {
    match result {
        Err(reason) if !*failing => {
            *failing = true;
            log::line(format_args!(
                "warning: exporting {what} failed: {reason}; will try again at the next export"
            ));
        }
        Ok(()) if *failing => {
            *failing = false;
            match dropped {
                Some(dropped) => {
                    log::line(format_args!(
                        "exporting {what} works again ({dropped} span(s) dropped meanwhile)"
                    ));
                    *dropped = 0;
                }
                None => log::line(format_args!("exporting {what} works again")),
            }
        }
        _ => {}
    }
}

/// `server.address`, `server.port`, `url.scheme` of the sink.
fn server_of(sink: &str) -> Server {
    let uri: Option<ureq::http::Uri> = sink.parse().ok();
    let (address, port) = uri.as_ref().map_or(("", 0), crate::proxy::host_port);
    Server {
        address: address
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
        scheme: if sink.starts_with("https:") {
            "https"
        } else {
            "http"
        },
    }
}

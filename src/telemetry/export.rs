//! The OTLP exports: metrics pushed every interval, spans in batches, both at exit, over HTTP
//! (protobuf POSTed) or gRPC ([`super::grpc`]), as each endpoint says. They are idle work (see
//! [`crate::wait::Idle`]): run while the thread sleeps, each within what is left of that sleep and
//! at most the endpoint's timeout (and the metrics' or spans' own), so an export never makes a beat
//! late. An export is never sent again: the spans of an export that failed are dropped and
//! counted, and the next push of metrics carries them (cumulative) or the change since (delta).
//! The collector's answer is read as the OTLP specification says: a retryable failure (HTTP 429,
//! 502, 503, 504, a connection that failed, gRPC's retryable codes) leaves the collector alone for
//! a while, doubling, or as long as it asked; any other refusal drops the batch, and the next one
//! goes at its time. A partial success is said once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ureq::Agent;

use super::Links;
use super::grpc;
use super::protobuf::{Value, fields};
use super::shared::{Shared, lock};
use crate::config::observability::{Otlp, Protocol, Temporality};
use crate::log::{self, Bounded};
use crate::wait::{Idle, Stopped, earliest};

/// Less time than this left before the next beat: the export waits for a longer sleep.
const MIN_EXPORT_TIME: Duration = Duration::from_micros(100);
/// How much of an exporter's error a warning quotes.
const MAX_SHOWN_ERROR: usize = 200;
/// The wait before trying a failing collector again; it doubles with each failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait before trying a failing collector again.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// The most of an answer's body read (for its partial success).
const MAX_ANSWER: u64 = 64 * 1024;

/// What an export carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Metrics,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
        }
    }

    fn grpc_path(self) -> &'static str {
        match self {
            Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        }
    }

    /// What a partial success rejected: spans or data points.
    fn items(self) -> &'static str {
        match self {
            Signal::Traces => "span(s)",
            Signal::Metrics => "data point(s)",
        }
    }
}

/// How exports reach one collector.
enum Channel {
    Http(Agent),
    Grpc(grpc::Client),
}

/// A collector's endpoint, and how exports to it have been going.
pub struct Endpoint {
    pub otlp: Otlp,
    signal: Signal,
    channel: Channel,
    /// Exports failed in a row.
    failures: u32,
    /// After a failure, nothing is tried before this (a name that does not resolve is not
    /// looked up again at every export).
    retry_at: Option<Instant>,
    /// A partial success was said since exports last went through whole.
    partial_said: bool,
}

impl Endpoint {
    pub fn new(otlp: Otlp, signal: Signal, links: &Arc<dyn Links>) -> Endpoint {
        let https = otlp.url.starts_with("https://");
        let channel = match otlp.protocol {
            Protocol::HttpProtobuf => Channel::Http(links.agent(https, &otlp.tls)),
            Protocol::Grpc => {
                let tls = https.then(|| links.grpc_tls(&otlp.tls));
                if let Some(Err(why)) = &tls {
                    log::line(format_args!(
                        "warning: {why}; exports of {} will fail",
                        signal.name()
                    ));
                }
                Channel::Grpc(grpc::Client::new(&otlp.url, tls, links.clone()))
            }
        };
        Endpoint {
            otlp,
            signal,
            channel,
            failures: 0,
            retry_at: None,
            partial_said: false,
        }
    }

    /// Sends one export, finished by `until`: the answer's message.
    fn send(&mut self, body: &[u8], until: Instant) -> Result<Vec<u8>, Failure> {
        let timeout = until.saturating_duration_since(Instant::now());
        if timeout < MIN_EXPORT_TIME {
            return Err(Failure::NoTime);
        }
        match &mut self.channel {
            Channel::Http(agent) => post(agent, &self.otlp, body, timeout),
            Channel::Grpc(client) => client
                .export(
                    self.signal.grpc_path(),
                    body,
                    &self.otlp.headers,
                    self.otlp.gzip,
                    until,
                )
                .map_err(|failure| match failure {
                    grpc::Failure::Stopped => Failure::Stopped,
                    grpc::Failure::Retry(why, after) => Failure::Retry(why, after),
                    grpc::Failure::Refused(why) => Failure::Refused(why),
                }),
        }
    }

    /// Notes how an export went: one line when exports start failing and one when they work
    /// again, not one per export; after a retryable failure the next try waits 1 s, doubling to
    /// [`MAX_BACKOFF`] (or as long as the collector asked); a partial success is said once.
    fn record(&mut self, result: &Result<Vec<u8>, Failure>, dropped: Option<&mut u64>) {
        let what = self.signal.name();
        match result {
            Ok(answer) => {
                if self.failures > 0 {
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
                self.failures = 0;
                self.retry_at = None;
                match partial_success(answer) {
                    Some((rejected, message)) if !self.partial_said => {
                        self.partial_said = true;
                        let items = self.signal.items();
                        log::line(format_args!(
                            "warning: the collector took an export of {what} in part: {rejected} \
                             {items} rejected ({}); said once",
                            Bounded(&message, MAX_SHOWN_ERROR)
                        ));
                    }
                    Some(_) => {}
                    None => self.partial_said = false,
                }
            }
            // Ended by a stop signal, or never tried: nothing went wrong with the collector.
            Err(Failure::Stopped | Failure::NoTime) => {}
            Err(Failure::Retry(reason, after)) => {
                if self.failures == 0 {
                    log::line(format_args!(
                        "warning: exporting {what} failed: {reason}; will try again later"
                    ));
                }
                self.failures = self.failures.saturating_add(1);
                let backoff = FIRST_BACKOFF
                    .saturating_mul(1 << (self.failures - 1).min(16))
                    .min(MAX_BACKOFF);
                let wait = after.map_or(backoff, |asked| asked.min(MAX_BACKOFF));
                self.retry_at = Some(Instant::now() + wait);
            }
            Err(Failure::Refused(reason)) => {
                if self.failures == 0 {
                    log::line(format_args!(
                        "warning: exporting {what} failed: {reason}; that export is dropped"
                    ));
                }
                self.failures = self.failures.saturating_add(1);
                self.retry_at = None;
            }
        }
    }
}

/// A partial success in an export's answer (`ExportTraceServiceResponse` or
/// `ExportMetricsServiceResponse`): what was rejected and why, when something was.
fn partial_success(answer: &[u8]) -> Option<(u64, String)> {
    let (_, Value::Bytes(partial)) = fields(answer)?.into_iter().find(|(n, _)| *n == 1)? else {
        return None;
    };
    let (mut rejected, mut message) = (0, String::new());
    for (number, value) in fields(partial)? {
        match (number, value) {
            (1, Value::Varint(n)) => rejected = n,
            (2, Value::Bytes(text)) => message = String::from_utf8_lossy(text).into_owned(),
            _ => {}
        }
    }
    (rejected > 0 || !message.is_empty()).then_some((rejected, message))
}

/// Metrics pushed every `interval`, each push within `timeout`.
pub struct Push {
    pub endpoint: Endpoint,
    pub interval: Duration,
    pub timeout: Duration,
    pub temporality: Temporality,
    pub next: Instant,
}

impl Push {
    pub fn new(
        endpoint: Endpoint,
        interval: Duration,
        timeout: Duration,
        temporality: Temporality,
    ) -> Push {
        Push {
            endpoint,
            interval,
            timeout,
            temporality,
            next: Instant::now() + interval,
        }
    }

    fn due(&self) -> Instant {
        self.endpoint
            .retry_at
            .map_or(self.next, |retry| retry.max(self.next))
    }
}

/// Spans exported in batches, each export within `timeout`.
pub struct Spans {
    pub endpoint: Endpoint,
    pub timeout: Duration,
}

/// See the module documentation.
pub struct Exporter {
    pub shared: Arc<Mutex<Shared>>,
    pub push: Option<Push>,
    /// Where spans go.
    pub spans: Option<Spans>,
    /// Work found due with too little time left waits until this sleep ends.
    not_before: Option<Instant>,
}

impl Exporter {
    pub fn new(shared: Arc<Mutex<Shared>>, push: Option<Push>, spans: Option<Spans>) -> Exporter {
        Exporter {
            shared,
            push,
            spans,
            not_before: None,
        }
    }

    fn spans_due(&self) -> Option<Instant> {
        let retry_at = self.spans.as_ref()?.endpoint.retry_at;
        let due = lock(&self.shared).tracer.as_ref()?.due()?;
        Some(retry_at.map_or(due, |retry| retry.max(due)))
    }

    fn spans_pending(&self) -> bool {
        lock(&self.shared)
            .tracer
            .as_ref()
            .is_some_and(|tracer| tracer.due().is_some())
    }

    /// Exports a batch of spans, finished by `until`; whether it went through.
    fn export_spans(&mut self, until: Instant) -> bool {
        let batch = {
            let shared = lock(&self.shared);
            let tracer = shared.tracer.as_ref();
            tracer.and_then(|tracer| tracer.batch(&shared.service_name, &shared.resource))
        };
        let (Some((body, count)), Some(spans)) = (batch, &mut self.spans) else {
            return false;
        };
        let until = until.min(Instant::now() + spans.timeout.min(spans.endpoint.otlp.timeout));
        let result = spans.endpoint.send(&body, until);
        let mut shared = lock(&self.shared);
        let Some(tracer) = &mut shared.tracer else {
            return false;
        };
        if let Err(Failure::NoTime) = result {
            // Not tried: the spans wait for a longer sleep.
            self.not_before = Some(until);
            return false;
        }
        tracer.forget(count);
        if result.is_err() {
            tracer.dropped += count as u64;
        }
        spans.endpoint.record(&result, Some(&mut tracer.dropped));
        result.is_ok()
    }

    /// Pushes the metrics, finished by `until`.
    fn push_metrics(&mut self, until: Instant) {
        let Some(push) = &mut self.push else {
            return;
        };
        let body = {
            let mut shared = lock(&self.shared);
            let Some(metrics) = &mut shared.metrics else {
                return;
            };
            metrics.otlp(SystemTime::now(), push.temporality)
        };
        let until = until.min(Instant::now() + push.timeout.min(push.endpoint.otlp.timeout));
        let result = push.endpoint.send(&body, until);
        if let Err(Failure::NoTime) = result {
            // Not tried: the push waits for a longer sleep.
            self.not_before = Some(until);
            return;
        }
        push.next = Instant::now() + push.interval;
        push.endpoint.record(&result, None);
    }
}

impl Idle for Exporter {
    fn due(&self) -> Option<Instant> {
        let due = earliest(self.push.as_ref().map(Push::due), self.spans_due())?;
        Some(
            self.not_before
                .map_or(due, |not_before| due.max(not_before)),
        )
    }

    fn run(&mut self, until: Instant) {
        let now = Instant::now();
        let left = until.saturating_duration_since(now);
        if left < MIN_EXPORT_TIME {
            self.not_before = Some(until);
            return;
        }
        self.not_before = None;
        if self.spans_due().is_some_and(|d| d <= now) {
            self.export_spans(until);
        }
        if self.push.as_ref().is_some_and(|p| p.due() <= now) && Instant::now() < until {
            self.push_metrics(until);
        }
    }

    fn flush(&mut self, until: Instant) {
        while self.spans.is_some() && self.spans_pending() && Instant::now() < until {
            if !self.export_spans(until) {
                break;
            }
        }
        if self.push.is_some() && Instant::now() < until {
            self.push_metrics(until);
        }
    }
}

/// Why an export did not go through.
#[derive(Debug)]
enum Failure {
    /// A stop signal ended it.
    Stopped,
    /// No time was left for it before the next beat: it was not tried.
    NoTime,
    /// Worth trying again later (after this long, when the collector said); for the log,
    /// never the endpoint's credentials.
    Retry(String, Option<Duration>),
    /// The collector refused the export for good.
    Refused(String),
}

/// POSTs one OTLP request within `timeout`, gzip-compressed if asked: the answer's body.
fn post(
    agent: &Agent,
    endpoint: &Otlp,
    body: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, Failure> {
    let compressed;
    let body = if endpoint.gzip {
        compressed = super::gzip::compress(body);
        &compressed[..]
    } else {
        body
    };
    let mut request = agent
        .post(&endpoint.url)
        .config()
        .timeout_global(Some(timeout))
        .build()
        .header("content-type", "application/x-protobuf");
    if endpoint.gzip {
        request = request.header("content-encoding", "gzip");
    }
    for (name, value) in &endpoint.headers {
        request = request.header(name, value);
    }
    match request.send(body) {
        Ok(mut response) if response.status().is_success() => {
            let mut answer = Vec::new();
            let _ = std::io::Read::read_to_end(
                &mut std::io::Read::take(response.body_mut().as_reader(), MAX_ANSWER),
                &mut answer,
            );
            Ok(answer)
        }
        Ok(response) => {
            let code = response.status().as_u16();
            let reason = format!("HTTP {code}");
            // OTLP/HTTP: these are worth trying again, after Retry-After when given.
            if matches!(code, 429 | 502 | 503 | 504) {
                let after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                Err(Failure::Retry(reason, after))
            } else {
                Err(Failure::Refused(reason))
            }
        }
        Err(ureq::Error::Io(e)) if e.get_ref().is_some_and(|e| e.is::<Stopped>()) => {
            Err(Failure::Stopped)
        }
        // Cut short by the next beat, which an export never delays: say so, not "timeout".
        Err(ureq::Error::Timeout(_)) if timeout < endpoint.timeout => Err(Failure::Retry(
            format!(
                "no reply in the {} ms before the next beat",
                timeout.as_millis().max(1)
            ),
            None,
        )),
        Err(error) => {
            // ureq 3.5's errors do not quote the URL; should one ever, never its credentials.
            let mut text = error.to_string();
            if let Some(secret) = crate::config::url::userinfo_part(&endpoint.url) {
                text = text.replace(secret, "***");
            }
            Err(Failure::Retry(
                Bounded(&text, MAX_SHOWN_ERROR).to_string(),
                None,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::observability::Otlp;
    use crate::config::tests::sinked;
    use crate::event::{Event, Ids};
    use crate::report::Outcome;
    use crate::telemetry::metrics::Metrics;
    use crate::telemetry::record::{AttemptRecord, Server};
    use crate::telemetry::trace::{Sampler, Tracer};
    use crate::testing::{Answer, Memory, status};

    fn otlp(path: &str) -> Otlp {
        Otlp {
            protocol: Protocol::HttpProtobuf,
            url: format!("http://collector.test{path}"),
            headers: Vec::new(),
            timeout: Duration::from_secs(10),
            gzip: false,
            tls: Default::default(),
        }
    }

    /// An exporter of spans (every event traced) and metrics (every `interval`) to `memory`.
    fn exporter(memory: &Memory, interval: Duration) -> Exporter {
        let config = sinked(&[]).unwrap();
        let server = Server::of(&config.sink.url);
        let event = (
            config.event.source.as_str(),
            config.event.event_type.as_str(),
        );
        let tracer = Tracer::new(
            Sampler::Always,
            false,
            "http://s/",
            server.clone(),
            event,
            Default::default(),
        );
        let shared = Shared {
            metrics: Some(Metrics::new(server, "svc", &[], SystemTime::now())),
            tracer: Some(tracer),
            service_name: "svc".into(),
            resource: Vec::new(),
        };
        let links = memory.links();
        let push = Push::new(
            Endpoint::new(otlp("/v1/metrics"), Signal::Metrics, &links),
            interval,
            Duration::from_secs(30),
            Temporality::Cumulative,
        );
        let spans = Spans {
            endpoint: Endpoint::new(otlp("/v1/traces"), Signal::Traces, &links),
            timeout: Duration::from_secs(30),
        };
        Exporter::new(Arc::new(Mutex::new(shared)), Some(push), Some(spans))
    }

    /// One traced event of one attempt, finished.
    fn traced_event(exporter: &Exporter, ids: &mut Ids) {
        let mut shared = lock(&exporter.shared);
        let tracer = shared.tracer.as_mut().unwrap();
        let event = Event {
            id: "e".into(),
            time: String::new(),
            scheduled: None,
            sequence: None,
            body: crate::event::Body::Heartbeat(Vec::new()),
        };
        let mut trace = tracer.start_event(&event, ids).unwrap();
        tracer.start_attempt(&mut trace, ids).unwrap();
        let record = AttemptRecord {
            status: Some(200),
            error_type: None,
            duration: Duration::from_millis(1),
            body_size: 1,
        };
        tracer.end_attempt(&mut trace, &record);
        tracer.end_event(trace, Outcome::Delivered);
    }

    #[test]
    fn a_failing_collector_is_tried_again_after_a_wait_that_doubles_and_reset_when_it_works() {
        let failing = [
            status(502, &[]),
            status(503, &[]),
            Answer::Fail(std::io::ErrorKind::ConnectionRefused),
        ];
        let memory = Memory::new(failing);
        let mut exporter = exporter(&memory, Duration::from_secs(3600));
        let mut waits = Vec::new();
        for _ in 0..3 {
            let push = exporter.push.as_mut().unwrap();
            push.next = Instant::now();
            // The wait is over (time is not waited out here).
            push.endpoint.retry_at = push.endpoint.retry_at.map(|_| Instant::now());
            let before = Instant::now();
            exporter.run(before + Duration::from_secs(1));
            let push = exporter.push.as_ref().unwrap();
            let retry_at = push.endpoint.retry_at.expect("backing off");
            waits.push(retry_at.duration_since(before).as_secs_f64().round() as u64);
            // Nothing is due before the wait is over, whatever the interval says.
            assert!(exporter.due().unwrap() >= retry_at);
        }
        assert_eq!(waits, [1, 2, 4]);
        // It works again: no wait, and the next push at the interval.
        let push = exporter.push.as_mut().unwrap();
        push.next = Instant::now();
        push.endpoint.retry_at = Some(Instant::now());
        exporter.run(Instant::now() + Duration::from_secs(1));
        let push = exporter.push.as_ref().unwrap();
        assert_eq!((push.endpoint.failures, push.endpoint.retry_at), (0, None));
        assert!(push.next > Instant::now() + Duration::from_secs(3500));
        assert_eq!(memory.requests().len(), 4);
        assert!(
            memory.head(3).starts_with("POST /v1/metrics "),
            "{}",
            memory.head(3)
        );
    }

    #[test]
    fn spans_of_a_failed_export_are_dropped_and_counted_until_exports_work_again() {
        let memory = Memory::new([status(502, &[])]);
        let mut exporter = exporter(&memory, Duration::from_secs(3600));
        let mut ids = Ids::default();
        for _ in 0..3 {
            traced_event(&exporter, &mut ids);
        }
        // At exit everything pending is exported: the batch fails, and is dropped.
        exporter.flush(Instant::now() + Duration::from_secs(1));
        let dropped = |e: &Exporter| lock(&e.shared).tracer.as_ref().unwrap().dropped;
        assert_eq!(dropped(&exporter), 6, "an event and an attempt span each");
        assert_eq!(exporter.spans_due(), None, "nothing kept to send again");
        traced_event(&exporter, &mut ids);
        exporter.spans.as_mut().unwrap().endpoint.retry_at = None;
        exporter.flush(Instant::now() + Duration::from_secs(1));
        assert_eq!(
            dropped(&exporter),
            0,
            "reported when it works again, and reset"
        );
        let traces: Vec<usize> = (0..memory.requests().len())
            .filter(|&i| memory.head(i).starts_with("POST /v1/traces "))
            .collect();
        assert_eq!(traces.len(), 2);
    }
}

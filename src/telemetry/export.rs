//! The OTLP exports: metrics pushed every interval, spans in batches, both at exit. They are
//! idle work (see [`crate::wait::Idle`]): run while the thread sleeps, each within what is left
//! of that sleep and at most [`EXPORT_TIMEOUT`] (the collector's name lookup included), so an
//! export never makes a beat late. An export is never retried: metrics are cumulative (the next
//! push carries them), and the spans of a failed export are dropped and counted. After a failure
//! a collector is left alone for a while, doubling, so that one whose name does not resolve is
//! not looked up at every export.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ureq::Agent;

use super::shared::{Shared, lock};
use crate::config::observability::Otlp;
use crate::log::{self, Bounded};
use crate::wait::{Idle, Stopped, earliest};

/// The longest one export may take.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(1);
/// Less time than this left before the next beat: the export waits for a longer sleep.
const MIN_EXPORT_TIME: Duration = Duration::from_micros(100);
/// How much of an exporter's error a warning quotes.
const MAX_SHOWN_ERROR: usize = 200;
/// The wait before trying a failing collector again; it doubles with each failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait before trying a failing collector again.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// A collector's endpoint, and how exports to it have been going.
pub struct Endpoint {
    pub otlp: Otlp,
    /// Exports failed in a row.
    failures: u32,
    /// After a failure, nothing is tried before this (a name that does not resolve is not
    /// looked up again at every export).
    retry_at: Option<Instant>,
}

impl Endpoint {
    pub fn new(otlp: Otlp) -> Endpoint {
        Endpoint {
            otlp,
            failures: 0,
            retry_at: None,
        }
    }

    /// Notes how an export of `what` went: one line when exports start failing and one when they
    /// work again, not one per export; after a failure the next try waits 1 s, doubling to
    /// [`MAX_BACKOFF`].
    fn record(&mut self, what: &str, result: &Result<(), Failure>, dropped: Option<&mut u64>) {
        match result {
            Ok(()) => {
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
            }
            // Ended by a stop signal, or never tried: nothing went wrong with the collector.
            Err(Failure::Stopped | Failure::NoTime) => {}
            Err(Failure::Failed(reason)) => {
                if self.failures == 0 {
                    log::line(format_args!(
                        "warning: exporting {what} failed: {reason}; will try again later"
                    ));
                }
                self.failures = self.failures.saturating_add(1);
                let backoff = FIRST_BACKOFF
                    .saturating_mul(1 << (self.failures - 1).min(16))
                    .min(MAX_BACKOFF);
                self.retry_at = Some(Instant::now() + backoff);
            }
        }
    }
}

/// Metrics pushed every `interval`.
pub struct Push {
    pub endpoint: Endpoint,
    pub interval: Duration,
    pub next: Instant,
}

impl Push {
    pub fn new(otlp: Otlp, interval: Duration) -> Push {
        Push {
            endpoint: Endpoint::new(otlp),
            interval,
            next: Instant::now() + interval,
        }
    }

    fn due(&self) -> Instant {
        self.endpoint
            .retry_at
            .map_or(self.next, |retry| retry.max(self.next))
    }
}

/// See the module documentation.
pub struct Exporter {
    pub agent: Agent,
    pub shared: Arc<Mutex<Shared>>,
    pub push: Option<Push>,
    /// Where spans go.
    pub spans: Option<Endpoint>,
    /// Work found due with too little time left waits until this sleep ends.
    not_before: Option<Instant>,
}

impl Exporter {
    pub fn new(
        agent: Agent,
        shared: Arc<Mutex<Shared>>,
        push: Option<Push>,
        spans: Option<Endpoint>,
    ) -> Exporter {
        Exporter {
            agent,
            shared,
            push,
            spans,
            not_before: None,
        }
    }

    fn spans_due(&self) -> Option<Instant> {
        let retry_at = self.spans.as_ref()?.retry_at;
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
            tracer.and_then(|tracer| tracer.batch(&shared.service_name))
        };
        let (Some((body, count)), Some(export)) = (batch, &mut self.spans) else {
            return false;
        };
        let result = post(&self.agent, &export.otlp, &body, until);
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
        export.record("traces", &result, Some(&mut tracer.dropped));
        result.is_ok()
    }

    /// Pushes the metrics, finished by `until`.
    fn push_metrics(&mut self, until: Instant) {
        let body = {
            let shared = lock(&self.shared);
            let Some(metrics) = &shared.metrics else {
                return;
            };
            metrics.otlp(SystemTime::now())
        };
        let Some(push) = &mut self.push else {
            return;
        };
        let result = post(&self.agent, &push.endpoint.otlp, &body, until);
        if let Err(Failure::NoTime) = result {
            // Not tried: the push waits for a longer sleep.
            self.not_before = Some(until);
            return;
        }
        push.next = Instant::now() + push.interval;
        push.endpoint.record("metrics", &result, None);
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
        let until = until.min(now + EXPORT_TIMEOUT);
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
enum Failure {
    /// A stop signal ended it.
    Stopped,
    /// No time was left for it before the next beat: it was not tried.
    NoTime,
    /// What failed, for the log; never the endpoint's credentials.
    Failed(String),
}

/// POSTs one OTLP request, finished by `until`.
fn post(agent: &Agent, endpoint: &Otlp, body: &[u8], until: Instant) -> Result<(), Failure> {
    let timeout = until.saturating_duration_since(Instant::now());
    if timeout < MIN_EXPORT_TIME {
        return Err(Failure::NoTime);
    }
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
        Ok(response) => Err(Failure::Failed(format!(
            "HTTP {}",
            response.status().as_u16()
        ))),
        Err(ureq::Error::Io(e)) if e.get_ref().is_some_and(|e| e.is::<Stopped>()) => {
            Err(Failure::Stopped)
        }
        // Cut short by the next beat, which an export never delays: say so, not "timeout".
        Err(ureq::Error::Timeout(_)) if timeout < EXPORT_TIMEOUT => Err(Failure::Failed(format!(
            "no reply in the {} ms before the next beat",
            timeout.as_millis().max(1)
        ))),
        Err(error) => {
            // ureq 3.5's errors do not quote the URL; should one ever, never its credentials.
            let mut text = error.to_string();
            if let Some(secret) = crate::config::url::userinfo_part(&endpoint.url) {
                text = text.replace(secret, "***");
            }
            Err(Failure::Failed(Bounded(&text, MAX_SHOWN_ERROR).to_string()))
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
            url: format!("http://collector.test{path}"),
            headers: Vec::new(),
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
        let tracer = Tracer::new(Sampler::Always, false, "http://s/", server.clone(), event);
        let shared = Shared {
            metrics: Some(Metrics::new(server, "svc", SystemTime::now())),
            tracer: Some(tracer),
            service_name: "svc".into(),
        };
        let push = Push::new(otlp("/v1/metrics"), interval);
        let spans = Endpoint::new(otlp("/v1/traces"));
        Exporter::new(
            memory.plain_agent(),
            Arc::new(Mutex::new(shared)),
            Some(push),
            Some(spans),
        )
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
            status(500, &[]),
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
        exporter.spans.as_mut().unwrap().retry_at = None;
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

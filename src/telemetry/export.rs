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
            // Ended by a stop signal: nothing went wrong with the collector.
            Err(Failure::Stopped) => {}
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
            let mut shared = lock(&self.shared);
            let service_name = shared.service_name.clone();
            shared
                .tracer
                .as_mut()
                .and_then(|tracer| tracer.take_batch(&service_name))
        };
        let (Some((body, count)), Some(export)) = (batch, &mut self.spans) else {
            return false;
        };
        let result = post(&self.agent, &export.otlp, &body, until);
        let mut shared = lock(&self.shared);
        let Some(tracer) = &mut shared.tracer else {
            return false;
        };
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
    /// What failed, for the log; never the endpoint's credentials.
    Failed(String),
}

/// POSTs one OTLP request, finished by `until`.
fn post(agent: &Agent, endpoint: &Otlp, body: &[u8], until: Instant) -> Result<(), Failure> {
    let timeout = until.saturating_duration_since(Instant::now());
    if timeout.is_zero() {
        return Err(Failure::Failed(
            "no time left before the next beat".to_owned(),
        ));
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

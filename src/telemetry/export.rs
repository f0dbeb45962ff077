//! The OTLP exports: metrics pushed every interval, spans in batches, both at exit. They are
//! idle work (see [`crate::wait::Idle`]): run while the thread sleeps, each within what is left
//! of that sleep and at most [`EXPORT_TIMEOUT`], so an export never makes a beat late. An export
//! is never retried: metrics are cumulative (the next push carries them), and the spans of a
//! failed export are dropped and counted.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ureq::Agent;

use super::Shared;
use crate::config::observability::Otlp;
use crate::config::url::split_userinfo;
use crate::log::{self, Bounded};
use crate::wait::{Idle, earliest};

/// The longest one export may take.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(1);
/// Less time than this left before the next beat: the export waits for a longer sleep.
const MIN_EXPORT_TIME: Duration = Duration::from_micros(100);
/// How much of an exporter's error a warning quotes.
const MAX_SHOWN_ERROR: usize = 200;

/// Metrics pushed every `interval`.
pub struct Push {
    pub endpoint: Otlp,
    pub interval: Duration,
    pub next: Instant,
    failing: bool,
}

impl Push {
    pub fn new(endpoint: Otlp, interval: Duration) -> Push {
        Push {
            endpoint,
            interval,
            next: Instant::now() + interval,
            failing: false,
        }
    }
}

/// Where spans go.
pub struct SpanExport {
    pub endpoint: Otlp,
    failing: bool,
}

impl SpanExport {
    pub fn new(endpoint: Otlp) -> SpanExport {
        SpanExport {
            endpoint,
            failing: false,
        }
    }
}

/// See the module documentation.
pub struct Exporter {
    pub agent: Agent,
    pub shared: Arc<Mutex<Shared>>,
    pub push: Option<Push>,
    pub spans: Option<SpanExport>,
    /// Work found due with too little time left waits until this sleep ends.
    not_before: Option<Instant>,
}

impl Exporter {
    pub fn new(
        agent: Agent,
        shared: Arc<Mutex<Shared>>,
        push: Option<Push>,
        spans: Option<SpanExport>,
    ) -> Exporter {
        Exporter {
            agent,
            shared,
            push,
            spans,
            not_before: None,
        }
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn spans_due(&self) -> Option<Instant> {
        self.spans.as_ref()?;
        self.shared().tracer.as_ref()?.due()
    }

    fn export_spans(&mut self, timeout: Duration) {
        let batch = {
            let mut shared = self.shared();
            let service_name = shared.service_name.clone();
            shared
                .tracer
                .as_mut()
                .and_then(|tracer| tracer.take_batch(&service_name))
        };
        let (Some((body, count)), Some(export)) = (batch, &mut self.spans) else {
            return;
        };
        let result = post(&self.agent, &export.endpoint, &body, timeout);
        let mut shared = self
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(tracer) = &mut shared.tracer else {
            return;
        };
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
        let body = {
            let shared = self.shared();
            let Some(metrics) = &shared.metrics else {
                return;
            };
            metrics.otlp(SystemTime::now())
        };
        let Some(push) = &mut self.push else {
            return;
        };
        let result = post(&self.agent, &push.endpoint, &body, timeout);
        push.next = Instant::now() + push.interval;
        report(&mut push.failing, "metrics", result, None);
    }
}

impl Idle for Exporter {
    fn due(&self) -> Option<Instant> {
        let due = earliest(self.push.as_ref().map(|p| p.next), self.spans_due())?;
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
        let timeout = left.min(EXPORT_TIMEOUT);
        if self.spans_due().is_some_and(|d| d <= now) {
            self.export_spans(timeout);
        }
        let left = until.saturating_duration_since(Instant::now());
        if self.push.as_ref().is_some_and(|p| p.next <= now) && !left.is_zero() {
            self.push_metrics(left.min(EXPORT_TIMEOUT));
        }
    }

    fn flush(&mut self, until: Instant) {
        let left = || until.saturating_duration_since(Instant::now());
        if self.spans.is_some() {
            self.export_spans(left().min(EXPORT_TIMEOUT));
        }
        if self.push.is_some() && !left().is_zero() {
            self.push_metrics(left());
        }
    }
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
            if let (_, Some(userinfo)) = split_userinfo(&endpoint.url) {
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

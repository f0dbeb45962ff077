//! Telemetry, as `K_OBSERVABILITY_CONFIG` asks for it: what the loop and the sender report
//! ([`Report`]) kept as metrics ([`metrics`]) and spans ([`trace`]), served to Prometheus
//! ([`scrape`]) and pushed as OTLP ([`export`], [`otlp`]). It never waits on its own: the scrape
//! server is a [`crate::wait::Service`] and the exports are [`crate::wait::Idle`] work, both
//! handed to the waiter. With observability off there is no telemetry at all.

mod export;
mod metrics;
mod otlp;
mod process;
mod protobuf;
mod record;
mod scrape;
mod shared;
mod trace;

use std::io;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use ureq::Agent;

use crate::config::observability::{self, CONFIG_VAR, Observability};
use crate::config::url::{SinkUrl, redact_userinfo};
use crate::event::{Event, EventSettings, Ids};
use crate::log;
use crate::report::{ErrorType, Outcome, Report};
use crate::wait::Waiter;
use export::{Endpoint, Exporter, Push};
use metrics::Metrics;
use record::{AttemptRecord, Server};
use shared::{Shared, lock};
use trace::{EventTrace, Sampler, Tracer};

/// What telemetry reports on: the sink the attempts go to, and the events' source and type.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub sink: &'a SinkUrl,
    pub event: &'a EventSettings,
}

/// Records what the loop and the sender report.
pub struct Telemetry {
    shared: Arc<Mutex<Shared>>,
    ids: Ids,
    /// The trace of the event being sent, when it is traced.
    event: Option<EventTrace>,
    attempt_started: Option<Instant>,
}

impl Telemetry {
    /// Telemetry as `settings` ask for it, on `subject`, its server and exports handed to
    /// `waiter`; `None` when observability is off, or nothing of it could be set up. `agent`
    /// makes the exports' agent (told whether an export goes to an https collector). What
    /// cannot be set up (a port in use) is a warning, and that part is off.
    pub fn start(
        settings: &Observability,
        subject: Subject,
        waiter: &Waiter,
        agent: impl FnOnce(bool) -> Agent,
    ) -> Option<Telemetry> {
        if settings.is_off() {
            return None;
        }
        let server = Server::of(subject.sink);
        let (listener, push) = metrics_outlets(&settings.metrics);
        let metrics = (listener.is_some() || push.is_some())
            .then(|| Metrics::new(server.clone(), &settings.service_name, SystemTime::now()));
        let (tracer, spans) = tracer(&settings.tracing, subject, server);
        let shared = Shared {
            metrics,
            tracer,
            service_name: settings.service_name.clone(),
        };
        if shared.metrics.is_none() && shared.tracer.is_none() {
            return None;
        }
        let shared = Arc::new(Mutex::new(shared));
        if let Some(listener) = listener {
            waiter.set_service(Box::new(scrape::ScrapeServer::new(
                listener,
                shared.clone(),
            )));
        }
        if push.is_some() || spans.is_some() {
            let https = [push.as_ref().map(|p| &p.endpoint), spans.as_ref()]
                .into_iter()
                .flatten()
                .any(|endpoint| endpoint.otlp.url.starts_with("https://"));
            let exporter = Exporter::new(agent(https), shared.clone(), push, spans);
            waiter.set_idle(Box::new(exporter));
        }
        Some(Telemetry {
            shared,
            ids: Ids::default(),
            event: None,
            attempt_started: None,
        })
    }
}

/// Where metrics go: the Prometheus listener, or the OTLP push; neither when metrics are off or
/// the listener cannot be had.
fn metrics_outlets(metrics: &observability::Metrics) -> (Option<TcpListener>, Option<Push>) {
    match metrics {
        observability::Metrics::Off => (None, None),
        observability::Metrics::Prometheus { host, port } => (serve_prometheus(host, *port), None),
        observability::Metrics::Otlp { endpoint, interval } => {
            log::line(format_args!(
                "metrics: pushing OTLP to {} every {interval:?}",
                redact_userinfo(&endpoint.url)
            ));
            (None, Some(Push::new(endpoint.clone(), *interval)))
        }
    }
}

/// The tracer `tracing` asks for, and the OTLP endpoint its spans go to when they do not go to
/// stdout.
fn tracer(
    tracing: &observability::Tracing,
    subject: Subject,
    server: Server,
) -> (Option<Tracer>, Option<Endpoint>) {
    let event = (
        subject.event.source.as_str(),
        subject.event.event_type.as_str(),
    );
    // `url.full`: as logs show it, never a credential, whatever a parser makes of it.
    let url = subject.sink.shown();
    match tracing {
        observability::Tracing::Off => (None, None),
        observability::Tracing::Stdout { sampling } => {
            log::never_block_stdout();
            log::line(format_args!(
                "tracing: spans as JSON lines on stdout, sampling {sampling}"
            ));
            let tracer = Tracer::new(Sampler::ratio(*sampling), true, url, server, event);
            (Some(tracer), None)
        }
        observability::Tracing::Otlp { endpoint, sampling } => {
            log::line(format_args!(
                "tracing: OTLP to {}, sampling {sampling}",
                redact_userinfo(&endpoint.url)
            ));
            let tracer = Tracer::new(Sampler::ratio(*sampling), false, url, server, event);
            (Some(tracer), Some(Endpoint::new(endpoint.clone())))
        }
    }
}

/// The Prometheus listener on `host:port`, said in the log; a warning and `None` when it cannot
/// be had.
fn serve_prometheus(host: &str, port: u16) -> Option<TcpListener> {
    match listen(host, port) {
        Ok(listener) => {
            let at = listener
                .local_addr()
                .map_or("?".to_owned(), |a| a.to_string());
            log::line(format_args!(
                "metrics: serving Prometheus text at http://{at}/metrics"
            ));
            Some(listener)
        }
        Err(error) => {
            log::line(format_args!(
                "warning: {CONFIG_VAR}: cannot listen on {host}:{port} for metrics ({error}); \
                 metrics are off"
            ));
            None
        }
    }
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

impl Report for Telemetry {
    fn start_event(&mut self, event: &Event) {
        let mut shared = lock(&self.shared);
        if let Some(tracer) = &mut shared.tracer {
            self.event = tracer.start_event(event, &mut self.ids);
        }
    }

    fn start_attempt(&mut self) -> Option<String> {
        self.attempt_started = Some(Instant::now());
        let trace = self.event.as_mut()?;
        let mut shared = lock(&self.shared);
        shared.tracer.as_mut()?.start_attempt(trace, &mut self.ids)
    }

    fn end_attempt(&mut self, status: Option<u16>, error: Option<ErrorType>, body_size: usize) {
        let Some(started) = self.attempt_started.take() else {
            return;
        };
        let record = AttemptRecord {
            status,
            error_type: error,
            duration: started.elapsed(),
            body_size,
        };
        let mut shared = lock(&self.shared);
        if let Some(metrics) = &mut shared.metrics {
            metrics.attempt(&record);
        }
        if let (Some(tracer), Some(trace)) = (&mut shared.tracer, &mut self.event) {
            tracer.end_attempt(trace, &record);
        }
    }

    fn end_event(&mut self, outcome: Outcome) {
        let trace = self.event.take();
        let mut shared = lock(&self.shared);
        if let Some(metrics) = &mut shared.metrics {
            metrics.event(outcome, 1);
        }
        if let (Some(tracer), Some(trace)) = (&mut shared.tracer, trace) {
            tracer.end_event(trace, outcome);
        }
    }

    fn skipped(&mut self, beats: u64) {
        if let Some(metrics) = &mut lock(&self.shared).metrics {
            metrics.event(Outcome::Skipped, beats);
        }
    }
}

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
mod trace;

use std::io;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime};

use ureq::Agent;

use crate::config::Config;
use crate::config::observability::{self, CONFIG_VAR};
use crate::event::{Event, Ids};
use crate::log;
use crate::report::{ErrorType, Outcome, Report};
use crate::wait::Waiter;
use export::{Endpoint, Exporter, Push};
use metrics::Metrics;
use record::{AttemptRecord, Server};
use trace::{EventTrace, Sampler, Tracer};

/// What the recorder, the scrape server and the exporter share.
pub struct Shared {
    metrics: Option<Metrics>,
    tracer: Option<Tracer>,
    service_name: String,
}

/// The shared records, locked. A panic while they were held is taken as over: the records are
/// counters and queues that stay usable.
fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
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
    /// Telemetry as `config` asks for it, its server and exports handed to `waiter`; `None`
    /// when observability is off, or nothing of it could be set up. `agent` makes the exports'
    /// agent. What cannot be set up (a port in use) is a warning, and that part is off.
    pub fn start(
        config: &Config,
        waiter: &Waiter,
        agent: impl FnOnce() -> Agent,
    ) -> Option<Telemetry> {
        let settings = &config.observability;
        if settings.is_off() {
            return None;
        }
        let server = Server::of(&config.sink);
        let (listener, push) = metrics_outlets(&settings.metrics);
        let metrics = (listener.is_some() || push.is_some())
            .then(|| Metrics::new(server.clone(), &settings.service_name, SystemTime::now()));
        let (tracer, spans) = tracer(config, server);
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
            let exporter = Exporter::new(agent(), shared.clone(), push, spans);
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
                log::redact_userinfo(&endpoint.url)
            ));
            (None, Some(Push::new(endpoint.clone(), *interval)))
        }
    }
}

/// The tracer `config` asks for, and the OTLP endpoint its spans go to when they do not go to
/// stdout.
fn tracer(config: &Config, server: Server) -> (Option<Tracer>, Option<Endpoint>) {
    let event = (config.source.as_str(), config.event_type.as_str());
    // `url.full`: as logs show it, never a credential, whatever a parser makes of it.
    let url = config.sink.shown();
    match &config.observability.tracing {
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
                log::redact_userinfo(&endpoint.url)
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

//! Telemetry, as `K_OBSERVABILITY_CONFIG` asks for it: what the loop and the sender report
//! ([`Report`]) kept as metrics ([`metrics`]) and spans ([`trace`]), served to Prometheus
//! ([`scrape`]) and pushed as OTLP ([`export`], [`otlp`]). It never waits on its own: the scrape
//! server is a [`crate::wait::Service`] and the exports are [`crate::wait::Idle`] work, both
//! handed to the waiter. With observability off there is no telemetry at all.

mod export;
mod grpc;
mod gzip;
mod metrics;
mod otlp;
mod process;
mod protobuf;
mod record;
mod request;
mod scrape;
mod shared;
mod trace;

use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use ureq::Agent;

use crate::config::observability::{self, CONFIG_VAR, ExportTls, Observability};
use crate::config::url::{SinkUrl, redact_userinfo};
use crate::event::{Event, EventSettings, Ids};
use crate::log;
use crate::report::{ErrorType, Outcome, Report};
use crate::wait::Waiter;
use export::{Endpoint, Exporter, Push, Signal, Spans};
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

/// What exports need from the way to the sink, which the program wires in: connections made
/// as the sink's are (the same resolver, every wait through the waiter and ended by a stop) and
/// TLS built on the sink's trust.
pub trait Links: Send + Sync {
    /// A ureq agent for HTTP exports, https with `tls` (or the sink's trust).
    fn agent(&self, https: bool, tls: &ExportTls) -> Agent;
    /// The TLS configuration of gRPC exports (ALPN `h2`), or why there is none.
    fn grpc_tls(&self, tls: &ExportTls) -> Result<Arc<rustls::ClientConfig>, String>;
    /// A TCP connection to `host:port` by `deadline`.
    fn dial(&self, host: &str, port: u16, deadline: Instant) -> io::Result<TcpStream>;
    /// The waiter the exports' sockets wait through.
    fn waiter(&self) -> Arc<crate::wait::Waiter>;
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
    /// `waiter`; `None` when observability is off, or nothing of it could be set up. `links`
    /// make the exports' connections. What cannot be set up (a port in use) is a warning, and
    /// that part is off.
    pub fn start(
        settings: &Observability,
        subject: Subject,
        waiter: &Waiter,
        links: &Arc<dyn Links>,
    ) -> Option<Telemetry> {
        if settings.is_off() {
            return None;
        }
        let server = Server::of(subject.sink);
        let (listener, push) = metrics_outlets(&settings.metrics, links);
        let metrics = (listener.is_some() || push.is_some()).then(|| {
            Metrics::new(
                server.clone(),
                &settings.service_name,
                &settings.resource,
                SystemTime::now(),
            )
        });
        let (tracer, spans) = tracer(&settings.tracing, subject, server, links);
        let shared = Shared {
            metrics,
            tracer,
            service_name: settings.service_name.clone(),
            resource: settings.resource.clone(),
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
            let exporter = Exporter::new(shared.clone(), push, spans);
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
fn metrics_outlets(
    metrics: &observability::Metrics,
    links: &Arc<dyn Links>,
) -> (Option<TcpListener>, Option<Push>) {
    match metrics {
        observability::Metrics::Off => (None, None),
        observability::Metrics::Prometheus { host, port } => (serve_prometheus(host, *port), None),
        observability::Metrics::Otlp {
            endpoint,
            interval,
            timeout,
            temporality,
        } => {
            log::line(format_args!(
                "metrics: pushing OTLP{} to {} every {interval:?}",
                over(endpoint),
                redact_userinfo(&endpoint.url)
            ));
            let endpoint = Endpoint::new(endpoint.clone(), Signal::Metrics, links);
            (
                None,
                Some(Push::new(endpoint, *interval, *timeout, *temporality)),
            )
        }
    }
}

/// How an endpoint's exports travel, for the start-up line.
fn over(otlp: &observability::Otlp) -> &'static str {
    match (otlp.protocol, otlp.gzip) {
        (observability::Protocol::Grpc, false) => " over gRPC",
        (observability::Protocol::Grpc, true) => " over gRPC, gzip",
        (observability::Protocol::HttpProtobuf, false) => "",
        (observability::Protocol::HttpProtobuf, true) => ", gzip",
    }
}

/// The tracer `tracing` asks for, and the OTLP endpoint its spans go to when they do not go to
/// stdout.
fn tracer(
    tracing: &observability::Tracing,
    subject: Subject,
    server: Server,
    links: &Arc<dyn Links>,
) -> (Option<Tracer>, Option<Spans>) {
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
            let batch = Default::default();
            let tracer = Tracer::new(Sampler::ratio(*sampling), true, url, server, event, batch);
            (Some(tracer), None)
        }
        observability::Tracing::Otlp {
            endpoint,
            sampling,
            batch,
        } => {
            log::line(format_args!(
                "tracing: OTLP{} to {}, sampling {sampling}",
                over(endpoint),
                redact_userinfo(&endpoint.url)
            ));
            let tracer = Tracer::new(Sampler::ratio(*sampling), false, url, server, event, *batch);
            let spans = Spans {
                endpoint: Endpoint::new(endpoint.clone(), Signal::Traces, links),
                timeout: batch.timeout,
            };
            (Some(tracer), Some(spans))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::observability::{Metrics as MetricsSettings, Otlp, Tracing};
    use crate::config::tests::sinked;
    use crate::testing::Memory;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use prost::Message;
    use std::time::Duration;

    fn otlp(path: &str) -> Otlp {
        Otlp {
            protocol: observability::Protocol::HttpProtobuf,
            url: format!("http://collector.test{path}"),
            headers: vec![("x-tenant".into(), "7".into())],
            timeout: Duration::from_secs(10),
            gzip: false,
            tls: Default::default(),
        }
    }

    /// Telemetry tracing every event and pushing metrics over OTLP to `memory`.
    fn started(memory: &Memory, waiter: &Waiter) -> Telemetry {
        let config = sinked(&["--eventType=t.x"]).unwrap();
        let settings = Observability {
            metrics: MetricsSettings::Otlp {
                endpoint: otlp("/v1/metrics"),
                interval: Duration::from_secs(60),
                timeout: Duration::from_secs(30),
                temporality: observability::Temporality::Cumulative,
            },
            tracing: Tracing::Otlp {
                endpoint: otlp("/v1/traces"),
                sampling: 1.0,
                batch: Default::default(),
            },
            service_name: "svc".into(),
            resource: vec![("deployment.environment".into(), "test".into())],
        };
        let subject = Subject {
            sink: &config.sink.url,
            event: &config.event,
        };
        Telemetry::start(&settings, subject, waiter, &memory.links()).expect("telemetry on")
    }

    fn event(id: &str) -> Event {
        Event {
            id: id.into(),
            time: String::new(),
            scheduled: None,
            sequence: None,
            body: crate::event::Body::Heartbeat(Vec::new()),
        }
    }

    fn string(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
        match value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s)) => s.clone(),
            Some(Value::IntValue(i)) => i.to_string(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn each_attempt_is_a_span_under_its_events_and_its_traceparent_names_it() {
        let memory = Memory::new([]);
        let waiter = Waiter::new().unwrap();
        let mut telemetry = started(&memory, &waiter);
        telemetry.start_event(&event("e-1"));
        let first = telemetry.start_attempt().expect("traced");
        telemetry.end_attempt(Some(503), Some(ErrorType::Status(503)), 19);
        let second = telemetry.start_attempt().expect("traced");
        telemetry.end_attempt(Some(200), None, 19);
        telemetry.end_event(Outcome::Delivered);
        telemetry.skipped(2);
        waiter.flush_idle(Instant::now() + Duration::from_secs(1));

        let heads: Vec<String> = (0..memory.requests().len())
            .map(|i| memory.head(i))
            .collect();
        assert_eq!(heads.len(), 2, "{heads:?}");
        let traces = heads
            .iter()
            .position(|h| h.starts_with("POST /v1/traces "))
            .unwrap();
        for head in &heads {
            let head = head.to_ascii_lowercase();
            assert!(
                head.contains("content-type: application/x-protobuf"),
                "{head}"
            );
            assert!(head.contains("x-tenant: 7"), "{head}");
        }
        let body = memory.body(traces);
        let export = ExportTraceServiceRequest::decode(&body[..]).unwrap();
        let spans = &export.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), 3, "{spans:?}");
        let event_span = spans.iter().find(|s| s.parent_span_id.is_empty()).unwrap();
        assert_eq!(event_span.name, "cloudevents.client.t.x");
        let mut attempts: Vec<_> = spans
            .iter()
            .filter(|s| !s.parent_span_id.is_empty())
            .collect();
        attempts.sort_by_key(|s| s.start_time_unix_nano);
        for (span, traceparent) in attempts.iter().zip([&first, &second]) {
            assert_eq!(span.parent_span_id, event_span.span_id);
            assert_eq!(span.trace_id, event_span.trace_id);
            let (trace, id) = (hex(&span.trace_id), hex(&span.span_id));
            assert_eq!(*traceparent, format!("00-{trace}-{id}-01"));
        }
        let status = |span: &opentelemetry_proto::tonic::trace::v1::Span| {
            let attribute = span
                .attributes
                .iter()
                .find(|a| a.key == "http.response.status_code");
            string(&attribute.unwrap().value)
        };
        assert_eq!(
            (status(attempts[0]), status(attempts[1])),
            ("503".into(), "200".into())
        );

        let body = memory.body(1 - traces);
        let export = ExportMetricsServiceRequest::decode(&body[..]).unwrap();
        let metrics = &export.resource_metrics[0].scope_metrics[0].metrics;
        let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
        assert!(names.contains(&"http.client.request.duration"), "{names:?}");
    }

    #[test]
    fn events_are_not_traced_with_sampling_zero_and_no_traceparent_goes_out() {
        let memory = Memory::new([]);
        let waiter = Waiter::new().unwrap();
        let config = sinked(&[]).unwrap();
        let settings = Observability {
            metrics: MetricsSettings::Off,
            tracing: Tracing::Otlp {
                endpoint: otlp("/v1/traces"),
                sampling: 0.0,
                batch: Default::default(),
            },
            service_name: "svc".into(),
            resource: Vec::new(),
        };
        let subject = Subject {
            sink: &config.sink.url,
            event: &config.event,
        };
        let mut telemetry = Telemetry::start(&settings, subject, &waiter, &memory.links()).unwrap();
        for n in 0..20 {
            telemetry.start_event(&event(&n.to_string()));
            assert_eq!(telemetry.start_attempt(), None);
            telemetry.end_attempt(Some(200), None, 1);
            telemetry.end_event(Outcome::Delivered);
        }
        waiter.flush_idle(Instant::now() + Duration::from_secs(1));
        assert!(memory.requests().is_empty());
    }

    #[test]
    fn observability_off_is_no_telemetry_at_all() {
        let waiter = Waiter::new().unwrap();
        let config = sinked(&[]).unwrap();
        let subject = Subject {
            sink: &config.sink.url,
            event: &config.event,
        };
        let none = Telemetry::start(
            &Observability::default(),
            subject,
            &waiter,
            &Memory::new([]).links(),
        );
        assert!(none.is_none());
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

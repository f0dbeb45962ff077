//! Traces: a span per event (`cloudevents.client.<type>`, PRODUCER) with a CLIENT span per HTTP
//! attempt under it (`HTTP POST`, OTel's HTTP client attributes), a fresh trace per event,
//! sampled by trace id as OTel's `TraceIdRatioBased`. This module owns the spans, the
//! `traceparent` value, and both ways out: OTLP protobuf in batches, or JSON lines on stdout.

use std::time::{Duration, Instant, SystemTime};

use crate::event::{Event, Ids};
use crate::metrics::{AttemptRecord, Outcome, Server, key_value, unix_nanos};
use crate::protobuf::Message;

/// The instrumentation scope named in exports.
pub const SCOPE: &str = "heartbeats";
/// Spans wait at most this long for their batch to be exported.
pub const BATCH_DELAY: Duration = Duration::from_secs(5);
/// A batch this large is exported at once.
const BATCH_SIZE: usize = 512;
/// Spans kept while the collector cannot be reached; more are dropped and counted.
const MAX_PENDING: usize = 2048;

const KIND_CLIENT: u64 = 3;
const KIND_PRODUCER: u64 = 4;
const STATUS_ERROR: u64 = 2;

/// Which events are traced.
#[derive(Debug, Clone, Copy)]
pub enum Sampler {
    Always,
    /// Traced when the trace id's last 63 bits are below this.
    Ratio(u64),
}

impl Sampler {
    pub fn ratio(rate: f64) -> Sampler {
        if rate >= 1.0 {
            Sampler::Always
        } else {
            // 2^63 scaled; rate 0 gives 0, which samples nothing.
            Sampler::Ratio((rate.max(0.0) * 9_223_372_036_854_775_808.0) as u64)
        }
    }

    fn samples(self, trace_id: &[u8; 16]) -> bool {
        match self {
            Sampler::Always => true,
            Sampler::Ratio(bound) => {
                let low = u64::from_be_bytes(trace_id[8..].try_into().unwrap_or_default());
                (low >> 1) < bound
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Value {
    Str(String),
    Int(i64),
}

/// A finished span.
#[derive(Debug, Clone)]
pub struct Span {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    name: String,
    kind: u64,
    start: SystemTime,
    end: SystemTime,
    attributes: Vec<(&'static str, Value)>,
    error: bool,
}

/// The trace of one event while it is being delivered.
#[derive(Debug)]
pub struct EventTrace {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    start: SystemTime,
    attributes: Vec<(&'static str, Value)>,
    name: String,
    /// The attempt in flight: its span id and start.
    attempt: Option<([u8; 8], SystemTime)>,
    attempts: u32,
}

/// Where finished spans go.
pub struct Tracer {
    sampler: Sampler,
    url: String,
    server: Server,
    pending: Vec<Span>,
    /// When the oldest pending span finished.
    oldest: Option<Instant>,
    /// Spans dropped since the last report: the batch was full or an export failed.
    pub dropped: u64,
    stdout: bool,
    source: String,
    event_type: String,
}

impl Tracer {
    /// A tracer that batches spans for OTLP export (`stdout: false`) or writes each as a JSON
    /// line; `url` is the sink's, without userinfo; `source` and `event_type` every event's.
    pub fn new(
        sampler: Sampler,
        stdout: bool,
        url: &str,
        server: Server,
        (source, event_type): (&str, &str),
    ) -> Tracer {
        Tracer {
            source: source.to_owned(),
            event_type: event_type.to_owned(),
            sampler,
            url: url.to_owned(),
            server,
            pending: Vec::new(),
            oldest: None,
            dropped: 0,
            stdout,
        }
    }

    /// Starts the trace of `event`, when sampled.
    pub fn start_event(&mut self, event: &Event, ids: &mut Ids) -> Option<EventTrace> {
        let trace_id: [u8; 16] = ids.random().ok()?;
        if trace_id == [0; 16] || !self.sampler.samples(&trace_id) {
            return None;
        }
        let span_id = nonzero(ids.random().ok()?);
        Some(EventTrace {
            trace_id,
            span_id,
            start: SystemTime::now(),
            name: format!("cloudevents.client.{}", self.event_type),
            attributes: vec![
                ("cloudevents.event_id", Value::Str(event.id.clone())),
                ("cloudevents.event_source", Value::Str(self.source.clone())),
                (
                    "cloudevents.event_type",
                    Value::Str(self.event_type.clone()),
                ),
                ("cloudevents.event_spec_version", Value::Str("1.0".into())),
            ],
            attempt: None,
            attempts: 0,
        })
    }

    /// Starts an attempt's span; returns the `traceparent` header value naming it.
    pub fn start_attempt(&mut self, trace: &mut EventTrace, ids: &mut Ids) -> Option<String> {
        let span_id = nonzero(ids.random().ok()?);
        trace.attempt = Some((span_id, SystemTime::now()));
        trace.attempts += 1;
        Some(format!("00-{}-{}-01", hex(&trace.trace_id), hex(&span_id)))
    }

    pub fn end_attempt(&mut self, trace: &mut EventTrace, record: &AttemptRecord) {
        let Some((span_id, start)) = trace.attempt.take() else {
            return;
        };
        let mut attributes = vec![
            ("http.request.method", Value::Str("POST".into())),
            ("url.full", Value::Str(self.url.clone())),
            ("server.address", Value::Str(self.server.address.clone())),
            ("server.port", Value::Int(i64::from(self.server.port))),
        ];
        if let Some(status) = record.status {
            attributes.push(("http.response.status_code", Value::Int(i64::from(status))));
        }
        if trace.attempts > 1 {
            let resent = i64::from(trace.attempts - 1);
            attributes.push(("http.request.resend_count", Value::Int(resent)));
        }
        if let Some(error) = record.error_type {
            attributes.push(("error.type", Value::Str(error.to_string())));
        }
        self.finish(Span {
            trace_id: trace.trace_id,
            span_id,
            parent: Some(trace.span_id),
            name: "HTTP POST".to_owned(),
            kind: KIND_CLIENT,
            start,
            end: SystemTime::now(),
            attributes,
            error: record.error_type.is_some(),
        });
    }

    pub fn end_event(&mut self, trace: EventTrace, outcome: Outcome) {
        self.finish(Span {
            trace_id: trace.trace_id,
            span_id: trace.span_id,
            parent: None,
            name: trace.name,
            kind: KIND_PRODUCER,
            start: trace.start,
            end: SystemTime::now(),
            attributes: trace.attributes,
            error: outcome != Outcome::Delivered,
        });
    }

    fn finish(&mut self, span: Span) {
        if self.stdout {
            if !crate::log::stdout_line(&json(&span)) {
                self.dropped += 1;
            }
            return;
        }
        if self.pending.len() >= MAX_PENDING {
            self.dropped += 1;
            return;
        }
        self.oldest.get_or_insert_with(Instant::now);
        self.pending.push(span);
    }

    /// When the pending spans must be exported, if any are.
    pub fn due(&self) -> Option<Instant> {
        let oldest = self.oldest?;
        if self.pending.len() >= BATCH_SIZE {
            return Some(oldest);
        }
        Some(oldest + BATCH_DELAY)
    }

    /// Takes the pending spans as an OTLP `ExportTraceServiceRequest`, with their count.
    pub fn take_batch(&mut self, service_name: &str) -> Option<(Vec<u8>, usize)> {
        if self.pending.is_empty() {
            return None;
        }
        self.oldest = None;
        let spans = std::mem::take(&mut self.pending);
        let mut request = Message::new();
        request.message(1, |resource_spans| {
            resource_spans.message(1, |resource| resource_attributes(resource, service_name));
            resource_spans.message(2, |scope_spans| {
                scope_spans.message(1, |scope| {
                    scope.string(1, SCOPE).string(2, crate::VERSION);
                });
                for span in &spans {
                    scope_spans.message(2, |m| encode(m, span));
                }
            });
        });
        Some((request.into_bytes(), spans.len()))
    }
}

/// The resource every export names: `service.name`, `service.version`, the SDK.
pub fn resource_attributes(resource: &mut Message, service_name: &str) {
    for (key, value) in [
        ("service.name", service_name),
        ("service.version", crate::VERSION),
        ("telemetry.sdk.name", "heartbeats"),
        ("telemetry.sdk.language", "rust"),
        ("telemetry.sdk.version", crate::VERSION),
    ] {
        resource.message(1, |kv| key_value(kv, key, value));
    }
}

fn encode(m: &mut Message, span: &Span) {
    m.bytes(1, &span.trace_id).bytes(2, &span.span_id);
    if let Some(parent) = span.parent {
        m.bytes(4, &parent);
    }
    m.string(5, &span.name).uint(6, span.kind);
    m.fixed64(7, unix_nanos(span.start));
    m.fixed64(8, unix_nanos(span.end));
    for (key, value) in &span.attributes {
        m.message(9, |kv| match value {
            Value::Str(s) => key_value(kv, key, s),
            Value::Int(i) => {
                kv.string(1, key).message(2, |any| {
                    any.uint(3, *i as u64);
                });
            }
        });
    }
    if span.error {
        m.message(15, |status| {
            status.uint(3, STATUS_ERROR);
        });
    }
    // Trace flags: sampled.
    m.fixed32(16, 1);
}

/// One span as a JSON line, with the field names of Go's `stdouttrace` exporter.
fn json(span: &Span) -> String {
    use serde_json::json;
    let attributes: Vec<serde_json::Value> = span
        .attributes
        .iter()
        .map(|(key, value)| match value {
            Value::Str(s) => json!({"Key": key, "Value": {"Type": "STRING", "Value": s}}),
            Value::Int(i) => json!({"Key": key, "Value": {"Type": "INT64", "Value": i}}),
        })
        .collect();
    let time = |t: SystemTime| crate::time::rfc3339_nano(t).to_string();
    json!({
        "Name": span.name,
        "SpanContext": {"TraceID": hex(&span.trace_id), "SpanID": hex(&span.span_id), "TraceFlags": "01"},
        "Parent": {"TraceID": hex(&span.trace_id), "SpanID": span.parent.map_or("0000000000000000".to_owned(), |p| hex(&p))},
        "SpanKind": span.kind,
        "StartTime": time(span.start),
        "EndTime": time(span.end),
        "Attributes": attributes,
        "Status": {"Code": if span.error { "Error" } else { "Unset" }, "Description": ""},
    })
    .to_string()
}

fn nonzero(mut id: [u8; 8]) -> [u8; 8] {
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ratio_sampler_compares_the_ids_last_63_bits_as_otel_does() {
        let mut id = [0u8; 16];
        assert!(!Sampler::ratio(0.0).samples(&id), "rate 0 samples nothing");
        assert!(Sampler::ratio(1.0).samples(&[0xff; 16]));
        // Half: ids whose low 64 bits are below 2^63 after the shift, i.e. below 2^64 / 2.
        id[8] = 0x7f;
        assert!(Sampler::ratio(0.5).samples(&id));
        id[8] = 0x80;
        assert!(!Sampler::ratio(0.5).samples(&id));
    }
}

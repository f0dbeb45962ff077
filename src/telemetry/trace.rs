//! Traces: a span per event (`cloudevents.client.<type>`, PRODUCER) with a CLIENT span per HTTP
//! attempt under it (`HTTP POST`, OTel's HTTP client attributes), a fresh trace per event,
//! sampled by trace id as OTel's `TraceIdRatioBased`. This module owns the spans, the
//! `traceparent` value, and both ways out: OTLP protobuf in batches, or JSON lines on stdout.

use std::time::{Duration, Instant, SystemTime};

use super::otlp::{key_value, resource_attributes, unix_nanos};
use super::protobuf::Message;
use super::record::{AttemptRecord, Server};
use crate::event::{Event, Ids, push_hex};
use crate::report::{ErrorType, Outcome};

/// The instrumentation scope named in exports.
pub const SCOPE: &str = "heartbeats";
/// Spans wait at most this long for their batch to be exported.
pub const BATCH_DELAY: Duration = Duration::from_secs(5);
/// A batch this large is exported at once.
const BATCH_SIZE: usize = 128;
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

/// An attribute value, borrowed for encoding.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Str(&'a str),
    Int(i64),
}

/// A finished span: ids, times, and what it was; its attributes are made when it is encoded,
/// from this and the tracer's constant ones, so a span costs one allocation (an event's id).
#[derive(Debug, Clone)]
pub struct Span {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    start: SystemTime,
    end: SystemTime,
    what: What,
}

#[derive(Debug, Clone)]
enum What {
    Event {
        id: String,
        delivered: bool,
    },
    Attempt {
        status: Option<u16>,
        resent: u32,
        error: Option<ErrorType>,
    },
}

impl Span {
    fn is_error(&self) -> bool {
        match &self.what {
            What::Event { delivered, .. } => !delivered,
            What::Attempt { error, .. } => error.is_some(),
        }
    }

    fn kind(&self) -> u64 {
        match self.what {
            What::Event { .. } => KIND_PRODUCER,
            What::Attempt { .. } => KIND_CLIENT,
        }
    }
}

/// The trace of one event while it is being delivered.
#[derive(Debug)]
pub struct EventTrace {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    start: SystemTime,
    id: String,
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
    /// `cloudevents.client.<type>`: the name of every event's span.
    event_span_name: String,
    /// [`Tracer::constant_attributes`] as encoded span fields, for each kind of span.
    encoded_event_attributes: Vec<u8>,
    encoded_attempt_attributes: Vec<u8>,
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
        let mut tracer = Tracer {
            encoded_event_attributes: Vec::new(),
            encoded_attempt_attributes: Vec::new(),
            source: source.to_owned(),
            event_type: event_type.to_owned(),
            event_span_name: format!("cloudevents.client.{event_type}"),
            sampler,
            url: url.to_owned(),
            server,
            pending: Vec::new(),
            oldest: None,
            dropped: 0,
            stdout,
        };
        for event in [true, false] {
            let mut m = Message::new();
            tracer.constant_attributes(event, |key, value| attribute(&mut m, key, value));
            if event {
                tracer.encoded_event_attributes = m.into_bytes();
            } else {
                tracer.encoded_attempt_attributes = m.into_bytes();
            }
        }
        tracer
    }

    /// Starts the trace of `event`, when sampled.
    pub fn start_event(&mut self, event: &Event, ids: &mut Ids) -> Option<EventTrace> {
        let trace_id: [u8; 16] = ids.random().ok()?;
        if trace_id == [0; 16] || !self.sampler.samples(&trace_id) {
            return None;
        }
        Some(EventTrace {
            trace_id,
            span_id: nonzero(ids.random().ok()?),
            start: SystemTime::now(),
            id: event.id.clone(),
            attempt: None,
            attempts: 0,
        })
    }

    /// Starts an attempt's span; returns the `traceparent` header value naming it.
    pub fn start_attempt(&mut self, trace: &mut EventTrace, ids: &mut Ids) -> Option<String> {
        let span_id = nonzero(ids.random().ok()?);
        trace.attempt = Some((span_id, SystemTime::now()));
        trace.attempts += 1;
        let mut traceparent = String::with_capacity(55);
        traceparent.push_str("00-");
        push_hex(&mut traceparent, &trace.trace_id);
        traceparent.push('-');
        push_hex(&mut traceparent, &span_id);
        traceparent.push_str("-01");
        Some(traceparent)
    }

    pub fn end_attempt(&mut self, trace: &mut EventTrace, record: &AttemptRecord) {
        let Some((span_id, start)) = trace.attempt.take() else {
            return;
        };
        self.finish(Span {
            trace_id: trace.trace_id,
            span_id,
            parent: Some(trace.span_id),
            start,
            end: SystemTime::now(),
            what: What::Attempt {
                status: record.status,
                resent: trace.attempts - 1,
                error: record.error_type,
            },
        });
    }

    pub fn end_event(&mut self, trace: EventTrace, outcome: Outcome) {
        self.finish(Span {
            trace_id: trace.trace_id,
            span_id: trace.span_id,
            parent: None,
            start: trace.start,
            end: SystemTime::now(),
            what: What::Event {
                id: trace.id,
                delivered: outcome == Outcome::Delivered,
            },
        });
    }

    fn finish(&mut self, span: Span) {
        if self.stdout {
            if !crate::log::stdout_line(self.json(&span)) {
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
        let mut request = Message::with_capacity(256 + spans.len() * 320);
        request.message(1, |resource_spans| {
            resource_spans.message(1, |resource| resource_attributes(resource, service_name));
            resource_spans.message(2, |scope_spans| {
                scope_spans.message(1, |scope| {
                    scope.string(1, SCOPE).string(2, super::otlp::VERSION);
                });
                for span in &spans {
                    scope_spans.message(2, |m| self.encode(m, span));
                }
            });
        });
        Some((request.into_bytes(), spans.len()))
    }

    fn name<'a>(&'a self, span: &Span) -> &'a str {
        match span.what {
            What::Event { .. } => &self.event_span_name,
            What::Attempt { .. } => "HTTP POST",
        }
    }

    /// Calls `visit` with the attributes every span of this kind has, the same on every event.
    fn constant_attributes(&self, event: bool, mut visit: impl FnMut(&str, Value<'_>)) {
        if event {
            visit("cloudevents.event_source", Value::Str(&self.source));
            visit("cloudevents.event_type", Value::Str(&self.event_type));
            visit("cloudevents.event_spec_version", Value::Str("1.0"));
        } else {
            visit("http.request.method", Value::Str("POST"));
            visit("url.full", Value::Str(&self.url));
            visit("server.address", Value::Str(&self.server.address));
            visit("server.port", Value::Int(i64::from(self.server.port)));
        }
    }

    /// Calls `visit` with the attributes of `span` alone.
    fn own_attributes(span: &Span, mut visit: impl FnMut(&str, Value<'_>)) {
        match &span.what {
            What::Event { id, .. } => visit("cloudevents.event_id", Value::Str(id)),
            What::Attempt {
                status,
                resent,
                error,
            } => {
                if let Some(status) = status {
                    visit("http.response.status_code", Value::Int(i64::from(*status)));
                }
                if *resent > 0 {
                    visit("http.request.resend_count", Value::Int(i64::from(*resent)));
                }
                if let Some(error) = error {
                    visit("error.type", Value::Str(&error.to_string()));
                }
            }
        }
    }

    /// Every attribute of `span`: the constant ones, then its own.
    fn attributes(&self, span: &Span, mut visit: impl FnMut(&str, Value<'_>)) {
        self.constant_attributes(matches!(span.what, What::Event { .. }), &mut visit);
        Self::own_attributes(span, visit);
    }

    fn encode(&self, m: &mut Message, span: &Span) {
        m.bytes(1, &span.trace_id).bytes(2, &span.span_id);
        if let Some(parent) = span.parent {
            m.bytes(4, &parent);
        }
        m.string(5, self.name(span)).uint(6, span.kind());
        m.fixed64(7, unix_nanos(span.start));
        m.fixed64(8, unix_nanos(span.end));
        // The constant attributes were encoded once (they are most of a span's bytes).
        m.raw(match span.what {
            What::Event { .. } => &self.encoded_event_attributes,
            What::Attempt { .. } => &self.encoded_attempt_attributes,
        });
        Self::own_attributes(span, |key, value| attribute(m, key, value));
        if span.is_error() {
            m.message(15, |status| {
                status.uint(3, STATUS_ERROR);
            });
        }
        // Trace flags: sampled.
        m.fixed32(16, 1);
    }

    /// One span as a JSON line, with the field names of Go's `stdouttrace` exporter.
    fn json(&self, span: &Span) -> String {
        use std::fmt::Write;
        // Strings are escaped by serde_json; the rest is numbers and fixed text.
        let quoted = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let (mut trace, mut id) = (String::new(), String::new());
        push_hex(&mut trace, &span.trace_id);
        push_hex(&mut id, &span.span_id);
        let mut parent = String::new();
        push_hex(&mut parent, &span.parent.unwrap_or_default());
        let mut out = String::with_capacity(1024);
        let _ = write!(
            out,
            "{{\"Name\":{},\"SpanContext\":{{\"TraceID\":\"{trace}\",\"SpanID\":\"{id}\",\
             \"TraceFlags\":\"01\"}},\"Parent\":{{\"TraceID\":\"{trace}\",\"SpanID\":\"{parent}\"}},\
             \"SpanKind\":{},\"StartTime\":\"{}\",\"EndTime\":\"{}\",\"Attributes\":[",
            quoted(self.name(span)),
            span.kind(),
            crate::time::rfc3339_nano(span.start),
            crate::time::rfc3339_nano(span.end),
        );
        let mut first = true;
        self.attributes(span, |key, value| {
            let comma = if first { "" } else { "," };
            first = false;
            let (kind, value) = match value {
                Value::Str(s) => ("STRING", quoted(s)),
                Value::Int(n) => ("INT64", n.to_string()),
            };
            let _ = write!(
                out,
                "{comma}{{\"Key\":\"{key}\",\"Value\":{{\"Type\":\"{kind}\",\"Value\":{value}}}}}"
            );
        });
        let code = if span.is_error() { "Error" } else { "Unset" };
        let _ = write!(
            out,
            "],\"Status\":{{\"Code\":\"{code}\",\"Description\":\"\"}}}}"
        );
        out
    }
}

fn nonzero(mut id: [u8; 8]) -> [u8; 8] {
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

/// One span attribute: field 9, a `KeyValue`.
fn attribute(m: &mut Message, key: &str, value: Value<'_>) {
    m.message(9, |kv| match value {
        Value::Str(s) => key_value(kv, key, s),
        Value::Int(i) => {
            kv.string(1, key).message(2, |any| {
                any.uint(3, i as u64);
            });
        }
    });
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

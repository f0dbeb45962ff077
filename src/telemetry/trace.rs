//! Traces: a span per event (`cloudevents.client.<type>`, PRODUCER) with a CLIENT span per HTTP
//! attempt under it (`HTTP POST`, OTel's HTTP client attributes), a fresh trace per event,
//! sampled by trace id as OTel's `TraceIdRatioBased`. This module owns the spans, the
//! `traceparent` value, and both ways out: OTLP protobuf in batches, or JSON lines on stdout.

use std::time::{Instant, SystemTime};

use serde::Serialize;

use super::otlp::{
    self, int_attribute, resource_spans, scope_spans, span as field, status, string_attribute,
    trace_request, unix_nanos,
};
use super::protobuf::Message;
use super::record::{AttemptRecord, Server};
use crate::event::{Event, Ids, push_hex};
use crate::report::{ErrorType, Outcome};

pub use crate::config::observability::Batch;

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
            What::Event { .. } => field::KIND_PRODUCER,
            What::Attempt { .. } => field::KIND_CLIENT,
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
    /// How long spans wait, and how many wait and go in one export (`OTEL_BSP_*`).
    batch: Batch,
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
        batch: Batch,
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
            batch,
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
        if self.pending.len() >= self.batch.max_queue {
            self.dropped += 1;
            return;
        }
        self.oldest.get_or_insert_with(Instant::now);
        self.pending.push(span);
    }

    /// When the pending spans must be exported, if any are.
    pub fn due(&self) -> Option<Instant> {
        let oldest = self.oldest?;
        if self.pending.len() >= self.batch.max_batch {
            return Some(oldest);
        }
        Some(oldest + self.batch.delay)
    }

    /// The oldest pending spans, at most a batch, as an OTLP `ExportTraceServiceRequest`, with
    /// their count; they stay pending until [`Tracer::forget`] (so that an export that could
    /// not even start loses none).
    pub fn batch(
        &self,
        service_name: &str,
        extra: &[(String, String)],
    ) -> Option<(Vec<u8>, usize)> {
        if self.pending.is_empty() {
            return None;
        }
        // A batch at a time: an export is bounded in time, and so is its encoding.
        let spans = &self.pending[..self.pending.len().min(self.batch.max_batch)];
        let mut request = Message::with_capacity(256 + spans.len() * 320);
        request.message(trace_request::RESOURCE_SPANS, |rs| {
            rs.message(resource_spans::RESOURCE, |resource| {
                otlp::resource(resource, service_name, extra);
            });
            rs.message(resource_spans::SCOPE_SPANS, |ss| {
                ss.message(scope_spans::SCOPE, otlp::scope);
                for span in spans {
                    ss.message(scope_spans::SPANS, |m| self.encode(m, span));
                }
            });
        });
        Some((request.into_bytes(), spans.len()))
    }

    /// Drops the `count` oldest pending spans: exported, or lost with their export. What is left
    /// keeps the oldest span's time (it is no older), so it goes no later than due.
    pub fn forget(&mut self, count: usize) {
        self.pending.drain(..count.min(self.pending.len()));
        if self.pending.is_empty() {
            self.oldest = None;
        }
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
        m.bytes(field::TRACE_ID, &span.trace_id)
            .bytes(field::SPAN_ID, &span.span_id);
        if let Some(parent) = span.parent {
            m.bytes(field::PARENT_SPAN_ID, &parent);
        }
        m.string(field::NAME, self.name(span))
            .uint(field::KIND, span.kind());
        m.fixed64(field::START_TIME_UNIX_NANO, unix_nanos(span.start))
            .fixed64(field::END_TIME_UNIX_NANO, unix_nanos(span.end));
        // The constant attributes were encoded once (they are most of a span's bytes).
        m.raw(match span.what {
            What::Event { .. } => &self.encoded_event_attributes,
            What::Attempt { .. } => &self.encoded_attempt_attributes,
        });
        Self::own_attributes(span, |key, value| attribute(m, key, value));
        if span.is_error() {
            m.message(field::STATUS, |s| {
                s.uint(status::CODE, status::CODE_ERROR);
            });
        }
        m.fixed32(field::FLAGS, field::FLAGS_SAMPLED);
    }

    /// One span as a JSON line, with the field names of Go's `stdouttrace` exporter.
    fn json(&self, span: &Span) -> String {
        let hex = |bytes: &[u8]| {
            let mut text = String::with_capacity(32);
            push_hex(&mut text, bytes);
            text
        };
        let mut attributes = Vec::new();
        self.attributes(span, |key, value| {
            let value = match value {
                Value::Str(s) => JsonValue::Str(s.to_owned()),
                Value::Int(n) => JsonValue::Int(n),
            };
            attributes.push(JsonAttribute {
                key: key.to_owned(),
                value,
            });
        });
        let json = JsonSpan {
            name: self.name(span),
            span_context: JsonContext {
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                trace_flags: "01",
            },
            parent: JsonParent {
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.parent.unwrap_or_default()),
            },
            span_kind: span.kind(),
            start_time: crate::time::rfc3339_nano(span.start),
            end_time: crate::time::rfc3339_nano(span.end),
            attributes,
            status: JsonStatus {
                code: if span.is_error() { "Error" } else { "Unset" },
                description: "",
            },
        };
        // Strings and numbers only: serializing cannot fail.
        serde_json::to_string(&json).unwrap_or_default()
    }
}

/// A span as Go's `stdouttrace` exporter writes it.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct JsonSpan<'a> {
    name: &'a str,
    span_context: JsonContext,
    parent: JsonParent,
    span_kind: u64,
    start_time: String,
    end_time: String,
    attributes: Vec<JsonAttribute>,
    status: JsonStatus,
}

#[derive(Serialize)]
struct JsonContext {
    #[serde(rename = "TraceID")]
    trace_id: String,
    #[serde(rename = "SpanID")]
    span_id: String,
    #[serde(rename = "TraceFlags")]
    trace_flags: &'static str,
}

#[derive(Serialize)]
struct JsonParent {
    #[serde(rename = "TraceID")]
    trace_id: String,
    #[serde(rename = "SpanID")]
    span_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct JsonAttribute {
    key: String,
    value: JsonValue,
}

/// `{"Type":"STRING","Value":"…"}` or `{"Type":"INT64","Value":7}`.
#[derive(Serialize)]
#[serde(tag = "Type", content = "Value")]
enum JsonValue {
    #[serde(rename = "STRING")]
    Str(String),
    #[serde(rename = "INT64")]
    Int(i64),
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct JsonStatus {
    code: &'static str,
    description: &'static str,
}

fn nonzero(mut id: [u8; 8]) -> [u8; 8] {
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

/// One span attribute.
fn attribute(m: &mut Message, key: &str, value: Value<'_>) {
    m.message(field::ATTRIBUTES, |kv| match value {
        Value::Str(s) => string_attribute(kv, key, s),
        Value::Int(i) => int_attribute(kv, key, i),
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

    #[test]
    fn a_stdout_span_has_the_field_names_of_gos_stdouttrace() {
        let server = Server {
            address: "sink".into(),
            port: 8080,
            scheme: "http",
        };
        let tracer = Tracer::new(
            Sampler::Always,
            true,
            "http://sink:8080/",
            server,
            ("src", "t"),
            Default::default(),
        );
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1500);
        let span = Span {
            trace_id: [0xab; 16],
            span_id: [1; 8],
            parent: Some([2; 8]),
            start: at,
            end: at + std::time::Duration::from_millis(2),
            what: What::Attempt {
                status: Some(503),
                resent: 1,
                error: Some(ErrorType::Status(503)),
            },
        };
        let trace = "ab".repeat(16);
        assert_eq!(
            tracer.json(&span),
            format!(
                "{{\"Name\":\"HTTP POST\",\"SpanContext\":{{\"TraceID\":\"{trace}\",\
                 \"SpanID\":\"0101010101010101\",\"TraceFlags\":\"01\"}},\"Parent\":{{\
                 \"TraceID\":\"{trace}\",\"SpanID\":\"0202020202020202\"}},\"SpanKind\":3,\
                 \"StartTime\":\"1970-01-01T00:00:01.5Z\",\"EndTime\":\"1970-01-01T00:00:01.502Z\",\
                 \"Attributes\":[{{\"Key\":\"http.request.method\",\"Value\":{{\"Type\":\"STRING\",\
                 \"Value\":\"POST\"}}}},{{\"Key\":\"url.full\",\"Value\":{{\"Type\":\"STRING\",\
                 \"Value\":\"http://sink:8080/\"}}}},{{\"Key\":\"server.address\",\"Value\":{{\
                 \"Type\":\"STRING\",\"Value\":\"sink\"}}}},{{\"Key\":\"server.port\",\"Value\":{{\
                 \"Type\":\"INT64\",\"Value\":8080}}}},{{\"Key\":\"http.response.status_code\",\
                 \"Value\":{{\"Type\":\"INT64\",\"Value\":503}}}},{{\"Key\":\
                 \"http.request.resend_count\",\"Value\":{{\"Type\":\"INT64\",\"Value\":1}}}},{{\
                 \"Key\":\"error.type\",\"Value\":{{\"Type\":\"STRING\",\"Value\":\"503\"}}}}],\
                 \"Status\":{{\"Code\":\"Error\",\"Description\":\"\"}}}}"
            )
        );
    }
}

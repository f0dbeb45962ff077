//! OTLP messages: the field numbers of every message written here, named after their fields in
//! the `.proto` files (opentelemetry-proto v1: `collector/{metrics,trace}/v1`, `metrics/v1`,
//! `trace/v1`, `common/v1`, `resource/v1`), and the pieces the metrics and the trace exports
//! share: attributes, the resource that names the service, the instrumentation scope, time.

use std::time::{SystemTime, UNIX_EPOCH};

use super::protobuf::Message;

/// `service.version` and the instrumentation scope's version: the crate's, the same as the one
/// lib.rs prints (read here from Cargo, so that the exports do not reach up into lib.rs).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The instrumentation scope named in exports.
pub const SCOPE: &str = "heartbeats";

/// `ExportMetricsServiceRequest`.
pub mod metrics_request {
    pub const RESOURCE_METRICS: u32 = 1;
}
/// `ResourceMetrics`.
pub mod resource_metrics {
    pub const RESOURCE: u32 = 1;
    pub const SCOPE_METRICS: u32 = 2;
}
/// `ScopeMetrics`.
pub mod scope_metrics {
    pub const SCOPE: u32 = 1;
    pub const METRICS: u32 = 2;
}
/// `Metric`.
pub mod metric {
    pub const NAME: u32 = 1;
    pub const DESCRIPTION: u32 = 2;
    pub const UNIT: u32 = 3;
    pub const GAUGE: u32 = 5;
    pub const SUM: u32 = 7;
    pub const HISTOGRAM: u32 = 9;
}
/// `Gauge`, `Sum` and `Histogram`, which share their first fields.
pub mod data {
    pub const DATA_POINTS: u32 = 1;
    pub const AGGREGATION_TEMPORALITY: u32 = 2;
    /// `Sum` only.
    pub const IS_MONOTONIC: u32 = 3;
    /// `AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE`.
    pub const DELTA: u64 = 1;
    pub const CUMULATIVE: u64 = 2;
}
/// `NumberDataPoint`.
pub mod number_point {
    pub const START_TIME_UNIX_NANO: u32 = 2;
    pub const TIME_UNIX_NANO: u32 = 3;
    pub const AS_DOUBLE: u32 = 4;
    /// `sfixed64`.
    pub const AS_INT: u32 = 6;
    pub const ATTRIBUTES: u32 = 7;
}
/// `HistogramDataPoint`.
pub mod histogram_point {
    pub const START_TIME_UNIX_NANO: u32 = 2;
    pub const TIME_UNIX_NANO: u32 = 3;
    pub const COUNT: u32 = 4;
    pub const SUM: u32 = 5;
    pub const BUCKET_COUNTS: u32 = 6;
    pub const EXPLICIT_BOUNDS: u32 = 7;
    pub const ATTRIBUTES: u32 = 9;
    pub const MIN: u32 = 11;
    pub const MAX: u32 = 12;
}
/// `ExportTraceServiceRequest`.
pub mod trace_request {
    pub const RESOURCE_SPANS: u32 = 1;
}
/// `ResourceSpans`.
pub mod resource_spans {
    pub const RESOURCE: u32 = 1;
    pub const SCOPE_SPANS: u32 = 2;
}
/// `ScopeSpans`.
pub mod scope_spans {
    pub const SCOPE: u32 = 1;
    pub const SPANS: u32 = 2;
}
/// `Span`.
pub mod span {
    pub const TRACE_ID: u32 = 1;
    pub const SPAN_ID: u32 = 2;
    pub const PARENT_SPAN_ID: u32 = 4;
    pub const NAME: u32 = 5;
    pub const KIND: u32 = 6;
    pub const START_TIME_UNIX_NANO: u32 = 7;
    pub const END_TIME_UNIX_NANO: u32 = 8;
    pub const ATTRIBUTES: u32 = 9;
    pub const STATUS: u32 = 15;
    pub const FLAGS: u32 = 16;
    /// `SpanKind.SPAN_KIND_CLIENT`.
    pub const KIND_CLIENT: u64 = 3;
    /// `SpanKind.SPAN_KIND_PRODUCER`.
    pub const KIND_PRODUCER: u64 = 4;
    /// `SpanFlags`: the W3C trace flag "sampled".
    pub const FLAGS_SAMPLED: u32 = 1;
}
/// `Status`.
pub mod status {
    pub const CODE: u32 = 3;
    /// `StatusCode.STATUS_CODE_ERROR`.
    pub const CODE_ERROR: u64 = 2;
}
/// `Resource`.
mod resource {
    pub const ATTRIBUTES: u32 = 1;
}
/// `InstrumentationScope`.
mod instrumentation_scope {
    pub const NAME: u32 = 1;
    pub const VERSION: u32 = 2;
}
/// `KeyValue`.
mod key_value {
    pub const KEY: u32 = 1;
    pub const VALUE: u32 = 2;
}
/// `AnyValue`.
mod any_value {
    pub const STRING_VALUE: u32 = 1;
    pub const INT_VALUE: u32 = 3;
}

/// A `KeyValue` with a string value.
pub fn string_attribute(kv: &mut Message, key: &str, value: &str) {
    kv.string(key_value::KEY, key)
        .message(key_value::VALUE, |any| {
            any.string(any_value::STRING_VALUE, value);
        });
}

/// A `KeyValue` with an integer value.
pub fn int_attribute(kv: &mut Message, key: &str, value: i64) {
    kv.string(key_value::KEY, key)
        .message(key_value::VALUE, |any| {
            // int64 as a varint: two's complement in 64 bits.
            any.uint(any_value::INT_VALUE, value as u64);
        });
}

/// `at` as Unix nanoseconds, OTLP's timestamps; 0 before 1970.
pub fn unix_nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The `Resource` every export names: `service.name`, `service.version`, the SDK, then the
/// attributes of `OTEL_RESOURCE_ATTRIBUTES` (which win, as the SDK merges them last).
pub fn resource(resource: &mut Message, service_name: &str, extra: &[(String, String)]) {
    for (key, value) in [
        ("service.name", service_name),
        ("service.version", VERSION),
        ("telemetry.sdk.name", "heartbeats"),
        ("telemetry.sdk.language", "rust"),
        ("telemetry.sdk.version", VERSION),
    ] {
        if !extra.iter().any(|(k, _)| k == key) {
            resource.message(resource::ATTRIBUTES, |kv| string_attribute(kv, key, value));
        }
    }
    for (key, value) in extra {
        resource.message(resource::ATTRIBUTES, |kv| string_attribute(kv, key, value));
    }
}

/// The `InstrumentationScope` every export names.
pub fn scope(scope: &mut Message) {
    scope
        .string(instrumentation_scope::NAME, SCOPE)
        .string(instrumentation_scope::VERSION, VERSION);
}

/// A `Metric` in `scope_metrics`: its name, description (when not empty) and unit, and its data
/// (`kind`: gauge, sum or histogram) as `write` puts it.
pub fn otlp_metric(
    scope_metrics: &mut Message,
    name: &str,
    description: &str,
    unit: &str,
    kind: u32,
    write: impl FnOnce(&mut Message),
) {
    scope_metrics.message(self::scope_metrics::METRICS, |m| {
        m.string(metric::NAME, name);
        if !description.is_empty() {
            m.string(metric::DESCRIPTION, description);
        }
        m.string(metric::UNIT, unit).message(kind, write);
    });
}

/// A `NumberDataPoint`'s times and integer value.
pub fn int_point(point: &mut Message, start: u64, now: u64, value: u64) {
    point
        .fixed64(number_point::START_TIME_UNIX_NANO, start)
        .fixed64(number_point::TIME_UNIX_NANO, now)
        .fixed64(number_point::AS_INT, value);
}

/// A `Sum`'s temporality: cumulative since start, and monotonic.
/// A monotonic sum of `temporality` (`data::DELTA` or `data::CUMULATIVE`).
pub fn monotonic(sum: &mut Message, temporality: u64) {
    sum.uint(data::AGGREGATION_TEMPORALITY, temporality)
        .uint(data::IS_MONOTONIC, 1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue, any_value};
    use opentelemetry_proto::tonic::metrics::v1::{Metric, metric::Data, number_data_point};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message as _;

    fn text(kv: &KeyValue) -> (String, String) {
        let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => s.clone(),
            Some(any_value::Value::IntValue(i)) => i.to_string(),
            other => format!("{other:?}"),
        };
        (kv.key.clone(), value)
    }

    #[test]
    fn the_resource_and_scope_decode_as_opentelemetry_proto_reads_them() {
        let mut m = Message::new();
        resource(&mut m, "svc", &[]);
        let decoded = Resource::decode(&m.into_bytes()[..]).unwrap();
        let attributes: Vec<(String, String)> = decoded.attributes.iter().map(text).collect();
        assert_eq!(attributes[0], ("service.name".into(), "svc".into()));
        assert_eq!(attributes[1], ("service.version".into(), VERSION.into()));
        assert_eq!(attributes.len(), 5);
        let mut m = Message::new();
        scope(&mut m);
        let decoded = InstrumentationScope::decode(&m.into_bytes()[..]).unwrap();
        assert_eq!(
            (decoded.name.as_str(), decoded.version.as_str()),
            (SCOPE, VERSION)
        );
    }

    #[test]
    fn attributes_and_an_int_sum_decode_with_their_values_negative_ones_included() {
        let mut m = Message::new();
        int_attribute(&mut m, "n", -5);
        assert_eq!(
            text(&KeyValue::decode(&m.into_bytes()[..]).unwrap()),
            ("n".into(), "-5".into())
        );
        let mut m = Message::new();
        otlp_metric(
            &mut m,
            "heartbeats.events",
            "",
            "{event}",
            metric::SUM,
            |sum| {
                sum.message(data::DATA_POINTS, |p| int_point(p, 1, 2, 7));
                monotonic(sum, data::CUMULATIVE);
            },
        );
        // `m` holds a ScopeMetrics' `metrics` field: decode the Metric inside.
        let bytes = m.into_bytes();
        let metric = Metric::decode(&bytes[2..]).unwrap();
        assert_eq!(
            (metric.name.as_str(), metric.unit.as_str()),
            ("heartbeats.events", "{event}")
        );
        let Some(Data::Sum(sum)) = metric.data else {
            panic!("{metric:?}")
        };
        assert!(sum.is_monotonic);
        assert_eq!(sum.aggregation_temporality, 2, "cumulative");
        let point = &sum.data_points[0];
        assert_eq!((point.start_time_unix_nano, point.time_unix_nano), (1, 2));
        assert_eq!(point.value, Some(number_data_point::Value::AsInt(7)));
    }

    #[test]
    fn times_are_unix_nanoseconds_and_zero_before_1970() {
        use std::time::Duration;
        assert_eq!(unix_nanos(UNIX_EPOCH + Duration::new(2, 5)), 2_000_000_005);
        assert_eq!(unix_nanos(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }
}

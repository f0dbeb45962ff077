//! The pieces of OTLP messages that the metrics and the trace exports share: attributes, the
//! resource that names the service, timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

use super::protobuf::Message;

/// `service.version` and the instrumentation scope's version: the crate's (as `crate::VERSION`,
/// written here so that the exports do not reach up into lib.rs).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// An OTLP `KeyValue` with a string value.
pub fn key_value(kv: &mut Message, key: &str, value: &str) {
    kv.string(1, key).message(2, |any| {
        any.string(1, value);
    });
}

/// `at` as Unix nanoseconds, OTLP's timestamps; 0 before 1970.
pub fn unix_nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The resource every export names: `service.name`, `service.version`, the SDK.
pub fn resource_attributes(resource: &mut Message, service_name: &str) {
    for (key, value) in [
        ("service.name", service_name),
        ("service.version", VERSION),
        ("telemetry.sdk.name", "heartbeats"),
        ("telemetry.sdk.language", "rust"),
        ("telemetry.sdk.version", VERSION),
    ] {
        resource.message(1, |kv| key_value(kv, key, value));
    }
}

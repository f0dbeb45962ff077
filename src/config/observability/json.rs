//! `K_OBSERVABILITY_CONFIG` decoded as Go's encoding/json decodes it into knative.dev/pkg's
//! `observability.Config`: object members in order, keys matched without regard to case
//! (`"Metrics"` is `metrics`), a repeated key decoded again over the first (the last one wins,
//! field by field), `null` leaving a field as it was, and a value of the wrong type skipped while
//! the rest is decoded. Text that is not JSON, or JSON that is not an object, decodes nothing.

use serde_json::value::RawValue;

use crate::config::json::Members;

/// The fields the Go image reads, with Go's zero values.
#[derive(Debug, Default, PartialEq)]
pub struct RawConfig {
    pub metrics: RawMetrics,
    pub tracing: RawTracing,
}

#[derive(Debug, Default, PartialEq)]
pub struct RawMetrics {
    pub protocol: String,
    pub endpoint: String,
    /// A Go `time.Duration`: nanoseconds.
    pub export_interval: i64,
}

#[derive(Debug, Default, PartialEq)]
pub struct RawTracing {
    pub protocol: String,
    pub endpoint: String,
    pub sampling_rate: f64,
}

/// Why nothing was decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum Undecodable {
    /// Not JSON: what serde_json says.
    NotJson(String),
    /// JSON, but an array, a string, a number or a boolean.
    NotAnObject,
}

/// `text` decoded, with a line for each value skipped for its type.
pub fn decode(text: &str) -> Result<(RawConfig, Vec<String>), Undecodable> {
    let value: Box<RawValue> =
        serde_json::from_str(text).map_err(|e| Undecodable::NotJson(e.to_string()))?;
    let mut config = RawConfig::default();
    let mut skipped = Vec::new();
    if value.get() == "null" {
        return Ok((config, skipped));
    }
    let members: Members =
        serde_json::from_str(value.get()).map_err(|_| Undecodable::NotAnObject)?;
    for (key, value) in members.0 {
        if key.eq_ignore_ascii_case("metrics") {
            decode_metrics(&mut config.metrics, &value, &mut skipped);
        } else if key.eq_ignore_ascii_case("tracing") {
            decode_tracing(&mut config.tracing, &value, &mut skipped);
        }
    }
    Ok((config, skipped))
}

/// The members of `value` (an object), or `None` with a line in `skipped` (or for `null`).
fn object(name: &str, value: &RawValue, skipped: &mut Vec<String>) -> Option<Members> {
    if value.get() == "null" {
        return None;
    }
    let members = serde_json::from_str(value.get()).ok();
    if members.is_none() {
        skipped.push(format!("{name} is not an object"));
    }
    members
}

fn decode_metrics(metrics: &mut RawMetrics, value: &RawValue, skipped: &mut Vec<String>) {
    let Some(members) = object("metrics", value, skipped) else {
        return;
    };
    for (key, value) in members.0 {
        let key = key.to_ascii_lowercase();
        let (name, result) = match key.as_str() {
            "protocol" => ("metrics.protocol", set(&mut metrics.protocol, &value)),
            "endpoint" => ("metrics.endpoint", set(&mut metrics.endpoint, &value)),
            "exportinterval" => (
                "metrics.exportInterval",
                set(&mut metrics.export_interval, &value),
            ),
            _ => continue,
        };
        if let Err(expected) = result {
            skipped.push(format!("{name} is not {expected}"));
        }
    }
}

fn decode_tracing(tracing: &mut RawTracing, value: &RawValue, skipped: &mut Vec<String>) {
    let Some(members) = object("tracing", value, skipped) else {
        return;
    };
    for (key, value) in members.0 {
        let key = key.to_ascii_lowercase();
        let (name, result) = match key.as_str() {
            "protocol" => ("tracing.protocol", set(&mut tracing.protocol, &value)),
            "endpoint" => ("tracing.endpoint", set(&mut tracing.endpoint, &value)),
            "samplingrate" => (
                "tracing.samplingRate",
                set(&mut tracing.sampling_rate, &value),
            ),
            _ => continue,
        };
        if let Err(expected) = result {
            skipped.push(format!("{name} is not {expected}"));
        }
    }
}

/// A field Go decodes one JSON type into.
trait Field: Sized {
    /// What the JSON must be, for a message.
    const EXPECTED: &'static str;
    fn from_json(text: &str) -> Option<Self>;
}

impl Field for String {
    const EXPECTED: &'static str = "a string";
    fn from_json(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

impl Field for i64 {
    const EXPECTED: &'static str = "a whole number";
    fn from_json(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

impl Field for f64 {
    const EXPECTED: &'static str = "a number";
    fn from_json(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// Decodes `value` into `field`: `null` leaves it, a value of another type is refused.
fn set<T: Field>(field: &mut T, value: &RawValue) -> Result<(), &'static str> {
    if value.get() == "null" {
        return Ok(());
    }
    *field = T::from_json(value.get()).ok_or(T::EXPECTED)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(text: &str) -> (RawConfig, Vec<String>) {
        decode(text).unwrap()
    }

    #[test]
    fn keys_match_without_case_and_the_last_repeated_one_wins_field_by_field() {
        let (config, skipped) = decoded(
            r#"{"Metrics":{"PROTOCOL":"none","Endpoint":":9100"},
                "metrics":{"protocol":"prometheus"},"TRACING":{"samplingrate":0.5}}"#,
        );
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(config.metrics.protocol, "prometheus");
        assert_eq!(config.metrics.endpoint, ":9100");
        assert_eq!(config.tracing.sampling_rate, 0.5);
    }

    #[test]
    fn a_value_of_the_wrong_type_is_skipped_and_the_rest_decoded() {
        let (config, skipped) = decoded(
            r#"{"metrics":{"protocol":"http/protobuf","exportInterval":"60s"},
                "tracing":[1],"other":{"x":1}}"#,
        );
        assert_eq!(config.metrics.protocol, "http/protobuf");
        assert_eq!(config.metrics.export_interval, 0);
        assert_eq!(
            skipped,
            [
                "metrics.exportInterval is not a whole number",
                "tracing is not an object",
            ]
        );
        let (config, skipped) = decoded(r#"{"metrics":{"protocol":null},"tracing":null}"#);
        assert_eq!((config, skipped.len()), (RawConfig::default(), 0));
    }

    #[test]
    fn text_that_is_not_json_or_not_an_object_decodes_nothing() {
        assert!(matches!(decode("{"), Err(Undecodable::NotJson(_))));
        for text in [
            r#"[{"metrics":{"protocol":"prometheus"}}]"#,
            r#""on""#,
            "3",
            "true",
        ] {
            assert_eq!(
                decode(text).unwrap_err(),
                Undecodable::NotAnObject,
                "{text}"
            );
        }
        assert_eq!(decoded("null"), (RawConfig::default(), vec![]));
    }
}

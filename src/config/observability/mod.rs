//! What `K_OBSERVABILITY_CONFIG` asks for, read as the Go image reads it (knative.dev/pkg
//! `observability.Config` as JSON, eventing's defaults), with the standard `OTEL_*` overrides.
//! Knative writes this variable, not the user: nothing here ever refuses to start. A config that
//! does not parse turns everything off, as Go does; a part that is invalid turns that part off;
//! each says why in one warning naming the variable.

use std::time::Duration;

use std::cell::RefCell;

mod endpoint;
mod json;
mod sampler;

use super::env::Env;
use super::url::go_split_host_port;
use crate::log::Bounded;
use endpoint::otlp;
use json::{RawMetrics, RawTracing, Undecodable};

pub const CONFIG_VAR: &str = "K_OBSERVABILITY_CONFIG";
/// Eventing's Prometheus port when the config names none.
pub const DEFAULT_METRICS_PORT: u16 = 9092;
/// The OTel SDK's default export interval.
pub const DEFAULT_EXPORT_INTERVAL: Duration = Duration::from_secs(60);
/// Where the OTel Go SDK sends OTLP over HTTP when nothing says otherwise (https, as Go).
pub(crate) const DEFAULT_OTLP_BASE: &str = "https://localhost:4318";
/// Go's image names itself `heartbeat` (eventing's `resource.Default("heartbeat")`).
pub const DEFAULT_SERVICE_NAME: &str = "heartbeat";
/// The most characters of a config value a warning quotes.
pub(crate) const MAX_SHOWN: usize = 120;

/// Everything observability does; [`Observability::default`] is all off.
#[derive(Debug, Clone, PartialEq)]
pub struct Observability {
    pub metrics: Metrics,
    pub tracing: Tracing,
    /// `service.name`: `OTEL_SERVICE_NAME`, default [`DEFAULT_SERVICE_NAME`].
    pub service_name: String,
}

impl Default for Observability {
    fn default() -> Self {
        Observability {
            metrics: Metrics::Off,
            tracing: Tracing::Off,
            service_name: DEFAULT_SERVICE_NAME.to_owned(),
        }
    }
}

impl Observability {
    pub fn is_off(&self) -> bool {
        self.metrics == Metrics::Off && self.tracing == Tracing::Off
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Metrics {
    Off,
    /// Serve `GET /metrics` on `host:port` (`host` empty: every address; port 0: any free one).
    Prometheus {
        host: String,
        port: u16,
    },
    /// Push OTLP every `interval` and at exit.
    Otlp {
        endpoint: Otlp,
        interval: Duration,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Tracing {
    Off,
    /// Export sampled spans as OTLP; `sampling` is the fraction of events traced.
    Otlp {
        endpoint: Otlp,
        sampling: f64,
    },
    /// One JSON object per span on stdout; `sampling` as above (every event unless
    /// `OTEL_TRACES_SAMPLER` says otherwise).
    Stdout {
        sampling: f64,
    },
}

/// Where and how an OTLP export is POSTed.
#[derive(Clone, PartialEq)]
pub struct Otlp {
    pub url: String,
    /// Extra request headers (`OTEL_EXPORTER_OTLP_HEADERS`): often credentials, never shown.
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Debug for Otlp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        write!(
            f,
            "{} headers={names:?}",
            crate::config::url::redact_userinfo(&self.url)
        )
    }
}

/// The observability settings from the environment, and what was wrong with them.
pub fn from_env(env: Env) -> (Observability, Vec<String>) {
    let unreadable = RefCell::new(Vec::new());
    // A variable that is not UTF-8 is named in a warning and taken as unset.
    let var = |name: &str| {
        env.get(name).unwrap_or_else(|error| {
            unreadable.borrow_mut().push(format!("{error}; ignored"));
            None
        })
    };
    let (settings, mut warnings) = settings(&var);
    warnings.splice(0..0, unreadable.into_inner());
    (settings, warnings)
}

fn settings(var: &dyn Fn(&str) -> Option<String>) -> (Observability, Vec<String>) {
    let mut warnings = Vec::new();
    let mut settings = Observability::default();
    if let Some(name) = var("OTEL_SERVICE_NAME").filter(|n| !n.is_empty()) {
        settings.service_name = name;
    }
    let text = var(CONFIG_VAR).unwrap_or_default();
    // As Go's encoding/json, `null` leaves the defaults.
    if text.trim().is_empty() || text.trim() == "null" {
        return (settings, warnings);
    }
    let raw = match json::decode(&text) {
        Ok((raw, skipped)) => {
            // As Go: the value is not used, the rest of the config is.
            for what in skipped {
                warnings.push(format!("{CONFIG_VAR}: {what}; ignored"));
            }
            raw
        }
        Err(Undecodable::NotJson(error)) => {
            warnings.push(format!(
                "{CONFIG_VAR} is not valid JSON ({error}); metrics and tracing are off"
            ));
            return (settings, warnings);
        }
        Err(Undecodable::NotAnObject) => {
            warnings.push(format!(
                "{CONFIG_VAR} is not a JSON object; metrics and tracing are off"
            ));
            return (settings, warnings);
        }
    };
    settings.metrics = metrics(&raw.metrics, var).unwrap_or_else(|problem| {
        warnings.push(format!("{CONFIG_VAR}: metrics: {problem}; metrics are off"));
        Metrics::Off
    });
    settings.tracing = tracing(&raw.tracing, var).unwrap_or_else(|problem| {
        warnings.push(format!("{CONFIG_VAR}: tracing: {problem}; tracing is off"));
        Tracing::Off
    });
    match &mut settings.tracing {
        Tracing::Off => {}
        Tracing::Otlp { sampling, .. } | Tracing::Stdout { sampling } => {
            *sampling = sampler::from_env(*sampling, var, &mut warnings);
        }
    }
    (settings, warnings)
}

fn metrics(raw: &RawMetrics, var: &dyn Fn(&str) -> Option<String>) -> Result<Metrics, String> {
    match raw.protocol.as_str() {
        "" | "none" => Ok(Metrics::Off),
        "prometheus" => prometheus(&raw.endpoint, var),
        "http/protobuf" => {
            if raw.export_interval < 0 {
                return Err(format!(
                    "exportInterval {} is negative",
                    raw.export_interval
                ));
            }
            let interval = match var("OTEL_METRIC_EXPORT_INTERVAL").filter(|v| !v.is_empty()) {
                Some(ms) => match ms.trim().parse::<u64>() {
                    Ok(ms) if ms > 0 => Duration::from_millis(ms),
                    _ => {
                        return Err(format!(
                            "OTEL_METRIC_EXPORT_INTERVAL {} is not a positive number of \
                             milliseconds",
                            Bounded(&ms, MAX_SHOWN)
                        ));
                    }
                },
                None if raw.export_interval == 0 => DEFAULT_EXPORT_INTERVAL,
                None => Duration::from_nanos(raw.export_interval.unsigned_abs()),
            };
            let endpoint = otlp(&raw.endpoint, "METRICS", "/v1/metrics", var)?;
            Ok(Metrics::Otlp { endpoint, interval })
        }
        other => Err(unsupported(other)),
    }
}

fn tracing(raw: &RawTracing, var: &dyn Fn(&str) -> Option<String>) -> Result<Tracing, String> {
    match raw.protocol.as_str() {
        "" | "none" => Ok(Tracing::Off),
        "stdout" => Ok(Tracing::Stdout { sampling: 1.0 }),
        "http/protobuf" => {
            let sampling = raw.sampling_rate;
            if !(0.0..=1.0).contains(&sampling) {
                return Err(format!("samplingRate {sampling} is not between 0 and 1"));
            }
            let endpoint = otlp(&raw.endpoint, "TRACES", "/v1/traces", var)?;
            Ok(Tracing::Otlp { endpoint, sampling })
        }
        other => Err(unsupported(other)),
    }
}

fn unsupported(protocol: &str) -> String {
    if protocol == "grpc" {
        "protocol \"grpc\" needs HTTP/2, which heartbeats does not speak; use \"http/protobuf\" \
         (the collector's port 4318)"
            .to_owned()
    } else {
        format!(
            "unsupported protocol {} (none, prometheus, http/protobuf, stdout)",
            Bounded(protocol, MAX_SHOWN)
        )
    }
}

/// The Prometheus listen address: the config's `host:port` (default `:9092`), then
/// `METRICS_PROMETHEUS_HOST` / `METRICS_PROMETHEUS_PORT` as knative.dev/pkg reads them.
fn prometheus(endpoint: &str, var: &dyn Fn(&str) -> Option<String>) -> Result<Metrics, String> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty());
    for name in ["METRICS_PROMETHEUS_TLS_CERT", "METRICS_PROMETHEUS_TLS_KEY"] {
        if set(name).is_some() {
            return Err(format!(
                "{name} is set, but heartbeats serves metrics over plain HTTP only"
            ));
        }
    }
    let (mut host, mut port) = if endpoint.is_empty() {
        (String::new(), DEFAULT_METRICS_PORT.to_string())
    } else {
        go_split_host_port(endpoint)
            .map(|(host, port)| (host.to_owned(), port.to_owned()))
            .ok_or_else(|| {
                format!(
                    "endpoint {} is not \"host:port\", \":port\" or \"[host]:port\"",
                    Bounded(endpoint, MAX_SHOWN)
                )
            })?
    };
    if let Some(h) = set("METRICS_PROMETHEUS_HOST") {
        host = h;
    }
    if let Some(p) = set("METRICS_PROMETHEUS_PORT") {
        port = p;
    }
    match port.parse::<u16>() {
        // Port 0 (any free port, named in the start-up line) is ours: Go wants 1024-65535.
        Ok(port) if port == 0 || port >= 1024 => Ok(Metrics::Prometheus { host, port }),
        _ => Err(format!(
            "port {} is not between 1024 and 65535",
            Bounded(&port, MAX_SHOWN)
        )),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::config::tests::FakeHost;

    pub(super) fn parse(vars: &[(&'static str, &str)]) -> (Observability, Vec<String>) {
        from_env(Env(&FakeHost::new(vars)))
    }

    pub(super) fn config(json: &str) -> (Observability, Vec<String>) {
        parse(&[(CONFIG_VAR, json)])
    }

    #[test]
    fn unset_empty_or_none_is_all_off_without_a_word() {
        for json in [
            "",
            "  ",
            "{}",
            r#"{"metrics":{"protocol":"none"},"tracing":{}}"#,
        ] {
            let (settings, warnings) = config(json);
            assert!(settings.is_off(), "{json}");
            assert!(warnings.is_empty(), "{json}: {warnings:?}");
        }
        assert_eq!(parse(&[]).0, Observability::default());
    }

    #[test]
    fn prometheus_listens_where_knative_says() {
        let prom = |json: &str| config(json).0.metrics;
        assert_eq!(
            prom(r#"{"metrics":{"protocol":"prometheus"}}"#),
            Metrics::Prometheus {
                host: String::new(),
                port: 9092
            }
        );
        assert_eq!(
            prom(r#"{"metrics":{"protocol":"prometheus","endpoint":"127.0.0.1:9100"}}"#),
            Metrics::Prometheus {
                host: "127.0.0.1".into(),
                port: 9100
            }
        );
        assert_eq!(
            prom(r#"{"metrics":{"protocol":"prometheus","endpoint":"[::1]:0"}}"#),
            Metrics::Prometheus {
                host: "::1".into(),
                port: 0
            }
        );
        let (settings, _) = parse(&[
            (CONFIG_VAR, r#"{"metrics":{"protocol":"prometheus"}}"#),
            ("METRICS_PROMETHEUS_PORT", "9300"),
        ]);
        assert_eq!(
            settings.metrics,
            Metrics::Prometheus {
                host: String::new(),
                port: 9300
            }
        );
    }

    #[test]
    fn a_bad_part_turns_off_that_part_with_one_warning_naming_the_variable() {
        let cases = [
            (
                r#"{"metrics":{"protocol":"grpc","endpoint":"c:4317"}}"#,
                "http/protobuf",
            ),
            (
                r#"{"tracing":{"protocol":"grpc","endpoint":"c:4317"}}"#,
                "HTTP/2",
            ),
            (r#"{"metrics":{"protocol":"statsd"}}"#, "\"statsd\""),
            (
                r#"{"metrics":{"protocol":"prometheus","endpoint":"9090"}}"#,
                "\"9090\"",
            ),
            (
                r#"{"metrics":{"protocol":"prometheus","endpoint":":80"}}"#,
                "\"80\"",
            ),
            (
                r#"{"metrics":{"protocol":"http/protobuf","exportInterval":-1}}"#,
                "-1",
            ),
            (
                r#"{"tracing":{"protocol":"http/protobuf","samplingRate":1.5}}"#,
                "1.5",
            ),
            (
                r#"{"tracing":{"protocol":"http/protobuf","endpoint":"ftp://x/"}}"#,
                "ftp://x/",
            ),
        ];
        for (json, named) in cases {
            let (settings, warnings) = config(json);
            assert!(settings.is_off(), "{json}: {settings:?}");
            assert_eq!(warnings.len(), 1, "{json}: {warnings:?}");
            assert!(warnings[0].starts_with(CONFIG_VAR), "{warnings:?}");
            assert!(warnings[0].contains(named), "{json}: {warnings:?}");
        }
        // The other part is unaffected.
        let (settings, warnings) =
            config(r#"{"metrics":{"protocol":"grpc"},"tracing":{"protocol":"stdout"}}"#);
        assert_eq!(settings.tracing, Tracing::Stdout { sampling: 1.0 });
        assert_eq!(warnings.len(), 1);
        for json in ["{", "\"on\"", r#"{"metrics":{"exportInterval":"60s"}}"#] {
            let (settings, warnings) = config(json);
            assert!(settings.is_off(), "{json}");
            assert_eq!(warnings.len(), 1, "{json}: {warnings:?}");
        }
    }
}

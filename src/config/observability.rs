//! What `K_OBSERVABILITY_CONFIG` asks for, read as the Go image reads it (knative.dev/pkg
//! `observability.Config` as JSON, eventing's defaults), with the standard `OTEL_*` overrides.
//! Knative writes this variable, not the user: nothing here ever refuses to start. A config that
//! does not parse turns everything off, as Go does; a part that is invalid turns that part off;
//! each says why in one warning naming the variable.

use std::time::Duration;

use serde::Deserialize;

use std::cell::RefCell;

use super::env::Env;
use crate::log::Bounded;

pub const CONFIG_VAR: &str = "K_OBSERVABILITY_CONFIG";
/// Eventing's Prometheus port when the config names none.
pub const DEFAULT_METRICS_PORT: u16 = 9092;
/// The OTel SDK's default export interval.
pub const DEFAULT_EXPORT_INTERVAL: Duration = Duration::from_secs(60);
/// Where the OTel Go SDK sends OTLP over HTTP when nothing says otherwise (https, as Go).
const DEFAULT_OTLP_BASE: &str = "https://localhost:4318";
/// Go's image names itself `heartbeat` (eventing's `resource.Default("heartbeat")`).
pub const DEFAULT_SERVICE_NAME: &str = "heartbeat";
/// The most characters of a config value a warning quotes.
const MAX_SHOWN: usize = 120;

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
    /// One JSON object per span on stdout, every event traced.
    Stdout,
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
            crate::log::redact_userinfo(&self.url)
        )
    }
}

#[derive(Deserialize, Default)]
struct RawConfig {
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    tracing: RawTracing,
}

#[derive(Deserialize, Default)]
struct RawMetrics {
    #[serde(default)]
    protocol: String,
    #[serde(default)]
    endpoint: String,
    /// A Go `time.Duration`: nanoseconds.
    #[serde(default, rename = "exportInterval")]
    export_interval: i64,
}

#[derive(Deserialize, Default)]
struct RawTracing {
    #[serde(default)]
    protocol: String,
    #[serde(default)]
    endpoint: String,
    #[serde(default, rename = "samplingRate")]
    sampling_rate: f64,
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
    let raw: RawConfig = match serde_json::from_str(&text) {
        Ok(raw) => raw,
        Err(error) => {
            warnings.push(format!(
                "{CONFIG_VAR} is not valid JSON ({error}); metrics and tracing are off"
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
        "stdout" => Ok(Tracing::Stdout),
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
        split_host_port(endpoint).ok_or_else(|| {
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

/// `host:port`, `:port`, `[v6]:port` as Go's `net.SplitHostPort`.
fn split_host_port(endpoint: &str) -> Option<(String, String)> {
    let (host, port) = endpoint.rsplit_once(':')?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    Some((host.to_owned(), port.to_owned()))
}

/// The OTLP URL for one signal (`METRICS`, `TRACES`): `OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`
/// as it is, else `OTEL_EXPORTER_OTLP_ENDPOINT` + `path`, else the config's endpoint (a bare
/// `host:port` means https, as in Go; no path means `path`), else the SDK's localhost default.
fn otlp(
    endpoint: &str,
    signal: &str,
    path: &str,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Otlp, String> {
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let specific = format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT");
    let (url, from) = if let Some(url) = set(&specific) {
        (url, specific.clone())
    } else if let Some(base) = set("OTEL_EXPORTER_OTLP_ENDPOINT") {
        let url = format!("{}{path}", base.trim_end_matches('/'));
        (url, "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned())
    } else if !endpoint.is_empty() {
        let url = if endpoint.contains("://") {
            endpoint.to_owned()
        } else {
            format!("https://{endpoint}")
        };
        (with_default_path(&url, path), "endpoint".to_owned())
    } else {
        (format!("{DEFAULT_OTLP_BASE}{path}"), "default".to_owned())
    };
    let url = url.trim().to_owned();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!(
            "{from} {} is not an http:// or https:// URL",
            Bounded(&crate::log::redact_userinfo(&url), MAX_SHOWN)
        ));
    }
    let mut all = headers(set("OTEL_EXPORTER_OTLP_HEADERS"))?;
    all.extend(headers(set(&format!(
        "OTEL_EXPORTER_OTLP_{signal}_HEADERS"
    )))?);
    Ok(Otlp { url, headers: all })
}

/// `OTEL_EXPORTER_OTLP_HEADERS`: `name=value` pairs separated by commas, values
/// percent-decoded. Values are never quoted back: they hold API keys.
fn headers(value: Option<String>) -> Result<Vec<(String, String)>, String> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for pair in value.split(',').filter(|p| !p.trim().is_empty()) {
        let Some((name, value)) = pair.split_once('=') else {
            return Err("OTEL_EXPORTER_OTLP_HEADERS has an entry without '='".to_owned());
        };
        let name = name.trim();
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        let value = super::url::unescape(value.trim())
            .and_then(|v| String::from_utf8(v).ok())
            .filter(|v| v.chars().all(|c| c == '\t' || (' '..='~').contains(&c)));
        match value {
            Some(value) if !name.is_empty() && name.chars().all(token) => {
                out.push((name.to_ascii_lowercase(), value));
            }
            _ => {
                return Err(format!(
                    "OTEL_EXPORTER_OTLP_HEADERS entry {} is not a valid header (its value is not \
                     shown)",
                    Bounded(name, MAX_SHOWN)
                ));
            }
        }
    }
    Ok(out)
}

fn with_default_path(url: &str, path: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(slash) if url.len() > after_scheme + slash + 1 => url.to_owned(),
        Some(_) => format!("{}{path}", url.trim_end_matches('/')),
        None => format!("{url}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::FakeHost;

    fn parse(vars: &[(&'static str, &str)]) -> (Observability, Vec<String>) {
        from_env(Env(&FakeHost::new(vars)))
    }

    fn config(json: &str) -> (Observability, Vec<String>) {
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
    fn otlp_endpoints_follow_the_config_then_the_otel_variables() {
        let json = r#"{"metrics":{"protocol":"http/protobuf","endpoint":"http://c:4318","exportInterval":5000000000},
                       "tracing":{"protocol":"http/protobuf","endpoint":"c:4318/custom","samplingRate":0.5}}"#;
        let (settings, warnings) = config(json);
        assert!(warnings.is_empty(), "{warnings:?}");
        let Metrics::Otlp { endpoint, interval } = &settings.metrics else {
            panic!("{settings:?}")
        };
        assert_eq!(endpoint.url, "http://c:4318/v1/metrics");
        assert_eq!(*interval, Duration::from_secs(5));
        let Tracing::Otlp { endpoint, sampling } = &settings.tracing else {
            panic!("{settings:?}")
        };
        assert_eq!(endpoint.url, "https://c:4318/custom");
        assert_eq!(*sampling, 0.5);

        let (settings, _) = parse(&[
            (CONFIG_VAR, json),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318/"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:1/x"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "Api-Key=a%20b, x-tenant=7"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1500"),
        ]);
        let Metrics::Otlp { endpoint, interval } = &settings.metrics else {
            panic!()
        };
        assert_eq!(endpoint.url, "http://base:4318/v1/metrics");
        assert_eq!(
            endpoint.headers,
            [
                ("api-key".into(), "a b".into()),
                ("x-tenant".into(), "7".into())
            ]
        );
        assert_eq!(*interval, Duration::from_millis(1500));
        let Tracing::Otlp { endpoint, .. } = &settings.tracing else {
            panic!()
        };
        assert_eq!(endpoint.url, "http://t:1/x");
        // No endpoint anywhere: the SDK's default.
        let (settings, _) = config(r#"{"tracing":{"protocol":"http/protobuf"}}"#);
        let Tracing::Otlp { endpoint, sampling } = &settings.tracing else {
            panic!()
        };
        assert_eq!(endpoint.url, "https://localhost:4318/v1/traces");
        assert_eq!(*sampling, 0.0);
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
        assert_eq!(settings.tracing, Tracing::Stdout);
        assert_eq!(warnings.len(), 1);
        for json in ["{", "\"on\"", r#"{"metrics":{"exportInterval":"60s"}}"#] {
            let (settings, warnings) = config(json);
            assert!(settings.is_off(), "{json}");
            assert_eq!(warnings.len(), 1, "{json}: {warnings:?}");
        }
    }

    #[test]
    fn header_values_are_never_quoted() {
        let (settings, warnings) = parse(&[
            (CONFIG_VAR, r#"{"tracing":{"protocol":"http/protobuf"}}"#),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%0Asecret-token",
            ),
        ]);
        assert!(settings.is_off());
        assert!(warnings[0].contains("authorization"), "{warnings:?}");
        assert!(!warnings[0].contains("secret"), "{warnings:?}");
    }
}

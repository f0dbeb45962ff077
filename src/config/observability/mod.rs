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
    /// `OTEL_RESOURCE_ATTRIBUTES`, in order, without `service.name` (which
    /// `OTEL_SERVICE_NAME` or the default gives).
    pub resource: Vec<(String, String)>,
}

impl Default for Observability {
    fn default() -> Self {
        Observability {
            metrics: Metrics::Off,
            tracing: Tracing::Off,
            service_name: DEFAULT_SERVICE_NAME.to_owned(),
            resource: Vec::new(),
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
    /// Push OTLP every `interval` and at exit, each push within `timeout`.
    Otlp {
        endpoint: Otlp,
        interval: Duration,
        /// `OTEL_METRIC_EXPORT_TIMEOUT`.
        timeout: Duration,
        temporality: Temporality,
    },
}

/// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`: what the sums and histograms report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Temporality {
    /// Totals since the start (the default).
    Cumulative,
    /// What changed since the last push.
    Delta,
    /// Delta for counters and histograms, as the SDK's `lowmemory` (all ours are either).
    LowMemory,
}

impl Temporality {
    pub fn is_delta(self) -> bool {
        self != Temporality::Cumulative
    }
}

/// The batch span processor's `OTEL_BSP_*` settings, as they mean something on one thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// `OTEL_BSP_SCHEDULE_DELAY`: spans wait at most this long before an export.
    pub delay: Duration,
    /// `OTEL_BSP_EXPORT_TIMEOUT`: the most one export may take.
    pub timeout: Duration,
    /// `OTEL_BSP_MAX_QUEUE_SIZE`: spans waiting at most; more are dropped and counted.
    pub max_queue: usize,
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`: spans in one export at most.
    pub max_batch: usize,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            delay: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            max_queue: DEFAULT_MAX_QUEUE,
            max_batch: DEFAULT_MAX_BATCH,
        }
    }
}

/// Spans waiting at most, unless `OTEL_BSP_MAX_QUEUE_SIZE` says otherwise (the SDK's 2048 would
/// hold about 1 MB of spans; this keeps telemetry within its memory budget).
pub const DEFAULT_MAX_QUEUE: usize = 512;
/// Spans in one export, unless `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` says otherwise (SDK: 512).
pub const DEFAULT_MAX_BATCH: usize = 128;
/// The most `OTEL_BSP_MAX_QUEUE_SIZE` may hold: the SDK's default.
pub const MAX_QUEUE: usize = 2048;

#[derive(Debug, Clone, PartialEq)]
pub enum Tracing {
    Off,
    /// Export sampled spans as OTLP; `sampling` is the fraction of events traced.
    Otlp {
        endpoint: Otlp,
        sampling: f64,
        batch: Batch,
    },
    /// One JSON object per span on stdout; `sampling` as above (every event unless
    /// `OTEL_TRACES_SAMPLER` says otherwise).
    Stdout {
        sampling: f64,
    },
}

/// How OTLP travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// POST of the protobuf body over HTTP/1.1.
    HttpProtobuf,
    /// A unary gRPC `Export` call over HTTP/2.
    Grpc,
}

/// Where and how an OTLP export goes (see [`endpoint`]).
#[derive(Clone, PartialEq)]
pub struct Otlp {
    pub protocol: Protocol,
    /// HTTP: the URL POSTed to. gRPC: `http://host:port` (HTTP/2 in the clear) or
    /// `https://host:port` (TLS, ALPN `h2`).
    pub url: String,
    /// Extra request headers (`OTEL_EXPORTER_OTLP_HEADERS`): often credentials, never shown.
    pub headers: Vec<(String, String)>,
    /// The most one export may take (`OTEL_EXPORTER_OTLP_TIMEOUT`); never past the next beat.
    pub timeout: Duration,
    /// `OTEL_EXPORTER_OTLP_COMPRESSION=gzip`.
    pub gzip: bool,
    pub tls: ExportTls,
}

/// The collector's TLS files from `OTEL_EXPORTER_OTLP_*CERTIFICATE` and `*CLIENT_*`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportTls {
    /// Trust these CAs only (instead of the sink's trust).
    pub ca: Option<std::path::PathBuf>,
    /// A client certificate chain and its key, for mTLS.
    pub client: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl std::fmt::Debug for Otlp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        write!(
            f,
            "{:?} {} headers={names:?} timeout={:?} gzip={} {:?}",
            self.protocol,
            crate::config::url::redact_userinfo(&self.url),
            self.timeout,
            self.gzip,
            self.tls
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
    let (service_name, resource) = resource(var, &mut warnings);
    settings.resource = resource;
    if let Some(name) = service_name {
        settings.service_name = name;
    }
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
    settings.metrics = metrics(&raw.metrics, var, &mut warnings).unwrap_or_else(|problem| {
        warnings.push(format!("{CONFIG_VAR}: metrics: {problem}; metrics are off"));
        Metrics::Off
    });
    settings.tracing = tracing(&raw.tracing, var, &mut warnings).unwrap_or_else(|problem| {
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

fn metrics(
    raw: &RawMetrics,
    var: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<Metrics, String> {
    let protocol = match raw.protocol.as_str() {
        "" | "none" => return Ok(Metrics::Off),
        "prometheus" => return prometheus(&raw.endpoint, var),
        "http/protobuf" => Protocol::HttpProtobuf,
        "grpc" => Protocol::Grpc,
        other => return Err(unsupported(other)),
    };
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
    let endpoint = otlp(
        &raw.endpoint,
        "METRICS",
        "/v1/metrics",
        protocol,
        var,
        warnings,
    )?;
    let timeout = milliseconds(var, "OTEL_METRIC_EXPORT_TIMEOUT", warnings)
        .unwrap_or(DEFAULT_METRIC_EXPORT_TIMEOUT);
    Ok(Metrics::Otlp {
        endpoint,
        interval,
        timeout,
        temporality: temporality(var, warnings),
    })
}

/// The SDK's periodic reader's export timeout.
pub const DEFAULT_METRIC_EXPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// A variable of positive whole milliseconds; anything else is a warning and `None`.
fn milliseconds(
    var: &dyn Fn(&str) -> Option<String>,
    name: &str,
    warnings: &mut Vec<String>,
) -> Option<Duration> {
    let text = var(name).filter(|v| !v.trim().is_empty())?;
    match text.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => Some(Duration::from_millis(ms)),
        _ => {
            warnings.push(format!(
                "{name} {} is not a positive number of milliseconds; ignored",
                Bounded(&text, MAX_SHOWN)
            ));
            None
        }
    }
}

/// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`, any case, as the SDK reads it.
fn temporality(var: &dyn Fn(&str) -> Option<String>, warnings: &mut Vec<String>) -> Temporality {
    const NAME: &str = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE";
    let Some(text) = var(NAME).filter(|v| !v.trim().is_empty()) else {
        return Temporality::Cumulative;
    };
    match text.trim().to_ascii_lowercase().as_str() {
        "cumulative" => Temporality::Cumulative,
        "delta" => Temporality::Delta,
        "lowmemory" => Temporality::LowMemory,
        _ => {
            warnings.push(format!(
                "{NAME} {} is not cumulative, delta or lowmemory; cumulative it is",
                Bounded(&text, MAX_SHOWN)
            ));
            Temporality::Cumulative
        }
    }
}

/// `OTEL_BSP_*`: the delay and timeout in milliseconds, the sizes in spans.
fn batch(var: &dyn Fn(&str) -> Option<String>, warnings: &mut Vec<String>) -> Batch {
    let mut batch = Batch::default();
    if let Some(delay) = milliseconds(var, "OTEL_BSP_SCHEDULE_DELAY", warnings) {
        batch.delay = delay;
    }
    if let Some(timeout) = milliseconds(var, "OTEL_BSP_EXPORT_TIMEOUT", warnings) {
        batch.timeout = timeout;
    }
    let mut size = |name: &str, slot: &mut usize| {
        let Some(text) = var(name).filter(|v| !v.trim().is_empty()) else {
            return;
        };
        match text.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_QUEUE).contains(&n) => *slot = n,
            _ => warnings.push(format!(
                "{name} {} is not a number of spans from 1 to {MAX_QUEUE}; ignored",
                Bounded(&text, MAX_SHOWN)
            )),
        }
    };
    size("OTEL_BSP_MAX_QUEUE_SIZE", &mut batch.max_queue);
    size("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", &mut batch.max_batch);
    // As the SDK: a batch is never bigger than the queue.
    batch.max_batch = batch.max_batch.min(batch.max_queue);
    batch
}

/// `OTEL_RESOURCE_ATTRIBUTES`: `key=value` pairs separated by commas, values percent-decoded,
/// as the SDK's `resource.FromEnv` reads them; its `service.name`, and the rest.
fn resource(
    var: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> (Option<String>, Vec<(String, String)>) {
    const NAME: &str = "OTEL_RESOURCE_ATTRIBUTES";
    let Some(text) = var(NAME).filter(|v| !v.trim().is_empty()) else {
        return (None, Vec::new());
    };
    let (mut service_name, mut attributes) = (None, Vec::new());
    for pair in text.split(',') {
        let decoded = pair.split_once('=').and_then(|(key, value)| {
            let value = crate::config::url::unescape(value.trim())?;
            Some((key.trim(), String::from_utf8(value).ok()?))
        });
        match decoded {
            Some(("service.name", value)) => service_name = Some(value),
            Some((key, value)) if !key.is_empty() => {
                attributes.retain(|(k, _): &(String, String)| k != key);
                attributes.push((key.to_owned(), value));
            }
            // As the SDK: one bad pair makes the whole variable unused.
            _ => {
                warnings.push(format!(
                    "{NAME} has an entry that is not key=value (percent-encoded); the variable \
                     is not used"
                ));
                return (None, Vec::new());
            }
        }
    }
    (service_name.filter(|n: &String| !n.is_empty()), attributes)
}

fn tracing(
    raw: &RawTracing,
    var: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<Tracing, String> {
    let protocol = match raw.protocol.as_str() {
        "" | "none" => return Ok(Tracing::Off),
        "stdout" => return Ok(Tracing::Stdout { sampling: 1.0 }),
        "http/protobuf" => Protocol::HttpProtobuf,
        "grpc" => Protocol::Grpc,
        other => return Err(unsupported(other)),
    };
    let sampling = raw.sampling_rate;
    if !(0.0..=1.0).contains(&sampling) {
        return Err(format!("samplingRate {sampling} is not between 0 and 1"));
    }
    let endpoint = otlp(
        &raw.endpoint,
        "TRACES",
        "/v1/traces",
        protocol,
        var,
        warnings,
    )?;
    Ok(Tracing::Otlp {
        endpoint,
        sampling,
        batch: batch(var, warnings),
    })
}

fn unsupported(protocol: &str) -> String {
    format!(
        "unsupported protocol {} (none, prometheus, grpc, http/protobuf, stdout)",
        Bounded(protocol, MAX_SHOWN)
    )
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
                r#"{"metrics":{"protocol":"otlp","endpoint":"c:4317"}}"#,
                "\"otlp\"",
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
            config(r#"{"metrics":{"protocol":"zipkin"},"tracing":{"protocol":"stdout"}}"#);
        assert_eq!(settings.tracing, Tracing::Stdout { sampling: 1.0 });
        assert_eq!(warnings.len(), 1);
        for json in ["{", "\"on\"", r#"{"metrics":{"exportInterval":"60s"}}"#] {
            let (settings, warnings) = config(json);
            assert!(settings.is_off(), "{json}");
            assert_eq!(warnings.len(), 1, "{json}: {warnings:?}");
        }
    }

    #[test]
    fn the_sdks_other_variables_are_read_as_it_reads_them() {
        let json = r#"{"metrics":{"protocol":"grpc"},"tracing":{"protocol":"grpc"}}"#;
        let (settings, warnings) = parse(&[
            (CONFIG_VAR, json),
            ("OTEL_METRIC_EXPORT_TIMEOUT", "2500"),
            (
                "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
                "LowMemory",
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "250"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "900"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "64"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "100"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "a=1,service.name=from%20env,b=x%2Cy",
            ),
        ]);
        assert!(warnings.is_empty(), "{warnings:?}");
        let Metrics::Otlp {
            timeout,
            temporality,
            ..
        } = settings.metrics
        else {
            panic!()
        };
        assert_eq!(
            (timeout, temporality),
            (Duration::from_millis(2500), Temporality::LowMemory)
        );
        let Tracing::Otlp { batch, .. } = settings.tracing else {
            panic!()
        };
        // A batch is never bigger than the queue.
        assert_eq!(
            batch,
            Batch {
                delay: Duration::from_millis(250),
                timeout: Duration::from_millis(900),
                max_queue: 64,
                max_batch: 64,
            }
        );
        assert_eq!(settings.service_name, "from env");
        assert_eq!(
            settings.resource,
            [("a".into(), "1".into()), ("b".into(), "x,y".into())]
        );
        // OTEL_SERVICE_NAME wins over the attribute; bad values are warnings and defaults.
        let (settings, warnings) = parse(&[
            (CONFIG_VAR, json),
            ("OTEL_SERVICE_NAME", "named"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=x,broken"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "1000000"),
            (
                "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
                "sideways",
            ),
        ]);
        assert_eq!(settings.service_name, "named");
        assert!(settings.resource.is_empty());
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        let Tracing::Otlp { batch, .. } = settings.tracing else {
            panic!()
        };
        assert_eq!(batch, Batch::default());
    }
}

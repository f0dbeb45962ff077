//! The measurements: what each HTTP attempt and each event did, kept as cumulative counters and
//! histograms, and the process's own figures read from `/proc` when asked for. This module owns
//! the names (those of the Go image: OTel's HTTP client conventions, Prometheus's process
//! collector) and both ways out: Prometheus text for a scrape, an OTLP request for a push.

use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use super::otlp::{
    self, data, int_point, metric, metrics_request, monotonic, number_point, otlp_metric,
    resource_metrics, scope_metrics, unix_nanos,
};
use super::process::Process;
use super::protobuf::Message;
use super::record::{AttemptRecord, Server};
use crate::report::{ErrorType, Outcome};

/// OTel's advised boundaries for `http.client.request.duration`, seconds.
const DURATION_BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// The OTel SDK's default boundaries, used for `http.client.request.body.size`, bytes.
const SIZE_BOUNDS: [f64; 15] = [
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];

const OUTCOMES: [(Outcome, &str); 4] = [
    (Outcome::Delivered, "delivered"),
    (Outcome::DeadLettered, "dead_lettered"),
    (Outcome::Failed, "failed"),
    (Outcome::Skipped, "skipped"),
];

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    /// One per bound, plus the overflow bucket; not cumulative.
    counts: Vec<u64>,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    fn record(&mut self, value: f64) {
        let bucket = self.bounds.partition_point(|&bound| bound < value);
        self.counts[bucket] += 1;
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }
}

/// The attempts that share one set of labels.
#[derive(Debug, Clone)]
struct Series {
    /// The labels: the status ([`OTHER`] for one outside 100–599) and the error type; both
    /// `None` for the overflow series.
    status: Option<u16>,
    error_type: Option<ErrorType>,
    /// The series of every attempt past [`MAX_SERIES`] label sets.
    overflow: bool,
    duration: Histogram,
    body_size: Histogram,
}

/// The most label sets kept; later ones are counted in one overflow series, as the OTel SDK's
/// cardinality limit does (`otel.metric.overflow="true"`). A sink answering hundreds of
/// distinct codes cannot make a scrape megabytes long.
const MAX_SERIES: usize = 32;
/// A status code outside 100–599, shown as `_OTHER`.
const OTHER: u16 = 0;

/// A histogram every series has, under both its names.
struct HistogramKind {
    otel_name: &'static str,
    prometheus_name: &'static str,
    help: &'static str,
    unit: &'static str,
    of: fn(&Series) -> &Histogram,
}

const HISTOGRAMS: [HistogramKind; 2] = [
    HistogramKind {
        otel_name: "http.client.request.duration",
        prometheus_name: "http_client_request_duration_seconds",
        help: "Duration of HTTP client requests.",
        unit: "s",
        of: |s| &s.duration,
    },
    HistogramKind {
        otel_name: "http.client.request.body.size",
        prometheus_name: "http_client_request_body_size_bytes",
        help: "Size of HTTP client request bodies.",
        unit: "By",
        of: |s| &s.body_size,
    },
];

/// Everything measured since start.
#[derive(Debug)]
pub struct Metrics {
    server: Server,
    service_name: String,
    /// `OTEL_RESOURCE_ATTRIBUTES`.
    resource: Vec<(String, String)>,
    started: SystemTime,
    series: Vec<Series>,
    events: [u64; 4],
    attempts: u64,
    last_delivered: Option<SystemTime>,
    /// What the last OTLP push said, when pushes are deltas.
    pushed: Option<Pushed>,
}

/// The totals as of the last push: a delta push says what changed since.
#[derive(Debug, Clone)]
struct Pushed {
    at: u64,
    events: [u64; 4],
    attempts: u64,
    /// Per series (in order), per histogram kind: the bucket counts, the count, the sum.
    histograms: Vec<[(Vec<u64>, u64, f64); 2]>,
    cpu_seconds: f64,
}

/// How a push reports, from `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`.
pub use crate::config::observability::Temporality;

impl Metrics {
    pub fn new(
        server: Server,
        service_name: &str,
        resource: &[(String, String)],
        started: SystemTime,
    ) -> Metrics {
        Metrics {
            server,
            service_name: service_name.to_owned(),
            resource: resource.to_vec(),
            started,
            series: Vec::new(),
            events: [0; 4],
            attempts: 0,
            last_delivered: None,
            pushed: None,
        }
    }

    pub fn attempt(&mut self, record: &AttemptRecord) {
        self.attempts += 1;
        let known = |code: u16| (100..600).contains(&code);
        let status = record.status.map(|c| if known(c) { c } else { OTHER });
        let error_type = match record.error_type {
            Some(ErrorType::Status(c)) if !known(c) => Some(ErrorType::Status(OTHER)),
            other => other,
        };
        let labelled = |s: &Series| !s.overflow && s.status == status && s.error_type == error_type;
        let index = if let Some(index) = self.series.iter().position(labelled) {
            index
        } else {
            let overflow = self.series.len() >= MAX_SERIES;
            match self.series.iter().position(|s| s.overflow) {
                Some(index) if overflow => index,
                _ => {
                    self.series.push(Series {
                        status: if overflow { None } else { status },
                        error_type: if overflow { None } else { error_type },
                        overflow,
                        duration: Histogram::new(&DURATION_BOUNDS),
                        body_size: Histogram::new(&SIZE_BOUNDS),
                    });
                    self.series.len() - 1
                }
            }
        };
        let series = &mut self.series[index];
        series.duration.record(record.duration.as_secs_f64());
        series.body_size.record(record.body_size as f64);
    }

    /// Counts `count` events that ended as `outcome`; a delivery also stamps the time.
    pub fn event(&mut self, outcome: Outcome, count: u64) {
        let index = OUTCOMES
            .iter()
            .position(|(o, _)| *o == outcome)
            .unwrap_or(0);
        self.events[index] += count;
        if outcome == Outcome::Delivered {
            self.last_delivered = Some(SystemTime::now());
        }
    }

    /// The series' labels as (OTel name, value), in a fixed order.
    fn labels(&self, series: &Series) -> Vec<(&'static str, String)> {
        if series.overflow {
            return vec![("otel.metric.overflow", "true".to_owned())];
        }
        let code = |c: u16| match c {
            OTHER => "_OTHER".to_owned(),
            c => c.to_string(),
        };
        let mut labels = vec![("http.request.method", "POST".to_owned())];
        if let Some(status) = series.status {
            labels.push(("http.response.status_code", code(status)));
        }
        labels.push(("server.address", self.server.address.clone()));
        labels.push(("server.port", self.server.port.to_string()));
        labels.push(("url.scheme", self.server.scheme.to_owned()));
        match series.error_type {
            Some(ErrorType::Status(status)) => labels.push(("error.type", code(status))),
            Some(error) => labels.push(("error.type", error.to_string())),
            None => {}
        }
        labels
    }

    /// The Prometheus text exposition (format 0.0.4) of everything, process figures read now.
    pub fn prometheus(&self) -> String {
        let mut out = String::with_capacity(8192);
        let _ = self.write_prometheus(&mut out, &Process::read());
        out
    }

    fn write_prometheus(&self, out: &mut String, process: &Process) -> fmt::Result {
        for kind in &HISTOGRAMS {
            let (name, help) = (kind.prometheus_name, kind.help);
            writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram")?;
            for series in &self.series {
                let labels = Labels(self.labels(series));
                let h = (kind.of)(series);
                let mut cumulative = 0;
                for (i, count) in h.counts.iter().enumerate() {
                    cumulative += count;
                    let le = h
                        .bounds
                        .get(i)
                        .map_or("+Inf".to_owned(), ToString::to_string);
                    writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}")?;
                }
                writeln!(out, "{name}_sum{{{labels}}} {}", h.sum)?;
                writeln!(out, "{name}_count{{{labels}}} {}", h.count)?;
            }
        }
        let name = "heartbeats_events_total";
        writeln!(
            out,
            "# HELP {name} Events by outcome: delivered, dead_lettered (taken by the dead-letter sink only), failed, or skipped (a due time that passed without one)."
        )?;
        writeln!(out, "# TYPE {name} counter")?;
        for ((_, outcome), count) in OUTCOMES.iter().zip(self.events) {
            writeln!(out, "{name}{{outcome=\"{outcome}\"}} {count}")?;
        }
        let name = "heartbeats_attempts_total";
        writeln!(out, "# HELP {name} HTTP attempts, retries included.")?;
        writeln!(out, "# TYPE {name} counter\n{name} {}", self.attempts)?;
        if let Some(at) = self.last_delivered {
            let name = "heartbeats_last_delivered_timestamp_seconds";
            writeln!(
                out,
                "# HELP {name} When the sink last acknowledged an event, Unix time."
            )?;
            writeln!(out, "# TYPE {name} gauge\n{name} {}", unix_seconds(at))?;
        }
        process.write_prometheus(out)?;
        let labels = Labels(vec![
            ("service.name", self.service_name.clone()),
            ("service.version", otlp::VERSION.to_owned()),
        ]);
        writeln!(
            out,
            "# HELP target_info Target metadata\n# TYPE target_info gauge"
        )?;
        writeln!(out, "target_info{{{labels}}} 1")
    }

    /// An OTLP `ExportMetricsServiceRequest` of everything, cumulative since start.
    /// The OTLP push at `now`: totals since start, or (delta temporality) what changed since the
    /// last push, which is then remembered.
    pub fn otlp(&mut self, now: SystemTime, temporality: Temporality) -> Vec<u8> {
        let start = unix_nanos(self.started);
        let now = unix_nanos(now);
        let process = Process::read();
        let base = temporality
            .is_delta()
            .then(|| self.pushed.clone())
            .flatten();
        let mut request = Message::new();
        request.message(metrics_request::RESOURCE_METRICS, |rm| {
            rm.message(resource_metrics::RESOURCE, |resource| {
                otlp::resource(resource, &self.service_name, &self.resource);
            });
            rm.message(resource_metrics::SCOPE_METRICS, |sm| {
                sm.message(scope_metrics::SCOPE, otlp::scope);
                let delta = Delta {
                    temporality,
                    base: base.as_ref(),
                    start,
                };
                self.otlp_http_metrics(sm, &delta, now);
                self.otlp_own_metrics(sm, &delta, now);
                // The process's CPU time is an observed counter: delta only under `delta`.
                let cpu = match (&base, temporality) {
                    (Some(base), Temporality::Delta) => Some((base.at, base.cpu_seconds)),
                    _ => None,
                };
                process.write_otlp(sm, start, now, cpu);
            });
        });
        if temporality.is_delta() {
            self.pushed = Some(Pushed {
                at: now,
                events: self.events,
                attempts: self.attempts,
                histograms: self
                    .series
                    .iter()
                    .map(|s| {
                        let h = |h: &Histogram| (h.counts.clone(), h.count, h.sum);
                        [h(&s.duration), h(&s.body_size)]
                    })
                    .collect(),
                cpu_seconds: process.cpu_seconds,
            });
        }
        request.into_bytes()
    }

    fn otlp_http_metrics(&self, sm: &mut Message, delta: &Delta, now: u64) {
        if self.series.is_empty() {
            return;
        }
        for (k, kind) in HISTOGRAMS.iter().enumerate() {
            otlp_metric(
                sm,
                kind.otel_name,
                kind.help,
                kind.unit,
                metric::HISTOGRAM,
                |h| {
                    for (i, series) in self.series.iter().enumerate() {
                        let histogram = (kind.of)(series);
                        let before = delta.base.and_then(|b| b.histograms.get(i)).map(|h| &h[k]);
                        h.message(data::DATA_POINTS, |point| {
                            self.otlp_histogram_point(
                                point,
                                series,
                                histogram,
                                before,
                                delta.start(),
                                now,
                            );
                        });
                    }
                    h.uint(data::AGGREGATION_TEMPORALITY, delta.temporality_field());
                },
            );
        }
    }

    fn otlp_histogram_point(
        &self,
        point: &mut Message,
        series: &Series,
        h: &Histogram,
        before: Option<&(Vec<u64>, u64, f64)>,
        start: u64,
        now: u64,
    ) {
        use super::otlp::histogram_point as field;
        for (key, value) in self.labels(series) {
            point.message(field::ATTRIBUTES, |kv| {
                otlp::string_attribute(kv, key, &value)
            });
        }
        let (counts, count, sum) = match before {
            Some((counts, count, sum)) => (
                h.counts
                    .iter()
                    .zip(counts)
                    .map(|(now, then)| now - then)
                    .collect(),
                h.count - count,
                h.sum - sum,
            ),
            None => (h.counts.clone(), h.count, h.sum),
        };
        point
            .fixed64(field::START_TIME_UNIX_NANO, start)
            .fixed64(field::TIME_UNIX_NANO, now)
            .fixed64(field::COUNT, count)
            .double(field::SUM, sum);
        point.packed_fixed64(field::BUCKET_COUNTS, counts.iter().copied());
        point.packed_fixed64(field::EXPLICIT_BOUNDS, h.bounds.iter().map(|b| b.to_bits()));
        // A delta point cannot know its interval's extremes from totals: they are left out.
        if h.count > 0 && before.is_none() {
            point.double(field::MIN, h.min).double(field::MAX, h.max);
        }
    }

    fn otlp_own_metrics(&self, sm: &mut Message, delta: &Delta, now: u64) {
        let start = delta.start();
        otlp_metric(sm, "heartbeats.events", "", "{event}", metric::SUM, |sum| {
            for (i, ((_, outcome), count)) in OUTCOMES.iter().zip(self.events).enumerate() {
                let count = count - delta.base.map_or(0, |b| b.events[i]);
                sum.message(data::DATA_POINTS, |point| {
                    point.message(number_point::ATTRIBUTES, |kv| {
                        otlp::string_attribute(kv, "outcome", outcome);
                    });
                    int_point(point, start, now, count);
                });
            }
            monotonic(sum, delta.temporality_field());
        });
        otlp_metric(
            sm,
            "heartbeats.attempts",
            "",
            "{attempt}",
            metric::SUM,
            |sum| {
                let attempts = self.attempts - delta.base.map_or(0, |b| b.attempts);
                sum.message(data::DATA_POINTS, |point| {
                    int_point(point, start, now, attempts);
                });
                monotonic(sum, delta.temporality_field());
            },
        );
        if let Some(at) = self.last_delivered {
            let name = "heartbeats.last_delivered.timestamp";
            otlp_metric(sm, name, "", "s", metric::GAUGE, |gauge| {
                gauge.message(data::DATA_POINTS, |point| {
                    point
                        .fixed64(number_point::TIME_UNIX_NANO, now)
                        .double(number_point::AS_DOUBLE, unix_seconds(at));
                });
            });
        }
    }
}

/// What a push counts from: the start (cumulative), or the last push (delta).
struct Delta<'a> {
    temporality: Temporality,
    /// The last push, for a delta push after the first one.
    base: Option<&'a Pushed>,
    /// The process's start, in Unix nanoseconds.
    start: u64,
}

impl Delta<'_> {
    fn start(&self) -> u64 {
        self.base.map_or(self.start, |b| b.at)
    }

    /// `AggregationTemporality`: 1 delta, 2 cumulative.
    fn temporality_field(&self) -> u64 {
        if self.temporality.is_delta() {
            data::DELTA
        } else {
            data::CUMULATIVE
        }
    }
}

/// Prometheus labels: OTel names with dots as underscores, values escaped.
struct Labels(Vec<(&'static str, String)>);

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_char(',')?;
            }
            for c in key.chars() {
                f.write_char(if c.is_ascii_alphanumeric() { c } else { '_' })?;
            }
            f.write_str("=\"")?;
            for c in value.chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '"' => f.write_str("\\\"")?,
                    '\n' => f.write_str("\\n")?,
                    c => f.write_char(c)?,
                }
            }
            f.write_char('"')?;
        }
        Ok(())
    }
}

pub fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_on_a_bound_falls_in_that_bucket_as_prometheus_le_says() {
        let mut h = Histogram::new(&DURATION_BOUNDS);
        for value in [0.005, 0.0051, 0.0, 11.0] {
            h.record(value);
        }
        assert_eq!(h.counts[0], 2, "0 and 0.005 are ≤ 0.005");
        assert_eq!(h.counts[1], 1);
        assert_eq!(h.counts[DURATION_BOUNDS.len()], 1, "11 s overflows");
        assert_eq!((h.count, h.min, h.max), (4, 0.0, 11.0));
    }

    fn attempt(status: u16) -> AttemptRecord {
        AttemptRecord {
            status: Some(status),
            error_type: (status >= 400).then_some(ErrorType::Status(status)),
            duration: std::time::Duration::from_millis(1),
            body_size: 20,
        }
    }

    #[test]
    fn codes_outside_100_to_599_are_one_series_and_label_sets_are_capped() {
        let server = Server {
            address: "sink".into(),
            port: 80,
            scheme: "http",
        };
        let mut metrics = Metrics::new(server, "heartbeat", &[], SystemTime::now());
        for code in 600..1000 {
            metrics.attempt(&attempt(code));
        }
        assert_eq!(metrics.series.len(), 1);
        let labels = metrics.labels(&metrics.series[0]);
        assert!(labels.contains(&("http.response.status_code", "_OTHER".into())));
        assert!(labels.contains(&("error.type", "_OTHER".into())));
        for code in 100..600 {
            metrics.attempt(&attempt(code));
        }
        assert_eq!(metrics.series.len(), MAX_SERIES + 1);
        let overflow = metrics.series.last().unwrap();
        assert_eq!(overflow.duration.count, 500 - (MAX_SERIES as u64 - 1));
        assert_eq!(
            metrics.labels(overflow),
            [("otel.metric.overflow", "true".to_owned())]
        );
        let text = metrics.prometheus();
        assert!(text.len() < 256 * 1024, "{} bytes", text.len());
    }

    #[test]
    fn label_values_are_escaped_and_names_underscored() {
        let labels = Labels(vec![("server.address", "a\"b\\c\nd".to_owned())]);
        assert_eq!(labels.to_string(), r#"server_address="a\"b\\c\nd""#);
    }
}

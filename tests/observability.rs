//! `K_OBSERVABILITY_CONFIG`: Prometheus scrapes while beating, OTLP metrics and traces to a
//! fake collector (a second sink on 127.0.0.1), spans on stdout, and configs that must only
//! warn. Everything we emit is read back with independent decoders: `prometheus-parse` for the
//! text, the OTLP protobuf definitions (`opentelemetry-proto` on `prost`) for the exports.

mod support;

use std::collections::HashMap;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use support::*;

const CONFIG: &str = "K_OBSERVABILITY_CONFIG";

fn scrape(addr: &str) -> prometheus_parse::Scrape {
    let (status, body) = get(addr, "GET /metrics HTTP/1.1");
    assert_eq!(status, "HTTP/1.1 200 OK");
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("parses")
}

fn sample<'a>(
    scrape: &'a prometheus_parse::Scrape,
    metric: &str,
    labels: &[(&str, &str)],
) -> &'a prometheus_parse::Value {
    let found = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)));
    &found
        .unwrap_or_else(|| panic!("no {metric} {labels:?} in {:#?}", scrape.samples))
        .value
}

/// The CPU time of process `pid` so far (user and system), as the kernel counts it.
fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // utime and stime, the 14th and 15th fields, in clock ticks (100 a second on Linux).
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn number(value: &prometheus_parse::Value) -> f64 {
    match value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => *v,
        other => panic!("not a number: {other:?}"),
    }
}

#[test]
fn prometheus_is_scraped_while_beating_on_one_thread_and_sigterm_still_stops_at_once() {
    let sink = Sink::start(vec![status(503)]);
    let collector = Sink::start(vec![]);
    // Everything on: metrics scraped, every event traced to a collector.
    let config = format!(
        r#"{{"metrics":{{"protocol":"prometheus","endpoint":"127.0.0.1:0"}},
            "tracing":{{"protocol":"http/protobuf","endpoint":"http://127.0.0.1:{}","samplingRate":1}}}}"#,
        collector.port
    );
    let run = Running::start(
        heartbeats_to(&sink)
            .env(CONFIG, config)
            .arg("--period=100ms"),
    );
    let addr = metrics_address(&run);
    // Event 1 needs two attempts (503, then 200); event 2 one.
    let body_len = sink.expect().body.len();
    sink.expect();
    sink.expect();
    run.line_containing("event 2 id");
    let cpu_before = cpu_seconds(run.pid);
    let scrape = scrape(&addr);
    let port = sink.port.to_string();
    let base = [
        ("http_request_method", "POST"),
        ("server_address", "127.0.0.1"),
        ("server_port", port.as_str()),
        ("url_scheme", "http"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut labels = base.to_vec();
        labels.extend_from_slice(extra);
        labels
    };
    let failed = with(&[("http_response_status_code", "503"), ("error_type", "503")]);
    let prometheus_parse::Value::Histogram(buckets) =
        sample(&scrape, "http_client_request_duration_seconds", &failed)
    else {
        panic!("not a histogram")
    };
    assert_eq!(buckets.last().unwrap().count, 1.0, "{buckets:?}");
    assert!(buckets.last().unwrap().less_than.is_infinite());
    let ok = with(&[("http_response_status_code", "200")]);
    let ok_count = number(sample(
        &scrape,
        "http_client_request_duration_seconds_count",
        &ok,
    ));
    assert!(ok_count >= 2.0, "{ok_count}");
    // Events 1 to 9 have bodies of one length: `{"id":1,"label":""}`.
    let body = number(sample(
        &scrape,
        "http_client_request_body_size_bytes_sum",
        &ok,
    ));
    assert_eq!(body, ok_count * body_len as f64);
    let delivered = number(sample(
        &scrape,
        "heartbeats_events_total",
        &[("outcome", "delivered")],
    ));
    assert!(delivered >= 2.0, "{delivered}");
    assert!(number(sample(&scrape, "heartbeats_attempts_total", &[])) >= 3.0);
    let last = number(sample(
        &scrape,
        "heartbeats_last_delivered_timestamp_seconds",
        &[],
    ));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - last).abs() < 5.0, "{last} vs {now}");
    assert!(number(sample(&scrape, "process_resident_memory_bytes", &[])) > 100_000.0);
    assert!(number(sample(&scrape, "process_open_fds", &[])) >= 3.0);
    // The CPU time scraped lies between what the kernel said just before and just after.
    let cpu = number(sample(&scrape, "process_cpu_seconds_total", &[]));
    let after = cpu_seconds(run.pid);
    assert!(cpu <= after + 0.011, "{cpu} s scraped, {after} s after");
    assert!(
        cpu >= cpu_before - 0.011,
        "{cpu} s scraped, {cpu_before} s before"
    );
    let start = number(sample(&scrape, "process_start_time_seconds", &[]));
    assert!((now - start).abs() < 60.0, "{start}");
    let service = [
        ("service_name", "heartbeat"),
        ("service_version", env!("CARGO_PKG_VERSION")),
    ];
    assert_eq!(number(sample(&scrape, "target_info", &service)), 1.0);

    assert_eq!(
        get(&addr, "GET /other HTTP/1.1").0,
        "HTTP/1.1 404 Not Found"
    );
    assert_eq!(
        get(&addr, "POST /metrics HTTP/1.1").0,
        "HTTP/1.1 405 Method Not Allowed"
    );
    assert_eq!(threads(run.pid), 1, "one thread, listener included");

    // A scraper that connects and says nothing delays nothing for long, and never a stop.
    let _silent = TcpStream::connect(&addr).unwrap();
    run.wait_until_sleeping();
    let asked = Instant::now();
    run.signal(libc::SIGTERM);
    let finished = run.finish(Duration::from_secs(5));
    assert!(
        asked.elapsed() < Duration::from_millis(300),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    finished.assert_logged("SIGTERM: stopping");
    // The spans pending at SIGTERM were flushed on the way out.
    let spans = spans_of(&collector.drain());
    assert!(spans.len() >= 5, "{} spans", spans.len());
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn string(attributes: &[KeyValue], key: &str) -> String {
    match attribute(attributes, key) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        other => panic!("{key}: {other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The spans in the OTLP trace exports among `requests`, whatever their service name.
fn spans_of(requests: &[Request]) -> Vec<Span> {
    let mut spans = Vec::new();
    for request in requests.iter().filter(|r| r.path == "/v1/traces") {
        let export = ExportTraceServiceRequest::decode(&request.body[..]).expect("OTLP traces");
        for resource in export.resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
    }
    spans
}

/// [`spans_of`], checking that each export is protobuf and names our service.
fn spans(requests: &[Request]) -> Vec<Span> {
    for request in requests.iter().filter(|r| r.path == "/v1/traces") {
        assert_eq!(request.header("content-type"), "application/x-protobuf");
        let export = ExportTraceServiceRequest::decode(&request.body[..]).expect("OTLP traces");
        for resource in export.resource_spans {
            let attributes = &resource.resource.as_ref().unwrap().attributes;
            assert_eq!(string(attributes, "service.name"), "beats-under-test");
        }
    }
    spans_of(requests)
}

#[test]
fn otlp_traces_match_the_traceparent_each_attempt_carried_and_metrics_are_pushed() {
    let sink = Sink::start(vec![status(503)]);
    let collector = Sink::start(vec![]);
    let config = format!(
        r#"{{"metrics":{{"protocol":"http/protobuf","endpoint":"http://127.0.0.1:{0}","exportInterval":100000000}},
            "tracing":{{"protocol":"http/protobuf","endpoint":"http://127.0.0.1:{0}/v1/traces","samplingRate":1}}}}"#,
        collector.port
    );
    let finished = run(heartbeats_to(&sink)
        .env(CONFIG, config)
        .env("OTEL_SERVICE_NAME", "beats-under-test")
        .env("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s3cret")
        .args(["--period=100ms", "--count=3"]));
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    assert!(!finished.stderr.contains("s3cret"), "{}", finished.stderr);
    let events = sink.drain();
    assert_eq!(events.len(), 4, "three events, one retried");
    let exports = collector.drain();
    assert!(exports.iter().all(|r| r.header("x-api-key") == "s3cret"));
    let spans = spans(&exports);
    assert_eq!(
        spans.len(),
        3 + 4,
        "a span per event and per attempt: {spans:#?}"
    );

    for request in &events {
        let traceparent = request.header("traceparent");
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(
            (parts.len(), parts[0], parts[3]),
            (4, "00", "01"),
            "{traceparent}"
        );
        let attempt = spans
            .iter()
            .find(|s| hex(&s.span_id) == parts[2])
            .unwrap_or_else(|| panic!("no span for {traceparent}"));
        assert_eq!(hex(&attempt.trace_id), parts[1]);
        assert_eq!(attempt.name, "HTTP POST");
        assert_eq!(attempt.kind, 3, "CLIENT");
        let parent = spans
            .iter()
            .find(|s| s.span_id == attempt.parent_span_id)
            .expect("the attempt's parent");
        assert_eq!(parent.trace_id, attempt.trace_id);
        assert_eq!(parent.kind, 4, "PRODUCER");
        assert_eq!(
            string(&parent.attributes, "cloudevents.event_id"),
            request.header("ce-id")
        );
        assert_eq!(
            string(&parent.attributes, "cloudevents.event_type"),
            request.header("ce-type")
        );
        assert_eq!(
            string(&parent.attributes, "cloudevents.event_source"),
            request.header("ce-source")
        );
        assert!(attempt.start_time_unix_nano >= parent.start_time_unix_nano);
        assert!(attempt.end_time_unix_nano <= parent.end_time_unix_nano);
        let status = match attribute(&attempt.attributes, "http.response.status_code") {
            Some(any_value::Value::IntValue(code)) => *code,
            other => panic!("{other:?}"),
        };
        let error = status >= 400;
        assert_eq!(attempt.status.as_ref().is_some_and(|s| s.code == 2), error);
        assert_eq!(string(&attempt.attributes, "url.full"), sink.url());
    }
    // A fresh trace per event.
    let traces: std::collections::HashSet<_> = spans.iter().map(|s| s.trace_id.clone()).collect();
    assert_eq!(traces.len(), 3);

    // Metrics: pushed every 100 ms and at exit, cumulative; the last push has every attempt.
    let pushes: Vec<_> = exports.iter().filter(|r| r.path == "/v1/metrics").collect();
    assert!(pushes.len() >= 2, "{} pushes", pushes.len());
    let last = ExportMetricsServiceRequest::decode(&pushes.last().unwrap().body[..]).unwrap();
    let metrics: HashMap<String, Data> = last.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .map(|m| (m.name.clone(), m.data.clone().unwrap()))
        .collect();
    let Some(Data::Histogram(duration)) = metrics.get("http.client.request.duration") else {
        panic!("{metrics:#?}")
    };
    let counts: u64 = duration.data_points.iter().map(|p| p.count).sum();
    assert_eq!(counts, 4);
    for point in &duration.data_points {
        assert_eq!(point.bucket_counts.len(), point.explicit_bounds.len() + 1);
        assert_eq!(point.bucket_counts.iter().sum::<u64>(), point.count);
    }
    let Some(Data::Sum(events)) = metrics.get("heartbeats.events") else {
        panic!("{metrics:#?}")
    };
    let delivered = events
        .data_points
        .iter()
        .find(|p| string(&p.attributes, "outcome") == "delivered");
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
    assert_eq!(delivered.unwrap().value, Some(Value::AsInt(3)));
}

#[test]
fn sampling_rate_zero_sends_no_traceparent_and_no_spans() {
    let sink = Sink::start(vec![]);
    let collector = Sink::start(vec![]);
    let config = format!(
        r#"{{"tracing":{{"protocol":"http/protobuf","endpoint":"http://127.0.0.1:{}","samplingRate":0}}}}"#,
        collector.port
    );
    let finished = run(heartbeats_to(&sink)
        .env(CONFIG, config)
        .args(["--period=50ms", "--count=3"]));
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    let events = sink.drain();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|r| !r.has_header("traceparent")));
    assert!(collector.drain().is_empty());
}

#[test]
fn stdout_tracing_writes_one_json_object_per_span() {
    let sink = Sink::start(vec![]);
    let finished = run(heartbeats_to(&sink)
        .env(CONFIG, r#"{"tracing":{"protocol":"stdout"}}"#)
        .args(["--period=50ms", "--count=2"]));
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    let spans: Vec<serde_json::Value> = finished
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(spans.len(), 4, "{}", finished.stdout);
    let events = sink.drain();
    for (event, pair) in events.iter().zip(spans.chunks(2)) {
        let traceparent = event.header("traceparent");
        assert!(traceparent.contains(pair[0]["SpanContext"]["SpanID"].as_str().unwrap()));
        assert_eq!(pair[0]["Name"], "HTTP POST");
        assert_eq!(pair[1]["Parent"]["SpanID"], "0000000000000000");
        assert_eq!(
            pair[0]["Parent"]["SpanID"],
            pair[1]["SpanContext"]["SpanID"]
        );
    }
}

#[test]
fn configs_knative_might_write_wrong_only_warn_and_the_beat_goes_on() {
    let cases = [
        ("{not json", "is not valid JSON"),
        (
            r#"{"metrics":{"protocol":"otlp","endpoint":"c:4317"}}"#,
            "unsupported protocol \"otlp\"",
        ),
        (
            r#"{"tracing":{"protocol":"zipkin"}}"#,
            "unsupported protocol \"zipkin\"",
        ),
        (
            r#"{"tracing":{"protocol":"http/protobuf","samplingRate":2}}"#,
            "samplingRate 2",
        ),
    ];
    for (config, said) in cases {
        let sink = Sink::start(vec![]);
        let finished = run(heartbeats_to(&sink).env(CONFIG, config).arg("--count=1"));
        assert_eq!(finished.code(), Some(0), "{config}: {}", finished.stderr);
        let warning = finished
            .stderr
            .lines()
            .find(|l| l.contains("warning: K_OBSERVABILITY_CONFIG"))
            .unwrap_or_else(|| panic!("{config}: {}", finished.stderr));
        assert!(warning.contains(said), "{config}: {warning}");
        assert!(!sink.expect().has_header("traceparent"));
    }
    // A port already taken: a warning, and beats.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = format!(
        r#"{{"metrics":{{"protocol":"prometheus","endpoint":"{}"}}}}"#,
        taken.local_addr().unwrap()
    );
    let sink = Sink::start(vec![]);
    let finished = run(heartbeats_to(&sink).env(CONFIG, config).arg("--count=1"));
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    finished.assert_logged("cannot listen on 127.0.0.1:");
    sink.expect();
}

#[test]
fn an_unreachable_collector_costs_one_warning_and_no_beat() {
    // A port nothing listens on: bound, then closed.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let sink = Sink::start(vec![]);
    let config = format!(
        r#"{{"metrics":{{"protocol":"http/protobuf","endpoint":"http://127.0.0.1:{port}","exportInterval":20000000}},
            "tracing":{{"protocol":"http/protobuf","endpoint":"http://127.0.0.1:{port}","samplingRate":1}}}}"#
    );
    let finished = run(heartbeats_to(&sink)
        .env(CONFIG, config)
        .args(["--period=50ms", "--count=6"]));
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    assert_eq!(sink.drain().len(), 6);
    let warnings = finished.stderr.matches("exporting metrics failed").count();
    assert_eq!(warnings, 1, "{}", finished.stderr);
}

/// Red team 3, item 1: with metrics alone (no tracer), the pushes were only made at exit.
#[test]
fn otlp_metrics_alone_are_pushed_every_interval_while_running() {
    for (interval_ns, variable) in [("200000000", None), ("60000000000", Some("200"))] {
        let sink = Sink::start(vec![]);
        let collector = Sink::start(vec![]);
        let config = format!(
            r#"{{"metrics":{{"protocol":"http/protobuf","endpoint":"http://127.0.0.1:{}","exportInterval":{interval_ns}}}}}"#,
            collector.port
        );
        let mut command = heartbeats_to(&sink);
        command.env(CONFIG, config).arg("--period=50ms");
        if let Some(ms) = variable {
            command.env("OTEL_METRIC_EXPORT_INTERVAL", ms);
        }
        let running = Running::start(&mut command);
        let mut pushes = Vec::new();
        for _ in 0..3 {
            let push = collector
                .next(Duration::from_secs(3))
                .expect("a push while running, every 200 ms");
            assert_eq!(push.path, "/v1/metrics");
            let export = ExportMetricsServiceRequest::decode(&push.body[..]).expect("OTLP metrics");
            pushes.push((push.at, delivered(&export)));
        }
        // One every interval, not in a burst; each counting more events than the one before
        // (cumulative, beats every 50 ms).
        for pair in pushes.windows(2) {
            let gap = pair[1].0 - pair[0].0;
            assert!(gap >= Duration::from_millis(150), "{gap:?}");
            assert!(pair[1].1 > pair[0].1, "{:?}", (pair[0].1, pair[1].1));
        }
        running.signal(libc::SIGTERM);
        assert_eq!(running.finish(Duration::from_secs(5)).code(), Some(0));
    }
}

/// The count of delivered events in an OTLP metrics export.
fn delivered(export: &ExportMetricsServiceRequest) -> i64 {
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
    let metrics = &export.resource_metrics[0].scope_metrics[0].metrics;
    let Some(Data::Sum(events)) = metrics
        .iter()
        .find(|m| m.name == "heartbeats.events")
        .and_then(|m| m.data.clone())
    else {
        return 0;
    };
    let point = events
        .data_points
        .iter()
        .find(|p| string(&p.attributes, "outcome") == "delivered");
    match point.and_then(|p| p.value) {
        Some(Value::AsInt(n)) => n,
        _ => 0,
    }
}

/// One raw request to the scrape server at `addr`; the whole answer as it came.
fn raw_scrape(addr: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics listener");
    stream.set_read_timeout(Some(IO_LIMIT)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    String::from_utf8(answer).unwrap()
}

/// The status line, the headers (names lower case) and the body of `answer`.
fn split_answer(answer: &str) -> (String, HashMap<String, String>, String) {
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
    let mut lines = head.lines();
    let status = lines.next().unwrap().to_owned();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    (status, headers, body.to_owned())
}

/// Red team 3, item 7: HEAD /metrics was 405, an absolute-form target 404, bare-LF line ends
/// got no answer. Now as Go's net/http serves knative's `GET /metrics` route, each answer with
/// its length.
#[test]
fn scrapes_are_answered_as_gos_net_http_answers_them() {
    let sink = Sink::start(vec![]);
    let (running, addr) = serving_prometheus(&sink, &["--period=10s"]);
    running.line_containing("delivered");
    let cases = [
        (
            "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 200 OK",
            true,
        ),
        (
            "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 200 OK",
            false,
        ),
        (
            &*format!("GET http://{addr}/metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
            "HTTP/1.1 200 OK",
            true,
        ),
        (
            "GET /metrics?x=1 HTTP/1.1\nHost: x\n\n",
            "HTTP/1.1 200 OK",
            true,
        ),
        (
            "POST /metrics HTTP/1.1\r\nHost: x\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 405 Method Not Allowed",
            true,
        ),
        (
            "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 404 Not Found",
            true,
        ),
        ("NOT HTTP\r\n\r\n", "HTTP/1.1 400 Bad Request", true),
    ];
    let mut get_length = 0;
    for (request, expected, with_body) in cases {
        let (status, headers, body) = split_answer(&raw_scrape(&addr, request));
        assert_eq!(status, expected, "{request:?}");
        let length: usize = headers["content-length"].parse().unwrap();
        if with_body {
            assert_eq!(length, body.len(), "{request:?}");
        } else {
            // HEAD: the length a GET has, and no body.
            assert!(body.is_empty() && length > 1000, "{request:?}: {length}");
            assert!(
                length.abs_diff(get_length) < 200,
                "{length} vs {get_length}"
            );
        }
        if status == "HTTP/1.1 200 OK" && with_body {
            get_length = length;
            assert!(body.contains("heartbeats_events_total"), "{request:?}");
            assert!(headers["content-type"].starts_with("text/plain; version=0.0.4"));
        }
        if status.contains("405") {
            assert_eq!(headers["allow"], "GET, HEAD");
        }
        if status.contains("404") {
            assert_eq!(body, "404 page not found\n");
        }
    }
    running.signal(libc::SIGTERM);
    assert_eq!(running.finish(Duration::from_secs(5)).code(), Some(0));
}

/// Red team 3, item 7: a sink answering hundreds of distinct status codes made a 4 MB scrape.
/// Codes outside 100-599 are one value, and past 32 label sets attempts go to one overflow
/// series. (That an answer not taken in time is reset is a unit test of the scrape server.)
#[test]
fn distinct_status_codes_cannot_make_a_scrape_megabytes_long() {
    // Seventy distinct codes, six of them outside 100-599.
    let mut script: Vec<Reply> = (230..294).map(status).collect();
    script.extend((600..606).map(status));
    let sink = Sink::start(script);
    let (running, addr) = serving_prometheus(&sink, &["--period=5ms"]);
    running.line_containing("event 75 id");
    let scrape = scrape(&addr);
    let (_, body) = get(&addr, "GET /metrics HTTP/1.1");
    assert!(body.len() < 256 * 1024, "a scrape of {} bytes", body.len());
    let overflow = scrape
        .samples
        .iter()
        .filter(|s| s.labels.get("otel_metric_overflow") == Some("true"))
        .count();
    assert!(overflow > 0, "no overflow series");
    running.signal(libc::SIGTERM);
    assert_eq!(running.finish(Duration::from_secs(5)).code(), Some(0));
}

/// Red team 3, item 8: capitalised keys were silently ignored, a repeated key turned everything
/// off, and a JSON array was taken as a config. Now as Go's encoding/json reads it.
#[test]
fn the_config_is_read_as_gos_encoding_json_reads_it() {
    let sink = Sink::start(vec![]);
    let serving = [
        r#"{"Metrics":{"Protocol":"prometheus","ENDPOINT":"127.0.0.1:0"}}"#,
        r#"{"metrics":{"protocol":"prometheus"},"metrics":{"endpoint":"127.0.0.1:0"}}"#,
        r#"{"metrics":{"protocol":"none"},"metrics":{"protocol":"prometheus","endpoint":"127.0.0.1:0"}}"#,
    ];
    for config in serving {
        let f = one_shot(heartbeats_to(&sink).env(CONFIG, config));
        assert_eq!(f.code(), Some(0), "{config}: {}", f.stderr);
        f.assert_logged("metrics: serving Prometheus text at http://127.0.0.1:");
        assert!(!f.stderr.contains("warning"), "{config}: {}", f.stderr);
    }
    for config in [
        r#"[{"metrics":{"protocol":"prometheus","endpoint":"127.0.0.1:0"}}]"#,
        r#""prometheus""#,
    ] {
        let f = one_shot(heartbeats_to(&sink).env(CONFIG, config));
        assert_eq!(f.code(), Some(0), "{config}: {}", f.stderr);
        f.assert_logged("K_OBSERVABILITY_CONFIG is not a JSON object; metrics and tracing are off");
        assert!(!f.stderr.contains("serving"), "{config}: {}", f.stderr);
    }
}

/// Issue 23: OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG, as the Go image's OTel SDK reads
/// them. Three events traced to a local collector at the config's rate 1 (or 0), the sampler's
/// variables set: how many requests carried a sampled `traceparent`, and how many spans came.
#[test]
fn otel_traces_sampler_and_its_argument_decide_which_events_are_traced() {
    let cases = [
        ("1", &[("OTEL_TRACES_SAMPLER", "always_off")][..], 0),
        ("1", &[("OTEL_TRACES_SAMPLER", "parentbased_always_off")], 0),
        (
            "1",
            &[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0"),
            ],
            0,
        ),
        ("1", &[("OTEL_TRACES_SAMPLER_ARG", "0")], 0),
        ("0", &[("OTEL_TRACES_SAMPLER", "always_on")], 3),
        (
            "0",
            &[("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")],
            3,
        ),
        ("0", &[("OTEL_TRACES_SAMPLER_ARG", "1")], 3),
    ];
    for (rate, vars, traced) in cases {
        let sink = Sink::start(vec![]);
        let collector = Sink::start(vec![]);
        let config = format!(
            r#"{{"tracing":{{"protocol":"http/protobuf","endpoint":"http://127.0.0.1:{}","samplingRate":{rate}}}}}"#,
            collector.port
        );
        let mut command = heartbeats_to(&sink);
        command
            .env(CONFIG, config)
            .args(["--period=50ms", "--count=3"]);
        for (name, value) in vars {
            command.env(name, value);
        }
        let f = run(&mut command);
        assert_eq!(f.code(), Some(0), "{vars:?}: {}", f.stderr);
        let events = sink.drain();
        let sampled = events
            .iter()
            .filter(|r| r.has_header("traceparent") && r.header("traceparent").ends_with("-01"))
            .count();
        assert_eq!(sampled, traced, "{vars:?}");
        let spans = spans_of(&collector.drain());
        // Each traced event: its own span and one attempt's.
        assert_eq!(spans.len(), traced * 2, "{vars:?}");
    }
    // An unknown sampler: one warning, and the config's rate.
    let sink = Sink::start(vec![]);
    let collector = Sink::start(vec![]);
    let config = format!(
        r#"{{"tracing":{{"protocol":"http/protobuf","endpoint":"http://127.0.0.1:{}","samplingRate":1}}}}"#,
        collector.port
    );
    let f = one_shot(
        heartbeats_to(&sink)
            .env(CONFIG, config)
            .env("OTEL_TRACES_SAMPLER", "jaeger_remote"),
    );
    f.assert_logged("warning: OTEL_TRACES_SAMPLER \"jaeger_remote\" is not always_on");
    assert!(sink.expect().has_header("traceparent"));
}

/// `METRICS_PROMETHEUS_HOST` moves the listener as knative.dev/pkg reads it; TLS for it
/// (`METRICS_PROMETHEUS_TLS_*`) is not supported, which turns metrics off with one warning and
/// never stops the beat.
#[test]
fn metrics_prometheus_host_is_honoured_and_its_tls_variables_only_warn() {
    let sink = Sink::start(vec![]);
    let running = Running::start(
        heartbeats_to(&sink)
            .env(
                CONFIG,
                r#"{"metrics":{"protocol":"prometheus","endpoint":"0.0.0.0:0"}}"#,
            )
            .env("METRICS_PROMETHEUS_HOST", "127.0.0.1")
            .arg("--period=10s"),
    );
    let addr = metrics_address(&running);
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    scrape(&addr);
    running.signal(libc::SIGTERM);
    running.finish(Duration::from_secs(5));
    for variable in ["METRICS_PROMETHEUS_TLS_CERT", "METRICS_PROMETHEUS_TLS_KEY"] {
        let sink = Sink::start(vec![]);
        let f = one_shot(
            heartbeats_to(&sink)
                .env(CONFIG, PROMETHEUS)
                .env(variable, "/etc/certs/tls.pem"),
        );
        assert_eq!(f.code(), Some(0), "{}", f.stderr);
        f.assert_logged(&format!(
            "warning: K_OBSERVABILITY_CONFIG: metrics: {variable} is set, but heartbeats serves \
             metrics over plain HTTP only; metrics are off"
        ));
        assert!(!f.stderr.contains("serving Prometheus"), "{}", f.stderr);
        sink.expect();
    }
}

/// OTLP to an https collector (trusted as the sink is), with per-signal headers on their own
/// signal only, and never through the sink's proxy.
#[test]
fn otlp_over_https_with_per_signal_headers_and_no_proxy() {
    let (ca, server) = tls_pair("127.0.0.1");
    let collector = Sink::start_with(vec![], Some(server));
    let proxy = FakeProxy::start(vec![]);
    let sink = Sink::start(vec![]);
    let endpoint = format!("https://127.0.0.1:{}", collector.port);
    let config = format!(
        r#"{{"metrics":{{"protocol":"http/protobuf","endpoint":"{endpoint}"}},
            "tracing":{{"protocol":"http/protobuf","endpoint":"{endpoint}","samplingRate":1}}}}"#
    );
    let f = one_shot(
        heartbeats_to(&sink)
            .env(CONFIG, config)
            .env("K_CA_CERTS", ca)
            .env("HTTPS_PROXY", proxy.url(""))
            .env("HTTP_PROXY", proxy.url(""))
            .env("OTEL_EXPORTER_OTLP_HEADERS", "x-all=1")
            .env("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-traces=t")
            .env("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "x-metrics=m"),
    );
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    sink.expect();
    let exports = collector.drain();
    let traces: Vec<_> = exports.iter().filter(|r| r.path == "/v1/traces").collect();
    let metrics: Vec<_> = exports.iter().filter(|r| r.path == "/v1/metrics").collect();
    assert!(!traces.is_empty() && !metrics.is_empty(), "{exports:?}");
    // As the Go SDK: a signal's own headers replace the general ones.
    for r in &traces {
        assert_eq!(r.header("x-traces"), "t");
        assert!(!r.has_header("x-metrics") && !r.has_header("x-all"));
    }
    for r in &metrics {
        assert_eq!(r.header("x-metrics"), "m");
        assert!(!r.has_header("x-traces") && !r.has_header("x-all"));
    }
    assert_eq!(spans_of(&exports).len(), 2, "an event and its attempt");
    assert_eq!(proxy.accepted(), 0, "exports do not go through the proxy");
}

/// Spans leave in batches of at most 128; while the collector fails they are kept up to 512
/// and the rest dropped and counted; the exporter backs off (one warning) and says when
/// exporting works again, with the count of spans dropped meanwhile.
#[test]
fn spans_go_in_batches_of_128_up_to_512_wait_and_the_exporter_says_when_it_works_again() {
    let sink = Sink::start(vec![]);
    // The first export fails, and so does the one a second later: about 3 s of spans pile up.
    let collector = Sink::start(vec![status(503), status(503)]);
    let config = format!(
        r#"{{"tracing":{{"protocol":"http/protobuf","endpoint":"http://127.0.0.1:{}","samplingRate":1}}}}"#,
        collector.port
    );
    let running = Running::start(heartbeats_to(&sink).env(CONFIG, config).arg("--period=5ms"));
    running.line_containing("warning: exporting traces failed: HTTP 503; will try again later");
    let works = running.line_containing("exporting traces works again");
    let dropped: u64 = works
        .split('(')
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{works}"));
    // At 5 ms a beat, two spans an event, over about three seconds: the two failed batches of
    // 128, and what did not fit in the 512 that wait.
    assert!(dropped > 256, "{works}");
    // Give the exporter time to send what waits, then stop.
    thread_sleep(Duration::from_millis(300));
    running.signal(libc::SIGTERM);
    let f = running.finish(Duration::from_secs(5));
    // One line for the two failures in a row. (An export the next beat cuts short on a busy
    // machine is a failure of its own, and says so.)
    assert_eq!(
        f.stderr
            .matches("exporting traces failed: HTTP 503")
            .count(),
        1,
        "{}",
        f.stderr
    );
    let exports: Vec<_> = collector.drain();
    let sizes: Vec<usize> = exports
        .iter()
        .skip(2)
        .map(|r| spans_of(std::slice::from_ref(r)).len())
        .collect();
    // What piled up went out in full batches.
    assert!(sizes.iter().all(|&n| n <= 128), "{sizes:?}");
    assert!(sizes.contains(&128), "{sizes:?}");
}

fn thread_sleep(duration: Duration) {
    std::thread::sleep(duration);
}

/// `OTEL_EXPORTER_OTLP_COMPRESSION=gzip` over HTTP: the body is gzip (inflated here by an
/// independent decoder) and says so; with `..._TEMPORALITY_PREFERENCE=delta` each push counts what
/// happened since the one before, and the pushes add up to every event; and the resource carries
/// `OTEL_RESOURCE_ATTRIBUTES`.
#[test]
fn otlp_over_http_compresses_with_gzip_and_pushes_deltas_when_asked() {
    let collector = Sink::start(vec![]);
    let sink = Sink::start(vec![]);
    let config = format!(
        r#"{{"metrics":{{"protocol":"http/protobuf","endpoint":"http://127.0.0.1:{}"}}}}"#,
        collector.port
    );
    let f = run(heartbeats_to(&sink)
        .env(CONFIG, config)
        .env("OTEL_METRIC_EXPORT_INTERVAL", "150")
        .env("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
        .env("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
        .env("OTEL_RESOURCE_ATTRIBUTES", "k8s.cluster.name=edge%2D1")
        .args(["--count=8", "--period=100ms"]));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    let pushes = collector.drain();
    assert!(pushes.len() >= 3, "{}", pushes.len());
    let mut delivered = 0;
    for push in &pushes {
        assert_eq!(push.header("content-encoding"), "gzip");
        assert_eq!(&push.body[..3], &[0x1f, 0x8b, 8]);
        let inflated = miniz_oxide::inflate::decompress_to_vec(&push.body[10..push.body.len() - 8])
            .expect("a deflate stream");
        let export = ExportMetricsServiceRequest::decode(&inflated[..]).expect("OTLP metrics");
        let resource = export.resource_metrics[0].resource.clone().unwrap();
        assert!(
            resource
                .attributes
                .iter()
                .any(|kv| kv.key == "k8s.cluster.name"
                    && matches!(kv.value.as_ref().and_then(|v| v.value.as_ref()),
                Some(any_value::Value::StringValue(v)) if v == "edge-1"))
        );
        let metrics = &export.resource_metrics[0].scope_metrics[0].metrics;
        let events = metrics
            .iter()
            .find(|m| m.name == "heartbeats.events")
            .unwrap();
        let Some(Data::Sum(sum)) = &events.data else {
            panic!("a sum")
        };
        assert_eq!(sum.aggregation_temporality, 1, "delta");
        for point in &sum.data_points {
            let outcome = point.attributes.iter().any(|kv| {
                matches!(kv.value.as_ref().and_then(|v| v.value.as_ref()),
                    Some(any_value::Value::StringValue(v)) if v == "delivered")
            });
            if outcome {
                if let Some(
                    opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(n),
                ) = point.value
                {
                    delivered += n;
                }
            }
        }
    }
    assert_eq!(delivered, 8, "the deltas add up to every event");
}

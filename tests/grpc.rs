//! OTLP over gRPC end to end: the real binary exporting to a real gRPC collector (tonic, on a
//! runtime of the test's own) in the clear, over TLS and mTLS, with gzip; the statuses the OTLP
//! specification names; one connection kept; and scripted sockets that break HTTP/2 in each way
//! a collector can, each met with one bounded warning while the beats go on.

#[path = "support/collector.rs"]
mod collector;
mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use collector::{Answer, Got, collector};
use support::*;

const CONFIG: &str = "K_OBSERVABILITY_CONFIG";

/// Traces and metrics over gRPC to `endpoint`.
fn config(endpoint: &str) -> String {
    format!(
        r#"{{"metrics":{{"protocol":"grpc","endpoint":"{endpoint}"}},
            "tracing":{{"protocol":"grpc","endpoint":"{endpoint}","samplingRate":1}}}}"#
    )
}

fn header<'a>(metadata: &'a [(String, String)], name: &str) -> Option<&'a str> {
    metadata
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a set of exports held: each one's metadata, every span's trace and span id, and the
/// names of the metrics of each metrics export.
#[derive(Default)]
struct Exports {
    metadata: Vec<Vec<(String, String)>>,
    spans: Vec<(String, String)>,
    metrics: Vec<Vec<String>>,
}

fn exports(gots: Vec<Got>) -> Exports {
    let mut exports = Exports::default();
    for got in gots {
        match got {
            Got::Traces(m, request) => {
                exports.metadata.push(m);
                for span in request
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .flat_map(|s| &s.spans)
                {
                    exports
                        .spans
                        .push((hex(&span.trace_id), hex(&span.span_id)));
                }
            }
            Got::Metrics(m, request) => {
                exports.metadata.push(m);
                let names = request
                    .resource_metrics
                    .iter()
                    .flat_map(|r| &r.scope_metrics)
                    .flat_map(|s| &s.metrics)
                    .map(|m| m.name.clone())
                    .collect();
                exports.metrics.push(names);
            }
        }
    }
    exports
}

#[test]
fn spans_and_metrics_go_to_a_grpc_collector_in_the_clear() {
    let collector = collector(vec![], None);
    let sink = Sink::start(vec![]);
    let f = one_shot(
        heartbeats_to(&sink)
            .env(
                CONFIG,
                config(&format!("http://127.0.0.1:{}", collector.port)),
            )
            .env("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=7")
            .env(
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=test,service.name=beats",
            ),
    );
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    f.assert_logged("tracing: OTLP over gRPC to http://127.0.0.1:");
    let event = sink.expect();
    let traceparent: Vec<String> = event
        .header("traceparent")
        .split('-')
        .map(String::from)
        .collect();
    let mut gots = vec![collector.next(), collector.next()];
    gots.extend(collector.drain());
    // Resource attributes and the service name from OTEL_RESOURCE_ATTRIBUTES.
    let resource = gots.iter().find_map(|g| match g {
        Got::Traces(_, r) => r.resource_spans[0].resource.clone(),
        Got::Metrics(..) => None,
    });
    let attributes: Vec<String> = resource
        .expect("a trace export")
        .attributes
        .iter()
        .map(|kv| {
            format!(
                "{}={:?}",
                kv.key,
                kv.value.as_ref().and_then(|v| v.value.clone())
            )
        })
        .collect();
    assert!(
        attributes
            .iter()
            .any(|a| a.starts_with("service.name=") && a.contains("\"beats\"")),
        "{attributes:?}"
    );
    assert!(
        attributes
            .iter()
            .any(|a| a.starts_with("deployment.environment=")),
        "{attributes:?}"
    );
    let Exports {
        metadata,
        spans,
        metrics,
    } = exports(gots);
    assert_eq!(metrics.len(), 1, "metrics pushed at exit");
    assert!(
        metrics[0].iter().any(|n| n == "heartbeats.events"),
        "{metrics:?}"
    );
    assert!(
        spans.contains(&(traceparent[1].clone(), traceparent[2].clone())),
        "{spans:?} {traceparent:?}"
    );
    assert_eq!(spans.len(), 2);
    for m in &metadata {
        assert_eq!(header(m, "x-tenant"), Some("7"), "{m:?}");
        assert!(
            header(m, "user-agent").is_some_and(|u| u.starts_with("heartbeats/")),
            "{m:?}"
        );
        assert!(header(m, "grpc-timeout").is_some(), "{m:?}");
    }
    // One connection for each signal's exporter, as Go's exporters each have their own.
    assert_eq!(collector.connections.load(Ordering::SeqCst), 2);
}

#[test]
fn gzip_compresses_what_goes_to_the_collector() {
    let collector = collector(vec![], None);
    let sink = Sink::start(vec![]);
    let f = one_shot(
        heartbeats_to(&sink)
            .env(
                CONFIG,
                config(&format!("http://127.0.0.1:{}", collector.port)),
            )
            .env("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
    );
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    let got = exports(vec![collector.next(), collector.next()]);
    assert_eq!((got.spans.len(), got.metrics.len()), (2, 1));
    let metadata = got.metadata;
    assert!(
        metadata
            .iter()
            .all(|m| header(m, "grpc-encoding") == Some("gzip")),
        "{metadata:?}"
    );
}

#[test]
fn tls_and_mtls_with_the_collectors_own_certificates() {
    let dir = TempDir::new("grpc-tls");
    let pki = Pki::new();
    let (server_cert, server_key) = pki.issue("127.0.0.1");
    let (client_cert, client_key) = pki.issue("heartbeats");
    for (name, text) in [
        ("ca.pem", &pki.ca),
        ("client.pem", &client_cert),
        ("client.key", &client_key),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    // The collector wants a client certificate signed by the same CA.
    let collector = collector(
        vec![],
        Some((server_cert, server_key, Some(pki.ca.clone()))),
    );
    let endpoint = format!("https://127.0.0.1:{}", collector.port);
    let sink = Sink::start(vec![]);
    let run = |client: bool| {
        let mut command = heartbeats_to(&sink);
        command
            .env(CONFIG, config(&endpoint))
            .env("OTEL_EXPORTER_OTLP_CERTIFICATE", dir.join("ca.pem"));
        if client {
            command
                .env(
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                    dir.join("client.pem"),
                )
                .env("OTEL_EXPORTER_OTLP_CLIENT_KEY", dir.join("client.key"));
        }
        one_shot(&mut command)
    };
    let f = run(true);
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    assert!(!f.stderr.contains("warning"), "{}", f.stderr);
    let got = exports(vec![collector.next(), collector.next()]);
    assert_eq!((got.spans.len(), got.metrics.len()), (2, 1));
    // Without the client certificate the collector refuses the handshake: one warning each.
    let f = run(false);
    assert_eq!(
        f.code(),
        Some(0),
        "the event itself was delivered: {}",
        f.stderr
    );
    f.assert_logged("warning: exporting traces failed");
    assert!(collector.drain().is_empty());
}

#[test]
fn statuses_are_read_as_the_otlp_specification_says() {
    // Metrics every 100 ms: UNAVAILABLE (retried after a wait), then OK, then INVALID_ARGUMENT
    // (dropped, no wait), then RESOURCE_EXHAUSTED with a RetryInfo of 1.5 s, then OK.
    let retry_info = retry_info(1, 500_000_000);
    let collector = collector(
        vec![
            Answer::Status(tonic::Code::Unavailable, "busy", None),
            Answer::Ok,
            Answer::Status(tonic::Code::InvalidArgument, "bad batch", None),
            Answer::Status(
                tonic::Code::ResourceExhausted,
                "slow down",
                Some(retry_info),
            ),
            Answer::Ok,
        ],
        None,
    );
    let sink = Sink::start(vec![]);
    let metrics = format!(
        r#"{{"metrics":{{"protocol":"grpc","endpoint":"http://127.0.0.1:{}"}}}}"#,
        collector.port
    );
    let running = Running::start(
        heartbeats_to(&sink)
            .env(CONFIG, metrics)
            .env("OTEL_METRIC_EXPORT_INTERVAL", "100")
            .arg("--period=200ms"),
    );
    let line = running.line_containing("warning: exporting metrics failed");
    assert!(
        line.ends_with("gRPC UNAVAILABLE (14): \"busy\"; will try again later"),
        "{line}"
    );
    let at_unavailable = Instant::now();
    collector.next();
    collector.next();
    assert!(
        at_unavailable.elapsed() >= Duration::from_millis(800),
        "the retry waited"
    );
    running.line_containing("exporting metrics works again");
    running.line_containing("gRPC INVALID_ARGUMENT (3): \"bad batch\"; that export is dropped");
    collector.next();
    let before_exhausted = Instant::now();
    collector.next();
    let after_retry_info = collector.next();
    assert!(matches!(after_retry_info, Got::Metrics(..)));
    assert!(
        before_exhausted.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        before_exhausted.elapsed()
    );
    running.signal(libc::SIGTERM);
    let f = running.finish(Duration::from_secs(5));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    assert_eq!(
        collector.connections.load(Ordering::SeqCst),
        1,
        "one connection all along: {}",
        f.stderr
    );
}

#[test]
fn a_partial_success_is_said_once() {
    let collector = collector(vec![Answer::Partial(3, "three spans too old")], None);
    let sink = Sink::start(vec![]);
    let tracing = format!(
        r#"{{"tracing":{{"protocol":"grpc","endpoint":"http://127.0.0.1:{}","samplingRate":1}}}}"#,
        collector.port
    );
    let running = Running::start(
        heartbeats_to(&sink)
            .env(CONFIG, tracing)
            .env("OTEL_BSP_SCHEDULE_DELAY", "50")
            .arg("--period=50ms"),
    );
    for _ in 0..4 {
        collector.next();
    }
    running.signal(libc::SIGTERM);
    let f = running.finish(Duration::from_secs(5));
    let said = f
        .stderr
        .matches("took an export of traces in part: 3 span(s) rejected")
        .count();
    assert_eq!(said, 1, "{}", f.stderr);
    f.assert_logged("three spans too old");
}

/// A `google.rpc.Status` whose details hold a `google.rpc.RetryInfo` of this delay.
fn retry_info(seconds: u8, nanos: u32) -> Vec<u8> {
    let mut duration = vec![0x08, seconds, 0x10];
    let mut n = nanos;
    while n >= 0x80 {
        duration.push((n as u8) | 0x80);
        n >>= 7;
    }
    duration.push(n as u8);
    let mut info = vec![0x0a, duration.len() as u8];
    info.extend(duration);
    let url = b"type.googleapis.com/google.rpc.RetryInfo";
    let mut any = vec![0x0a, url.len() as u8];
    any.extend_from_slice(url);
    any.extend([0x12, info.len() as u8]);
    any.extend(info);
    let mut status = vec![0x08, 8, 0x1a, any.len() as u8];
    status.extend(any);
    status
}

// ---- Scripted sockets: a collector that breaks HTTP/2 in one way each. ----

/// One frame: type, flags, stream, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    frame_of(kind, flags, stream, payload)
}

fn frame_of(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend([kind, flags]);
    out.extend(stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A literal field without indexing (HPACK), name and value as text.
fn field(name: &str, value: &str) -> Vec<u8> {
    let mut out = vec![0, name.len() as u8];
    out.extend_from_slice(name.as_bytes());
    out.push(value.len() as u8);
    out.extend_from_slice(value.as_bytes());
    out
}

/// The client side of a scripted connection, read frame by frame.
struct Peer {
    stream: TcpStream,
    input: Vec<u8>,
}

impl Peer {
    /// Reads the client's preface and its SETTINGS.
    fn accept(listener: &TcpListener) -> Peer {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(IO_LIMIT)).unwrap();
        let mut peer = Peer {
            stream,
            input: Vec::new(),
        };
        peer.fill(24);
        assert_eq!(&peer.input[..24], b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        peer.input.drain(..24);
        let (kind, ..) = peer.frame();
        assert_eq!(kind, 4, "SETTINGS after the preface");
        peer
    }

    fn fill(&mut self, n: usize) {
        let mut chunk = [0u8; 4096];
        while self.input.len() < n {
            let got = self.stream.read(&mut chunk).expect("the client's bytes");
            assert!(got > 0, "the client closed");
            self.input.extend_from_slice(&chunk[..got]);
        }
    }

    /// The next frame: (type, flags, stream, payload).
    fn frame(&mut self) -> (u8, u8, u32, Vec<u8>) {
        self.fill(9);
        let length = usize::from(self.input[0]) << 16
            | usize::from(self.input[1]) << 8
            | usize::from(self.input[2]);
        self.fill(9 + length);
        let frame: Vec<u8> = self.input.drain(..9 + length).collect();
        let stream = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]);
        (frame[3], frame[4], stream, frame[9..].to_vec())
    }

    /// Frames until one of `kind` comes; the DATA bytes seen on the way.
    fn until(&mut self, kind: u8) -> (Vec<u8>, (u8, u8, u32, Vec<u8>)) {
        let mut data = Vec::new();
        loop {
            let frame = self.frame();
            if frame.0 == 0 {
                data.extend_from_slice(&frame.3);
            }
            if frame.0 == kind {
                return (data, frame);
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Answers every call OK (giving each stream all the window it needs) until the client
    /// closes the connection.
    fn answer_all(mut self) {
        let mut chunk = [0u8; 4096];
        loop {
            while self.input.len() >= 9 {
                let length = usize::from(self.input[0]) << 16
                    | usize::from(self.input[1]) << 8
                    | usize::from(self.input[2]);
                if self.input.len() < 9 + length {
                    break;
                }
                let frame: Vec<u8> = self.input.drain(..9 + length).collect();
                let stream = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]);
                match (frame[3], frame[4] & 1) {
                    (1, _) => {
                        self.send(&frame_of(8, 0, stream, &100_000u32.to_be_bytes()));
                        self.send(&frame_of(8, 0, 0, &100_000u32.to_be_bytes()));
                    }
                    (0, 1) => self.send(&ok_answer(stream)),
                    _ => {}
                }
            }
            match self.stream.read(&mut chunk) {
                Ok(n) if n > 0 => self.input.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        }
    }

    /// Reads what the client sends until it closes the connection (or 5 s pass).
    fn wait_close(&mut self) {
        wait_close(&mut self.stream);
    }
}

fn wait_close(stream: &mut TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut chunk = [0u8; 4096];
    while matches!(stream.read(&mut chunk), Ok(n) if n > 0) {}
}

/// A beating binary that exports traces over gRPC to a scripted socket; what `script` did with
/// the connections, and the binary's log. The beats must go on throughout.
/// What a script keeps open until the binary has ended (its listener, a connection).
type Kept = Box<dyn std::any::Any + Send>;

fn scripted(
    env: &[(&str, &str)],
    script: impl FnOnce(TcpListener) -> Kept + Send + 'static,
) -> Finished {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = std::thread::spawn(move || script(listener));
    let sink = Sink::start(vec![]);
    let tracing = format!(
        r#"{{"tracing":{{"protocol":"grpc","endpoint":"http://127.0.0.1:{port}","samplingRate":1}}}}"#
    );
    let mut command = heartbeats_to(&sink);
    command
        .env(CONFIG, tracing)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "500")
        .arg("--period=200ms");
    for (name, value) in env {
        command.env(name, value);
    }
    let running = Running::start(&mut command);
    let kept = script.join().expect("the script");
    // The beats went on.
    let before = sink.drain().len();
    let started = Instant::now();
    sink.expect();
    sink.expect();
    assert!(started.elapsed() < Duration::from_secs(1), "beats stalled");
    assert!(before > 0);
    running.signal(libc::SIGTERM);
    let finished = running.finish(Duration::from_secs(5));
    drop(kept);
    finished
}

fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (id, value) in pairs {
        payload.extend(id.to_be_bytes());
        payload.extend(value.to_be_bytes());
    }
    frame(4, 0, 0, &payload)
}

/// The OK answer to stream 1: headers (split over CONTINUATION), an empty message, trailers.
fn ok_answer(stream: u32) -> Vec<u8> {
    let mut headers = vec![0x88];
    headers.extend(field("content-type", "application/grpc"));
    let (first, rest) = headers.split_at(3);
    let mut out = frame(1, 0, stream, first);
    out.extend(frame(9, 4, stream, rest));
    out.extend(frame(0, 0, stream, &[0, 0, 0, 0, 0]));
    out.extend(frame(1, 5, stream, &field("grpc-status", "0")));
    out
}

#[test]
fn flow_control_ping_and_continuation_are_honoured() {
    let (tx, asked) = mpsc::channel();
    let f = scripted(&[], move |listener| {
        let mut peer = Peer::accept(&listener);
        // A small window for streams: the export's body must wait for WINDOW_UPDATE.
        peer.send(&settings(&[(4, 100)]));
        let (_, headers) = peer.until(1);
        let stream = headers.2;
        let (first, _) = {
            // Exactly the window, then nothing until more is given.
            let mut data = Vec::new();
            while data.len() < 100 {
                let frame = peer.frame();
                if frame.0 == 0 {
                    data.extend(frame.3);
                }
            }
            (data, ())
        };
        assert_eq!(first.len(), 100, "no more than the window");
        peer.send(&frame(6, 0, 0, b"pingpong"));
        let (_, pong) = peer.until(6);
        assert_eq!(
            (pong.1, pong.3.as_slice()),
            (1, &b"pingpong"[..]),
            "PING answered"
        );
        peer.send(&frame(8, 0, stream, &100_000u32.to_be_bytes()));
        peer.send(&frame(8, 0, 0, &100_000u32.to_be_bytes()));
        let mut rest = Vec::new();
        loop {
            let frame = peer.frame();
            if frame.0 == 0 {
                rest.extend(frame.3);
                if frame.1 & 1 == 1 {
                    break;
                }
            }
        }
        let message = u32::from_be_bytes([first[1], first[2], first[3], first[4]]) as usize;
        assert_eq!(
            first.len() + rest.len(),
            message + 5,
            "the whole message came"
        );
        peer.send(&ok_answer(stream));
        tx.send(()).unwrap();
        // The next export on the same connection.
        let (_, next) = peer.until(1);
        assert_eq!(next.2, stream + 2, "the connection is kept");
        peer.send(&frame(8, 0, next.2, &100_000u32.to_be_bytes()));
        let (_, last) = peer.until(0);
        if last.1 & 1 == 0 {
            peer.until(0);
        }
        peer.send(&ok_answer(next.2));
        // Every later export is answered too, until the binary ends.
        let answering = std::thread::spawn(move || peer.answer_all());
        Box::new((listener, answering))
    });
    asked.recv_timeout(Duration::from_secs(1)).unwrap();
    assert!(!f.stderr.contains("warning"), "{}", f.stderr);
}

/// A scripted failure, and the warning it must give once.
fn fails_with(script: impl FnOnce(&TcpListener) + Send + 'static, warning: &str) {
    // The listener stays open until the end: no second failure of another kind.
    let f = scripted(&[], move |listener| {
        script(&listener);
        Box::new(listener)
    });
    assert_eq!(
        f.stderr.matches("warning: exporting traces failed").count(),
        1,
        "{}",
        f.stderr
    );
    f.assert_logged(warning);
    for line in f.stderr.lines().filter(|l| l.contains("warning")) {
        assert!(line.len() < 400, "a bounded warning: {line}");
    }
}

#[test]
fn an_http_1_server_on_the_port_is_named_as_such() {
    fails_with(
        |listener| {
            let (mut stream, _) = listener.accept().unwrap();
            let mut preface = [0u8; 24];
            stream.read_exact(&mut preface).unwrap();
            stream
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .unwrap();
        },
        "answered in HTTP/1.x",
    );
}

#[test]
fn a_server_that_never_sends_settings_costs_one_timeout() {
    fails_with(
        |listener| {
            let (stream, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_millis(800));
            drop(stream);
        },
        "no answer in time",
    );
}

#[test]
fn an_oversized_frame_ends_the_connection() {
    fails_with(
        |listener| {
            let mut peer = Peer::accept(listener);
            let mut big = settings(&[]);
            big.extend(frame(0, 0, 1, &vec![0; 20_000]));
            peer.send(&big);
            peer.wait_close();
        },
        "over our MAX_FRAME_SIZE",
    );
}

#[test]
fn a_compressed_answer_that_was_not_asked_for_is_refused() {
    fails_with(
        |listener| {
            let mut peer = Peer::accept(listener);
            peer.send(&settings(&[]));
            let (_, headers) = peer.until(1);
            let mut fields = vec![0x88];
            fields.extend(field("content-type", "application/grpc"));
            let mut answer = frame(1, 4, headers.2, &fields);
            answer.extend(frame(0, 0, headers.2, &[1, 0, 0, 0, 2, 0xff, 0xff]));
            answer.extend(frame(1, 5, headers.2, &field("grpc-status", "0")));
            peer.send(&answer);
            // The connection is still good: the next export, after the backoff, comes on it.
            peer.until(1);
        },
        "a compressed message, which was not asked for",
    );
}

#[test]
fn goaway_in_the_middle_of_a_call_is_a_retry_on_a_new_connection() {
    fails_with(
        |listener| {
            let mut peer = Peer::accept(listener);
            peer.send(&settings(&[]));
            peer.until(1);
            // The last stream it will process: none.
            peer.send(&frame(7, 0, 0, &[0, 0, 0, 0, 0, 0, 0, 0]));
            peer.wait_close();
        },
        "went away (GOAWAY 0)",
    );
}

#[test]
fn garbage_is_a_protocol_failure() {
    fails_with(
        |listener| {
            let (mut stream, _) = listener.accept().unwrap();
            stream.write_all(&[0xff; 64]).unwrap();
            wait_close(&mut stream);
        },
        "over our MAX_FRAME_SIZE",
    );
}

#[test]
fn headers_over_the_collectors_limit_are_not_sent() {
    fails_with(
        |listener| {
            let mut peer = Peer::accept(listener);
            peer.send(&settings(&[(6, 64)]));
            peer.wait_close();
        },
        "over the collector's MAX_HEADER_LIST_SIZE",
    );
}

//! heartbeats-receiver end to end: the real binary on a loopback port, fed by our real sender,
//! by the requests Knative's Go senders sent (tests/vectors), and by raw bytes; what it answers,
//! prints, counts, and how it ends.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

/// Sends `raw` on a new connection and reads until the receiver closes it (at most 10 s).
fn exchange(addr: &str, raw: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the receiver");
    stream.set_read_timeout(Some(IO_LIMIT)).unwrap();
    stream.write_all(raw).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status code of the first answer in `answer`.
fn status(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

/// A binary-mode POST of a heartbeat: `id` as ce-id, `beat` as data.id, closing after it.
fn beat(id: &str, source: &str, beat: u64) -> Vec<u8> {
    let body = format!("{{\"id\":{beat},\"label\":\"\"}}");
    format!(
        "POST / HTTP/1.1\r\nHost: r\r\nce-specversion: 1.0\r\nce-id: {id}\r\nce-source: {source}\r\n\
         ce-type: dev.knative.eventing.samples.heartbeat\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A POST of `body` with `content_type`, closing after it.
fn post(content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /any/path HTTP/1.1\r\nHost: r\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn report(addr: &str) -> serde_json::Value {
    let answer = exchange(
        addr,
        b"GET /report HTTP/1.1\r\nHost: r\r\nconnection: close\r\n\r\n",
    );
    assert_eq!(status(&answer), 200, "{answer}");
    let body = answer.split_once("\r\n\r\n").expect("a body").1;
    serde_json::from_str(body).expect("the report is JSON")
}

#[test]
fn our_senders_beats_are_received_printed_and_judged_whole() {
    let receiver = Listening::start(receiver().args(["--expect", "5", "--within", "30s"]));
    let sender = heartbeats()
        .env("K_SINK", receiver.url())
        .args(["--count", "5", "--period", "50ms"])
        .output()
        .expect("the sender runs");
    assert!(
        sender.status.success(),
        "{}",
        String::from_utf8_lossy(&sender.stderr)
    );
    let f = receiver.running.finish(Duration::from_secs(10));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    f.assert_logged("the expected events came; 5 event(s), 0 missing, 0 duplicated");
    assert_eq!(
        f.stdout.matches("☁️  cloudevents.Event\n").count(),
        5,
        "{}",
        f.stdout
    );
    assert!(
        f.stdout
            .contains("  type: dev.knative.eventing.samples.heartbeat\n")
    );
    assert!(
        f.stdout
            .contains("Data,\n  {\n    \"id\": 5,\n    \"label\": \"\"\n  }\n")
    );
    assert!(
        f.stdout
            .contains("Report,\n  {\"state\":\"success\",\"eventsReceived\":5")
    );
}

#[test]
fn structured_and_batch_events_are_taken_each_judged_on_its_own() {
    let receiver = Listening::start(receiver().args(["--output", "json"]));
    let addr = &receiver.addr;
    let event = |id: &str| {
        format!(
            r#"{{"specversion":"1.0","id":"{id}","source":"/s","type":"t","data":{{"id":{id}}}}}"#
        )
    };
    let structured = exchange(addr, &post("application/cloudevents+json", &event("1")));
    assert_eq!(status(&structured), 202, "{structured}");
    let batch = format!("[{},{}]", event("2"), event("3"));
    assert_eq!(
        status(&exchange(
            addr,
            &post("application/cloudevents-batch+json", &batch)
        )),
        202
    );
    // One bad event refuses its batch: nothing of it counts, the reason names it.
    let bad = format!(
        r#"[{},{{"specversion":"1.0","id":"5","type":"t"}}]"#,
        event("4")
    );
    let refused = exchange(
        addr,
        &post("application/cloudevents-batch+json; charset=utf-8", &bad),
    );
    assert_eq!(status(&refused), 400);
    assert!(
        refused.ends_with("batch event 1: source is required, and must not be empty\n"),
        "{refused}"
    );
    let report = report(addr);
    assert_eq!(report["eventsReceived"], 3);
    assert_eq!(report["refused"], 1);
    assert_eq!(report["missing"], 0);
    let f = receiver.stop();
    let lines: Vec<serde_json::Value> = f
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        .collect();
    assert_eq!(lines[0]["event"]["data"]["id"], 1);
    assert_eq!(lines[0]["verdict"], "ok");
    assert_eq!(lines[2]["event"]["id"], "3");
    assert!(
        lines
            .iter()
            .any(|l| l["refused"] == "batch event 1: source is required, and must not be empty")
    );
    assert_eq!(lines.last().unwrap()["report"]["eventsReceived"], 3);
}

#[test]
fn gaps_duplicates_and_reordering_give_the_right_counts() {
    let receiver = Listening::start(receiver().args(["--output", "none"]));
    let addr = &receiver.addr;
    // Heartbeats 1, 2, 4, 4 again (a retry: the same ce-id), 3 late, 6; 5 never comes. A second
    // source counts apart.
    for (id, n) in [("a", 1), ("b", 2), ("d", 4), ("d", 4), ("c", 3), ("f", 6)] {
        assert_eq!(status(&exchange(addr, &beat(id, "/one", n))), 202);
    }
    assert_eq!(status(&exchange(addr, &beat("x", "/two", 1))), 202);
    let report = report(addr);
    assert_eq!(report["eventsReceived"], 7);
    assert_eq!(report["duplicated"], 1);
    assert_eq!(report["missing"], 1);
    let one = &report["sources"][0];
    assert_eq!(
        (
            one["source"].as_str(),
            one["outOfOrder"].as_u64(),
            one["lastNumber"].as_u64()
        ),
        (Some("/one"), Some(1), Some(6))
    );
    assert_eq!(
        report["thrown"]["missing"][0],
        "event 5 of \"/one\" has not come"
    );
    assert_eq!(
        report["thrown"]["duplicated"][0],
        "event \"d\" of \"/one\" came again"
    );
    // The same numbers as Prometheus text, read by an independent parser.
    let answer = exchange(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: r\r\nconnection: close\r\n\r\n",
    );
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    let scrape =
        prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("parses");
    let value = |name: &str, source: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get("source") == Some(source))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
                _ => f64::NAN,
            })
    };
    assert_eq!(value("heartbeats_receiver_events_total", "/one"), Some(6.0));
    assert_eq!(
        value("heartbeats_receiver_missing_events", "/one"),
        Some(1.0)
    );
    assert_eq!(
        value("heartbeats_receiver_duplicated_events_total", "/one"),
        Some(1.0)
    );
    assert_eq!(
        value("heartbeats_receiver_out_of_order_events_total", "/one"),
        Some(1.0)
    );
    assert_eq!(value("heartbeats_receiver_events_total", "/two"), Some(1.0));
    receiver.stop();
}

#[test]
fn knatives_go_senders_requests_are_accepted() {
    let receiver = Listening::start(receiver().args(["--output", "json"]));
    let addr = &receiver.addr;
    // The Go heartbeats image's own requests, as captured (Host aside).
    let captured = include_str!("vectors/go-requests.txt");
    let mut go_requests = 0;
    for block in captured.split("POST / HTTP/1.1").skip(1) {
        let request = block.split("\n# ").next().unwrap().trim_end_matches('\n');
        let (head, body) = request.split_once("\n\n").expect("head and body");
        let raw = format!(
            "POST / HTTP/1.1{}\r\nConnection: close\r\n\r\n{body}",
            head.replace('\n', "\r\n")
        );
        let answer = exchange(addr, raw.as_bytes());
        assert_eq!(status(&answer), 202, "{raw}\n{answer}");
        go_requests += 1;
    }
    assert_eq!(go_requests, 2);
    // sdk-go's requests for PingSource's payload cases.
    let cases = include_str!("vectors/ping-requests.txt");
    let mut ping_requests = 0;
    for case in cases.split("## ").skip(1) {
        let mut head =
            String::from("POST / HTTP/1.1\r\nHost: r\r\nconnection: close\r\nce-id: ping-");
        head.push_str(&ping_requests.to_string());
        head.push_str("\r\n");
        let mut body = Vec::new();
        for line in case.lines().skip(1) {
            if let Some(quoted) = line.split_once("): ").map(|(_, q)| q) {
                body = go_unquote(quoted);
            } else if !line.is_empty() {
                head.push_str(line);
                head.push_str("\r\n");
            }
        }
        let mut raw = head.into_bytes();
        raw.extend_from_slice(b"\r\n");
        raw.extend_from_slice(&body);
        let answer = exchange(addr, &raw);
        assert_eq!(status(&answer), 202, "{case}\n{answer}");
        ping_requests += 1;
    }
    assert_eq!(ping_requests, 8);
    let f = receiver.stop();
    let events: Vec<serde_json::Value> = f
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l.get("event").is_some())
        .map(|l| l["event"].clone())
        .collect();
    assert_eq!(events.len(), 10);
    // Go's extension value went out raw and is read raw, as sdk-go reads it.
    assert_eq!(events[0]["extra"], "with space \"quote\" 100% ünï");
    assert_eq!(events[0]["data"]["msg"], "hi");
    let ping = &events[2..];
    assert_eq!(ping[1]["data"], "hello");
    assert_eq!(ping[2]["data"]["message"], "hi");
    assert_eq!(ping[4]["data_base64"], "AAEC/w==");
    assert_eq!(ping[7]["data"], "héllo");
}

#[test]
fn answers_on_purpose_test_a_senders_retries() {
    let retrying = Listening::start(receiver().args([
        "--answer",
        "503,503,202",
        "--retry-after",
        "0",
        "--output",
        "none",
    ]));
    let sender = heartbeats()
        .env("K_SINK", retrying.url())
        .env("ONE_SHOT", "true")
        .args(["--backoff-delay", "PT0.01S"])
        .output()
        .expect("the sender runs");
    let log = String::from_utf8_lossy(&sender.stderr);
    assert!(sender.status.success(), "{log}");
    assert!(log.contains("delivered: HTTP 202, 3 attempt(s)"), "{log}");
    let report = report(&retrying.addr);
    assert_eq!(report["eventsReceived"], 1);
    assert_eq!(report["totalRequests"], 3);
    assert_eq!(report["duplicated"], 0);
    retrying.stop();
    // The last answer repeats; a non-2xx one carries Retry-After.
    let refusing = Listening::start(receiver().args(["--answer", "429", "--retry-after", "7"]));
    let answer = exchange(&refusing.addr, &beat("1", "/s", 1));
    assert!(
        answer.starts_with("HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\n"),
        "{answer}"
    );
    assert_eq!(status(&exchange(&refusing.addr, &beat("2", "/s", 2))), 429);
    refusing.stop();
}

#[test]
fn a_delayed_answer_holds_no_other_client() {
    let receiver =
        Listening::start(receiver().args(["--answer-delay", "400ms", "--output", "none"]));
    let addr = receiver.addr.clone();
    let started = Instant::now();
    let delayed = std::thread::spawn(move || exchange(&addr, &beat("1", "/s", 1)));
    // Meanwhile the report is answered at once.
    std::thread::sleep(Duration::from_millis(100));
    let asked = Instant::now();
    report(&receiver.addr);
    assert!(
        asked.elapsed() < Duration::from_millis(200),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(status(&delayed.join().unwrap()), 202);
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[test]
fn expect_within_runs_out_with_exit_3_and_the_report() {
    let receiver = Listening::start(receiver().args(["--expect", "2", "--within", "500ms"]));
    assert_eq!(status(&exchange(&receiver.addr, &beat("1", "/s", 1))), 202);
    let f = receiver.running.finish(Duration::from_secs(5));
    assert_eq!(f.code(), Some(3), "{}", f.stderr);
    f.assert_logged(
        "--within ran out before the expected events came; 1 event(s), 0 missing, 0 duplicated",
    );
    assert!(
        f.stdout
            .contains("Report,\n  {\"state\":\"failed\",\"eventsReceived\":1"),
        "{}",
        f.stdout
    );
}

#[test]
fn strict_exits_1_at_the_first_duplicate_after_answering_it() {
    let receiver =
        Listening::start(receiver().args(["--expect", "5", "--strict", "--output", "none"]));
    assert_eq!(status(&exchange(&receiver.addr, &beat("a", "/s", 1))), 202);
    assert_eq!(status(&exchange(&receiver.addr, &beat("a", "/s", 1))), 202);
    let f = receiver.running.finish(Duration::from_secs(5));
    assert_eq!(f.code(), Some(1), "{}", f.stderr);
    f.assert_logged("--strict: event \"a\" of \"/s\": duplicated");
}

#[test]
fn sigterm_prints_the_report_and_exits_at_once() {
    let receiver = Listening::start(receiver().args(["--output", "none"]));
    assert_eq!(status(&exchange(&receiver.addr, &beat("a", "/s", 1))), 202);
    assert_eq!(threads(receiver.running.pid), 1);
    let signalled = Instant::now();
    let f = receiver.stop();
    assert!(
        signalled.elapsed() < STOP_LIMIT,
        "{:?}",
        signalled.elapsed()
    );
    assert_eq!(f.code(), Some(0));
    f.assert_logged("SIGTERM: stopping; 1 event(s), 0 missing, 0 duplicated");
    assert!(
        f.stdout
            .starts_with("Report,\n  {\"state\":\"active\",\"eventsReceived\":1"),
        "{}",
        f.stdout
    );
}

#[test]
fn bad_requests_get_a_one_line_reason_and_the_report_stays_whole() {
    let receiver = Listening::start(receiver().args(["--output", "none", "--max-body", "1KiB"]));
    let addr = &receiver.addr;
    let with_header = |header: &[u8]| {
        let mut raw = b"POST / HTTP/1.1\r\nHost: r\r\nce-specversion: 1.0\r\nce-id: 1\r\nce-source: /s\r\nce-type: t\r\n".to_vec();
        raw.extend_from_slice(header);
        raw.extend_from_slice(b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        raw
    };
    let cases: [(Vec<u8>, u16, &str); 9] = [
        (
            post("application/cloudevents+json", "{not json"),
            400,
            "not a JSON object",
        ),
        (
            with_header(b"ce-bad_name: x"),
            400,
            "attribute names are ASCII letters and digits",
        ),
        (with_header(b"ce-extra: \xff\xfe"), 400, "not UTF-8"),
        (
            with_header(b"ce-time: yesterday"),
            400,
            "not an RFC 3339 timestamp",
        ),
        (
            post("application/json", "{}"),
            400,
            "no ce-specversion header",
        ),
        (
            b"PUT / HTTP/1.1\r\nHost: r\r\nconnection: close\r\n\r\n".to_vec(),
            405,
            "POST a CloudEvent",
        ),
        (
            post("text/plain", &"x".repeat(1025)),
            413,
            "over --max-body",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: r\r\ntransfer-encoding: gzip\r\n\r\n".to_vec(),
            501,
            "other than chunked",
        ),
        (b"NOT HTTP\r\n\r\n".to_vec(), 400, "cannot be read"),
    ];
    for (raw, code, why) in cases {
        let answer = exchange(addr, &raw);
        assert_eq!(status(&answer), code, "{answer}");
        let body = answer.split_once("\r\n\r\n").unwrap().1;
        assert!(
            body.contains(why) && body.ends_with('\n') && body.lines().count() == 1,
            "{answer}"
        );
    }
    // Nothing counted as an event; the refusals are counted and the report still answers.
    assert_eq!(status(&exchange(addr, &beat("ok", "/s", 1))), 202);
    let report = report(addr);
    assert_eq!(report["eventsReceived"], 1);
    assert_eq!(report["refused"], 5);
    receiver.stop();
}

#[test]
fn heads_and_bodies_at_their_limits_are_taken_and_over_them_refused() {
    let receiver = Listening::start(receiver().args(["--output", "none", "--max-body", "2KiB"]));
    let addr = &receiver.addr;
    let padded = |head_size: usize| {
        let mut raw = beat("p", "/s", 1);
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let filler = format!("x-pad: {}\r\n", "a".repeat(head_size - end - 9));
        raw.splice(end - 2..end - 2, filler.into_bytes());
        raw
    };
    assert_eq!(status(&exchange(addr, &padded(16 * 1024))), 202);
    assert_eq!(status(&exchange(addr, &padded(16 * 1024 + 1))), 431);
    let body = |size: usize| post("text/plain", &"b".repeat(size));
    let ce = |mut raw: Vec<u8>| {
        let line_end = raw.iter().position(|&b| b == b'\n').unwrap() + 1;
        raw.splice(
            line_end..line_end,
            b"ce-specversion: 1.0\r\nce-id: b\r\nce-source: /s\r\nce-type: t\r\n"
                .iter()
                .copied(),
        );
        raw
    };
    assert_eq!(status(&exchange(addr, &ce(body(2048)))), 202);
    assert_eq!(status(&exchange(addr, &ce(body(2049)))), 413);
    // Chunked: the sum of the chunks counts.
    let chunked = |sizes: &[usize]| {
        let mut raw = b"POST / HTTP/1.1\r\nHost: r\r\nce-specversion: 1.0\r\nce-id: c\r\nce-source: /s\r\nce-type: t\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
        for &size in sizes {
            raw.extend_from_slice(format!("{size:x}\r\n{}\r\n", "c".repeat(size)).as_bytes());
        }
        raw.extend_from_slice(b"0\r\n\r\n");
        raw
    };
    assert_eq!(status(&exchange(addr, &chunked(&[1000, 1048]))), 202);
    assert_eq!(status(&exchange(addr, &chunked(&[1000, 1049]))), 413);
    receiver.stop();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let receiver = Listening::start(receiver().args(["--output", "none"]));
    let mut raw = Vec::new();
    for (id, n) in [("1", 1), ("2", 2), ("3", 3)] {
        let one = String::from_utf8(beat(id, "/s", n))
            .unwrap()
            .replace("connection: close\r\n", "");
        raw.extend_from_slice(one.as_bytes());
    }
    raw.extend_from_slice(b"GET /report HTTP/1.1\r\nHost: r\r\nconnection: close\r\n\r\n");
    let answers = exchange(&receiver.addr, &raw);
    assert_eq!(
        answers.matches("HTTP/1.1 202 Accepted\r\n").count(),
        3,
        "{answers}"
    );
    let report = answers.rsplit_once("\r\n\r\n").unwrap().1;
    assert!(
        report.starts_with("{\"state\":\"active\",\"eventsReceived\":3"),
        "{answers}"
    );
    receiver.stop();
}

#[test]
fn a_slow_client_and_a_flood_of_connections_hold_no_one_up() {
    let receiver = Listening::start(receiver().args(["--output", "none"]));
    let addr = &receiver.addr;
    // One client trickles its head; a hundred more connect and say nothing.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"POST / HTTP/1.1\r\nHost: r\r\n").unwrap();
    let flood: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let asked = Instant::now();
    assert_eq!(status(&exchange(addr, &beat("1", "/s", 1))), 202);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    drop(flood);
    drop(slow);
    assert_eq!(report(addr)["eventsReceived"], 1);
    receiver.stop();
}

#[test]
fn https_with_the_certificate_read_again_when_it_changes() {
    let dir = TempDir::new("receiver-tls");
    let (ca_one, cert_one, key_one) = certificate("127.0.0.1");
    let (ca_two, cert_two, key_two) = certificate("127.0.0.1");
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert, cert_one).unwrap();
    std::fs::write(&key, key_one).unwrap();
    let receiver = Listening::start(
        receiver()
            .args(["--output", "none", "--tls-cert"])
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key),
    );
    let https = format!("https://{}/", receiver.addr);
    let send = |ca: &str| {
        heartbeats()
            .env("K_SINK", &https)
            .env("K_CA_CERTS", ca)
            .env("ONE_SHOT", "true")
            .args(["--retry", "0"])
            .output()
            .expect("the sender runs")
            .status
            .code()
    };
    assert_eq!(send(&ca_one), Some(0));
    // cert-manager rotates the pair in place: new connections get the new one.
    std::fs::write(&key, key_two).unwrap();
    std::fs::write(&cert, cert_two).unwrap();
    receiver
        .running
        .line_containing("read again; new connections use them");
    assert_eq!(send(&ca_two), Some(0));
    assert_eq!(send(&ca_one), Some(3));
    let report = report_over_tls(&receiver.addr, &ca_two);
    assert_eq!(report["eventsReceived"], 2);
    receiver.stop();
}

/// A CA and a certificate for `name` signed by it, with its key: PEM texts.
fn certificate(name: &str) -> (String, String, String) {
    let pki = Pki::new();
    let (cert, key) = pki.issue(name);
    (pki.ca, cert, key)
}

/// `GET /report` over TLS, trusting `ca`.
fn report_over_tls(addr: &str, ca: &str) -> serde_json::Value {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(IO_LIMIT)).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    tls.write_all(b"GET /report HTTP/1.1\r\nHost: r\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer);
    let answer = String::from_utf8(answer).unwrap();
    serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap()
}

//! Go's net/http is the oracle of HTTP heads we read: tests/vectors/http.jsonl (`just vectors`)
//! holds how Go's server, routed as the Go image's Prometheus server, answered raw requests, and
//! how Go's client took raw responses from a sink. Each request is sent to our scrape server and
//! must get the same status (and redirect); each response is given to a beat and must be a
//! delivery, a refusal by status, or a failure, as it was for Go. The places where we answer
//! otherwise on purpose are listed with their reasons.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde::Deserialize;
use support::*;

const VECTORS: &str = include_str!("vectors/http.jsonl");

#[derive(Deserialize)]
struct Line {
    side: String,
    name: String,
    raw: String,
    go: String,
}

fn lines(side: &str) -> Vec<Line> {
    let lines: Vec<Line> = VECTORS
        .lines()
        .map(|l| serde_json::from_str(l).expect("a vector line"))
        .filter(|l: &Line| l.side == side)
        .collect();
    assert!(lines.len() > 30, "the {side} vectors are all there");
    lines
}

/// Scrape requests we answer otherwise on purpose: (name, our status, why).
const SCRAPE_DIFFERENCES: [(&str, &str, &str); 1] = [(
    "head-of-20-kb",
    "431",
    "a request head is read up to 8 KiB (Go: 1 MiB), so that 16 connections cost at most \
     128 KiB; more is 431",
)];

/// The status code of a status line, and its `location` if it redirects.
fn status_of(answer: &str) -> String {
    let mut lines = answer.lines();
    let first = lines.next().unwrap_or_default();
    let code = first.split(' ').nth(1).unwrap_or(first).to_owned();
    let location = lines.take_while(|l| !l.is_empty()).find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("location: ")
            .map(str::to_owned)
    });
    match location {
        Some(location) => format!("{code} location {location}"),
        None => code,
    }
}

/// Sends `raw` to the scrape server at `addr` and reads the answer to its end.
fn scrape(addr: &str, raw: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    stream.write_all(raw.as_bytes()).unwrap();
    let mut answer = Vec::new();
    // A reset loses the answer on the client's side, whatever arrived before it.
    match stream.read_to_end(&mut answer) {
        Ok(_) if answer.is_empty() => "closed".into(),
        Ok(_) => String::from_utf8_lossy(&answer).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => "reset".into(),
        Err(e) => format!("no answer to its end ({e})"),
    }
}

#[test]
fn scrape_requests_are_answered_with_gos_status() {
    let sink = Sink::start(vec![]);
    let (running, addr) = serving_prometheus(&sink, &["--period=10s"]);
    let mut wrong = Vec::new();
    for line in lines("scrape") {
        // Go's line: "HTTP/1.1 307 Temporary Redirect location /metrics", or what happened.
        let code = line.go.split(' ').nth(1).unwrap_or(&line.go);
        let go = match line.go.split_once(" location ") {
            Some((_, location)) => format!("{code} location {location}"),
            None => code.to_owned(),
        };
        let expected = SCRAPE_DIFFERENCES
            .iter()
            .find(|(name, _, _)| *name == line.name)
            .map_or(go.clone(), |(_, ours, _)| ours.to_string());
        let answer = scrape(&addr, &line.raw);
        let ours = status_of(&answer);
        if ours != expected {
            wrong.push(format!("{}: Go {go}, ours {ours}", line.name));
        }
    }
    running.signal(libc::SIGTERM);
    assert_eq!(running.finish(Duration::from_secs(5)).code(), Some(0));
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// What became of a beat answered with `raw`: "delivered N", "refused N" or "failed".
fn beat_answered_with(raw: &str) -> String {
    let sink = Sink::start(vec![Reply::RawThenClose(raw.as_bytes().to_vec())]);
    let f = one_shot(heartbeats_to(&sink).arg("--retry=0"));
    let line = f
        .stderr
        .lines()
        .find(|l| l.contains("event 1 id"))
        .unwrap_or_default()
        .to_owned();
    line.split_once("event 1 id ")
        .map(|(_, rest)| rest.split_once(' ').map_or(rest, |(_, r)| r).to_owned())
        .unwrap_or(f.stderr)
}

/// Sink answers we take otherwise on purpose: a complete 2xx status line came, so the sink took
/// the event; Go's client then fails on what follows and its event is posted again, where we
/// count it delivered (src/sink/head.rs). (name, why Go fails.)
const SINK_DIFFERENCES: [(&str, &str); 5] = [
    ("leading-crlf", "an empty line before the status line"),
    ("no-colon", "a header line without a colon"),
    ("nul-in-value", "a NUL in a header value"),
    ("length-list", "a Content-Length of \"0, 0\""),
    ("gzip-encoding", "a transfer coding it does not implement"),
];

#[test]
fn sink_answers_are_taken_as_gos_client_takes_them() {
    let mut wrong: Vec<String> = Vec::new();
    for line in lines("sink") {
        let ours = beat_answered_with(&line.raw);
        let go_status = line
            .go
            .strip_prefix("status ")
            .and_then(|rest| rest.split(' ').next());
        let expected = match go_status {
            _ if SINK_DIFFERENCES.iter().any(|(name, _)| *name == line.name) => {
                Some("delivered: HTTP 200".to_owned())
            }
            Some(code) if code.starts_with('2') && code.len() == 3 => {
                Some(format!("delivered: HTTP {code}"))
            }
            // Any other status, or no readable answer: not delivered.
            _ => None,
        };
        let right = match &expected {
            Some(delivered) => ours.starts_with(delivered.as_str()),
            None => !ours.starts_with("delivered"),
        };
        if !right {
            wrong.push(format!("{}: Go {}, ours {ours:.120}", line.name, line.go));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_differences_name_cases_that_exist() {
    let names: Vec<String> = VECTORS
        .lines()
        .map(|l| serde_json::from_str::<Line>(l).unwrap().name)
        .collect();
    let listed = SCRAPE_DIFFERENCES
        .iter()
        .map(|(name, _, _)| *name)
        .chain(SINK_DIFFERENCES.iter().map(|(name, _)| *name));
    for name in listed {
        assert!(names.iter().any(|n| n == name), "{name} is not a case");
    }
    // Go did fail each sink answer we take.
    for line in lines("sink") {
        if SINK_DIFFERENCES.iter().any(|(name, _)| *name == line.name) {
            assert!(line.go.starts_with("error"), "{}: {}", line.name, line.go);
        }
    }
}

//! One thread, never stuck: beats stay on time, scrapes are answered and SIGTERM is honoured
//! while scrapers hold connections idle or trickle bytes, while the sink holds an attempt open,
//! and while the name server of an OTLP collector never answers.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use support::dns::{Behaviour, FakeDns};
use support::*;

const CONFIG: &str = "K_OBSERVABILITY_CONFIG";

/// A scrape of `addr`: how long the answer took, and its status line.
fn timed_scrape(addr: &str) -> (Duration, String) {
    let started = Instant::now();
    let (status, _) = get(addr, "GET /metrics HTTP/1.1");
    (started.elapsed(), status)
}

/// SIGTERM to `running`; how long until it ended, which must be with exit 0.
fn stop(running: &Running) -> (Duration, Finished) {
    let signalled = Instant::now();
    running.signal(libc::SIGTERM);
    let f = running.finish(Duration::from_secs(10));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    (signalled.elapsed(), f)
}

/// The gaps between the arrivals of `requests`.
fn gaps(requests: &[Request]) -> Vec<Duration> {
    requests.windows(2).map(|w| w[1].at - w[0].at).collect()
}

#[test]
fn a_hundred_idle_connections_delay_neither_a_scrape_nor_a_beat() {
    let sink = Sink::start(vec![]);
    let (running, addr) = serving_prometheus(&sink, &["--period=50ms"]);
    let idle: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(&addr).expect("connect"))
        .collect();
    let before = sink.drain().len();
    let (took, status) = timed_scrape(&addr);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        took < Duration::from_millis(500),
        "the scrape took {took:?}"
    );
    thread::sleep(Duration::from_millis(500));
    let beats = sink.drain();
    assert!(
        beats.len() >= 7,
        "{} beats in 500 ms at 50 ms",
        beats.len() + before
    );
    let (took, f) = stop(&running);
    assert!(took < STOP_LIMIT, "exit {took:?} after SIGTERM");
    assert!(!f.stderr.contains("skipped"), "{}", f.stderr);
    drop(idle);
}

#[test]
fn clients_trickling_bytes_do_not_make_beats_late() {
    let sink = Sink::start(vec![]);
    let (running, addr) = serving_prometheus(&sink, &["--period=50ms"]);
    // Each client says how many bytes it got out before the second of beats ended: a client
    // that could not connect, or whose writes failed, must not pass unnoticed.
    let trickling: Vec<_> = (0..20)
        .map(|_| {
            let addr = addr.clone();
            thread::spawn(move || {
                let mut stream = TcpStream::connect(&addr).expect("a trickling client connects");
                let ends = Instant::now() + Duration::from_millis(1000);
                let mut written = 0;
                for byte in b"GET /metrics HTTP/1.1\r\nHost: x\r\n" {
                    if Instant::now() >= ends || stream.write_all(&[*byte]).is_err() {
                        break;
                    }
                    written += 1;
                    thread::sleep(Duration::from_millis(30));
                }
                written
            })
        })
        .collect();
    sink.drain();
    thread::sleep(Duration::from_millis(1000));
    let beats = sink.drain();
    assert!(beats.len() >= 17, "{} beats in 1 s at 50 ms", beats.len());
    let late = gaps(&beats)
        .into_iter()
        .filter(|g| *g > Duration::from_millis(90))
        .count();
    assert!(late <= 1, "{late} gaps over 90 ms: {:?}", gaps(&beats));
    let (took, f) = stop(&running);
    assert!(took < STOP_LIMIT, "exit {took:?} after SIGTERM");
    assert!(!f.stderr.contains("skipped"), "{}", f.stderr);
    let written: Vec<usize> = trickling.into_iter().map(|t| t.join().unwrap()).collect();
    // 16 connections are served at once: the rest give way, and may be cut before a second.
    // Most clients trickled for the whole second (30 ms a byte: 30 bytes or more).
    let whole = written.iter().filter(|&&n| n >= 30).count();
    assert!(whole >= 12, "bytes each client got out: {written:?}");
}

#[test]
fn scrapes_are_answered_while_the_sink_holds_an_attempt_open() {
    let sink = Sink::start(vec![Reply::Hang]);
    let (running, addr) = serving_prometheus(&sink, &["--period=10s", "--timeout=1500ms"]);
    sink.expect();
    // The attempt now waits for the sink's answer, for up to 1.5 s.
    for _ in 0..3 {
        let (took, status) = timed_scrape(&addr);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(
            took < Duration::from_millis(500),
            "the scrape took {took:?}"
        );
    }
    // SIGTERM during the exchange: the attempt may finish, within its timeout.
    let (took, _) = stop(&running);
    assert!(took < Duration::from_secs(2), "exit {took:?} after SIGTERM");
}

#[test]
fn a_collector_whose_name_server_never_answers_delays_no_beat_nor_sigterm() {
    let sink = Sink::start(vec![]);
    let collector = Sink::start(vec![]);
    let dns = FakeDns::start(Behaviour {
        silent: true,
        ..Behaviour::default()
    });
    let config = format!(
        r#"{{"tracing":{{"protocol":"http/protobuf","endpoint":"http://collector.test:{}","samplingRate":1}}}}"#,
        collector.port
    );
    let mut command = heartbeats_to(&sink);
    dns.configure(&mut command, "options timeout:30 attempts:5");
    command.env("OTEL_BSP_SCHEDULE_DELAY", "500");
    let running = Running::start(command.env(CONFIG, config).arg("--period=100ms"));
    // Spans are due 0.5 s after the first one ends: the export, its lookup included, may only
    // use the idle time before each beat, and is tried again after its backoff.
    running.line_containing("event 25 id");
    dns.next(Duration::from_secs(5))
        .expect("the collector's name is looked up");
    let (took, f) = stop(&running);
    assert!(took < STOP_LIMIT, "exit {took:?} after SIGTERM");
    assert!(!f.stderr.contains("skipped"), "{}", f.stderr);
    let warnings = f.stderr.matches("exporting traces failed").count();
    assert_eq!(warnings, 1, "{}", f.stderr);
    assert!(collector.drain().is_empty());
}

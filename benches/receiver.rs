//! The receiver's budgets, measured on its static release binary (`just bench` builds it):
//! its size against the sender's, its private memory idle (the sum of `Anonymous:` in
//! /proc/PID/smaps, as the footprint bench counts the sender's), its threads, and how many
//! events a second it takes over keep-alive connections, each run's report checked exact.
//! Several runs; medians with min and max.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Client connections sending at once, each its own source.
const CONNECTIONS: usize = 4;
/// Events each connection sends, one after the other (each answer awaited).
const EVENTS: u64 = 25_000;
const RUNS: usize = 5;

fn binary(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root
        .join("target/x86_64-unknown-linux-musl/release")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run `just build-static` first",
        path.display()
    );
    path
}

/// The receiver on a free loopback port, printing as `output` says (to /dev/null); its address.
fn start(receiver: &Path, output: &str) -> (Child, String) {
    let mut child = Command::new(receiver)
        .args(["--listen", "127.0.0.1:0", "--output", output])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the receiver");
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\n") {
        stderr.read_exact(&mut byte).expect("the listening line");
        seen.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&seen).into_owned();
    let addr = line
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_owned();
    // Keep reading stderr so that the receiver never waits on it.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    (child, addr)
}

fn stop(mut child: Child) {
    // SAFETY: kill(2) on our own unreaped child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
}

/// One connection's events: binary-mode heartbeats numbered 1 to EVENTS from `source`.
fn send(addr: &str, source: usize) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut answer = [0u8; 256];
    for n in 1..=EVENTS {
        let body = format!("{{\"id\":{n},\"label\":\"\"}}");
        let request = format!(
            "POST / HTTP/1.1\r\nHost: r\r\nce-specversion: 1.0\r\nce-id: {source}-{n}\r\n\
             ce-source: /bench/{source}\r\nce-type: dev.knative.eventing.samples.heartbeat\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut got = 0;
        // The answer is a short 202 with no body: read to its empty line.
        while !answer[..got].ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut answer[got..]).unwrap();
            assert!(n > 0, "the receiver closed");
            got += n;
        }
        assert!(
            answer.starts_with(b"HTTP/1.1 202"),
            "{}",
            String::from_utf8_lossy(&answer[..got])
        );
    }
}

fn report(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /report HTTP/1.1\r\nHost: r\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n").unwrap().1.to_owned()
}

/// Events a second over one run, after checking the report counted every one exactly.
fn throughput(receiver: &Path, output: &str) -> f64 {
    let (child, addr) = start(receiver, output);
    let started = Instant::now();
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|source| {
            let addr = addr.clone();
            std::thread::spawn(move || send(&addr, source))
        })
        .collect();
    for client in clients {
        client.join().expect("a client");
    }
    let took = started.elapsed();
    let report = report(&addr);
    let total = EVENTS * CONNECTIONS as u64;
    let exact = format!(
        "\"eventsReceived\":{total},\"totalRequests\":{total},\"refused\":0,\"missing\":0,\"duplicated\":0,"
    );
    assert!(report.contains(&exact), "the report is not exact: {report}");
    stop(child);
    total as f64 / took.as_secs_f64()
}

/// Private memory (KiB) and threads of a receiver that has just started listening.
fn idle(receiver: &Path) -> (u64, u64) {
    let (child, _addr) = start(receiver, "text");
    std::thread::sleep(Duration::from_millis(500));
    let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", child.id())).unwrap();
    let private = smaps
        .lines()
        .filter_map(|l| l.strip_prefix("Anonymous:"))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|t| t.trim().parse().ok())
        .unwrap();
    stop(child);
    (private, threads)
}

fn stats(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    )
}

fn main() {
    let receiver = binary("heartbeats-receiver");
    let sender = binary("heartbeats");
    let (size, sender_size) = (
        std::fs::metadata(&receiver).unwrap().len(),
        std::fs::metadata(&sender).unwrap().len(),
    );
    println!("# heartbeats-receiver budgets");
    println!(
        "binary: {size} bytes, the sender {sender_size} bytes ({:.2} of it; budget: no bigger)",
        size as f64 / sender_size as f64
    );
    let (private, threads) = idle(&receiver);
    println!("idle: {private} KiB private memory (budget 128 KiB), {threads} thread(s) (budget 1)");
    for output in ["none", "text", "json"] {
        let runs: Vec<f64> = (0..RUNS).map(|_| throughput(&receiver, output)).collect();
        let (median, min, max) = stats(runs);
        println!(
            "throughput, --output {output} (to /dev/null), {CONNECTIONS} keep-alive connections x \
             {EVENTS} events, report exact: median {median:.0} events/s (min {min:.0}, max {max:.0}; \
             budget 20,000)"
        );
    }
}

//! The soak: a million beats at 1 ms through random faults (503s, dropped connections, closed
//! keep-alive), observability on. Ignored by `cargo test`; `just soak` runs it on the release
//! build. It checks what only a long run shows: the sequence never breaks, and neither memory
//! nor open descriptors grow.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::*;

/// One million beats at 1 ms with random faults (503, dropped connections, closed keep-alive):
/// RSS and open fds after the first thousand beats and at the end, and the sequence checked:
/// each request repeats the previous id (a retry) or is the next one.
#[test]
#[ignore = "a million beats: about 20 minutes; run with `just soak`"]
fn a_million_beats_through_faults_keep_the_sequence_memory_and_descriptors() {
    // SOAK_BEATS=N for a shorter run (at least 2,000: the first sample is at 1,000).
    let beats: u64 = std::env::var("SOAK_BEATS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % 1000
    };
    let script: Vec<Reply> = (0..beats + beats / 50)
        .map(|_| match random() {
            0..5 => status(503),
            5..7 => Reply::Drop,
            7..10 => Reply::StatusThenClose(200),
            _ => status(200),
        })
        .collect();
    let sink = Sink::start(script);
    let collector = Sink::start(vec![]);
    // Observability on, so that its buffers are soaked too: scraped never, traced always.
    let observability = format!(
        r#"{{"metrics":{{"protocol":"prometheus","endpoint":"127.0.0.1:0"}},
            "tracing":{{"protocol":"http/protobuf","endpoint":"http://127.0.0.1:{}","samplingRate":1}}}}"#,
        collector.port
    );
    std::thread::spawn(move || {
        loop {
            collector.next(Duration::from_secs(3600));
        }
    });
    let mut child = heartbeats_to(&sink)
        .env("K_OBSERVABILITY_CONFIG", observability)
        .arg("--period=1ms")
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    // VmRSS in KiB and the number of open file descriptors.
    let sample = || -> (u64, usize) {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let rss = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        let kib = rss.split_whitespace().nth(1).unwrap().parse().unwrap();
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count();
        (kib, fds)
    };
    let (mut last_id, mut events, mut requests) = (0u64, 0u64, 0u64);
    let mut early = None;
    let started = Instant::now();
    while events < beats {
        let request = sink.expect();
        requests += 1;
        let id = serde_json::from_slice::<serde_json::Value>(&request.body).unwrap()["id"]
            .as_u64()
            .unwrap();
        assert!(
            id == last_id || id == last_id + 1,
            "sequence broke: {last_id} then {id}"
        );
        events += u64::from(id != last_id);
        last_id = id;
        if events == 1_000 && early.is_none() {
            early = Some(sample());
        }
        if events % 100_000 == 0 && id != 0 {
            eprintln!(
                "{events} events, {requests} requests, {:?}",
                started.elapsed()
            );
        }
    }
    let end = sample();
    // SAFETY: kill(2) on our own unreaped child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = child.wait();
    println!(
        "soak: {events} events in {requests} requests over {:?}",
        started.elapsed()
    );
    let (early, end) = (early.unwrap(), end);
    println!(
        "after 1,000 events: RSS {} KiB, {} fds; at the end: RSS {} KiB, {} fds",
        early.0, early.1, end.0, end.1
    );
    assert!(end.0 <= early.0 + 64, "RSS grew by more than 64 KiB");
    assert!(end.1 <= early.1, "open file descriptors grew");
    println!("soak passed: ids rose by one per event, RSS within 64 KiB, no fd growth");
}

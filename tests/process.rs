//! The process as Kubernetes sees it: the schedule, signals, threads, exit codes, output streams,
//! and refusal of every bad input before anything is sent.

mod support;

use std::time::{Duration, Instant};

use support::{IO_LIMIT, Reply, Running, STOP_LIMIT, Sink, heartbeats, heartbeats_to, run, status};

#[test]
fn the_loop_sends_rising_ids_at_the_period() {
    let sink = Sink::start(vec![]);
    let f = run(heartbeats_to(&sink).args(["--count=5", "--period=200ms"]));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    let requests: Vec<_> = (0..5).map(|_| sink.expect()).collect();
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(r.body_str(), format!(r#"{{"id":{},"label":""}}"#, i + 1));
    }
    for pair in requests.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(150) && gap <= Duration::from_millis(400),
            "{gap:?}"
        );
        assert_ne!(pair[0].header("ce-id"), pair[1].header("ce-id"));
    }
    assert_eq!(
        f.stderr.lines().filter(|l| l.contains("delivered")).count(),
        5
    );
    assert!(f.stdout.is_empty());
}

#[test]
fn a_bare_integer_period_is_seconds() {
    let sink = Sink::start(vec![]);
    let running = Running::start(heartbeats_to(&sink).arg("--period=1"));
    let (a, b) = (sink.expect(), sink.expect());
    running.signal(libc::SIGTERM);
    let gap = b.at - a.at;
    assert!(
        gap >= Duration::from_millis(900) && gap < Duration::from_millis(1500),
        "{gap:?}"
    );
    assert_eq!(running.finish(Duration::from_secs(5)).code(), Some(0));
}

fn stops_within(signal: i32, limit: Duration) {
    let sink = Sink::start(vec![]);
    let running = Running::start(heartbeats_to(&sink).arg("--period=1h"));
    sink.expect();
    let sent = Instant::now();
    running.signal(signal);
    let f = running.finish(Duration::from_secs(5));
    let took = sent.elapsed();
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    assert!(took < limit, "took {took:?}");
}

#[test]
fn sigterm_while_sleeping_exits_zero_within_the_stop_limit() {
    stops_within(libc::SIGTERM, STOP_LIMIT);
}

#[test]
fn sigint_while_sleeping_exits_zero() {
    stops_within(libc::SIGINT, STOP_LIMIT);
}

/// Issue 33: a ONE_SHOT Job whose deadline stops it while its event is retrying ended 0, with no
/// line for the event. The event's line now says it was not delivered, and the exit is 3.
#[test]
fn sigterm_during_backoff_ends_at_once_and_a_one_shot_event_not_delivered_exits_3() {
    let sink = Sink::start(vec![Reply::Status(503, vec![("retry-after", "20".into())])]);
    let running = Running::start(heartbeats_to(&sink).env("ONE_SHOT", "true"));
    sink.expect();
    running.wait_until_sleeping();
    let sent = Instant::now();
    running.signal(libc::SIGTERM);
    let f = running.finish(Duration::from_secs(5));
    assert_eq!(f.code(), Some(3), "{}", f.stderr);
    f.assert_logged("not delivered: stopped by SIGTERM after 1 attempt(s)");
    assert!(sent.elapsed() < STOP_LIMIT, "{:?}", sent.elapsed());
    assert!(sink.drain().is_empty(), "retried after SIGTERM");
}

/// A `--count` run stopped between beats after an event that failed ends 3 too (it ended 0):
/// not every event sent was acknowledged. One stopped before any failure ends 0.
#[test]
fn a_count_run_stopped_after_a_failed_event_exits_3_and_after_delivered_ones_0() {
    for (first, code) in [(400, 3), (200, 0)] {
        let sink = Sink::start(vec![status(first)]);
        let running = Running::start(heartbeats_to(&sink).args(["--count=3", "--period=10s"]));
        sink.expect();
        running.line_containing("event 1 id");
        running.wait_until_sleeping();
        running.signal(libc::SIGTERM);
        let f = running.finish(Duration::from_secs(5));
        assert_eq!(f.code(), Some(code), "after {first}: {}", f.stderr);
        f.assert_logged("SIGTERM: stopping");
    }
}

#[test]
fn sigterm_during_a_hung_request_exits_within_the_timeout() {
    let sink = Sink::start(vec![Reply::Hang]);
    let running = Running::start(heartbeats_to(&sink).arg("--timeout=1s"));
    sink.expect();
    let sent = Instant::now();
    running.signal(libc::SIGTERM);
    let f = running.finish(Duration::from_secs(5));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    assert!(
        sent.elapsed() < Duration::from_millis(1500),
        "{:?}",
        sent.elapsed()
    );
    assert!(sink.drain().is_empty(), "retried after SIGTERM");
}

#[test]
fn it_runs_on_one_thread() {
    let sink = Sink::start(vec![]);
    let running = Running::start(heartbeats_to(&sink).arg("--period=50ms"));
    for _ in 0..3 {
        sink.expect();
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", running.pid)).unwrap();
    running.signal(libc::SIGTERM);
    let threads = status.lines().find(|l| l.starts_with("Threads:")).unwrap();
    assert_eq!(threads.split_whitespace().nth(1), Some("1"), "{threads}");
    running.finish(Duration::from_secs(5));
}

#[test]
fn one_shot_false_loops_and_one_shot_true_sends_once() {
    let sink = Sink::start(vec![]);
    let f = run(heartbeats_to(&sink).env("ONE_SHOT", "True"));
    assert_eq!(f.code(), Some(0));
    sink.expect();
    // The process has ended: whatever it sent has arrived, and it was one request.
    assert!(sink.drain().is_empty(), "ONE_SHOT sent more than once");
    let sink = Sink::start(vec![]);
    let running = Running::start(
        heartbeats_to(&sink)
            .env("ONE_SHOT", "0")
            .arg("--period=50ms"),
    );
    sink.expect();
    sink.expect();
    running.signal(libc::SIGTERM);
    assert_eq!(running.finish(Duration::from_secs(5)).code(), Some(0));
}

#[test]
fn help_and_version_go_to_stdout_and_exit_zero() {
    for arg in ["-h", "--help", "-help"] {
        let f = run(heartbeats().arg(arg));
        assert_eq!(f.code(), Some(0));
        assert!(
            f.stdout.contains("--eventSource") && f.stdout.contains("K_CE_OVERRIDES"),
            "{}",
            f.stdout
        );
        assert!(f.stderr.is_empty());
    }
    let f = run(heartbeats().arg("--version"));
    assert_eq!(
        (f.code(), f.stdout.trim()),
        (Some(0), concat!("heartbeats ", env!("CARGO_PKG_VERSION")))
    );
}

#[test]
fn usage_errors_exit_2_with_the_error_then_the_usage_on_stderr() {
    for arg in ["--nope", "-x", "--period"] {
        let sink = Sink::start(vec![]);
        let f = run(heartbeats_to(&sink).arg(arg));
        assert_eq!(f.code(), Some(2), "{arg}: {}", f.stderr);
        let first = f.stderr.lines().next().unwrap_or_default();
        assert!(
            first.contains(arg.trim_start_matches('-')) || first.contains("argument"),
            "{first}"
        );
        f.assert_logged("Usage: heartbeats [flags]");
        assert!(f.stdout.is_empty());
        assert!(sink.next(Duration::from_millis(50)).is_none());
    }
}

#[test]
fn stray_arguments_from_knatives_template_are_skipped_with_a_warning() {
    let sink = Sink::start(vec![]);
    // What Knative's e2e template renders for a missing value, before a real flag.
    let f = run(heartbeats_to(&sink)
        .env("ONE_SHOT", "true")
        .args(["<no value>", "--label=x"]));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    assert_eq!(sink.expect().body_str(), r#"{"id":1,"label":"x"}"#);
    f.assert_logged("warning: ignored the argument \"<no value>\": not a flag");
}

#[test]
fn empty_arguments_are_skipped_as_knative_passes_them() {
    let sink = Sink::start(vec![]);
    let f = run(heartbeats_to(&sink)
        .env("ONE_SHOT", "1")
        .args(["", "--label=after"]));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    assert_eq!(sink.expect().body_str(), r#"{"id":1,"label":"after"}"#);
}

#[test]
fn every_bad_input_exits_1_naming_it_before_anything_is_sent() {
    type Case = (
        &'static [&'static str],
        &'static [(&'static str, &'static str)],
        &'static str,
    );
    // The whole table of refused input is config.rs's unit test; these rows show it end to end,
    // one per layer that can refuse: arguments, the sink, the overrides, the CA material (read
    // when the agent is built), the proxy.
    let cases: &[Case] = &[
        (&[], &[("K_SINK", "")], "no sink: set K_SINK or --sink"),
        (&["--period=0"], &[], "invalid --period \"0\""),
        (
            &[],
            &[("K_SINK", "ftp://alice:secret@127.0.0.1/")],
            "invalid K_SINK \"ftp://***@127.0.0.1/\"",
        ),
        (
            &[],
            &[("K_CE_OVERRIDES", "{\"extensions\":{\"bad-name\":\"x\"}}")],
            "invalid K_CE_OVERRIDES extension name \"bad-name\"",
        ),
        (
            &[],
            &[
                ("K_CA_CERTS", "not a certificate"),
                ("K_SINK", "https://127.0.0.1:1/"),
            ],
            "invalid K_CA_CERTS: no PEM certificate found",
        ),
        (
            &["--cacerts=-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"],
            &[("K_SINK", "https://127.0.0.1:1/")],
            "invalid --cacerts",
        ),
        (
            &[],
            &[
                ("K_SINK", "http://10.1.2.3/"),
                ("HTTP_PROXY", "socks5://u:pw@127.0.0.1:1080"),
            ],
            "invalid HTTP_PROXY \"socks5://***@127.0.0.1:1080\": only http:// proxies",
        ),
    ];
    for (args, env, expected) in cases {
        let sink = Sink::start(vec![]);
        let mut command = heartbeats();
        command
            .env("K_SINK", sink.url())
            .env("ONE_SHOT", "true")
            .args(*args);
        for (k, v) in *env {
            command.env(k, v);
        }
        let f = run(&mut command);
        assert_eq!(f.code(), Some(1), "{args:?} {env:?}: {}", f.stderr);
        assert_eq!(
            f.stderr.lines().count(),
            1,
            "{args:?} {env:?}: {}",
            f.stderr
        );
        assert!(
            f.stderr.contains(expected),
            "{args:?} {env:?}: {}",
            f.stderr
        );
        assert!(
            sink.next(Duration::from_millis(20)).is_none(),
            "{args:?} {env:?}: sent anyway"
        );
        assert_eq!(
            sink.connections.load(std::sync::atomic::Ordering::SeqCst),
            0
        );
    }
}

#[test]
fn a_private_key_pasted_before_a_damaged_certificate_never_reaches_the_log() {
    let sink = Sink::start(vec![]);
    let key = "-----BEGIN EC PRIVATE KEY-----\n\
        MHcCAQEEIKEYMATERIALKEYMATERIALKEYMATERIALKEYMATERIALoAoGCCqGSM49\n\
        -----END EC PRIVATE KEY-----\n";
    let pem = format!("{key}-----BEGIN CERTIFICATE-----\nMIIB!!\n-----END CERTIFICATE-----\n");
    let f = run(heartbeats()
        .env("K_SINK", sink.url().replace("http:", "https:"))
        .env("K_CA_CERTS", &pem)
        .env("ONE_SHOT", "true"));
    assert_eq!(f.code(), Some(1), "{}", f.stderr);
    assert_eq!(
        f.stderr.trim_end(),
        f.stderr.lines().next().unwrap(),
        "one line"
    );
    assert!(
        f.stderr
            .ends_with("invalid K_CA_CERTS: PEM block 2 (CERTIFICATE): not valid base64\n"),
        "{}",
        f.stderr
    );
    assert!(!f.stderr.contains("KEYMATERIAL") && !f.stderr.contains("MII"));
}

#[test]
fn the_start_up_line_shows_the_configuration_but_no_secrets() {
    let sink = Sink::start(vec![status(200)]);
    let url = format!("http://user:hunter2@127.0.0.1:{}/", sink.port);
    let f = run(heartbeats()
        .env("K_SINK", url)
        .env("ONE_SHOT", "1")
        .arg("--label=l"));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    let first = f.stderr.lines().next().unwrap();
    assert!(
        first.contains("starting")
            && first.contains("period=5s")
            && first.contains("***@127.0.0.1"),
        "{first}"
    );
    assert!(!f.stderr.contains("hunter2"), "{}", f.stderr);
}

#[test]
fn a_log_reader_that_stalls_stops_neither_the_beats_nor_a_sigterm() {
    let sink = Sink::start(vec![]);
    // Nobody reads stderr: its 64 KiB pipe holds about 450 lines; 1,500 beats overflow it.
    let (running, _stderr) = Running::start_unread(heartbeats_to(&sink).arg("--period=1ms"));
    for _ in 0..1500 {
        sink.expect();
    }
    let sent = Instant::now();
    running.signal(libc::SIGTERM);
    let f = running.finish(Duration::from_secs(2));
    assert_eq!(f.code(), Some(0));
    assert!(sent.elapsed() < STOP_LIMIT, "{:?}", sent.elapsed());
}

#[test]
fn dropped_log_lines_are_counted_in_the_next_line_written() {
    use std::io::Read;
    let sink = Sink::start(vec![]);
    let (running, mut stderr) = Running::start_unread(heartbeats_to(&sink).arg("--period=1ms"));
    for _ in 0..1500 {
        sink.expect();
    }
    // Now read: the pipe empties, and the next line says how many were lost meanwhile.
    let (tx, read) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    for _ in 0..50 {
        sink.expect();
    }
    running.signal(libc::SIGTERM);
    assert_eq!(running.finish(Duration::from_secs(5)).code(), Some(0));
    let text = read
        .recv_timeout(IO_LIMIT)
        .expect("stderr ends with the process");
    let counted = text
        .lines()
        .find(|l| l.contains("earlier log line(s) dropped: stderr was not being read"))
        .unwrap_or_else(|| panic!("no count of dropped lines in:\n{text}"));
    assert!(counted.contains(" delivered: HTTP 200") || counted.contains("stopping"));
    assert!(text.lines().count() < 1500, "nothing was dropped?");
    assert!(
        text.ends_with("SIGTERM: stopping\n"),
        "{}",
        &text[text.len() - 200..]
    );
}

#[test]
fn beats_skipped_while_stopped_are_not_blamed_on_the_send() {
    let sink = Sink::start(vec![]);
    let running = Running::start(heartbeats_to(&sink).arg("--period=100ms"));
    sink.expect();
    sink.expect();
    running.wait_until_sleeping();
    running.signal(libc::SIGSTOP);
    // The scenario itself: the process stays stopped across three due times.
    std::thread::sleep(Duration::from_millis(350));
    running.signal(libc::SIGCONT);
    sink.expect();
    sink.expect();
    running.signal(libc::SIGTERM);
    let f = running.finish(Duration::from_secs(2));
    f.assert_logged("beat(s): the process was not running at their time");
    assert!(!f.stderr.contains("previous send"), "{}", f.stderr);
}

#[test]
fn beats_skipped_by_a_slow_send_say_how_long_it_took() {
    let sink = Sink::start(vec![Reply::Hang]);
    let running = Running::start(heartbeats_to(&sink).args(["--period=100ms", "--timeout=350ms"]));
    sink.expect();
    sink.expect();
    running.signal(libc::SIGTERM);
    let f = running.finish(Duration::from_secs(2));
    f.assert_logged("beat(s): the previous send took 3");
}

//! Delivery you can reason about (issue 31): ids a consumer can deduplicate, the scheduled time,
//! the sequence, a dead-letter sink, catching up after downtime with a state file, jitter, and a
//! window of activity. Every option is off by default: the other test files hold that.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{Reply, Running, Sink, TempDir, heartbeats, heartbeats_to, one_shot, run, status};

/// The fraction of a second of an RFC 3339 time in UTC.
fn fraction_of(text: &str) -> f64 {
    let seconds = text.trim_end_matches('Z').rsplit_once(':').unwrap().1;
    seconds.parse::<f64>().unwrap().fract()
}

/// RFC 3339 seconds since the epoch of `text` (whole seconds, `Z`).
fn unix(text: &str) -> u64 {
    support::unix_time(text).0
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// RFC 3339 of `secs` since the epoch (UTC, whole seconds).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let s = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[test]
fn two_replicas_give_the_same_fire_the_same_id_and_scheduled_time() {
    let (a, b) = (Sink::start(vec![]), Sink::start(vec![]));
    let args = ["--period=500ms", "--align", "--id=schedule", "--count=3"];
    let first = Running::start(heartbeats_to(&a).args(args));
    let second = Running::start(heartbeats_to(&b).args(args));
    for running in [&first, &second] {
        let f = running.finish(Duration::from_secs(10));
        assert_eq!(f.code(), Some(0), "{}", f.stderr);
    }
    let fires = |sink: &Sink| -> Vec<(String, String)> {
        (0..3)
            .map(|_| {
                let r = sink.expect();
                (
                    r.header("ce-scheduledtime").to_owned(),
                    r.header("ce-id").to_owned(),
                )
            })
            .collect()
    };
    let (from_a, from_b) = (fires(&a), fires(&b));
    // Started together, each sends the next three whole seconds (maybe one apart at the edge).
    let common: Vec<_> = from_a.iter().filter(|f| from_b.contains(f)).collect();
    assert!(common.len() >= 2, "{from_a:?} / {from_b:?}");
    for (scheduled, id) in &from_a {
        // On the half second or the whole one.
        assert!(
            scheduled.ends_with(".5Z") || !scheduled.contains('.'),
            "{scheduled}"
        );
        assert_eq!(&id[14..15], "5", "a name-based UUID: {id}");
    }
    let mut ids: Vec<_> = from_a.iter().map(|(_, id)| id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3);
}

#[test]
fn a_schedule_carries_its_fire_time_and_a_plain_period_sends_what_the_go_image_sends() {
    let sink = Sink::start(vec![]);
    let f = run(heartbeats_to(&sink).args(["--schedule=* * * * * *", "--count=1", "--sequence"]));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    let r = sink.expect();
    let (scheduled, sent) = (r.header("ce-scheduledtime"), r.header("ce-time"));
    assert!(unix(sent) >= unix(scheduled), "{scheduled} {sent}");
    assert_eq!(r.header("ce-sequence"), "00000000000000000001");
    // A random id with a schedule unless asked.
    assert_eq!(&r.header("ce-id")[14..15], "4");
    let sink = Sink::start(vec![]);
    let f = one_shot(&mut heartbeats_to(&sink));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    let r = sink.expect();
    assert!(!r.has_header("ce-scheduledtime") && !r.has_header("ce-sequence"));
}

#[test]
fn an_id_of_the_fire_needs_fires_that_have_times() {
    for args in [
        &["--id=schedule"][..],
        &["--id=schedule", "--period=2s"],
        &["--id=schedule", "--schedule=@every 2s"],
    ] {
        let f = one_shot(heartbeats().env("K_SINK", "http://127.0.0.1:9/").args(args));
        assert_eq!(f.code(), Some(1), "{args:?}: {}", f.stderr);
        f.assert_logged("invalid --id \"schedule\": needs --schedule, or --align with --period");
    }
    let f = one_shot(
        heartbeats()
            .env("K_SINK", "http://127.0.0.1:9/")
            .args(["--schedule=@hourly", "--align"]),
    );
    assert_eq!(f.code(), Some(1), "{}", f.stderr);
    f.assert_logged("--align goes with --period");
}

/// A sink that always answers 500 (which sdk-go does not retry), and one that answers 503 until
/// the retries run out: the event goes to the dead-letter sink as Knative's dispatcher sends
/// it, with the three error extensions, and ONE_SHOT exits 4.
#[test]
fn an_event_whose_retries_run_out_goes_to_the_dead_letter_sink_with_knatives_extensions() {
    let body = b"the sink is down for maintenance".to_vec();
    let sink = Sink::start(vec![Reply::Body(500, body.clone())]);
    let dead = Sink::start(vec![status(202)]);
    let f = one_shot(heartbeats_to(&sink).args([
        &format!("--dead-letter-sink=http://u:pw@127.0.0.1:{}/dls", dead.port),
        "--label=hello",
    ]));
    assert_eq!(f.code(), Some(4), "{}", f.stderr);
    let tried = [sink.expect()];
    let r = dead.expect();
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/dls"));
    assert_eq!(r.header("ce-knativeerrordest"), sink.url());
    assert_eq!(r.header("ce-knativeerrorcode"), "500");
    // base64 of the answer's body.
    assert_eq!(
        r.header("ce-knativeerrordata"),
        "dGhlIHNpbmsgaXMgZG93biBmb3IgbWFpbnRlbmFuY2U="
    );
    // The same event: its id, time, attributes and body; the dead-letter URL's own credentials.
    for name in ["ce-id", "ce-time", "ce-source", "ce-type", "content-type"] {
        assert_eq!(r.header(name), tried[0].header(name), "{name}");
    }
    assert_eq!(r.body, tried[0].body);
    assert_eq!(r.header("authorization"), "Basic dTpwdw==");
    assert!(!f.stderr.contains("pw@"), "{}", f.stderr);
    f.assert_logged(
        "dead-lettered: HTTP 500, 1 attempt(s); the dead-letter sink answered HTTP 202",
    );
    // Retried statuses first use up the retries.
    let sink = Sink::start(vec![status(503); 3]);
    let dead = Sink::start(vec![]);
    let f = one_shot(heartbeats_to(&sink).args([
        &format!("--dead-letter-sink=http://127.0.0.1:{}/", dead.port),
        "--retry=2",
        "--backoff-delay=1ms",
    ]));
    assert_eq!(f.code(), Some(4), "{}", f.stderr);
    assert_eq!(dead.expect().header("ce-knativeerrorcode"), "503");
    f.assert_logged("dead-lettered: HTTP 503; gave up after 2 retries, 3 attempt(s)");
}

#[test]
fn dead_lettered_events_are_counted_in_the_metrics() {
    let sink = Sink::start(vec![status(400)]);
    let dead = Sink::start(vec![]);
    let dls = format!("--dead-letter-sink=http://127.0.0.1:{}/", dead.port);
    let (running, addr) = support::serving_prometheus(&sink, &["--period=10s", &dls]);
    dead.expect();
    running.line_containing("dead-lettered");
    let (status_line, text) = support::get(&addr, "GET /metrics HTTP/1.1");
    assert!(status_line.contains("200"), "{status_line}");
    assert!(
        text.contains("heartbeats_events_total{outcome=\"dead_lettered\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("heartbeats_events_total{outcome=\"failed\"} 0"),
        "{text}"
    );
    running.signal(libc::SIGTERM);
    running.finish(Duration::from_secs(5));
}

#[test]
fn an_event_that_reaches_neither_sink_exits_3_and_without_an_answer_says_so_as_knative_does() {
    // Nothing listens at port 9: no answer, so Knative's code 500 and "dispatch error".
    let dead = Sink::start(vec![status(503); 2]);
    let f = one_shot(heartbeats().env("K_SINK", "http://127.0.0.1:9/").args([
        &format!("--dead-letter-sink=http://127.0.0.1:{}/", dead.port),
        "--retry=1",
        "--backoff-delay=1ms",
    ]));
    assert_eq!(f.code(), Some(3), "{}", f.stderr);
    let r = dead.expect();
    assert_eq!(r.header("ce-knativeerrorcode"), "500");
    let data = r.header("ce-knativeerrordata");
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap();
    assert!(
        String::from_utf8(text)
            .unwrap()
            .starts_with("dispatch error: ")
    );
    dead.expect();
    f.assert_logged("the dead-letter sink too: HTTP 503; gave up after 1 retries, 2 attempt(s)");
}

/// Catching up after downtime: a state whose last delivered fire is `gap` seconds ago; the run
/// sends the missed fires as asked, each with its own scheduled time, before the next one.
fn caught_up(gap: u64, args: &[&str]) -> (Vec<u64>, String) {
    let dir = TempDir::new("catch-up");
    let state = dir.join("state.json");
    let saved = now_secs() - gap;
    std::fs::write(
        &state,
        format!("{{\"last_fire\":\"{}\",\"sequence\":7}}", rfc3339(saved)),
    )
    .unwrap();
    let sink = Sink::start(vec![]);
    let running = Running::start(
        heartbeats_to(&sink)
            .args(["--period=1s", "--align", "--sequence"])
            .arg(format!("--state-file={}", state.display()))
            .args(args),
    );
    let line = running.line_containing("starting");
    let mut fires = Vec::new();
    // The caught-up events come at once; the next regular fire within a second after them.
    // The first within 1.5 s (a regular fire may be a second away); the rest follow closer.
    let mut wait = Duration::from_millis(1500);
    while let Some(r) = sink.next(wait) {
        wait = Duration::from_millis(600);
        let scheduled = unix(r.header("ce-scheduledtime")) - saved;
        fires.push(scheduled);
        assert_eq!(
            r.header("ce-sequence"),
            format!("{:020}", 7 + fires.len()),
            "numbers go on from the state"
        );
        if fires.len() > 40 {
            break;
        }
    }
    running.signal(libc::SIGTERM);
    running.finish(Duration::from_secs(5));
    // What the state says now: the last fire delivered.
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(
        text.contains(&format!("\"sequence\":{}", 7 + fires.len())),
        "{text}"
    );
    (fires, line)
}

#[test]
fn all_fires_missed_while_down_are_caught_up() {
    let (all, line) = caught_up(10, &["--catch-up=all"]);
    assert!(line.contains("catch_up=all"), "{line}");
    // Seconds 1 to 10 after the saved one (10 may be the first regular fire), then on.
    assert_eq!(&all[..9], &(1..=9).collect::<Vec<_>>()[..], "{all:?}");
}

#[test]
fn only_the_last_fire_missed_is_caught_up_with_last() {
    let (last, _) = caught_up(10, &["--catch-up=last"]);
    assert!(last[0] >= 9 && last[0] <= 10, "{last:?}");
    assert!(last.windows(2).all(|w| w[1] == w[0] + 1), "{last:?}");
}

#[test]
fn only_fires_within_the_window_are_caught_up() {
    let (window, _) = caught_up(10, &["--catch-up=all", "--catch-up-window=PT4S"]);
    assert!(window[0] >= 6 && window[0] <= 7, "{window:?}");
}

#[test]
fn no_fire_missed_is_sent_with_catch_up_none() {
    let (none, _) = caught_up(10, &["--catch-up=none"]);
    assert!(none[0] >= 10, "{none:?}");
}

/// The kill and restart the issue describes: a process stopped with SIGKILL between fires, the
/// missed fires sent by the next one from its state, exactly once each.
#[test]
fn a_process_killed_between_fires_and_restarted_sends_exactly_the_missed_fires() {
    let dir = TempDir::new("killed");
    let state = format!("--state-file={}", dir.join("state").display());
    let sink = Sink::start(vec![]);
    let args = [
        "--period=500ms",
        "--align",
        "--id=schedule",
        "--catch-up=all",
        &state,
    ];
    // A fire's scheduled time in milliseconds since the epoch.
    let millis = |text: &str| {
        let (secs, nanos) = support::unix_time(text);
        secs * 1000 + u64::from(nanos) / 1_000_000
    };
    let first = Running::start(heartbeats_to(&sink).args(args));
    let before: Vec<u64> = (0..2)
        .map(|_| millis(sink.expect().header("ce-scheduledtime")))
        .collect();
    // Between fires: the second one delivered and kept, the process asleep to the third.
    first.line_containing("event 2 id");
    first.wait_until_sleeping();
    first.signal(libc::SIGKILL);
    first.finish(Duration::from_secs(5));
    // Down for a fire or two.
    std::thread::sleep(Duration::from_millis(600));
    let second = Running::start(heartbeats_to(&sink).args(args));
    let after: Vec<u64> = (0..3)
        .map(|_| millis(sink.expect().header("ce-scheduledtime")))
        .collect();
    second.signal(libc::SIGTERM);
    second.finish(Duration::from_secs(5));
    // Every fire after the last one delivered, once, in order: none lost, none twice.
    assert_eq!(
        after,
        (1..=3).map(|n| before[1] + n * 500).collect::<Vec<_>>(),
        "{before:?}"
    );
}

#[test]
fn a_state_file_that_cannot_be_used_is_a_warning_and_the_run_goes_on() {
    let dir = TempDir::new("bad-state");
    std::fs::write(dir.join("corrupt"), "{not json").unwrap();
    let fifo = dir.join("fifo");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    for (name, why) in [
        ("corrupt", "is not a state this program wrote"),
        ("fifo", "is not a regular file"),
    ] {
        let sink = Sink::start(vec![]);
        let f = run(heartbeats_to(&sink).args([
            "--schedule=* * * * * *",
            "--count=1",
            "--catch-up=all",
            &format!("--state-file={}", dir.join(name).display()),
        ]));
        assert_eq!(f.code(), Some(0), "{}", f.stderr);
        f.assert_logged(&format!(
            "{} {why}; starting afresh",
            dir.join(name).display()
        ));
        sink.expect();
    }
}

#[test]
fn jitter_delays_each_fire_within_its_bound_and_keeps_the_fire_time() {
    let sink = Sink::start(vec![]);
    let args = ["--period=500ms", "--align", "--jitter=200ms", "--count=4"];
    let f = run(heartbeats_to(&sink).args(args));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    let mut delays = Vec::new();
    for _ in 0..4 {
        let r = sink.expect();
        let scheduled = r.header("ce-scheduledtime");
        // The fire's time (a whole or half second), not the delay's.
        let fire = fraction_of(scheduled);
        assert!(fire == 0.0 || fire == 0.5, "{scheduled}");
        // Sent within the jitter after the fire (and the send right after it).
        let delay = fraction_of(r.header("ce-time")) - fire;
        assert!(
            (0.0..0.25).contains(&delay),
            "{scheduled} sent {}",
            r.header("ce-time")
        );
        delays.push(delay);
    }
    // Not all the same: random.
    assert!(
        delays.iter().any(|d| (d - delays[0]).abs() > 0.01),
        "{delays:?}"
    );
}

#[test]
fn nothing_fires_before_the_start_and_the_run_ends_at_the_end() {
    let sink = Sink::start(vec![]);
    let start = now_secs() + 1;
    let end = start + 1;
    let f = run(heartbeats_to(&sink).args([
        "--period=500ms",
        "--align",
        &format!("--start={}", rfc3339(start)),
        &format!("--end={}", rfc3339(end)),
    ]));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    let fires: Vec<String> = sink
        .drain()
        .iter()
        .map(|r| r.header("ce-scheduledtime").to_owned())
        .collect();
    let half = |secs: u64| rfc3339(secs).replace('Z', ".5Z");
    assert_eq!(fires, [rfc3339(start), half(start), rfc3339(end)]);
    f.assert_logged(&format!(
        "no fire time is left before --end {}: done",
        rfc3339(end)
    ));
    // --next honours both.
    let f = run(heartbeats().args([
        "--schedule=0 * * * *",
        "--next=5",
        "--from=2026-01-01T00:00:00Z",
        "--start=2026-01-01T02:00:00Z",
        "--end=2026-01-01T04:00:00Z",
    ]));
    let times: Vec<&str> = f.stdout.lines().map(|l| &l[..20]).collect();
    assert_eq!(
        times,
        [
            "2026-01-01T02:00:00Z",
            "2026-01-01T03:00:00Z",
            "2026-01-01T04:00:00Z"
        ]
    );
}

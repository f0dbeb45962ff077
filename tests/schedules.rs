//! Cron schedules, zones and payloads end to end: beats on a schedule's whole seconds, the
//! `--next` preview across daylight-saving weeks, PingSource's payload cases byte for byte
//! (`tests/vectors/ping-requests.txt`), and every refusal by name before anything is sent.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{Request, Running, Sink, heartbeats, heartbeats_to, one_shot, run};

/// Seconds and nanoseconds of a `ce-time` (RFC 3339 in UTC, as we send it).
fn ce_time(request: &Request) -> (u64, u32) {
    support::unix_time(request.header("ce-time"))
}

#[test]
fn a_schedule_every_second_delivers_beats_on_whole_seconds() {
    let sink = Sink::start(vec![]);
    let started = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let f = run(heartbeats_to(&sink).args(["--schedule", "* * * * * *", "--count=3"]));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    f.assert_logged("schedule=\"* * * * * *\" zone=UTC");
    let beats: Vec<(u64, u32)> = (0..3).map(|_| ce_time(&sink.expect())).collect();
    // Nothing at start: the first beat is on the next whole second.
    assert!(
        beats[0].0 > started.as_secs(),
        "{beats:?} after {started:?}"
    );
    for (secs, nanos) in &beats {
        // On time, to the scheduler's wake-up and one loopback request.
        assert!(
            *nanos < 250_000_000,
            "{secs}.{nanos:09}: not on a whole second"
        );
    }
    for pair in beats.windows(2) {
        assert_eq!(pair[1].0, pair[0].0 + 1, "{beats:?}");
    }
}

#[test]
fn next_previews_a_daylight_saving_week_in_three_zones_without_a_sink() {
    let preview = |args: &[&str], tz: &str| {
        let f = run(heartbeats().args(args).env("TZ", tz));
        assert_eq!(f.code(), Some(0), "{}", f.stderr);
        assert!(f.stderr.is_empty(), "{}", f.stderr);
        f.stdout
    };
    // Berlin springs forward on 2026-03-29: 02:30 does not exist and fires at the change.
    let berlin = preview(
        &[
            "--next=6",
            "--from=2026-03-27T00:00:00Z",
            "--schedule=30 2 * * *",
        ],
        "Europe/Berlin",
    );
    assert_eq!(
        berlin,
        "2026-03-27T01:30:00Z  2026-03-27T02:30:00+01:00 CET\n\
         2026-03-28T01:30:00Z  2026-03-28T02:30:00+01:00 CET\n\
         2026-03-29T01:00:00Z  2026-03-29T03:00:00+02:00 CEST\n\
         2026-03-30T00:30:00Z  2026-03-30T02:30:00+02:00 CEST\n\
         2026-03-31T00:30:00Z  2026-03-31T02:30:00+02:00 CEST\n\
         2026-04-01T00:30:00Z  2026-04-01T02:30:00+02:00 CEST\n"
    );
    // New York falls back on 2026-11-01: 01:30 happens twice and fires the first time only.
    let new_york = preview(
        &[
            "--next=5",
            "--from=2026-10-30T00:00:00Z",
            "--schedule=30 1 * * *",
            "--timezone=America/New_York",
        ],
        "",
    );
    assert_eq!(
        new_york,
        "2026-10-30T05:30:00Z  2026-10-30T01:30:00-04:00 EDT\n\
         2026-10-31T05:30:00Z  2026-10-31T01:30:00-04:00 EDT\n\
         2026-11-01T05:30:00Z  2026-11-01T01:30:00-04:00 EDT\n\
         2026-11-02T06:30:00Z  2026-11-02T01:30:00-05:00 EST\n\
         2026-11-03T06:30:00Z  2026-11-03T01:30:00-05:00 EST\n"
    );
    // Lord Howe falls back half an hour on 2026-04-05; the zone comes from the prefix.
    let lord_howe = preview(
        &[
            "--next=4",
            "--from=2026-04-03T00:00:00Z",
            "--schedule=CRON_TZ=Australia/Lord_Howe 30 1 * * *",
        ],
        "Europe/Berlin",
    );
    assert_eq!(
        lord_howe,
        "2026-04-03T14:30:00Z  2026-04-04T01:30:00+11:00 +11\n\
         2026-04-04T14:30:00Z  2026-04-05T01:30:00+11:00 +11\n\
         2026-04-05T15:00:00Z  2026-04-06T01:30:00+10:30 +1030\n\
         2026-04-06T15:00:00Z  2026-04-07T01:30:00+10:30 +1030\n"
    );
    // A period previews too: a run started at --from beats at once, then every period.
    let period = preview(
        &["--next=2", "--period=90s", "--from=2026-06-15T10:17:23.5Z"],
        "",
    );
    assert_eq!(
        period,
        "2026-06-15T10:17:23.5Z  2026-06-15T10:17:23.5+00:00 UTC\n\
         2026-06-15T10:18:53.5Z  2026-06-15T10:18:53.5+00:00 UTC\n"
    );
}

/// One case of `ping-requests.txt`: its inputs (Go-quoted in the title) and what sdk-go sent.
struct PingCase {
    title: String,
    content_type: String,
    data: String,
    data_base64: String,
    sent_type: Option<String>,
    sent_length: String,
    sent_body: Vec<u8>,
}

fn ping_cases() -> Vec<PingCase> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/ping-requests.txt"
    );
    let text = std::fs::read_to_string(path).expect(path);
    let cases: Vec<PingCase> = text
        .split("## ")
        .skip(1)
        .map(|block| {
            let title = block.lines().next().unwrap().to_owned();
            let input = |name: &str| {
                let start = title.find(&format!("{name}=")).unwrap() + name.len() + 1;
                // The value is Go-quoted and followed by a space or `)`.
                let rest = &title[start..];
                let end = (1..rest.len())
                    .find(|&i| rest.as_bytes()[i] == b'"' && rest.as_bytes()[i - 1] != b'\\')
                    .unwrap();
                String::from_utf8(support::go_unquote(&rest[..=end])).unwrap()
            };
            let header = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned))
            };
            let body = block.lines().find(|l| l.starts_with("body(")).unwrap();
            PingCase {
                content_type: input("contentType"),
                data: input("data"),
                data_base64: input("dataBase64"),
                sent_type: header("content-type"),
                sent_length: header("content-length").unwrap(),
                sent_body: support::go_unquote(body.split_once(": ").unwrap().1),
                title,
            }
        })
        .collect();
    assert_eq!(cases.len(), 8, "{path}");
    cases
}

#[test]
fn every_pingsource_payload_case_reaches_the_sink_as_sdk_go_sent_it() {
    for case in ping_cases() {
        let mut args = vec![format!("--content-type={}", case.content_type)];
        if case.data_base64.is_empty() {
            // PingSource's data: empty is an event without data, which `--data ""` asks for.
            args.push(format!("--data={}", case.data));
        } else {
            args.push(format!("--data-base64={}", case.data_base64));
        }
        let sink = Sink::start(vec![]);
        let f = one_shot(heartbeats_to(&sink).args(&args));
        if case.content_type.starts_with("application/cloudevents") {
            // Better than sdk-go: a structured-mode type on a binary-mode body is refused.
            assert_eq!(f.code(), Some(1), "{}: {}", case.title, f.stderr);
            f.assert_logged("invalid --content-type \"application/cloudevents+json\"");
            assert!(
                sink.next(Duration::from_millis(100)).is_none(),
                "{}",
                case.title
            );
            continue;
        }
        assert_eq!(f.code(), Some(0), "{}: {}", case.title, f.stderr);
        let r = sink.expect();
        assert_eq!(r.body, case.sent_body, "{}", case.title);
        assert_eq!(
            r.header("content-length"),
            case.sent_length,
            "{}",
            case.title
        );
        match &case.sent_type {
            Some(sent) => assert_eq!(r.header("content-type"), sent, "{}", case.title),
            None => assert!(
                !r.has_header("content-type"),
                "{}: {:?}",
                case.title,
                r.headers
            ),
        }
        assert_eq!(
            r.header("ce-type"),
            "dev.knative.eventing.samples.heartbeat"
        );
    }
}

#[test]
fn the_payload_is_the_same_on_every_beat_and_logged_by_size_only() {
    let sink = Sink::start(vec![]);
    let f = run(heartbeats_to(&sink).args([
        "--count=2",
        "--period=10ms",
        "--data={\"secret\":\"s3cr3t\"}",
        "--content-type=application/json",
    ]));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    for _ in 0..2 {
        assert_eq!(sink.expect().body_str(), "{\"secret\":\"s3cr3t\"}");
    }
    f.assert_logged("body=19 bytes (application/json)");
    assert!(!f.stderr.contains("s3cr3t"), "{}", f.stderr);
}

#[test]
fn every_schedule_and_payload_refusal_exits_1_naming_it_before_anything_is_sent() {
    type Case = (
        &'static [&'static str],
        &'static [(&'static str, &'static str)],
        &'static str,
    );
    let cases: &[Case] = &[
        (
            &["--schedule=60 * * * *"],
            &[],
            "invalid --schedule \"60 * * * *\": minute \"60\"",
        ),
        (&["--schedule=0 0 30 2 *"], &[], "never fires"),
        (
            &["--schedule=@every 1d"],
            &[],
            "invalid --schedule \"@every 1d\"",
        ),
        (
            &["--schedule=@daily", "--period=5s"],
            &[],
            "--period was given too",
        ),
        (
            &["--schedule=@daily", "--timezone=Nowhere/City"],
            &[],
            "invalid --timezone",
        ),
        (
            &["--schedule=CRON_TZ=UTC @daily", "--timezone=Asia/Tokyo"],
            &[],
            "invalid --timezone \"Asia/Tokyo\": the schedule's own zone prefix says \"UTC\"",
        ),
        (
            &["--schedule=0 9 * * *"],
            &[("TZ", "Mars/Olympus")],
            "invalid TZ \"Mars/Olympus\"",
        ),
        (&["--from=2026-01-01T00:00:00Z"], &[], "invalid --from"),
        (&["--next=0"], &[], "invalid --next \"0\""),
        (
            &["--next=2", "--from=yesterday"],
            &[],
            "invalid --from \"yesterday\"",
        ),
        (
            &["--data=a", "--data-base64=YQ=="],
            &[],
            "invalid --data-base64",
        ),
        (&["--data-base64=%%%"], &[], "invalid --data-base64 \"%%%\""),
        (
            &["--data=[1]", "--content-type=application/json"],
            &[],
            "invalid --data: with",
        ),
        (
            &["--data={}", "--content-type=application/cloudevents+json"],
            &[],
            "invalid --content-type",
        ),
    ];
    for (args, env, expected) in cases {
        let sink = Sink::start(vec![]);
        let f = run(heartbeats_to(&sink).args(*args).envs(env.iter().copied()));
        assert_eq!(f.code(), Some(1), "{args:?}: {}", f.stderr);
        let first = f.stderr.lines().next().unwrap_or_default();
        assert!(first.contains(expected), "{args:?}: {first}");
        assert!(
            sink.next(Duration::from_millis(50)).is_none(),
            "{args:?}: sent"
        );
    }
}

#[test]
fn tz_is_the_schedules_zone_and_ignored_by_a_period() {
    let f = run(heartbeats()
        .args([
            "--next=1",
            "--schedule=0 9 * * *",
            "--from=2026-06-14T23:59:59Z",
        ])
        .env("TZ", ":Asia/Tokyo"));
    assert_eq!(
        f.stdout,
        "2026-06-15T00:00:00Z  2026-06-15T09:00:00+09:00 JST\n"
    );
    // With a period the zone plays no part: a TZ this build does not know is no reason to stop.
    let sink = Sink::start(vec![]);
    let f = one_shot(heartbeats_to(&sink).env("TZ", "CET-1CEST,M3.5.0,M10.5.0/3"));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    sink.expect();
}

#[test]
fn a_stop_signal_ends_the_wait_for_a_distant_fire_time_at_once() {
    let sink = Sink::start(vec![]);
    let running = Running::start(heartbeats_to(&sink).args(["--schedule", "@yearly"]));
    running.wait_until_sleeping();
    running.signal(libc::SIGTERM);
    let f = running.finish(Duration::from_secs(2));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    assert!(sink.next(Duration::from_millis(10)).is_none());
}

/// `TZ` as Go reads it: a zone name, `:Name`, or a path under a `zoneinfo` directory; and
/// `--timezone Local` is `TZ`'s zone.
#[test]
fn tz_is_read_as_go_reads_it_a_path_a_colon_and_local_included() {
    let preview = |args: &[&str], tz: &str| {
        let f = run(heartbeats()
            .args([
                "--next=1",
                "--schedule=0 9 * * *",
                "--from=2026-06-14T23:59:59Z",
            ])
            .args(args)
            .env("TZ", tz));
        assert_eq!(f.code(), Some(0), "{tz}: {}", f.stderr);
        f.stdout
    };
    let tokyo = "2026-06-15T00:00:00Z  2026-06-15T09:00:00+09:00 JST\n";
    assert_eq!(preview(&[], "/usr/share/zoneinfo/Asia/Tokyo"), tokyo);
    assert_eq!(preview(&[], ":/usr/share/zoneinfo/Asia/Tokyo"), tokyo);
    assert_eq!(preview(&[], "Asia/Tokyo"), tokyo);
    assert_eq!(preview(&["--timezone=Local"], "Asia/Tokyo"), tokyo);
    assert_eq!(preview(&["--timezone=localtime"], "Asia/Tokyo"), tokyo);
    // --timezone wins over TZ.
    assert_eq!(
        preview(&["--timezone=Europe/Berlin"], "Asia/Tokyo"),
        "2026-06-15T07:00:00Z  2026-06-15T09:00:00+02:00 CEST\n"
    );
    // Unset or empty: UTC.
    assert_eq!(
        preview(&[], ""),
        "2026-06-15T09:00:00Z  2026-06-15T09:00:00+00:00 UTC\n"
    );
    let f = run(heartbeats()
        .args(["--next=1", "--schedule=0 9 * * *"])
        .env("TZ", "/usr/share/zoneinfo/Mars/Olympus"));
    assert_eq!(f.code(), Some(1), "{}", f.stderr);
    f.assert_logged("invalid TZ \"/usr/share/zoneinfo/Mars/Olympus\"");
}

/// `@every D` end to end: one every D, the first D after the start (as cron has it).
#[test]
fn every_fires_one_every_interval_the_first_one_interval_after_the_start() {
    let sink = Sink::start(vec![]);
    let started = std::time::Instant::now();
    let f = run(heartbeats_to(&sink).args(["--schedule=@every 300ms", "--count=3"]));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    let at: Vec<_> = (0..3).map(|_| sink.expect().at).collect();
    let first = at[0] - started;
    assert!(first >= Duration::from_millis(290), "{first:?}");
    for pair in at.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(280) && gap < Duration::from_millis(500),
            "{gap:?}"
        );
    }
}

/// A fire time that passes while a send is still running is skipped, not sent late, and the log
/// says so; a send still retrying when the next fire time comes stops retrying.
#[test]
fn a_schedules_missed_fire_times_are_skipped_and_retries_stop_at_the_next_one() {
    // The first answer hangs 1.5 s (past the next fire), the second 503s for good.
    let sink = Sink::start(vec![
        support::Reply::Raw(Vec::new(), 1),
        support::status(503),
        support::status(503),
        support::status(503),
    ]);
    let running = Running::start(heartbeats_to(&sink).args([
        "--schedule=* * * * * *",
        "--timeout=1500ms",
        "--backoff-delay=300ms",
    ]));
    let hung = sink.expect();
    let line = running.line_containing("event 1 id");
    assert!(line.contains("timeout"), "{line}");
    let skipped = running.line_containing("skipped");
    assert!(
        skipped.contains("skipped 1 beat(s): the previous send took"),
        "{skipped}"
    );
    // Event 2: 503, retried after ~300 ms, then ~600 ms would pass its successor's fire time.
    let line = running.line_containing("event 2 id");
    assert!(line.contains("gave up: the next beat is due"), "{line}");
    let retries: Vec<_> = sink.drain();
    assert!(
        !retries.is_empty() && retries.len() <= 3,
        "{}",
        retries.len()
    );
    assert!(hung.at < retries[0].at);
    running.signal(libc::SIGTERM);
    running.finish(Duration::from_secs(5));
}

//! Every line of `tests/vectors/cron.jsonl`: what robfig/cron v3.0.1 answers, parsing as
//! PingSource does, with tzdata 2025b, for the grammar in UTC, 24 zone spellings around their
//! 2026 changes and noon in all 600 zone names. Each line runs through the real command line
//! (`--next N --from FROM --schedule "CRON_TZ=ZONE SPEC"`) and must give Go's instants, or for
//! Go's errors a refusal (exit 1) naming the same field. Where the contract differs from Go on
//! purpose, the lines are named below and our answer is asserted instead.

use std::ffi::OsString;
use std::time::{Duration, UNIX_EPOCH};

use serde::Deserialize;

use super::FakeHost;
use crate::config::{Command, parse_args};
use crate::schedule::cron::{CronError, parse};
use crate::time::{parse_rfc3339, rfc3339_nano};

#[derive(Deserialize)]
struct Line {
    schedule: String,
    timezone: String,
    from: String,
    next: Option<Vec<String>>,
    error: Option<String>,
}

fn lines() -> Vec<Line> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/cron.jsonl");
    let text = std::fs::read_to_string(path).expect("tests/vectors/cron.jsonl");
    let lines: Vec<Line> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2453, "{path}");
    lines
}

/// The schedule as PingSource hands it to robfig: `spec.timezone` as a `CRON_TZ=` prefix.
fn spec(line: &Line) -> String {
    match line.timezone.as_str() {
        "" => line.schedule.clone(),
        zone => format!("CRON_TZ={zone} {}", line.schedule),
    }
}

/// What `heartbeats --next N --from FROM --schedule SPEC` prints (the UTC column), or its
/// refusal; `TZ` is unset, so `Local` is UTC, as where the vectors were made.
fn ours(line: &Line, n: usize) -> Result<Vec<String>, crate::error::Error> {
    let n = n.to_string();
    preview(&[
        "--next",
        &n,
        "--from",
        &line.from,
        "--schedule",
        &spec(line),
    ])
}

/// The same with the zone given as `--timezone`, as PingSource's `spec.timezone`.
fn ours_with_flag(line: &Line, n: usize) -> Result<Vec<String>, crate::error::Error> {
    let n = n.to_string();
    let schedule = ["--schedule", &line.schedule, "--timezone", &line.timezone];
    preview(&[&["--next", &n, "--from", &line.from][..], &schedule].concat())
}

fn preview(args: &[&str]) -> Result<Vec<String>, crate::error::Error> {
    let command = parse_args(args.iter().map(OsString::from), &FakeHost::new(&[]))?;
    let Command::Next(preview) = command else {
        panic!("{args:?}: not a preview");
    };
    let beats = &preview.beats;
    let times = crate::schedule::preview(&beats.timing, &beats.zone, preview.from, preview.count);
    Ok(times.into_iter().map(rfc3339_nano).collect())
}

/// The field robfig's error points at, by the item it quotes, as our messages name it.
fn field_of(schedule: &str, go: &str) -> Option<&'static str> {
    let quoted = go.rsplit(": ").next()?;
    let part = go
        .strip_prefix("failed to parse int from ")
        .and_then(|rest| rest.split(": strconv").next());
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    // Each field's name, minimum and maximum; a range error gives one of the two.
    let names = [
        ("second", 0, 59),
        ("minute", 0, 59),
        ("hour", 0, 23),
        ("day of month", 1, 31),
        ("month", 1, 12),
        ("day of week", 0, 6),
    ];
    let names = &names[6 - fields.len().min(6)..];
    let bound = |word: &str| {
        let rest = go.split(&format!("{word} (")).nth(1)?;
        rest.split(')').next()?.parse::<u64>().ok()
    };
    fields
        .iter()
        .zip(names)
        .find_map(|(field, &(name, min, max))| {
            let hit = field.split(',').any(|item| match part {
                Some(part) => item.split(['-', '/']).any(|p| p == part),
                None => item == quoted,
            });
            let fits = bound("minimum").is_none_or(|m| m == min)
                && bound("maximum").is_none_or(|m| m == max);
            (hit && fits).then_some(name)
        })
}

/// How our refusal of a line Go refuses must read: it names what Go's message names.
fn assert_refusal_names_the_same_thing(line: &Line, go: &str, ours: &str) {
    let context = format!(
        "{:?} in {:?}: Go {go:?}, ours {ours:?}",
        line.schedule, line.timezone
    );
    assert!(ours.starts_with("invalid --schedule"), "{context}");
    if let Some(rest) = go.strip_prefix("provided bad location ") {
        let zone = rest.split(':').next().unwrap_or_default();
        assert!(ours.contains(&format!("{zone:?} is an")), "{context}");
    } else if let Some(rest) = go.strip_prefix("expected 5 to 6 fields, found ") {
        let found = rest.split(':').next().unwrap_or_default();
        assert!(
            ours.contains(&format!("expected 5 to 6 fields, found {found}")),
            "{context}"
        );
    } else if let Some(descriptor) = go.strip_prefix("unrecognized descriptor: ") {
        assert!(
            ours.contains(&format!("unrecognized descriptor {descriptor:?}")),
            "{context}"
        );
    } else if let Some(rest) = go.strip_prefix("failed to parse duration @every ") {
        let duration = rest.split(':').next().unwrap_or_default();
        assert!(ours.contains(&format!("@every {duration:?}")), "{context}");
    } else {
        let field = field_of(&line.schedule, go).unwrap_or_else(|| panic!("{context}: no field"));
        let item = go.rsplit(": ").next().unwrap_or_default();
        let item = if go.starts_with("failed to parse int") {
            line.schedule
                .split_whitespace()
                .flat_map(|f| f.split(','))
                .find(|i| {
                    i.split(['-', '/'])
                        .any(|p| go.contains(&format!("from {p}: ")))
                })
                .unwrap_or(item)
        } else {
            item
        };
        assert!(ours.contains(&format!("{field} {item:?}")), "{context}");
    }
}

/// Our answer to a line where the contract differs from Go in the instants.
fn ours_on_purpose(line: &Line) -> Option<&'static [&'static str]> {
    let key = (
        line.schedule.as_str(),
        line.timezone.as_str(),
        line.from.as_str(),
    );
    ISC.iter()
        .chain(ROBFIG_MISSES_A_DAY)
        .find(|(s, z, f, _)| (*s, *z, *f) == key)
        .map(|(_, _, _, ours)| *ours)
}

type Case = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

/// The lines where ISC cron's daylight-saving rule gives other instants than robfig: (schedule,
/// zone, from, our next instants). In each, a fixed time falls in a gap (02:30 on a spring-forward
/// day in Berlin, New York, Troll; 01:30 in Dublin and Troll; midnight in Santiago, whose clocks
/// jump from 00:00 to 01:00) and fires at the change, where robfig loses it; or in an overlap
/// (02:30 in Berlin and Troll, 01:30 in New York, Dublin, Troll and Lord Howe, whose half hour
/// repeats) and fires the first time only, where robfig fires twice.
const ISC: &[Case] = &[
    (
        "30 2 * * *",
        "Europe/Berlin",
        "2026-03-28T22:00:00Z",
        &[
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:30:00Z",
            "2026-03-31T00:30:00Z",
            "2026-04-01T00:30:00Z",
        ],
    ),
    (
        "30 2 * * *",
        "Europe/Berlin",
        "2026-10-24T22:00:00Z",
        &[
            "2026-10-25T00:30:00Z",
            "2026-10-26T01:30:00Z",
            "2026-10-27T01:30:00Z",
            "2026-10-28T01:30:00Z",
        ],
    ),
    (
        "0 30 2 * * *",
        "Europe/Berlin",
        "2026-03-28T22:00:00Z",
        &[
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:30:00Z",
            "2026-03-31T00:30:00Z",
            "2026-04-01T00:30:00Z",
        ],
    ),
    (
        "0 30 2 * * *",
        "Europe/Berlin",
        "2026-10-24T22:00:00Z",
        &[
            "2026-10-25T00:30:00Z",
            "2026-10-26T01:30:00Z",
            "2026-10-27T01:30:00Z",
            "2026-10-28T01:30:00Z",
        ],
    ),
    (
        "30 2 * * *",
        "America/New_York",
        "2026-03-08T06:00:00Z",
        &[
            "2026-03-08T07:00:00Z",
            "2026-03-09T06:30:00Z",
            "2026-03-10T06:30:00Z",
            "2026-03-11T06:30:00Z",
        ],
    ),
    (
        "30 1 * * *",
        "America/New_York",
        "2026-10-31T22:00:00Z",
        &[
            "2026-11-01T05:30:00Z",
            "2026-11-02T06:30:00Z",
            "2026-11-03T06:30:00Z",
            "2026-11-04T06:30:00Z",
        ],
    ),
    (
        "0 30 2 * * *",
        "America/New_York",
        "2026-03-08T06:00:00Z",
        &[
            "2026-03-08T07:00:00Z",
            "2026-03-09T06:30:00Z",
            "2026-03-10T06:30:00Z",
            "2026-03-11T06:30:00Z",
        ],
    ),
    (
        "30 1 * * *",
        "Australia/Lord_Howe",
        "2026-04-04T12:00:00Z",
        &[
            "2026-04-04T14:30:00Z",
            "2026-04-05T15:00:00Z",
            "2026-04-06T15:00:00Z",
            "2026-04-07T15:00:00Z",
        ],
    ),
    (
        "30 1 * * *",
        "Europe/Dublin",
        "2026-03-28T22:00:00Z",
        &[
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:30:00Z",
            "2026-03-31T00:30:00Z",
            "2026-04-01T00:30:00Z",
        ],
    ),
    (
        "30 1 * * *",
        "Europe/Dublin",
        "2026-10-24T22:00:00Z",
        &[
            "2026-10-25T00:30:00Z",
            "2026-10-26T01:30:00Z",
            "2026-10-27T01:30:00Z",
            "2026-10-28T01:30:00Z",
        ],
    ),
    (
        "0 0 * * *",
        "America/Santiago",
        "2026-09-05T12:00:00Z",
        &[
            "2026-09-06T04:00:00Z",
            "2026-09-07T03:00:00Z",
            "2026-09-08T03:00:00Z",
            "2026-09-09T03:00:00Z",
        ],
    ),
    (
        "30 2 * * *",
        "Antarctica/Troll",
        "2026-03-28T22:00:00Z",
        &[
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:30:00Z",
            "2026-03-31T00:30:00Z",
            "2026-04-01T00:30:00Z",
        ],
    ),
    (
        "30 2 * * *",
        "Antarctica/Troll",
        "2026-10-24T22:00:00Z",
        &[
            "2026-10-25T00:30:00Z",
            "2026-10-26T02:30:00Z",
            "2026-10-27T02:30:00Z",
            "2026-10-28T02:30:00Z",
        ],
    ),
    (
        "30 1 * * *",
        "Antarctica/Troll",
        "2026-03-28T22:00:00Z",
        &[
            "2026-03-29T01:00:00Z",
            "2026-03-29T23:30:00Z",
            "2026-03-30T23:30:00Z",
            "2026-03-31T23:30:00Z",
        ],
    ),
    (
        "30 1 * * *",
        "Antarctica/Troll",
        "2026-10-24T22:00:00Z",
        &[
            "2026-10-24T23:30:00Z",
            "2026-10-26T01:30:00Z",
            "2026-10-27T01:30:00Z",
            "2026-10-28T01:30:00Z",
        ],
    ),
    (
        "0 30 2 * * *",
        "Antarctica/Troll",
        "2026-03-28T22:00:00Z",
        &[
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:30:00Z",
            "2026-03-31T00:30:00Z",
            "2026-04-01T00:30:00Z",
        ],
    ),
    (
        "0 30 2 * * *",
        "Antarctica/Troll",
        "2026-10-24T22:00:00Z",
        &[
            "2026-10-25T00:30:00Z",
            "2026-10-26T02:30:00Z",
            "2026-10-27T02:30:00Z",
            "2026-10-28T02:30:00Z",
        ],
    ),
    (
        "30 2 * * *",
        "EST5EDT",
        "2026-03-08T06:00:00Z",
        &[
            "2026-03-08T07:00:00Z",
            "2026-03-09T06:30:00Z",
            "2026-03-10T06:30:00Z",
            "2026-03-11T06:30:00Z",
        ],
    ),
    (
        "30 1 * * *",
        "EST5EDT",
        "2026-10-31T22:00:00Z",
        &[
            "2026-11-01T05:30:00Z",
            "2026-11-02T06:30:00Z",
            "2026-11-03T06:30:00Z",
            "2026-11-04T06:30:00Z",
        ],
    ),
    (
        "0 30 2 * * *",
        "EST5EDT",
        "2026-03-08T06:00:00Z",
        &[
            "2026-03-08T07:00:00Z",
            "2026-03-09T06:30:00Z",
            "2026-03-10T06:30:00Z",
            "2026-03-11T06:30:00Z",
        ],
    ),
    (
        "30 2 * * *",
        "Europe/Berlin ",
        "2026-03-28T22:00:00Z",
        &[
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:30:00Z",
            "2026-03-31T00:30:00Z",
            "2026-04-01T00:30:00Z",
        ],
    ),
    (
        "30 2 * * *",
        "Europe/Berlin ",
        "2026-10-24T22:00:00Z",
        &[
            "2026-10-25T00:30:00Z",
            "2026-10-26T01:30:00Z",
            "2026-10-27T01:30:00Z",
            "2026-10-28T01:30:00Z",
        ],
    ),
    (
        "0 30 2 * * *",
        "Europe/Berlin ",
        "2026-03-28T22:00:00Z",
        &[
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:30:00Z",
            "2026-03-31T00:30:00Z",
            "2026-04-01T00:30:00Z",
        ],
    ),
    (
        "0 30 2 * * *",
        "Europe/Berlin ",
        "2026-10-24T22:00:00Z",
        &[
            "2026-10-25T00:30:00Z",
            "2026-10-26T01:30:00Z",
            "2026-10-27T01:30:00Z",
            "2026-10-28T01:30:00Z",
        ],
    ),
];

/// A line where robfig itself goes wrong after a daylight-saving change: stepping the day by
/// absolute hours after Lord Howe's half-hour change, it lands at 00:30 and skips to the next
/// midnight that is a whole hour away, so 2026-04-06 has no fire. Real time, as ISC has it, does.
const ROBFIG_MISSES_A_DAY: &[Case] = &[(
    "0 0 * * *",
    "Australia/Lord_Howe",
    "2026-04-04T12:00:00Z",
    &[
        "2026-04-04T13:00:00Z",
        "2026-04-05T13:30:00Z",
        "2026-04-06T13:30:00Z",
        "2026-04-07T13:30:00Z",
    ],
)];

#[test]
fn every_vector_line_gives_gos_instants_or_our_documented_rule() {
    let (mut checked, mut named) = (0, 0);
    let mut differences = vec![];
    for line in lines() {
        let context = format!(
            "{:?} in {:?} from {}",
            line.schedule, line.timezone, line.from
        );
        if line.schedule.is_empty() {
            // An empty --schedule is an unset one (as every empty flag here; PingSource's
            // webhook defaults it too): robfig's own refusal is the parser's.
            assert_eq!(parse(""), Err(CronError::Empty));
            checked += 1;
            continue;
        }
        match (&line.next, &line.error) {
            (_, Some(go)) => {
                let error = ours(&line, 1).expect_err(&context);
                assert_eq!(error.exit_code(), 1, "{context}");
                assert_refusal_names_the_same_thing(&line, go, &error.to_string());
                if go.starts_with("provided bad location") && !line.timezone.is_empty() {
                    let flag = ours_with_flag(&line, 1).expect_err(&context).to_string();
                    assert!(flag.starts_with("invalid --timezone"), "{context}: {flag}");
                }
            }
            (Some(next), None) if next == &["never"] => {
                // Better than Go: refused, where robfig waits forever in silence.
                let error = ours(&line, 1).expect_err(&context).to_string();
                assert!(error.contains("never fires"), "{context}: {error}");
            }
            (Some(next), None) if line.schedule.starts_with("@every ") => {
                every(&line, next, &context);
            }
            (Some(next), None) => {
                let got = ours(&line, next.len()).unwrap_or_else(|e| panic!("{context}: {e}"));
                if !line.timezone.is_empty() {
                    let flag = ours_with_flag(&line, next.len());
                    assert_eq!(flag.as_ref().ok(), Some(&got), "{context}: {flag:?}");
                }
                match ours_on_purpose(&line) {
                    Some(expected) => {
                        assert_eq!(got, expected, "{context}");
                        named += 1;
                    }
                    None if &got != next => differences.push(format!(
                        "(\"{}\", \"{}\", \"{}\", &{:?}), // Go {:?}",
                        line.schedule, line.timezone, line.from, got, next
                    )),
                    None => {}
                }
            }
            (None, None) => panic!("{context}: neither next nor error"),
        }
        checked += 1;
    }
    assert!(
        differences.is_empty(),
        "{} lines differ:\n{}",
        differences.len(),
        differences.join("\n")
    );
    assert_eq!(checked, 2453);
    let listed = ISC.len() + ROBFIG_MISSES_A_DAY.len();
    assert_eq!(named, listed, "every line named above was met");
}

/// `@every D`: one every D from the start, not rounded to whole seconds as robfig rounds both
/// D and the start; `@every 0s` and negative durations are refused, as `--period 0s` is (robfig
/// takes them as 1 s).
fn every(line: &Line, go: &[String], context: &str) {
    let text = line.schedule.trim_start_matches("@every ");
    let nanos = super::goparse::parse_duration(text).expect(context);
    if nanos <= 0 {
        let error = ours(line, 1).expect_err(context).to_string();
        assert!(
            error.contains(&format!("@every {text:?}")),
            "{context}: {error}"
        );
        return;
    }
    let (secs, sub) = parse_rfc3339(&line.from).expect(context);
    let from = UNIX_EPOCH + Duration::new(secs as u64, sub);
    let period = Duration::from_nanos(nanos as u64);
    let expected: Vec<String> = (1..=go.len() as u32)
        .map(|k| rfc3339_nano(from + period * k))
        .collect();
    assert_eq!(ours(line, go.len()).expect(context), expected, "{context}");
    // Where D is whole seconds, only robfig's rounding of the start differs.
    if nanos % 1_000_000_000 == 0 {
        let go_from = UNIX_EPOCH + Duration::from_secs(secs as u64);
        let first = rfc3339_nano(go_from + period);
        assert_eq!(go[0], first, "{context}");
    }
}

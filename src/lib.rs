//! heartbeats: the Knative Eventing heartbeats ContainerSource, rewritten small. Every period it
//! builds a CloudEvent (binary content mode) and POSTs it to `K_SINK`, on one thread.
//!
//! [`run`] is the whole life of the program and reads like the Go original's `main`: parse,
//! then [`send_beats`]: build the sender and telemetry, then the loop in `beats` { claim a beat,
//! wait for it, build the event, deliver it }, then flush the telemetry.
//!
//! The beat's core lives at the top: the loop (here), the event, the schedule, time, the log,
//! the one waiter and the system calls. It uses three layers, a folder each:
//! `config` (flags and environment to one `Config`), `sink` (the way to the sink, over ureq) and
//! `telemetry` (metrics and traces), which hear from the loop and the sender only through the
//! small `report` interface and wait only through the waiter.
#![deny(unsafe_code)]
// clippy::pedantic lints this crate declines, as choices: `#[must_use]` on every getter and
// `# Errors` sections repeat what the types say (every error is an `Error` that reads as a
// sentence); proper nouns in docs (CloudEvents, OTel, ContainerSource) are not code; counters
// and durations turned into f64 for metrics stay far below 2^52, where f64 is exact.
#![allow(
    clippy::must_use_candidate,
    clippy::missing_errors_doc,
    clippy::doc_markdown,
    clippy::cast_precision_loss
)]

pub mod config;
mod error;
mod event;
mod files;
mod log;
mod report;
mod schedule;
mod sink;
mod sys;
mod telemetry;
#[cfg(test)]
mod testing;
mod time;

mod wait;

use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use config::{Beats, Command, Config, Host, Preview};
pub use error::Error;
use error::{EXIT_CONFIG, EXIT_UNDELIVERED};
use event::{Event, Ids, Template};
use report::{Outcome, Report, Silent};
use schedule::{Due, Schedule};
use sink::{Delivery, Sender};
use telemetry::{Subject, Telemetry};
use wait::{Spent, Stop, Waiter};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How long the exports at exit may take together, when the events to send were sent.
const FLUSH_BUDGET: Duration = Duration::from_secs(1);
/// How long they may take after a stop signal: the process ends within 100 ms of it.
const STOP_FLUSH_BUDGET: Duration = Duration::from_millis(80);

/// The program: blocks the stop signals first (so that they wait to be read), then [`run`]s on
/// `args` (without the program name) and the process environment; returns the exit status.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    if let Err(error) = sys::block_stop_signals() {
        log::line(format_args!("cannot block SIGTERM/SIGINT: {error}"));
        return EXIT_CONFIG;
    }
    run(args, &config::Process)
}

/// Runs the program on `args` (without the program name) and returns its exit status.
pub fn run(args: impl IntoIterator<Item = OsString>, host: &dyn Host) -> i32 {
    match config::parse_args(args, host) {
        Ok(Command::Help) => {
            print!("{}", config::flags::help());
            0
        }
        Ok(Command::Version) => {
            println!("heartbeats {VERSION}");
            0
        }
        Ok(Command::Run(config)) => send_beats(&config),
        Ok(Command::Next(preview)) => {
            print!("{}", preview_text(&preview));
            0
        }
        Err(error) => {
            log::line(format_args!("{error}"));
            if let Error::Usage(_) = error {
                // As Go's flag package: a malformed command line is followed by the usage.
                eprint!("{}", config::flags::help());
            }
            error.exit_code()
        }
    }
}

/// Sends events until `config.count` is reached or a stop signal arrives; returns the exit
/// status. The stop signals should be blocked (see [`main`]), or they end the process at once.
pub fn send_beats(config: &Config) -> i32 {
    log::never_block();
    let waiter = match Waiter::new() {
        Ok(waiter) => Arc::new(waiter),
        Err(error) => {
            log::line(format_args!("cannot wait for SIGTERM/SIGINT: {error}"));
            return EXIT_CONFIG;
        }
    };
    let template = Template::new(&config.event);
    let sender = match Sender::new(&config.sink, &template, waiter.clone()) {
        Ok(sender) => sender,
        Err(error) => {
            log::line(format_args!("{error}"));
            return EXIT_CONFIG;
        }
    };
    for warning in &config.warnings {
        log::line(format_args!("warning: {warning}"));
    }
    log::line(format_args!(
        "{VERSION} starting: {} {} {} count={}",
        config.sink,
        config.event,
        config.beats,
        config
            .count
            .map_or("unlimited".to_owned(), |n| n.to_string()),
    ));
    let subject = Subject {
        sink: &config.sink.url,
        event: &config.event,
    };
    let mut telemetry = Telemetry::start(&config.observability, subject, &waiter, |https| {
        sender.export_agent(https)
    });
    let report: &mut dyn Report = match &mut telemetry {
        Some(telemetry) => telemetry,
        None => &mut Silent,
    };
    let run = Run {
        sender: &sender,
        template: &template,
        waiter: &waiter,
    };
    let ended = beats(&config.beats, config.count, &run, report);
    let flush = match ended.stop {
        None => {
            sender.quit_sidecar();
            FLUSH_BUDGET
        }
        Some(stop) => {
            log::line(format_args!("{}: stopping", stop.name()));
            STOP_FLUSH_BUDGET
        }
    };
    // A run of `count` events fails when one of them was not acknowledged, stopped or not; a
    // run without end is ended by a stop signal, which is its normal end.
    let status = if config.count.is_some() && ended.undelivered > 0 {
        EXIT_UNDELIVERED
    } else {
        0
    };
    waiter.drain();
    waiter.flush_idle(Instant::now() + flush);
    status
}

/// How the loop ended: the events that were not delivered, and the stop signal that ended it,
/// if one did (else `count` events were sent).
struct Ended {
    undelivered: u64,
    stop: Option<Stop>,
}

/// What the loop runs on: the sender, the event template, the one waiter.
struct Run<'a> {
    sender: &'a Sender,
    template: &'a Template,
    waiter: &'a Waiter,
}

/// The loop: claim a beat, wait for it, build the event, deliver it, until `count` events were
/// sent or a stop signal ends it.
fn beats(beats: &Beats, count: Option<u64>, run: &Run, report: &mut dyn Report) -> Ended {
    let Run {
        sender,
        template,
        waiter,
    } = *run;
    let mut schedule = Schedule::new(&beats.timing, &beats.zone, Instant::now());
    let mut ended = Ended {
        undelivered: 0,
        stop: None,
    };
    let mut last_send = Duration::ZERO;
    let mut ids = Ids::default();
    for sequence in 1u64.. {
        let claim = schedule.claim(Instant::now(), SystemTime::now());
        let spent = waiter.take_spent();
        if claim.skipped > 0 {
            log_skipped(claim.skipped, last_send, spent, claim.interval);
            report.skipped(claim.skipped);
        }
        if let Err(stop) = sleep_until(waiter, claim.due) {
            ended.stop = Some(stop);
            return ended;
        }
        let last = count == Some(sequence);
        let give_up_at = if last {
            None
        } else {
            schedule.next_due(Instant::now(), SystemTime::now())
        };
        let started = Instant::now();
        let (outcome, stop) = match template.event(sequence, SystemTime::now(), &mut ids) {
            Ok(event) => deliver(sender, &event, sequence, give_up_at, report),
            Err(error) => {
                log::line(format_args!(
                    "event {sequence} not built: no randomness for its id: {error}"
                ));
                report.end_event(Outcome::Failed);
                (Outcome::Failed, None)
            }
        };
        last_send = started.elapsed();
        ended.undelivered += u64::from(outcome != Outcome::Delivered);
        if stop.is_some() || last {
            ended.stop = stop;
            return ended;
        }
    }
    ended
}

/// How often a sleep until a wall-clock time looks at the clock again, so that a step of the
/// clock (NTP, a resumed VM) moves the beat with it.
const CLOCK_CHECK: Duration = Duration::from_secs(60);

/// Sleeps until `due`; see [`Waiter::sleep_until`].
fn sleep_until(waiter: &Waiter, due: Due) -> Result<(), Stop> {
    match due {
        Due::Monotonic(at) => waiter.sleep_until(at),
        Due::Wall(None) => waiter.sleep_until(None),
        Due::Wall(Some(at)) => loop {
            let left = match at.duration_since(SystemTime::now()) {
                Ok(left) if !left.is_zero() => left,
                _ => return Ok(()),
            };
            waiter.sleep_until(Some(Instant::now() + left.min(CLOCK_CHECK)))?;
        },
    }
}

/// Delivers event `sequence` and logs how that ended, in one line whatever the end: with the
/// stop signal that interrupted its retries, if one did.
fn deliver(
    sender: &Sender,
    event: &Event,
    sequence: u64,
    give_up_at: Option<Instant>,
    report: &mut dyn Report,
) -> (Outcome, Option<Stop>) {
    report.start_event(event);
    let id = &event.id;
    let (outcome, stop) = match sender.deliver(event, give_up_at, report) {
        Delivery::Acked { status, attempts } => {
            log::line(format_args!(
                "event {sequence} id {id} delivered: HTTP {status}, {attempts} attempt(s)"
            ));
            (Outcome::Delivered, None)
        }
        Delivery::Failed { reason, attempts } => {
            log::line(format_args!(
                "event {sequence} id {id} failed: {reason}, {attempts} attempt(s)"
            ));
            (Outcome::Failed, None)
        }
        Delivery::Stopped { stop, attempts } => {
            log::line(format_args!(
                "event {sequence} id {id} not delivered: stopped by {} after {attempts} \
                 attempt(s)",
                stop.name()
            ));
            (Outcome::Failed, Some(stop))
        }
    };
    report.end_event(outcome);
    (outcome, stop)
}

/// Says why due times passed without an event: what held the thread (the previous send, and
/// how much of it went to looking a name up; an export; scrapes), from where the waiter says
/// the time went. When none of them took the `period` between due times, the process was not
/// running then (SIGSTOP, a frozen cgroup, CPU starvation).
fn log_skipped(skipped: u64, last_send: Duration, spent: Spent, period: Duration) {
    let held = if last_send >= period && spent.lookups * 2 >= last_send {
        let lookups = spent.lookups;
        format!("the previous send took {last_send:?} ({lookups:?} of it looking up a name)")
    } else if last_send >= period {
        format!("the previous send took {last_send:?}")
    } else if spent.exports >= period {
        format!("exporting telemetry took {:?}", spent.exports)
    } else if spent.scrapes >= period {
        format!("answering scrapes took {:?}", spent.scrapes)
    } else {
        log::line(format_args!(
            "skipped {skipped} beat(s): the process was not running at their time \
             (stopped or starved of CPU)"
        ));
        return;
    };
    log::line(format_args!(
        "skipped {skipped} beat(s): {held}, past their time"
    ));
}

/// `--next`: one line a beat time, UTC then local time with its offset and abbreviation.
fn preview_text(preview: &Preview) -> String {
    let Preview { beats, from, count } = preview;
    let mut text = String::new();
    for at in schedule::preview(&beats.timing, &beats.zone, *from, *count) {
        time::push_rfc3339_nano(&mut text, at);
        let kind = beats.zone.kind_at(time::unix(at).0);
        text.push_str("  ");
        time::push_rfc3339_local(&mut text, at, kind.offset);
        text.push(' ');
        text.push_str(kind.abbr);
        text.push('\n');
    }
    text
}

/// What the footprint bench (`benches/footprint.rs`) reports besides the process's own figures.
#[doc(hidden)]
pub mod footprint {
    pub use crate::schedule::zone::{TZDATA_VERSION, table_bytes as zone_table_bytes};
}

/// What the fuzz targets (`fuzz/`) exercise: the parsers of text from outside.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::config::goparse::{parse_duration, unquote};
    pub use crate::config::overrides::parse as parse_overrides;
    pub use crate::event::{HeaderEncoding, encode_header_value};

    /// The first `n` fire times (nanoseconds since the epoch) of `spec` in `zone` after `from`
    /// (seconds), or `None` when either is refused.
    pub fn schedule_fires(spec: &str, zone: &str, from: u32, n: usize) -> Option<Vec<u128>> {
        use crate::schedule::{Timing, cron, preview, zone::Zone};
        use std::time::{Duration, UNIX_EPOCH};
        let when = cron::parse(spec).ok()?.when;
        let timing = match when {
            cron::When::Fields(fields) => Timing::Cron(fields),
            cron::When::Every(text) => {
                let nanos = crate::config::goparse::parse_duration(text).filter(|n| *n > 0)?;
                Timing::Every(Duration::from_nanos(nanos as u64))
            }
        };
        let zone = Zone::named(zone).ok()?;
        let from = UNIX_EPOCH + Duration::from_secs(u64::from(from));
        let fires = preview(&timing, &zone, from, n);
        fires
            .iter()
            .map(|t| t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_nanos()))
            .collect()
    }
}

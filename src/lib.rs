//! heartbeats: the Knative Eventing heartbeats ContainerSource, rewritten small. Every period it
//! builds a CloudEvent (binary content mode) and POSTs it to `K_SINK`, on one thread.
//!
//! [`run`] is the whole life of the program and reads like the Go original's `main`: parse,
//! then [`send_beats`]: build the sender and telemetry, then the loop in `beats` { claim a beat,
//! wait for it, build the event, deliver it }, then flush the telemetry.
//!
//! The beat's core lives at the top: the loop (here), the event, the schedule, time, the log,
//! the token, the one waiter and the system calls. It uses three layers, a folder each:
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
mod time;
mod token;
mod wait;

use std::ffi::OsString;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use config::{Command, Config, Host};
pub use error::Error;
use error::{EXIT_CONFIG, EXIT_UNDELIVERED};
use event::{Event, Ids, Template};
use report::{Outcome, Report, Silent};
use schedule::Schedule;
use sink::{Delivery, Sender};
use telemetry::Telemetry;
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
    let template = Template::new(
        &config.source,
        &config.event_type,
        &config.overrides,
        config.label.clone(),
        config.msg.clone(),
        config.encoding,
    );
    let sender = match Sender::new(config, &template, waiter.clone()) {
        Ok(sender) => sender,
        Err(error) => {
            log::line(format_args!("{error}"));
            return EXIT_CONFIG;
        }
    };
    for warning in &config.warnings {
        log::line(format_args!("warning: {warning}"));
    }
    log::line(format_args!("{}", Startup(config)));
    let mut telemetry = Telemetry::start(config, &waiter, || sender.export_agent());
    let report: &mut dyn Report = match &mut telemetry {
        Some(telemetry) => telemetry,
        None => &mut Silent,
    };
    let (status, flush) = match beats(config, &sender, &template, &waiter, report) {
        Ok(undelivered) => {
            sender.quit_sidecar();
            let status = if undelivered == 0 {
                0
            } else {
                EXIT_UNDELIVERED
            };
            (status, FLUSH_BUDGET)
        }
        Err(stop) => {
            log::line(format_args!("{}: stopping", stop.name()));
            (0, STOP_FLUSH_BUDGET)
        }
    };
    waiter.drain();
    waiter.flush_idle(Instant::now() + flush);
    status
}

/// The loop: claim a beat, wait for it, build the event, deliver it. Returns how many events
/// were not delivered once `config.count` were sent, or the stop signal that ended it.
fn beats(
    config: &Config,
    sender: &Sender,
    template: &Template,
    waiter: &Waiter,
    report: &mut dyn Report,
) -> Result<u64, Stop> {
    let mut schedule = Schedule::new(Instant::now(), config.period);
    let mut undelivered = 0u64;
    let mut last_send = Duration::ZERO;
    let mut ids = Ids::default();
    for sequence in 1u64.. {
        let (due, skipped) = schedule.claim(Instant::now());
        let spent = waiter.take_spent();
        if skipped > 0 {
            log_skipped(skipped, last_send, spent, config.period);
            report.skipped(skipped);
        }
        waiter.sleep_until(due)?;
        let last = config.count == Some(sequence);
        let give_up_at = if last { None } else { schedule.next_due() };
        let started = Instant::now();
        let outcome = match template.event(sequence, SystemTime::now(), &mut ids) {
            Ok(event) => deliver(sender, &event, sequence, give_up_at, report)?,
            Err(error) => {
                log::line(format_args!(
                    "event {sequence} not built: no randomness for its id: {error}"
                ));
                report.end_event(Outcome::Failed);
                Outcome::Failed
            }
        };
        last_send = started.elapsed();
        undelivered += u64::from(outcome != Outcome::Delivered);
        if last {
            return Ok(undelivered);
        }
    }
    Ok(undelivered)
}

/// Delivers event `sequence` and logs how that ended, or returns the stop signal that
/// interrupted its retries.
fn deliver(
    sender: &Sender,
    event: &Event,
    sequence: u64,
    give_up_at: Option<Instant>,
    report: &mut dyn Report,
) -> Result<Outcome, Stop> {
    report.start_event(event);
    let id = &event.id;
    let outcome = match sender.deliver(event, give_up_at, report) {
        Delivery::Acked { status, attempts } => {
            log::line(format_args!(
                "event {sequence} id {id} delivered: HTTP {status}, {attempts} attempt(s)"
            ));
            Outcome::Delivered
        }
        Delivery::Failed { reason, attempts } => {
            log::line(format_args!(
                "event {sequence} id {id} failed: {reason}, {attempts} attempt(s)"
            ));
            Outcome::Failed
        }
        Delivery::Stopped(stop) => {
            report.end_event(Outcome::Failed);
            return Err(stop);
        }
    };
    report.end_event(outcome);
    Ok(outcome)
}

/// Says why due times passed without an event: what held the thread (the previous send, and
/// how much of it went to looking a name up; an export; scrapes), from where the waiter says
/// the time went. When none of them took a period, the process was not running then (SIGSTOP,
/// a frozen cgroup, CPU starvation).
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

/// The start-up line: the effective configuration, without secrets.
struct Startup<'a>(&'a Config);

impl fmt::Display for Startup<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0;
        let names: Vec<&str> = c.overrides.iter().map(|(n, _)| n.as_str()).collect();
        write!(
            f,
            "{VERSION} starting: sink={} source={:?} type={:?} period={:?} timeout={:?} count={} \
             encoding={} overrides={names:?} extra_ca={} tls_min={} tls_max={} token_file={} proxy={}",
            c.sink.shown(),
            c.source,
            c.event_type,
            c.period,
            c.timeout,
            c.count.map_or("unlimited".to_owned(), |n| n.to_string()),
            match c.encoding {
                event::HeaderEncoding::Compat => "compat",
                event::HeaderEncoding::Percent => "percent",
            },
            c.trust.extra.as_ref().map_or("none", |ca| ca.name.as_str()),
            c.tls.min.name(),
            c.tls.max.name(),
            c.token_file.display(),
            c.proxy.as_ref().map_or("none".to_owned(), |p| format!(
                "{} ({})",
                p.shown(),
                p.variable
            )),
        )
    }
}

/// What the fuzz targets (`fuzz/`) exercise: the parsers of text from outside.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::config::goparse::{parse_duration, unquote};
    pub use crate::config::overrides::parse as parse_overrides;
    pub use crate::event::{HeaderEncoding, encode_header_value};
}

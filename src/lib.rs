//! heartbeats: the Knative Eventing heartbeats ContainerSource, rewritten small. Every period it
//! builds a CloudEvent (binary content mode) and POSTs it to `K_SINK`, on one thread.
//!
//! [`run`] is the whole life of the program and reads like the Go original's `main`: parse,
//! then [`send_beats`]: build the agent and the observer, then the loop in `beats` { claim a
//! beat, wait for it, build the event, deliver it }, then flush the telemetry.
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
pub mod error;
pub mod event;
pub mod goparse;
pub mod head;
pub mod log;
pub mod metrics;
pub mod observability;
pub mod observer;
pub mod otlp;
pub mod overrides;
pub mod protobuf;
pub mod proxy;
pub mod schedule;
pub mod send;
pub mod sys;
pub mod time;
pub mod tls;
pub mod token;
pub mod trace;
pub mod transport;
pub mod userinfo;

use std::ffi::OsString;
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use config::{Command, Config, Host};
use error::{EXIT_CONFIG, EXIT_UNDELIVERED};
use event::{Event, Ids, Template};
use metrics::Outcome;
use observer::Observer;
use schedule::Schedule;
use send::{Delivery, Sender};
use sys::Stop;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs the program on `args` (without the program name) and returns its exit status.
/// Stop signals must already be blocked ([`sys::block_stop_signals`]).
pub fn run(args: impl IntoIterator<Item = OsString>, host: &dyn Host) -> i32 {
    match config::parse_args(args, host) {
        Ok(Command::Help) => {
            print!("{}", config::HELP);
            0
        }
        Ok(Command::Version) => {
            println!("heartbeats {VERSION}");
            0
        }
        Ok(Command::Run(config)) => send_beats(&config),
        Err(error) => {
            log::line(format_args!("{error}"));
            if let error::Error::Usage(_) = error {
                // As Go's flag package: a malformed command line is followed by the usage.
                eprint!("{}", config::HELP);
            }
            error.exit_code()
        }
    }
}

/// Sends events until `config.count` is reached or a stop signal arrives; returns the exit
/// status.
pub fn send_beats(config: &Config) -> i32 {
    log::never_block();
    let template = Template::new(
        &config.source,
        &config.event_type,
        &config.overrides,
        config.label.clone(),
        config.msg.clone(),
        config.encoding,
    );
    let sender = match Sender::new(config, &template) {
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
    let mut observer = Observer::new(config, || sender.export_agent());
    let status = match beats(config, &sender, &template, &mut observer) {
        Ok(undelivered) => {
            sender.quit_sidecar();
            if undelivered == 0 {
                0
            } else {
                EXIT_UNDELIVERED
            }
        }
        Err(stop) => {
            log::line(format_args!("{}: stopping", stop.name()));
            0
        }
    };
    observer.flush();
    status
}

/// The loop: claim a beat, wait for it, build the event, deliver it. Returns how many events
/// were not delivered once `config.count` were sent, or the stop signal that ended it.
fn beats(
    config: &Config,
    sender: &Sender,
    template: &Template,
    observer: &mut Observer,
) -> Result<u64, Stop> {
    let mut schedule = Schedule::new(Instant::now(), config.period);
    let mut undelivered = 0u64;
    let mut last_send = Duration::ZERO;
    let mut ids = Ids::default();
    for sequence in 1u64.. {
        let (due, skipped) = schedule.claim(Instant::now());
        if skipped > 0 {
            log_skipped(skipped, last_send, config.period);
            observer.skipped(skipped);
        }
        match observer.sleep_until(due) {
            Ok(None) => {}
            Ok(Some(stop)) => return Err(stop),
            Err(error) => log::line(format_args!("cannot wait for the next beat: {error}")),
        }
        let last = config.count == Some(sequence);
        let give_up_at = if last { None } else { schedule.next_due() };
        let started = Instant::now();
        let outcome = match template.event(sequence, SystemTime::now(), &mut ids) {
            Ok(event) => deliver(sender, &event, sequence, give_up_at, observer)?,
            Err(error) => {
                log::line(format_args!(
                    "event {sequence} not built: no randomness for its id: {error}"
                ));
                observer.end_event(Outcome::Failed);
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
    observer: &mut Observer,
) -> Result<Outcome, Stop> {
    observer.start_event(event);
    let id = &event.id;
    let outcome = match sender.deliver(event, give_up_at, observer) {
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
            observer.end_event(Outcome::Failed);
            return Err(stop);
        }
    };
    observer.end_event(outcome);
    Ok(outcome)
}

/// Says why due times passed without an event. A send shorter than a period cannot have
/// covered one: the process was not running then (SIGSTOP, a frozen cgroup, CPU starvation).
fn log_skipped(skipped: u64, last_send: Duration, period: Duration) {
    if last_send >= period {
        log::line(format_args!(
            "skipped {skipped} beat(s): the previous send took {last_send:?}, past their time"
        ));
    } else {
        log::line(format_args!(
            "skipped {skipped} beat(s): the process was not running at their time \
             (stopped or starved of CPU)"
        ));
    }
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
            match c.sink_userinfo {
                // The userinfo was split off; say that there is one, as the redaction does.
                Some(_) => c.sink.replacen("://", "://***@", 1),
                None => c.sink.clone(),
            },
            c.source,
            c.event_type,
            c.period,
            c.timeout,
            c.count.map_or("unlimited".to_owned(), |n| n.to_string()),
            match c.encoding {
                event::HeaderEncoding::Compat => "compat",
                event::HeaderEncoding::Percent => "percent",
            },
            c.ca_certs.as_ref().map_or("none", |ca| ca.name.as_str()),
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

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
mod linger;
mod log;
pub mod receiver;
mod report;
mod schedule;
mod sink;
mod state;
mod sys;
mod telemetry;
#[cfg(test)]
mod testing;
mod time;

mod wait;

use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use config::{Beats, CatchUpHow, Command, Config, Host, Preview};
pub use error::Error;
use error::{EXIT_CONFIG, EXIT_DEAD_LETTERED, EXIT_UNDELIVERED};
use event::{Event, Fire, Ids, Template};
use report::{Outcome, Report, Silent};
use schedule::{Due, Schedule};
use sink::{Delivery, Sender};
use state::StateFile;
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
        Ok(Command::Lookup(lookup)) => look_up(&lookup),
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
    let links: Arc<dyn telemetry::Links> = Arc::new(sender.export_links());
    let mut telemetry = Telemetry::start(&config.observability, subject, &waiter, &links);
    let report: &mut dyn Report = match &mut telemetry {
        Some(telemetry) => telemetry,
        None => &mut Silent,
    };
    let run = Run {
        sender: &sender,
        template: &template,
        waiter: &waiter,
    };
    let state = config.state_file.as_deref().map(StateFile::open);
    let ended = beats(&config.beats, config.count, &run, state, report);
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
    waiter.drain();
    waiter.flush_idle(Instant::now() + flush);
    ended.status(config.count)
}

/// How the loop ended: the events that reached neither sink, those that reached only the
/// dead-letter sink, and the stop signal that ended it, if one did (else `count` events were
/// sent, or `--end` came).
#[derive(Default)]
struct Ended {
    undelivered: u64,
    dead_lettered: u64,
    stop: Option<Stop>,
}

impl Ended {
    /// The exit status. A run of `count` events fails when one of them reached neither sink
    /// (3), stopped or not, and says when one reached only the dead-letter sink (4); a run
    /// without end is ended by a stop signal or `--end`, which is its normal end.
    fn status(&self, count: Option<u64>) -> i32 {
        match count {
            Some(_) if self.undelivered > 0 => EXIT_UNDELIVERED,
            Some(_) if self.dead_lettered > 0 => EXIT_DEAD_LETTERED,
            _ => 0,
        }
    }

    /// Counts `outcome`; true when the run must end now (a stop signal, or the last event).
    fn count(&mut self, outcome: Outcome, stop: Option<Stop>, last: bool) -> bool {
        self.undelivered += u64::from(outcome == Outcome::Failed);
        self.dead_lettered += u64::from(outcome == Outcome::DeadLettered);
        self.stop = stop;
        stop.is_some() || last
    }
}

/// What the loop runs on: the sender, the event template, the one waiter.
struct Run<'a> {
    sender: &'a Sender,
    template: &'a Template,
    waiter: &'a Waiter,
}

/// The loop: first the fires missed while down (`--catch-up`), then claim a beat, wait for it
/// (and its `--jitter`), build the event, deliver it, keep the state; until `count` events were
/// sent, `--end` came, or a stop signal ends it.
fn beats(
    beats: &Beats,
    count: Option<u64>,
    run: &Run,
    mut state: Option<StateFile>,
    report: &mut dyn Report,
) -> Ended {
    let mut ended = Ended::default();
    let mut ids = Ids::default();
    let mut number = 0u64;
    for scheduled in catch_up(beats, state.as_ref()) {
        number += 1;
        let (outcome, stop) = fire(
            run,
            number,
            Some(scheduled),
            None,
            state.as_mut(),
            &mut ids,
            report,
        );
        if ended.count(outcome, stop, count == Some(number)) {
            return ended;
        }
    }
    let (now, wall) = (Instant::now(), SystemTime::now());
    let mut schedule = Schedule::new(&beats.timing, &beats.zone, now, wall, beats.start);
    let mut last_send = Duration::ZERO;
    loop {
        number += 1;
        let (now, wall) = (Instant::now(), SystemTime::now());
        let claim = schedule.claim(now, wall);
        let spent = run.waiter.take_spent();
        if claim.skipped > 0 {
            log_skipped(claim.skipped, last_send, spent, claim.interval);
            report.skipped(claim.skipped);
        }
        if let Some(end) = beats
            .end
            .filter(|&end| claim.wall_time(now, wall).is_none_or(|t| t > end))
        {
            log::line(format_args!(
                "no fire time is left before --end {}: done",
                time::rfc3339_nano(end)
            ));
            return ended;
        }
        let woken =
            sleep_until(run.waiter, claim.due).and_then(|()| jitter(run.waiter, beats.jitter));
        if let Err(stop) = woken {
            ended.stop = Some(stop);
            return ended;
        }
        let last = count == Some(number);
        let give_up_at = if last {
            None
        } else {
            schedule.next_due(Instant::now(), SystemTime::now())
        };
        let started = Instant::now();
        let scheduled = claim.fire_time();
        let (outcome, stop) = fire(
            run,
            number,
            scheduled,
            give_up_at,
            state.as_mut(),
            &mut ids,
            report,
        );
        last_send = started.elapsed();
        if ended.count(outcome, stop, last) {
            return ended;
        }
    }
}

/// The fires missed while the process was down that `--catch-up` sends now, oldest first:
/// those after the last one delivered (as the state file says), within `--catch-up-window`,
/// not before `--start` nor after `--end`.
fn catch_up(beats: &Beats, state: Option<&StateFile>) -> Vec<SystemTime> {
    let Some(saved) = state.and_then(|s| s.state.last_fire) else {
        return Vec::new();
    };
    let now = SystemTime::now();
    let mut after = saved;
    if let Some(window) = beats.catch_up.window {
        after = after.max(now.checked_sub(window).unwrap_or(UNIX_EPOCH));
    }
    if let Some(start) = beats.start {
        after = after.max(start.checked_sub(Duration::from_nanos(1)).unwrap_or(start));
    }
    let until = beats.end.map_or(now, |end| end.min(now));
    let max = match beats.catch_up.how {
        CatchUpHow::None => return Vec::new(),
        CatchUpHow::Last => 1,
        CatchUpHow::All => MAX_CATCH_UP,
    };
    let missed = schedule::missed(&beats.timing, &beats.zone, after, until, max);
    if missed.len() == MAX_CATCH_UP {
        log::line(format_args!(
            "catching up only the latest {MAX_CATCH_UP} fires missed since {}",
            time::rfc3339_nano(after)
        ));
    }
    missed
}

/// The most fires `--catch-up all` sends at start.
const MAX_CATCH_UP: usize = 1000;

/// Waits a random time in [0, `jitter`) (`--jitter`), through the waiter.
fn jitter(waiter: &Waiter, jitter: Duration) -> Result<(), Stop> {
    if jitter.is_zero() {
        return Ok(());
    }
    let mut bytes = [0u8; 8];
    // Without randomness, no delay rather than no fire.
    if getrandom::getrandom(&mut bytes).is_err() {
        return Ok(());
    }
    let fraction = (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64;
    waiter.sleep_until(Some(Instant::now() + jitter.mul_f64(fraction)))
}

/// Makes and delivers event `number` of the fire `scheduled` (when fires have times of their
/// own), logs how it ended, and keeps the state (the fire, if delivered; its sequence number).
fn fire(
    run: &Run,
    number: u64,
    scheduled: Option<SystemTime>,
    give_up_at: Option<Instant>,
    state: Option<&mut StateFile>,
    ids: &mut Ids,
    report: &mut dyn Report,
) -> (Outcome, Option<Stop>) {
    let mut kept = state.as_ref().map(|s| s.state).unwrap_or_default();
    kept.sequence += 1;
    let fire = Fire {
        scheduled,
        sequence: Some(kept.sequence),
    };
    let (outcome, stop) = match run.template.event(number, SystemTime::now(), fire, ids) {
        Ok(event) => deliver(run.sender, &event, number, give_up_at, report),
        Err(error) => {
            log::line(format_args!(
                "event {number} not built: no randomness for its id: {error}"
            ));
            report.end_event(Outcome::Failed);
            (Outcome::Failed, None)
        }
    };
    if let Some(state) = state {
        if matches!(outcome, Outcome::Delivered | Outcome::DeadLettered) && scheduled.is_some() {
            kept.last_fire = scheduled;
        }
        state.save(kept);
    }
    (outcome, stop)
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
        Delivery::DeadLettered {
            reason,
            attempts,
            status,
        } => {
            log::line(format_args!(
                "event {sequence} id {id} dead-lettered: {reason}, {attempts} attempt(s); \
                 the dead-letter sink answered HTTP {status}"
            ));
            (Outcome::DeadLettered, None)
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

/// Telemetry's exports connect as the sink's attempts do.
impl telemetry::Links for sink::ExportLinks {
    fn agent(&self, https: bool, tls: &config::observability::ExportTls) -> ureq::Agent {
        self.export_agent(https, tls)
    }

    fn grpc_tls(
        &self,
        tls: &config::observability::ExportTls,
    ) -> Result<Arc<rustls::ClientConfig>, String> {
        self.export_tls(tls, &[b"h2"])
    }

    fn dial(
        &self,
        host: &str,
        port: u16,
        deadline: Instant,
    ) -> std::io::Result<std::net::TcpStream> {
        sink::ExportLinks::dial(self, host, port, deadline)
    }

    fn waiter(&self) -> Arc<Waiter> {
        sink::ExportLinks::waiter(self)
    }
}

/// `--lookup`: the host's addresses, one a line, in the order a connection tries them; exit 3
/// when it has none (the reason on stderr).
fn look_up(lookup: &config::Lookup) -> i32 {
    let waiter = match Waiter::new() {
        Ok(waiter) => waiter,
        Err(error) => {
            log::line(format_args!("cannot wait for SIGTERM/SIGINT: {error}"));
            return EXIT_CONFIG;
        }
    };
    match sink::lookup(&lookup.names, &lookup.host, &waiter, lookup.timeout) {
        Ok(addresses) => {
            for address in addresses {
                println!("{address}");
            }
            0
        }
        Err(error) => {
            log::line(format_args!("lookup {}: {error}", lookup.host));
            EXIT_UNDELIVERED
        }
    }
}

/// `--next`: one line a beat time, UTC then local time with its offset and abbreviation.
fn preview_text(preview: &Preview) -> String {
    let Preview { beats, from, count } = preview;
    let mut text = String::new();
    let bounds = (beats.start, beats.end);
    for at in schedule::preview_within(&beats.timing, &beats.zone, *from, *count, bounds) {
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

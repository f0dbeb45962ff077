//! heartbeats: the Knative Eventing heartbeats ContainerSource, rewritten small. Every period it
//! builds a CloudEvent (binary content mode) and POSTs it to `K_SINK`, on one thread.
//!
//! [`run`] is the whole life of the program and reads like the Go original's `main`: parse,
//! build the agent, then loop { claim a beat, wait for it, build the event, deliver it }.
#![deny(unsafe_code)]

pub mod config;
pub mod error;
pub mod event;
pub mod goparse;
pub mod head;
pub mod log;
pub mod proxy;
pub mod schedule;
pub mod send;
pub mod sys;
pub mod time;
pub mod tls;
pub mod token;
pub mod transport;
pub mod userinfo;

use std::ffi::OsString;
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use config::{Command, Config, Host};
use error::{EXIT_CONFIG, EXIT_UNDELIVERED};
use event::{Ids, Template};
use schedule::Schedule;
use send::{Delivery, Sender};

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
        Ok(Command::Run(config)) => beat(&config),
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

/// The heartbeat loop: sends events until `config.count` is reached or a stop signal arrives.
pub fn beat(config: &Config) -> i32 {
    log::never_block();
    let sender = match Sender::new(config) {
        Ok(sender) => sender,
        Err(error) => {
            log::line(format_args!("{error}"));
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
    for warning in &config.warnings {
        log::line(format_args!("warning: {warning}"));
    }
    log::line(format_args!("{}", Startup(config)));

    let mut schedule = Schedule::new(Instant::now(), config.period);
    let mut undelivered = 0u64;
    let mut last_send = Duration::ZERO;
    let mut ids = Ids::default();
    for sequence in 1u64.. {
        let (due, skipped) = schedule.claim(Instant::now());
        if skipped > 0 {
            // A send shorter than a period cannot have covered a due time: the process was not
            // running then (SIGSTOP, a frozen cgroup, CPU starvation).
            if last_send >= config.period {
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
        match sys::wait_until(due) {
            Ok(None) => {}
            Ok(Some(signal)) => return stopped(signal),
            Err(error) => log::line(format_args!("cannot wait for the next beat: {error}")),
        }
        let last = config.count == Some(sequence);
        let give_up_at = if last { None } else { schedule.next_due() };
        let started = Instant::now();
        let delivered = match send_event(&sender, &template, sequence, &mut ids, give_up_at) {
            Ok(delivered) => delivered,
            Err(signal) => return stopped(signal),
        };
        last_send = started.elapsed();
        undelivered += u64::from(!delivered);
        if last {
            sender.quit_sidecar();
            return if undelivered == 0 {
                0
            } else {
                EXIT_UNDELIVERED
            };
        }
    }
    0
}

/// Builds event `sequence`, delivers it and logs the outcome: whether the sink acknowledged it,
/// or the stop signal that interrupted its retries.
fn send_event(
    sender: &Sender,
    template: &Template,
    sequence: u64,
    ids: &mut Ids,
    give_up_at: Option<Instant>,
) -> Result<bool, i32> {
    let event = match template.event(sequence, SystemTime::now(), ids) {
        Ok(event) => event,
        Err(error) => {
            log::line(format_args!(
                "event {sequence} not built: no randomness for its id: {error}"
            ));
            return Ok(false);
        }
    };
    let id = &event.id;
    match sender.deliver(template, &event, give_up_at) {
        Delivery::Acked { status, attempts } => {
            log::line(format_args!(
                "event {sequence} id {id} delivered: HTTP {status}, {attempts} attempt(s)"
            ));
            Ok(true)
        }
        Delivery::Failed { reason, attempts } => {
            log::line(format_args!(
                "event {sequence} id {id} failed: {reason}, {attempts} attempt(s)"
            ));
            Ok(false)
        }
        Delivery::Stopped(signal) => Err(signal),
    }
}

fn stopped(signal: i32) -> i32 {
    let name = if signal == libc::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    };
    log::line(format_args!("{name}: stopping"));
    0
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
            c.ca_certs
                .as_ref()
                .map_or("none", |(name, _)| name.as_str()),
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

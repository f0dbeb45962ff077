//! heartbeats-receiver: a fake sink for integration tests, as small as the sender. It listens
//! for CloudEvents over HTTP (binary, structured and batch modes, plain or TLS), prints each one
//! as `event_display` does (or as a JSON line), judges the stream per source (missing,
//! duplicated, out of order, late), serves the report at `GET /report` and `/metrics`, and can
//! exit with a verdict for CI (`--expect N --within D`, `--strict`). Faults on purpose
//! (`--answer`, `--answer-delay`, `--retry-after`) test a sender's retries.
//!
//! One thread, as the sender: the loop below waits on the listener and every connection through
//! the crate's waiter (which also reads the stop signals), and [`server::Server`] does what
//! their readiness allows without waiting.

mod cloudevent;
pub mod config;
mod judge;
mod print;
mod request;
mod server;
mod tls;

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use crate::error::{EXIT_CONFIG, EXIT_UNDELIVERED};
use crate::log;
use crate::wait::{OnStop, Purpose, Unready, Waiter, Watched, deadline_in, earliest};
use config::{Command, Settings};
use server::Server;

/// Exit status when the expected events did not come within `--within`, or a stop came first.
const EXIT_NOT_MET: i32 = EXIT_UNDELIVERED;
/// Exit status at a violation, with `--strict`.
const EXIT_VIOLATION: i32 = 1;

/// The receiver program: `args` without the program name; returns the exit status.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    log::set_program("heartbeats-receiver");
    if let Err(error) = crate::sys::block_stop_signals() {
        log::line(format_args!("cannot block SIGTERM/SIGINT: {error}"));
        return EXIT_CONFIG;
    }
    let port = std::env::var("PORT").ok();
    match config::parse(args, port) {
        Ok(Command::Help) => {
            print!("{}", config::help());
            0
        }
        Ok(Command::Version) => {
            println!("heartbeats-receiver {}", crate::VERSION);
            0
        }
        Ok(Command::Run(settings)) => run(&settings),
        Err(error) => {
            log::line(format_args!("{error}"));
            if let crate::Error::Usage(_) = error {
                eprint!("{}", config::help());
            }
            error.exit_code()
        }
    }
}

/// Listens and serves until the verdict, a stop signal, or (with `--within`) the time runs out.
pub fn run(settings: &Settings) -> i32 {
    log::never_block();
    let tls = match &settings.tls {
        Some(files) => match tls::Tls::load(files) {
            Ok(tls) => Some(tls),
            Err(error) => {
                log::line(format_args!("{error}"));
                return error.exit_code();
            }
        },
        None => None,
    };
    let listener = match listen(settings) {
        Ok(listener) => listener,
        Err(error) => {
            log::line(format_args!(
                "cannot listen on {}: {error}",
                settings.listen
            ));
            return EXIT_CONFIG;
        }
    };
    let waiter = match Waiter::new() {
        Ok(waiter) => waiter,
        Err(error) => {
            log::line(format_args!("cannot wait for SIGTERM/SIGINT: {error}"));
            return EXIT_CONFIG;
        }
    };
    let address = listener.local_addr().map_or(settings.listen, |a| a);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let expecting = match (settings.expect, settings.within) {
        (Some(n), Some(within)) => format!("; expecting {n} event(s) within {within:?}"),
        (Some(n), None) => format!("; expecting {n} event(s)"),
        _ => String::new(),
    };
    log::line(format_args!(
        "{} listening on {scheme}://{address}/ (report at /report, metrics at /metrics){expecting}",
        crate::VERSION
    ));
    let mut server = Server::new(listener, tls, settings);
    let within = settings.within.map(|d| Instant::now() + d);
    let mut watched: Vec<Watched> = Vec::with_capacity(server::MAX_CONNECTIONS + 1);
    loop {
        server.printer.flush();
        if let Some(code) = verdict(&server) {
            return finish(&mut server, code, None);
        }
        watched.clear();
        server.watch(&mut watched);
        let until = earliest(server.due(), within).unwrap_or_else(|| deadline_in(Duration::MAX));
        match waiter.wait_for(&mut watched, until, OnStop::End, Purpose::Other) {
            Ok(()) | Err(Unready::TimedOut) => {}
            Err(Unready::Stopped(stop)) => {
                let code = if settings.expect.is_some() && !server.expectation_met() {
                    EXIT_NOT_MET
                } else {
                    0
                };
                return finish(&mut server, code, Some(stop.name()));
            }
            Err(Unready::Failed(error)) => {
                log::line(format_args!("cannot wait: {error}"));
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let now = Instant::now();
        server.serve(&watched, now);
        if within.is_some_and(|w| w <= now) && !server.expectation_met() {
            server.timed_out = true;
        }
    }
}

/// The exit status, once there is one: the expectation met, a violation with `--strict`, or
/// `--within` run out.
fn verdict(server: &Server) -> Option<i32> {
    if server.violation.is_some() {
        Some(EXIT_VIOLATION)
    } else if server.expectation_met() {
        Some(0)
    } else if server.timed_out {
        Some(EXIT_NOT_MET)
    } else {
        None
    }
}

/// Says why the receiver stops, prints the report on stdout, and returns `code`.
fn finish(server: &mut Server, code: i32, stop: Option<&str>) -> i32 {
    server.settle_answers(Duration::from_millis(200));
    let why = match (stop, &server.violation) {
        (Some(signal), _) => format!("{signal}: stopping"),
        (None, Some(violation)) => format!("--strict: {violation}"),
        (None, None) if server.timed_out => {
            "--within ran out before the expected events came".into()
        }
        (None, None) => "the expected events came".into(),
    };
    log::line(format_args!(
        "{why}; {} event(s), {} missing, {} duplicated",
        server.judge.received(),
        server.judge.missing(),
        server.judge.duplicated()
    ));
    let report = server.judge.report(server.state());
    let text = match server.printer.output() {
        config::Output::Json => format!("{{\"report\":{report}}}\n"),
        _ => format!("Report,\n  {report}\n"),
    };
    server.printer.last(&text);
    code
}

/// The listener of `settings.listen`, non-blocking; an unset address tries IPv6 (which takes
/// IPv4 too), then IPv4 alone.
fn listen(settings: &Settings) -> std::io::Result<TcpListener> {
    let listener = match TcpListener::bind(settings.listen) {
        Err(_) if settings.any_address && settings.listen.is_ipv6() => TcpListener::bind(
            SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), settings.listen.port()),
        )?,
        other => other?,
    };
    listener.set_nonblocking(true)?;
    Ok(listener)
}

//! `cargo run --example demo`: the real heartbeat loop, five beats a second apart, against a
//! fake sink on 127.0.0.1 that prints every event it receives.

#[path = "../tests/support/sink.rs"]
mod sink;

use std::ffi::OsString;
use std::time::Duration;

use heartbeats::config::{Command, Host};

/// The environment Knative would give the container, and nothing from this shell.
struct DemoPod;

impl Host for DemoPod {
    fn var(&self, name: &str) -> Option<OsString> {
        match name {
            "POD_NAME" => Some("demo-pod".into()),
            "POD_NAMESPACE" => Some("demo".into()),
            "K_CE_OVERRIDES" => Some(r#"{"extensions":{"wow":"so extended"}}"#.into()),
            _ => None,
        }
    }
    fn read_file(&self, _: &str) -> Option<String> {
        None
    }
}

fn main() {
    const BEATS: usize = 5;
    let sink = sink::Sink::start(vec![]);
    let url = sink.url();
    let printer = std::thread::spawn(move || {
        for _ in 0..BEATS {
            let Some(request) = sink.next(Duration::from_secs(30)) else {
                return;
            };
            let mut text = format!("sink received {} {}\n", request.method, request.path);
            for (name, value) in &request.headers {
                text += &format!("    {name}: {value}\n");
            }
            text += &format!("    body: {}\n", String::from_utf8_lossy(&request.body));
            println!("{text}");
        }
    });
    let count = format!("--count={BEATS}");
    let args = [
        "--sink",
        &url,
        "--period=1s",
        &count,
        "--label=demo",
        "--msg=hello from heartbeats",
    ];
    let command = heartbeats::config::parse_args(args.map(OsString::from), &DemoPod);
    let status = match command {
        Ok(Command::Run(config)) => heartbeats::send_beats(&config),
        Ok(_) => 0,
        Err(error) => {
            eprintln!("{error}");
            error.exit_code()
        }
    };
    let _ = printer.join();
    std::process::exit(status);
}

//! Go is the oracle of name lookups: every scenario of tests/vectors/resolver.jsonl (what Go's
//! pure resolver answered, `just vectors`) is replayed against the same fake name servers, with
//! the same resolv.conf and hosts file, through the real binary's `--lookup`, and its answer must
//! be Go's: the same addresses in the same order, or the same kind of error, after about as
//! long. The few places where we answer otherwise on purpose are listed in [`DIFFERENCES`], each
//! with its reason, and are checked to still differ as said.

mod support;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde::Deserialize;
use support::dns::{FakeDns, Server};
use support::heartbeats;

const VECTORS: &str = include_str!("vectors/resolver.jsonl");

/// How far our time may be from Go's: the servers' timeouts are whole seconds, so a second
/// more or less is another attempt, another server, another search name.
const SLACK: Duration = Duration::from_millis(450);

/// Scenarios run at once (most wait on a timeout, few use the processor).
const AT_ONCE: usize = 12;

/// Scenarios where we do not answer as Go does, on purpose: (name, what we answer, why).
const DIFFERENCES: [(&str, &str, &str); 1] = [(
    "huge-timeout-dropped-aaaa",
    "127.0.0.2",
    "Go's lookup fails when its 10 s context ends with the AAAA question unanswered, although \
     the A answer came at once; we keep what a family answered when the deadline comes",
)];

#[derive(Deserialize)]
struct Scenario {
    name: String,
    lookup: String,
    resolv_conf: String,
    hosts: String,
    servers: Vec<Server>,
    go: Outcome,
}

#[derive(Deserialize, Debug, PartialEq)]
struct Outcome {
    #[serde(default)]
    addresses: Vec<String>,
    /// `not_found`, `timeout` or `failure`.
    #[serde(default)]
    error: Option<String>,
    elapsed_ms: u64,
}

/// What the binary answered: its addresses, or the kind of its error, and how long it took.
fn ask(scenario: &Scenario) -> Outcome {
    let dns = FakeDns::servers(&scenario.servers);
    // Go's lookups ran under a 10 s context. A difference is judged by its answer alone, and
    // the one there is shows as well when the deadline comes sooner.
    let different = DIFFERENCES
        .iter()
        .any(|(name, _, _)| *name == scenario.name);
    let timeout = if different { "2s" } else { "10s" };
    let mut command = heartbeats();
    command.args(["--lookup", &scenario.lookup, "--timeout", timeout]);
    dns.configure_with(&mut command, &scenario.resolv_conf, &scenario.hosts);
    let started = Instant::now();
    let output = command
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let error = match output.status.code() {
        Some(0) => None,
        Some(3) if stderr.contains("no such host") => Some("not_found".into()),
        Some(3) if stderr.contains("in time") => Some("timeout".into()),
        Some(3) => Some("failure".into()),
        other => panic!("{}: exit {other:?}, {stderr}", scenario.name),
    };
    Outcome {
        addresses: stdout.lines().map(go_zone).collect(),
        error,
        elapsed_ms,
    }
}

/// An address as Go writes it: a scope as its interface's name (the loopback is the only one
/// the scenarios use, and Linux gives it index 1).
fn go_zone(address: &str) -> String {
    match address.split_once('%') {
        Some((ip, "1")) => format!("{ip}%lo"),
        _ => address.to_string(),
    }
}

#[test]
fn every_lookup_is_gos() {
    let scenarios: Vec<Scenario> = VECTORS
        .lines()
        .map(|line| serde_json::from_str(line).expect("a scenario"))
        .collect();
    assert!(scenarios.len() >= 70, "the vectors are all there");
    let queue = Arc::new(Mutex::new(scenarios.into_iter()));
    let workers: Vec<_> = (0..AT_ONCE)
        .map(|_| {
            let queue = queue.clone();
            thread::spawn(move || {
                let mut wrong = Vec::new();
                loop {
                    let Some(scenario) = queue.lock().unwrap().next() else {
                        return wrong;
                    };
                    wrong.extend(judge(&scenario, ask(&scenario)));
                }
            })
        })
        .collect();
    let wrong: Vec<String> = workers
        .into_iter()
        .flat_map(|worker| worker.join().expect("a worker"))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// What is wrong with our answer to `scenario`, if anything.
fn judge(scenario: &Scenario, ours: Outcome) -> Option<String> {
    let go = &scenario.go;
    let name = &scenario.name;
    if let Some((_, answer, why)) = DIFFERENCES.iter().find(|(n, _, _)| n == name) {
        let expected: Vec<String> = answer.split(' ').map(String::from).collect();
        return (ours.addresses != expected || ours.error.is_some())
            .then(|| format!("{name}: the difference ({why}) is gone: {ours:?}"));
    }
    if ours.addresses != go.addresses || ours.error != go.error {
        return Some(format!("{name}: Go {go:?}, ours {ours:?}"));
    }
    let (theirs, mine) = (go.elapsed_ms, ours.elapsed_ms);
    // Our time includes starting the process; Go's is the lookup alone.
    let slack = SLACK.as_millis() as u64;
    if mine + slack < theirs || mine > theirs + slack + theirs / 10 {
        return Some(format!("{name}: Go took {theirs} ms, we {mine} ms"));
    }
    None
}

#[test]
fn the_differences_name_scenarios_that_exist() {
    for (name, _, _) in DIFFERENCES {
        assert!(
            VECTORS.contains(&format!("\"name\":\"{name}\"")),
            "{name} is not a scenario"
        );
    }
}

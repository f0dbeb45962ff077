//! `cargo bench --bench heap` (`just bench` runs it after the footprint): who holds the heap
//! while beats go out. The library's real loop (`heartbeats::run`) beats every 50 ms for 2 s
//! against the fake sink on 127.0.0.1, in this process, under DHAT's heap profiler (the `dhat`
//! crate); then the code that held the most bytes at the heap's peak is printed, for http,
//! https (a K_CA_CERTS CA) and http with Prometheus and OTLP traces on. The sink's own
//! allocations (it runs in this process) are left out.

#[path = "../tests/support/sink.rs"]
mod sink;

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;

use heartbeats::config::Host;
use sink::{Sink, tls_pair};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// The environment `heartbeats::run` reads: these variables and nothing else.
struct Env(HashMap<&'static str, String>);

impl Host for Env {
    fn var(&self, name: &str) -> Option<OsString> {
        self.0.get(name).map(OsString::from)
    }
    fn read_file(&self, _: &str) -> Option<String> {
        None
    }
}

/// Runs 40 beats at 50 ms with `vars` under the profiler; returns the profile's path.
fn profile(name: &str, vars: &[(&'static str, String)]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "heartbeats-heap-{name}-{}.json",
        std::process::id()
    ));
    let mut env: HashMap<&'static str, String> = vars.iter().cloned().collect();
    env.insert("POD_NAME", "bench".into());
    env.insert("POD_NAMESPACE", "bench".into());
    let args = [
        "--period=50ms",
        "--count=40",
        "--oidc-token-file=/nonexistent",
    ]
    .map(OsString::from);
    let profiler = dhat::Profiler::builder().file_name(&path).build();
    let status = heartbeats::run(args, &Env(env));
    drop(profiler);
    assert_eq!(status, 0, "{name}: the run failed");
    path
}

/// The program points of the library in a DHAT profile, largest at the global peak first:
/// (bytes, blocks, where: the first line of heartbeats' own code on the stack, and its caller's).
fn largest(path: &Path) -> (u64, Vec<(u64, u64, String)>) {
    let text = std::fs::read_to_string(path).expect("the DHAT profile");
    let json: serde_json::Value = serde_json::from_str(&text).expect("DHAT JSON");
    let frames: Vec<&str> = json["ftbl"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap_or(""))
        .collect();
    let mut sites: HashMap<String, (u64, u64)> = HashMap::new();
    let mut total = 0;
    for pp in json["pps"].as_array().unwrap() {
        let bytes = pp["gb"].as_u64().unwrap_or(0);
        let stack: Vec<&str> = pp["fs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| frames[i.as_u64().unwrap() as usize])
            .collect();
        // The fake sink runs in this process too: its threads are not the program's.
        if bytes == 0 || stack.iter().any(|f| f.contains("tests/support/")) {
            continue;
        }
        let own: Vec<String> = stack.iter().filter_map(|f| ours(f)).collect();
        let Some(first) = own.first() else {
            continue;
        };
        total += bytes;
        let key = match own.iter().find(|f| *f != first) {
            Some(caller) => format!("{first}, from {caller}"),
            None => first.clone(),
        };
        let entry = sites.entry(key).or_default();
        entry.0 += bytes;
        entry.1 += pp["gbk"].as_u64().unwrap_or(0);
    }
    let mut sites: Vec<(u64, u64, String)> =
        sites.into_iter().map(|(k, (b, n))| (b, n, k)).collect();
    sites.sort_by_key(|s| std::cmp::Reverse(s.0));
    (total, sites)
}

/// `src/file.rs:line (function)` when `frame` (`0x…: function (path:line:column)`) is in this
/// repository's `src/`.
fn ours(frame: &str) -> Option<String> {
    let (head, place) = frame.rsplit_once(" (")?;
    let function = head.split_once(": ").map_or(head, |(_, f)| f);
    let function = function.split('<').next().unwrap_or(function);
    let mut parts = place.trim_end_matches(')').split(':');
    let (file, line) = (parts.next()?, parts.next()?);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let name = root.file_name()?.to_str()?;
    let file = file.strip_prefix(&format!("{name}/")).unwrap_or(file);
    (file.starts_with("src/") && root.join(file).is_file())
        .then(|| format!("{file}:{line} ({function})"))
}

fn main() {
    let sink = Sink::start(vec![]);
    let (ca, server) = tls_pair("127.0.0.1");
    let tls_sink = Sink::start_with(vec![], Some(server));
    let collector = Sink::start(vec![]);
    let observability = format!(
        r#"{{"metrics":{{"protocol":"prometheus","endpoint":"127.0.0.1:0"}},
            "tracing":{{"protocol":"http/protobuf","endpoint":"http://127.0.0.1:{}","samplingRate":1}}}}"#,
        collector.port
    );
    let http = format!("http://127.0.0.1:{}/", sink.port);
    let https = format!("https://127.0.0.1:{}/", tls_sink.port);
    let cases = [
        ("http", vec![("K_SINK", http.clone())]),
        ("https", vec![("K_SINK", https), ("K_CA_CERTS", ca)]),
        (
            "http, Prometheus and OTLP traces on",
            vec![("K_SINK", http), ("K_OBSERVABILITY_CONFIG", observability)],
        ),
    ];
    println!(
        "# heartbeats heap at its peak, 40 beats at 50 ms (DHAT; the library's allocations only)"
    );
    for (name, vars) in cases {
        let path = profile(&name.replace([' ', ','], ""), &vars);
        let (total, sites) = largest(&path);
        let _ = std::fs::remove_file(&path);
        println!(
            "\n## {name}: {:.1} KiB live at the peak",
            total as f64 / 1024.0
        );
        for (bytes, blocks, site) in sites.iter().take(10) {
            println!(
                "{:>8.1} KiB {blocks:>4} block(s)  {site}",
                *bytes as f64 / 1024.0
            );
        }
        for r in [&sink, &tls_sink, &collector] {
            r.drain();
        }
    }
}

//! `cargo bench --bench footprint` (`just bench`): the footprint of the release binary against
//! the fake sink on 127.0.0.1, over http and https, as min / median / max of several runs.
//! With HEARTBEATS_COMPARE=/path/to/other it runs every scenario for that binary too, A B A B,
//! and prints the ratio A/B per figure. The soak is a test: `just soak` (tests/soak.rs).
//!
//! Peak RSS and CPU come from `wait4` on `/usr/bin/time` (GNU time), which reports its own
//! usage together with the waited-for child's: a small fork+exec launcher, so the figure is not
//! the bench's own size (see benches/README.md). It builds nothing; `just bench` builds first.

#[path = "../tests/support/collector.rs"]
mod collector;
#[path = "../tests/support/sink.rs"]
mod sink;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sink::{Sink, tls_pair};

const RUNS: usize = 5;
const CPU_BEATS: usize = 1_000;
const SCHEDULE_BEATS: usize = 1_000;
const SCHEDULE_PERIOD: Duration = Duration::from_millis(10);
const IDLE_WINDOW: Duration = Duration::from_secs(3);

/// One binary under test, with its own environment (observability on or off).
struct Target {
    name: &'static str,
    binary: PathBuf,
    env: Vec<(&'static str, String)>,
}

/// A sink and what the binary needs in its environment to reach it.
struct Endpoint {
    sink: Sink,
    url: String,
    ca: Option<String>,
}

impl Endpoint {
    fn new(tls: bool) -> Endpoint {
        let (ca, config) = if tls {
            let (ca, config) = tls_pair("127.0.0.1");
            (Some(ca), Some(config))
        } else {
            (None, None)
        };
        let sink = Sink::start_with(vec![], config);
        let scheme = if tls { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{}/", sink.port);
        Endpoint { sink, url, ca }
    }

    fn command(&self, target: &Target, rss_file: Option<&Path>) -> Command {
        let command = if let Some(file) = rss_file {
            let mut c = Command::new("/usr/bin/time");
            c.arg("-o").arg(file).args(["-f", "%M"]).arg(&target.binary);
            c
        } else {
            Command::new(&target.binary)
        };
        self.command_on(command, target)
    }

    /// `command` (the binary, or a launcher of it) with the environment to reach the sink and
    /// the target's own.
    fn command_on(&self, mut command: Command, target: &Target) -> Command {
        command
            .env_clear()
            .env("K_SINK", &self.url)
            .env("POD_NAME", "bench")
            .env("POD_NAMESPACE", "bench")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(ca) = &self.ca {
            command.env("K_CA_CERTS", ca);
        }
        command.envs(target.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Drops requests left from an earlier run.
    fn clear(&self) {
        self.sink.drain();
    }
}

/// Peak RSS (KiB, the child's own, as GNU time reports it) and user+sys CPU of the launcher and
/// its child together, from wait4 (the launcher's share cancels out in differences).
struct Usage {
    max_rss_kib: u64,
    cpu: Duration,
}

fn wait4(child: &mut Child, rss_file: &Path) -> Usage {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own unreaped child; both pointers are to live locals.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4");
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let rss = std::fs::read_to_string(rss_file).expect("GNU time output");
    let max_rss_kib = rss
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("%M figure");
    Usage {
        max_rss_kib,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
    }
}

/// The pid that `/usr/bin/time` started.
fn grandchild(time_pid: u32) -> i32 {
    let path = format!("/proc/{time_pid}/task/{time_pid}/children");
    for _ in 0..1000 {
        if let Some(pid) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
        {
            return pid;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("no child of /usr/bin/time");
}

fn terminate(pid: i32) {
    // SAFETY: kill(2) on a pid of our own process tree; failure (already gone) is harmless.
    unsafe { libc::kill(pid, libc::SIGTERM) };
}

/// Runs `beats` beats at `period` in loop mode (the comparison binary may lack --count), stops
/// the process with SIGTERM (then SIGKILL: Go ignores the first SIGTERM) and returns usage and
/// arrival times.
fn beats(
    target: &Target,
    endpoint: &Endpoint,
    beats: usize,
    period: Duration,
) -> (Usage, Vec<Instant>) {
    endpoint.clear();
    let rss_file =
        std::env::temp_dir().join(format!("heartbeats-bench-rss-{}", std::process::id()));
    let mut command = endpoint.command(target, Some(&rss_file));
    if beats == 1 {
        command.env("ONE_SHOT", "true");
    } else {
        command.arg(format!("--period={}us", period.as_micros()));
    }
    let mut child = command.spawn().expect("spawn /usr/bin/time");
    let arrivals: Vec<Instant> = (0..beats).map(|_| endpoint.sink.expect().at).collect();
    if beats > 1 {
        let pid = grandchild(child.id());
        terminate(pid);
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline
            && std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|_| !is_zombie(pid))
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: as in `terminate`.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    (wait4(&mut child, &rss_file), arrivals)
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
}

/// Time from spawn (just before exec) to the first request fully received.
fn first_request(target: &Target, endpoint: &Endpoint) -> Duration {
    endpoint.clear();
    let mut command = endpoint.command(target, None);
    command.env("ONE_SHOT", "true");
    let started = Instant::now();
    let mut child = command.spawn().expect("spawn");
    let at = endpoint.sink.expect().at;
    let _ = child.wait();
    at - started
}

/// The binary in loop mode at `period`, straight from the bench (no launcher).
fn spawn_loop(target: &Target, endpoint: &Endpoint, period: &str) -> Child {
    spawn_with(target, endpoint, &[&format!("--period={period}")])
}

fn spawn_with(target: &Target, endpoint: &Endpoint, args: &[&str]) -> Child {
    let mut command = endpoint.command(target, None);
    command.args(args).spawn().expect("spawn")
}

/// SIGTERM, then SIGKILL for a binary that ignores it (Go does, once), and reap.
fn stop(child: &mut Child) {
    terminate(child.id() as i32);
    std::thread::sleep(Duration::from_millis(200));
    let _ = child.kill();
    let _ = child.wait();
}

/// How long the working set is measured into a run of beats every [`WORKING_SET_PERIOD`].
const WORKING_SET_AFTER: Duration = Duration::from_secs(2);
const WORKING_SET_PERIOD: &str = "50ms";

/// Private memory while beating: the sum of `Anonymous:` in /proc/PID/smaps 2 s into beats every
/// 50 ms (the binary's own pages are shared page cache, and not counted), and the largest
/// anonymous mappings, named (the stack, the binary's data, the heap's mappings).
fn working_set(target: &Target, endpoint: &Endpoint) -> (f64, String) {
    endpoint.clear();
    let mut child = spawn_loop(target, endpoint, WORKING_SET_PERIOD);
    std::thread::sleep(WORKING_SET_AFTER);
    let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", child.id())).unwrap_or_default();
    stop(&mut child);
    let mut total = 0;
    let mut mappings: Vec<(u64, String)> = Vec::new();
    let mut name = String::new();
    for line in smaps.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols
            .first()
            .is_some_and(|c| c.contains('-') && !c.ends_with(':'))
        {
            name = match cols.get(5) {
                Some(path) if path.starts_with('[') => path.trim_matches(['[', ']']).to_owned(),
                Some(_) => "binary data".to_owned(),
                None => "heap (mmap)".to_owned(),
            };
        } else if cols.first() == Some(&"Anonymous:") {
            let kib: u64 = cols.get(1).and_then(|k| k.parse().ok()).unwrap_or(0);
            total += kib;
            match mappings.iter_mut().find(|(_, n)| *n == name) {
                Some(entry) => entry.0 += kib,
                None if kib > 0 => mappings.push((kib, name.clone())),
                None => {}
            }
        }
    }
    mappings.sort_by_key(|m| std::cmp::Reverse(m.0));
    let named: Vec<String> = mappings
        .iter()
        .map(|(kib, n)| format!("{n} {kib}"))
        .collect();
    (total as f64, named.join(", "))
}

/// Threads and context switches per beat while idle between beats at a 10 s period.
fn idle(target: &Target, endpoint: &Endpoint) -> (u64, f64) {
    endpoint.clear();
    let mut child = spawn_loop(target, endpoint, "10s");
    endpoint.sink.expect();
    let read = || std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let field = |status: &str, name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    // Let the first beat's work settle, then count what happens while nothing should.
    std::thread::sleep(Duration::from_millis(200));
    let before = read();
    std::thread::sleep(IDLE_WINDOW);
    let after = read();
    stop(&mut child);
    let switches =
        |s: &str| field(s, "voluntary_ctxt_switches:") + field(s, "nonvoluntary_ctxt_switches:");
    let per_beat =
        (switches(&after) - switches(&before)) as f64 * (10.0 / IDLE_WINDOW.as_secs_f64());
    (field(&after, "Threads:"), per_beat)
}

/// Lateness of arrivals against the fixed-rate grid. Each arrival is put in its slot (nearest
/// multiple of the period from the first); the grid's origin is the earliest it could be, so
/// every lateness is >= 0 and a skipped beat shows as a missing slot, not as lateness.
struct Schedule {
    median: f64,
    max: f64,
    drift: f64,
    skipped: u64,
}

impl Schedule {
    fn from_arrivals(arrivals: &[Instant], period: Duration) -> Schedule {
        let p = period.as_secs_f64();
        let offsets: Vec<(f64, f64)> = arrivals
            .iter()
            .map(|at| {
                let since = (*at - arrivals[0]).as_secs_f64();
                let slot = (since / p).round();
                (slot, since - slot * p)
            })
            .collect();
        let origin = offsets.iter().map(|o| o.1).fold(f64::INFINITY, f64::min);
        let mut late: Vec<f64> = offsets.iter().map(|o| o.1 - origin).collect();
        // Drift: how far the last 50 beats sit from the first 50 (medians, so that one late
        // wake-up at either end is not mistaken for a trend).
        let median = |v: &[f64]| stats(v.to_vec()).1;
        let edge = late.len().min(50);
        let drift = median(&late[late.len() - edge..]) - median(&late[..edge]);
        let slots = offsets.last().unwrap().0 as u64 + 1;
        late.sort_by(f64::total_cmp);
        Schedule {
            median: late[late.len() / 2],
            max: late[late.len() - 1],
            drift,
            skipped: slots - arrivals.len() as u64,
        }
    }
}

/// On-CPU time per beat while the loop runs (1 ms period), from /proc/PID/schedstat taken at
/// beat 100 and beat 1,100: the kernel's exact scheduler accounting, no start-up included.
fn steady_cpu_per_beat(target: &Target, endpoint: &Endpoint) -> f64 {
    endpoint.clear();
    on_cpu_per_beat(spawn_loop(target, endpoint, "1ms"), endpoint)
}

/// The same for one of the bench's own loops: `--floor` (see [`floor_loop`]) or `--ureq-loop`
/// (see [`ureq_loop`]).
fn loop_cpu_per_beat(which: &str, endpoint: &Endpoint) -> f64 {
    endpoint.clear();
    let child = Command::new(std::env::current_exe().expect("the bench's own path"))
        .args([which, &endpoint.sink.port.to_string()])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn the floor loop");
    on_cpu_per_beat(child, endpoint)
}

fn on_cpu_per_beat(child: Child, endpoint: &Endpoint) -> f64 {
    on_cpu_over(child, endpoint, 100, 1_000)
}

/// On-CPU time per beat over `measured` beats after `warm` ones, from /proc/PID/schedstat.
fn on_cpu_over(mut child: Child, endpoint: &Endpoint, warm: usize, measured: usize) -> f64 {
    let on_cpu = || -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/schedstat", child.id())).unwrap();
        stat.split_whitespace().next().unwrap().parse().unwrap()
    };
    for _ in 0..warm {
        endpoint.sink.expect();
    }
    let before = on_cpu();
    for _ in 0..measured {
        endpoint.sink.expect();
    }
    let after = on_cpu();
    stop(&mut child);
    (after - before) as f64 / 1e9 / measured as f64
}

/// Beats measured per run of [`schedule_against_period`], after two to warm up; and pairs.
const CRON_BEATS: usize = 12;
const CRON_PAIRS: usize = 4;

/// On-CPU time per beat of `--schedule "* * * * * *"` against `--period 1s`, run A B A B over
/// http: a cron fire time (wall clock, zone arithmetic) should cost what a period's does.
fn schedule_against_period(target: &Target) {
    println!(
        "\n## --schedule \"* * * * * *\" against --period 1s (http, {CRON_PAIRS} pairs of {CRON_BEATS} beats)"
    );
    let mut ratios = Vec::new();
    for _ in 0..CRON_PAIRS {
        let endpoint = Endpoint::new(false);
        let period = spawn_with(target, &endpoint, &["--period=1s"]);
        let period = on_cpu_over(period, &endpoint, 2, CRON_BEATS);
        let endpoint = Endpoint::new(false);
        let cron = spawn_with(target, &endpoint, &["--schedule=* * * * * *"]);
        let cron = on_cpu_over(cron, &endpoint, 2, CRON_BEATS);
        println!(
            "  period {:.1} us, schedule {:.1} us per beat: {:.3}",
            period * 1e6,
            cron * 1e6,
            cron / period
        );
        ratios.push(cron / period);
    }
    let (min, median, max) = stats(ratios);
    println!("schedule / period, per pair: median {median:.3} (min {min:.3}, max {max:.3})");
    println!(
        "zone table compiled in: {} bytes (tz database {})",
        heartbeats::footprint::zone_table_bytes(),
        heartbeats::footprint::TZDATA_VERSION
    );
}

/// The floor program: the cheapest possible keep-alive POST loop, three system calls a beat. It
/// sleeps to an absolute deadline (`clock_nanosleep`), writes a prebuilt request of the size
/// heartbeats sends in one `write`, and reads the answer in one `read`; every 1 ms, until killed.
fn floor_loop(port: u16) {
    use std::io::{Read, Write};
    let mut request = format!("POST / HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n");
    for (name, value) in BEAT_HEADERS {
        request += &format!("{name}: {value}\r\n");
    }
    request += &format!("content-length: {}\r\n\r\n{BEAT_BODY}", BEAT_BODY.len());
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut answer = [0u8; 1024];
    every_millisecond(|| {
        stream.write_all(request.as_bytes()).is_ok() && stream.read(&mut answer).is_ok()
    });
}

/// The fixed client's own cost: the same request sent through a default ureq agent (headers
/// given as strings, the answer read to its end), paced as [`floor_loop`]. Built into this
/// (glibc) bench, whose allocator is cheaper than musl's.
fn ureq_loop(port: u16) {
    let agent = ureq::Agent::new_with_defaults();
    let url = format!("http://127.0.0.1:{port}/");
    every_millisecond(|| {
        let mut request = agent.post(&url);
        for (name, value) in BEAT_HEADERS {
            request = request.header(name, value);
        }
        request
            .send(BEAT_BODY)
            .and_then(|mut response| response.body_mut().read_to_vec())
            .is_ok()
    });
}

/// What heartbeats sends on one beat, for the two loops above.
const BEAT_HEADERS: [(&str, &str); 11] = [
    ("user-agent", "heartbeats/0.1.0"),
    ("ce-specversion", "1.0"),
    ("ce-id", "8a8f1e4c-3b2d-4c5e-9f6a-7b8c9d0e1f2a"),
    ("ce-time", "2026-11-26T12:00:00.123456789Z"),
    (
        "ce-source",
        "https://knative.dev/eventing-contrib/cmd/heartbeats/#bench/bench",
    ),
    ("ce-type", "dev.knative.eventing.samples.heartbeat"),
    ("ce-the", "42"),
    ("ce-heart", "yes"),
    ("ce-beats", "true"),
    ("content-type", "application/json"),
    ("accept", "*/*"),
];
const BEAT_BODY: &str = r#"{"id":1,"label":""}"#;

/// Runs `beat` every 1 ms against an absolute deadline (`clock_nanosleep`), until it fails.
fn every_millisecond(mut beat: impl FnMut() -> bool) {
    // SAFETY: an all-zero timespec is valid; clock_gettime fills it.
    let mut next: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: a valid clock and a pointer to a live timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut next) };
    loop {
        // SAFETY: a valid clock, TIMER_ABSTIME, a live request and no remainder wanted.
        unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &next,
                std::ptr::null_mut(),
            )
        };
        if !beat() {
            return;
        }
        next.tv_nsec += 1_000_000;
        if next.tv_nsec >= 1_000_000_000 {
            next.tv_nsec -= 1_000_000_000;
            next.tv_sec += 1;
        }
    }
}

/// System calls per beat, from `strace -c -f` at 1 ms: over the first 1,000 beats ((1,001
/// beats − 1) / 1,000) and over the next 1,000 ((2,001 − 1,001) / 1,000), each in total and by
/// name (those of at least 0.01 per beat). The two differ by musl's allocator warming up: until
/// it sees a size class come and go often, it unmaps a group the moment it is empty. `None`
/// without strace.
fn syscalls_per_beat(target: &Target, endpoint: &Endpoint) -> Option<[(f64, String); 2]> {
    type Counts = std::collections::BTreeMap<String, f64>;
    let count = |beats: usize| -> Option<Counts> {
        endpoint.clear();
        let out = std::env::temp_dir().join(format!("heartbeats-bench-strace-{beats}"));
        let mut command = Command::new("strace");
        command
            .args(["-f", "-c", "-o"])
            .arg(&out)
            .arg(&target.binary);
        let mut child = endpoint
            .command_on(command, target)
            .args(["--period=1ms", &format!("--count={beats}")])
            .spawn()
            .ok()?;
        child.wait().ok()?.success().then_some(())?;
        let text = std::fs::read_to_string(&out).ok()?;
        Some(
            text.lines()
                .filter_map(|line| {
                    let cols: Vec<&str> = line.split_whitespace().collect();
                    let name = *cols.last()?;
                    let calls = cols.get(3)?.parse::<f64>().ok()?;
                    (name != "total").then(|| (name.to_owned(), calls))
                })
                .collect(),
        )
    };
    let per_beat = |before: &Counts, after: &Counts| {
        let mut total = 0.0;
        let mut names = Vec::new();
        for (name, calls) in after {
            let per_beat = (calls - before.get(name).unwrap_or(&0.0)) / 1_000.0;
            if per_beat >= 0.01 {
                total += per_beat;
                names.push(format!("{name} {per_beat:.2}"));
            }
        }
        (total, names.join(", "))
    };
    let (one, first, next) = (count(1)?, count(1_001)?, count(2_001)?);
    Some([per_beat(&one, &first), per_beat(&first, &next)])
}

/// The floor under any 1 ms loop on this machine: on-CPU time of one 1 ms `ppoll` sleep and
/// wake-up (what every beat pays once, plus once more blocked on the response).
fn sleep_floor() -> f64 {
    let on_cpu = || -> u64 {
        let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
        stat.split_whitespace().next().unwrap().parse().unwrap()
    };
    let before = on_cpu();
    let one_ms = libc::timespec {
        tv_sec: 0,
        tv_nsec: 1_000_000,
    };
    for _ in 0..1_000 {
        // SAFETY: no descriptors (a null array of length 0), a timespec that outlives the call,
        // and a null signal mask (keep the current one).
        unsafe { libc::ppoll(std::ptr::null_mut(), 0, &one_ms, std::ptr::null()) };
    }
    (on_cpu() - before) as f64 / 1e9 / 1_000.0
}

/// The figures of one run, named, in a fixed order.
fn one_run(target: &Target, tls: bool) -> Vec<(&'static str, f64)> {
    // A fresh sink per scenario: a killed run's last request can still arrive after the next
    // scenario began, and would shift its schedule.
    let fresh = || Endpoint::new(tls);
    let (one, _) = beats(target, &fresh(), 1, Duration::ZERO);
    let (many, _) = beats(target, &fresh(), CPU_BEATS, Duration::from_millis(1));
    let cpu_per_beat = many.cpu.saturating_sub(one.cpu).as_secs_f64() / (CPU_BEATS - 1) as f64;
    let (_, arrivals) = beats(target, &fresh(), SCHEDULE_BEATS, SCHEDULE_PERIOD);
    let schedule = Schedule::from_arrivals(&arrivals, SCHEDULE_PERIOD);
    let steady = steady_cpu_per_beat(target, &fresh());
    // The two loops speak plain http only; over https they are left out.
    let (floor, client) = if tls {
        (f64::NAN, f64::NAN)
    } else {
        (
            loop_cpu_per_beat("--floor", &fresh()),
            loop_cpu_per_beat("--ureq-loop", &fresh()),
        )
    };
    let syscalls = syscalls_per_beat(target, &fresh()).map_or([f64::NAN; 2], |counts| {
        let [(first, first_names), (next, next_names)] = counts;
        println!(
            "  {} syscalls per beat, first 1,000: {first_names}",
            target.name
        );
        println!(
            "  {} syscalls per beat, next 1,000: {next_names}",
            target.name
        );
        [first, next]
    });
    let (threads, switches) = idle(target, &fresh());
    let first = first_request(target, &fresh());
    let (private, mappings) = working_set(target, &fresh());
    println!(
        "  {} private memory by mapping (KiB): {mappings}",
        target.name
    );
    vec![
        ("peak RSS, ONE_SHOT (KiB)", one.max_rss_kib as f64),
        ("peak RSS, 1,000 beats (KiB)", many.max_rss_kib as f64),
        ("private memory, 2 s into 50 ms beats (KiB)", private),
        ("exec to first request (ms)", first.as_secs_f64() * 1e3),
        (
            "CPU per beat: (1,000 beats - ONE_SHOT)/999 (us)",
            cpu_per_beat * 1e6,
        ),
        ("CPU per beat: steady state, schedstat (us)", steady * 1e6),
        ("floor loop: CPU per beat, schedstat (us)", floor * 1e6),
        ("CPU per beat / floor loop, same run", steady / floor),
        ("ureq loop: CPU per beat, schedstat (us)", client * 1e6),
        ("ureq loop / floor loop, same run", client / floor),
        ("system calls per beat, first 1,000 (strace)", syscalls[0]),
        ("system calls per beat, next 1,000 (strace)", syscalls[1]),
        ("schedule: median lateness (ms)", schedule.median * 1e3),
        ("schedule: max lateness (ms)", schedule.max * 1e3),
        (
            "schedule: drift, last 50 vs first 50 beats (ms)",
            schedule.drift * 1e3,
        ),
        ("schedule: beats skipped", schedule.skipped as f64),
        ("threads while idle", threads as f64),
        ("context switches per idle beat", switches),
    ]
}

fn stats(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (
        values[0],
        values[values.len() / 2],
        values[values.len() - 1],
    )
}

fn report(targets: &[Target], tls: bool) {
    let scheme = if tls { "https" } else { "http" };
    // runs[target][run] = figures; targets alternate within each round.
    let mut runs: Vec<Vec<Vec<(&str, f64)>>> = vec![Vec::new(); targets.len()];
    for _ in 0..RUNS {
        for (i, target) in targets.iter().enumerate() {
            runs[i].push(one_run(target, tls));
        }
    }
    println!("\n## {scheme} ({RUNS} runs each, min / median / max)");
    let names: Vec<&str> = runs[0][0].iter().map(|(n, _)| *n).collect();
    for (f, name) in names.iter().enumerate() {
        let mut line = format!("{name:<38}");
        for (i, target) in targets.iter().enumerate() {
            let (min, med, max) = stats(runs[i].iter().map(|r| r[f].1).collect());
            line += &format!(" | {}: {min:.3} / {med:.3} / {max:.3}", target.name);
        }
        println!("{line}");
        // Each other target against the first, run by run (they alternate within a round).
        for (i, target) in targets.iter().enumerate().skip(1) {
            let ratios = stats(
                (0..RUNS)
                    .map(|r| runs[i][r][f].1 / runs[0][r][f].1)
                    .collect(),
            );
            println!(
                "{:<38}   {} / {}: median {:.3} (min {:.3}, max {:.3})",
                "", target.name, targets[0].name, ratios.1, ratios.0, ratios.2
            );
        }
    }
}

fn binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("target/x86_64-unknown-linux-musl/release/heartbeats");
    assert!(
        path.exists(),
        "{} is missing: run `just build-static` first",
        path.display()
    );
    path
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--floor") {
        return floor_loop(args[at + 1].parse().expect("--floor PORT"));
    }
    if let Some(at) = args.iter().position(|a| a == "--ureq-loop") {
        return ureq_loop(args[at + 1].parse().expect("--ureq-loop PORT"));
    }
    assert!(
        Path::new("/usr/bin/time").exists(),
        "GNU time is needed: apt-get install time"
    );
    // The same over gRPC (metrics pushed every 10 s): a real gRPC collector (tonic).
    let grpc_collector = collector::collector(vec![], None);
    let grpc_observability = format!(
        r#"{{"metrics":{{"protocol":"grpc","endpoint":"http://127.0.0.1:{0}","exportInterval":10000000000}},
            "tracing":{{"protocol":"grpc","endpoint":"http://127.0.0.1:{0}","samplingRate":1}}}}"#,
        grpc_collector.port
    );
    std::thread::spawn(move || {
        loop {
            let _ = grpc_collector.got.recv();
        }
    });
    // Observability on: Prometheus on a free port, every event traced to a local collector.
    let collector = Sink::start(vec![]);
    let observability = format!(
        r#"{{"metrics":{{"protocol":"prometheus","endpoint":"127.0.0.1:0"}},
            "tracing":{{"protocol":"http/protobuf","endpoint":"http://127.0.0.1:{}","samplingRate":1}}}}"#,
        collector.port
    );
    let mut targets = vec![
        Target {
            name: "A heartbeats",
            binary: binary(),
            env: Vec::new(),
        },
        Target {
            name: "O observability on",
            binary: binary(),
            env: vec![("K_OBSERVABILITY_CONFIG", observability)],
        },
        Target {
            name: "G observability over gRPC",
            binary: binary(),
            env: vec![("K_OBSERVABILITY_CONFIG", grpc_observability)],
        },
    ];
    if let Some(other) = std::env::var_os("HEARTBEATS_COMPARE") {
        targets.push(Target {
            name: "B compare",
            binary: PathBuf::from(other),
            env: Vec::new(),
        });
    }
    // The collector's requests are not looked at; drain them so they do not pile up.
    std::thread::spawn(move || {
        loop {
            collector.next(Duration::from_secs(3600));
        }
    });
    let machine = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            let line = c.lines().find(|l| l.starts_with("model name"))?;
            Some(line.split_once(':')?.1.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    let date = Command::new("date").args(["-u", "+%Y-%m-%d"]).output();
    let date = date.map_or(String::new(), |o| {
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    });
    println!(
        "# heartbeats footprint ({date}, {machine}, {} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for target in &targets {
        let size = std::fs::metadata(&target.binary).unwrap().len();
        println!(
            "{}: {} binary, {size} bytes",
            target.name,
            target.binary.display()
        );
    }
    let image = Command::new("podman")
        .args([
            "image",
            "inspect",
            "--format",
            "{{.Size}}",
            concat!("localhost/heartbeats:", env!("CARGO_PKG_VERSION"), "-amd64"),
        ])
        .output();
    if let Some(out) = image.ok().filter(|o| o.status.success()) {
        println!(
            "image localhost/heartbeats:{}-amd64: {} bytes",
            env!("CARGO_PKG_VERSION"),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    println!(
        "floor: one 1 ms sigtimedwait sleep + wake-up costs {:.1} us on CPU here",
        sleep_floor() * 1e6
    );
    report(&targets, false);
    report(&targets, true);
    schedule_against_period(&targets[0]);
}

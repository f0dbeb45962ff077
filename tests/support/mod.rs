//! The one copy of the test helpers: the fake sink ([`sink`]) and a builder for the real
//! `heartbeats` binary with a cleared environment, started with its end reported on a channel.
#![allow(dead_code)]

pub mod dns;
pub mod proxy;
pub mod sink;

#[allow(unused_imports)]
pub use proxy::*;
pub use sink::*;

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::Duration;

/// How soon a process must end after SIGTERM or SIGINT when it is not exchanging bytes with the
/// sink. The contract says 100 ms, and the process takes a few; a CI container whose CPU is
/// throttled can keep a runnable process off the CPU for a whole scheduling period (100 ms by
/// default) and more under load, so the tests hold every stop to this one, looser, bound.
pub const STOP_LIMIT: Duration = Duration::from_millis(500);

/// How long a test's socket read or write may wait before the test fails instead of hanging.
pub const IO_LIMIT: Duration = Duration::from_secs(10);

/// Where no test's Istio sidecar listens: the ONE_SHOT and `--count` runs of every test ask it to
/// quit, and find nothing there (tests/istio.rs moves it to a sidecar of its own).
pub const NO_SIDECAR_PORT: &str = "1";

/// The real binary with a cleared environment: only POD_NAME/POD_NAMESPACE, a token path that
/// does not exist (so the machine's own `/oidc/token`, if any, cannot leak in), and the Istio
/// sidecar moved off the machine's real port 15020.
pub fn heartbeats() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_heartbeats"));
    command
        .env_clear()
        .env("POD_NAME", "example-pod")
        .env("POD_NAMESPACE", "event-test")
        .env("HEARTBEATS_ISTIO_PORT", NO_SIDECAR_PORT)
        .arg("--oidc-token-file=/nonexistent/heartbeats/token")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// The real receiver with a cleared environment, listening on an ephemeral loopback port.
pub fn receiver() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_heartbeats-receiver"));
    command
        .env_clear()
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A started receiver and the address it listens on.
pub struct Listening {
    pub running: Running,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Listening {
    pub fn start(command: &mut Command) -> Listening {
        let running = Running::start(command);
        let line = running.line_containing("listening on ");
        let addr = line
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .expect("the address in the listening line")
            .to_owned();
        Listening { running, addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops it with SIGTERM and returns what it left.
    pub fn stop(&self) -> Finished {
        self.running.signal(libc::SIGTERM);
        self.running.finish(Duration::from_secs(5))
    }
}

/// [`heartbeats`] aimed at `sink` (`K_SINK`): what most tests start from.
pub fn heartbeats_to(sink: &Sink) -> Command {
    let mut command = heartbeats();
    command.env("K_SINK", sink.url());
    command
}

/// A started binary whose end is reported on a channel, and its stderr line by line.
pub struct Running {
    pub pid: i32,
    done: Receiver<(ExitStatus, String, String)>,
    lines: Receiver<String>,
}

/// What a finished run left.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics, showing stderr, unless stderr contains `text`.
    #[track_caller]
    pub fn assert_logged(&self, text: &str) {
        assert!(
            self.stderr.contains(text),
            "{text:?} not in stderr:\n{}",
            self.stderr
        );
    }
}

impl Running {
    pub fn start(command: &mut Command) -> Running {
        Running::spawn(command, true).0
    }

    /// As [`Running::start`], with stderr left to the test (nothing reads it until the test
    /// does; `line_containing` sees nothing).
    pub fn start_unread(command: &mut Command) -> (Running, std::process::ChildStderr) {
        let (running, stderr) = Running::spawn(command, false);
        (running, stderr.expect("stderr is piped"))
    }

    fn spawn(command: &mut Command, read: bool) -> (Running, Option<std::process::ChildStderr>) {
        let mut child: Child = command.spawn().expect("spawn heartbeats");
        let unread = if read { None } else { child.stderr.take() };
        let pid = child.id() as i32;
        let (line_tx, lines) = mpsc::channel();
        // stderr is read as it comes, each line also sent to `lines`; the whole of it is
        // reported with the end.
        let stderr_reader = child.stderr.take().map(|stderr| {
            thread::spawn(move || {
                let mut all = String::new();
                for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
                    let Ok(line) = line else { break };
                    all.push_str(&line);
                    all.push('\n');
                    let _ = line_tx.send(line);
                }
                all
            })
        });
        let (tx, done) = mpsc::channel();
        thread::spawn(move || {
            let out = child.wait_with_output().expect("wait for heartbeats");
            let stderr = stderr_reader.map_or(String::new(), |r| r.join().unwrap_or_default());
            let _ = tx.send((
                out.status,
                String::from_utf8_lossy(&out.stdout).into(),
                stderr,
            ));
        });
        (Running { pid, done, lines }, unread)
    }

    /// The next stderr line containing `text`, which must come within 10 s.
    pub fn line_containing(&self, text: &str) -> String {
        let end = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => panic!("{text:?} not logged within 10 s"),
            }
        }
    }

    /// Waits at most `timeout` for the end; `None` if it is still running.
    pub fn wait(&self, timeout: Duration) -> Option<Finished> {
        let (status, stdout, stderr) = self.done.recv_timeout(timeout).ok()?;
        Some(Finished {
            status,
            stdout,
            stderr,
        })
    }

    /// Waits for the end, which must come within `timeout`.
    pub fn finish(&self, timeout: Duration) -> Finished {
        self.wait(timeout)
            .unwrap_or_else(|| panic!("heartbeats still running after {timeout:?}"))
    }

    /// Waits (at most 5 s) until the process sleeps in `sigtimedwait` (or `ppoll`, with
    /// observability on): between beats, or between retries. Read from the kernel
    /// (`/proc/PID/wchan`), not guessed from time.
    pub fn wait_until_sleeping(&self) {
        let wchan = format!("/proc/{}/wchan", self.pid);
        let started = std::time::Instant::now();
        let asleep = |w: String| w.contains("sigtimedwait") || w.contains("poll");
        while !std::fs::read_to_string(&wchan).is_ok_and(asleep) {
            assert!(started.elapsed() < Duration::from_secs(5), "never asleep");
            thread::yield_now();
        }
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
        let result = unsafe { libc::kill(self.pid, signal) };
        assert_eq!(result, 0, "kill {}", self.pid);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.done.try_recv().is_err() {
            // SAFETY: as in `signal`; a failure (already gone) is harmless here.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }
}

/// A temporary directory, removed with everything in it when dropped (also when a test fails).
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// A fresh, empty directory whose name starts with `heartbeats-{name}-`.
    pub fn new(name: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("heartbeats-{name}-{}-{unique}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir(path)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// `name` inside the directory.
    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The threads of process `pid`, from `/proc/PID/status`.
pub fn threads(pid: i32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status
        .lines()
        .find(|l| l.starts_with("Threads:"))
        .expect("Threads:");
    line["Threads:".len()..].trim().parse().expect("a count")
}

/// The address in `metrics: serving Prometheus text at http://ADDR/metrics`.
pub fn metrics_address(run: &Running) -> String {
    let line = run.line_containing("serving Prometheus text at http://");
    let after = line.split("http://").nth(1).unwrap();
    after.trim_end_matches("/metrics").to_owned()
}

/// `K_OBSERVABILITY_CONFIG` serving Prometheus text on an ephemeral loopback port.
pub const PROMETHEUS: &str = r#"{"metrics":{"protocol":"prometheus","endpoint":"127.0.0.1:0"}}"#;

/// The binary beating to `sink` with `args`, serving Prometheus text; the address it serves at.
pub fn serving_prometheus(sink: &Sink, args: &[&str]) -> (Running, String) {
    let running = Running::start(
        heartbeats_to(sink)
            .env("K_OBSERVABILITY_CONFIG", PROMETHEUS)
            .args(args),
    );
    let addr = metrics_address(&running);
    (running, addr)
}

/// One HTTP/1.1 request to `addr` (the scrape server); the status line and the body.
pub fn get(addr: &str, request_line: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the metrics listener");
    stream.set_read_timeout(Some(IO_LIMIT)).unwrap();
    stream.set_write_timeout(Some(IO_LIMIT)).unwrap();
    write!(
        stream,
        "{request_line}\r\nHost: {addr}\r\nAccept: */*\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// Runs `command` for one event (`ONE_SHOT=true`) to the end: the one-event fixture every test
/// file builds on.
pub fn one_shot(command: &mut Command) -> Finished {
    run(command.env("ONE_SHOT", "true"))
}

/// Runs to the end (within 30 s).
pub fn run(command: &mut Command) -> Finished {
    Running::start(command).finish(Duration::from_secs(30))
}

/// Days since the Unix epoch of a proleptic Gregorian date (H. Hinnant's `days_from_civil`),
/// for tests that check times without the crate's own calendar code.
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

/// Seconds and nanoseconds since the epoch of an RFC 3339 time in UTC (`Z`).
pub fn unix_time(text: &str) -> (u64, u32) {
    let (date, time) = text.trim_end_matches('Z').split_once('T').expect(text);
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<u64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
    let days = days_from_civil(d[0], d[1], d[2]);
    let secs = days as u64 * 86_400 + t[0] * 3600 + t[1] * 60 + t[2];
    let nanos = format!("{fraction:0<9}")[..9].parse().unwrap();
    (secs, nanos)
}

/// Go's `%q` text as the vector files use it: `\"`, `\\` and `\xNN`; other bytes raw.
pub fn go_unquote(quoted: &str) -> Vec<u8> {
    let inner = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"'));
    let mut bytes = inner.expect(quoted).bytes();
    let mut out = vec![];
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'x') => {
                let hex: Vec<u8> = bytes.by_ref().take(2).collect();
                let hex = std::str::from_utf8(&hex).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
            }
            Some(c @ (b'"' | b'\\')) => out.push(c),
            other => panic!("escape {other:?} in {quoted}"),
        }
    }
    out
}

/// A test CA, and certificates it signs (rcgen).
pub struct Pki {
    /// The CA's certificate, PEM.
    pub ca: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    pub fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap().pem();
        Pki {
            ca,
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `name` and its key, PEM.
    pub fn issue(&self, name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

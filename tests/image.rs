//! The shipped images, as exported by `just image-test`: each platform's root filesystem holds
//! only a static `/heartbeats`; the amd64 one runs as PID 1 of a new PID namespace, chrooted, as
//! user 65532, and every other one under qemu-user (Debian's qemu-user-static): one event
//! delivered and its bytes checked, SIGTERM honoured, and on s390x (big-endian) and ppc64le a
//! traced beat whose OTLP export is decoded. The receiver's images likewise hold only a static
//! `/heartbeats-receiver`, which takes a beat and exits with its verdict, as PID 1 on amd64 and
//! under qemu-user elsewhere. Ignored by a plain `cargo test` (it needs the exported roots, root
//! privileges and qemu); `just image-test` sets
//! HEARTBEATS_IMAGE_ROOT_{AMD64,ARM64,ARMV7,PPC64LE,S390X,RISCV64} and
//! HEARTBEATS_RECEIVER_ROOT_{...} and runs it.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;
use support::{Running, Sink, run};

/// Every platform's name in dist/ and its image root, and the qemu-user that runs it here.
const PLATFORMS: [(&str, Option<&str>); 6] = [
    ("amd64", None),
    ("arm64", Some("qemu-aarch64-static")),
    ("armv7", Some("qemu-arm-static")),
    ("ppc64le", Some("qemu-ppc64le-static")),
    ("s390x", Some("qemu-s390x-static")),
    ("riscv64", Some("qemu-riscv64-static")),
];

/// The most a binary may weigh (stripped, with its dependency list), on every platform: 1.75 MB,
/// plus what issues 31 (delivery options, 30 KB), 29 (the resolver as sure as Go's, 40 KB) and
/// 30 (OTLP over gRPC and its environment, 60 KB) allowed.
const SIZE_BUDGET: usize = 1_750_000 + 30_000 + 40_000 + 60_000;

fn root(arch: &str) -> PathBuf {
    image_root("HEARTBEATS_IMAGE_ROOT", arch)
}

fn receiver_root(arch: &str) -> PathBuf {
    image_root("HEARTBEATS_RECEIVER_ROOT", arch)
}

fn image_root(prefix: &str, arch: &str) -> PathBuf {
    let var = format!("{prefix}_{}", arch.to_uppercase());
    PathBuf::from(
        std::env::var_os(&var).unwrap_or_else(|| panic!("{var} is not set: run `just image-test`")),
    )
}

/// `/heartbeats` of the amd64 root as PID 1 of a new PID namespace, chrooted, as 65532:65532.
fn as_pid_1(sink: &Sink, args: &[&str]) -> Command {
    let mut command = Command::new("/usr/bin/unshare");
    command
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            "/usr/sbin/chroot",
            "--userspec=65532:65532",
        ])
        .arg(root("amd64"))
        .arg("/heartbeats")
        .args(args)
        .env_clear()
        .env("K_SINK", sink.url())
        .env("POD_NAME", "image-pod")
        .env("POD_NAMESPACE", "image-test")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// True for an ELF executable (32 or 64 bits, either byte order) with no program interpreter
/// (PT_INTERP): statically linked.
fn is_static_elf(bytes: &[u8]) -> bool {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || !matches!(bytes[4], 1 | 2) {
        return false;
    }
    let (wide, big) = (bytes[4] == 2, bytes[5] == 2);
    let uint = |at: usize, len: usize| {
        let field = &bytes[at..at + len];
        let fold = |n: u64, b: &u8| n << 8 | u64::from(*b);
        let n = if big {
            field.iter().fold(0, fold)
        } else {
            field.iter().rev().fold(0, fold)
        };
        n as usize
    };
    let (phoff, phentsize, phnum) = if wide {
        (uint(0x20, 8), uint(0x36, 2), uint(0x38, 2))
    } else {
        (uint(0x1c, 4), uint(0x2a, 2), uint(0x2c, 2))
    };
    (0..phnum).all(|i| uint(phoff + i * phentsize, 4) != 3)
}

#[test]
#[ignore = "needs the exported image: just image-test"]
fn each_image_holds_exactly_one_file_a_static_binary_with_its_dependency_list() {
    for (arch, _) in PLATFORMS {
        let root = root(arch);
        let receiver = only_file(&receiver_root(arch), "heartbeats-receiver");
        // The receiver is no bigger than the sender.
        assert!(
            receiver <= only_file(&root, "heartbeats"),
            "{arch}: the receiver is bigger"
        );
        println!("{arch}: /heartbeats-receiver is {receiver} bytes");
    }
}

/// Checks that `root` holds `name` and nothing else, a static binary with its dependency list
/// within the size budget; its size.
fn only_file(root: &std::path::Path, name: &str) -> usize {
    let arch = root.display();
    let mut entries = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            entries.push(path);
        }
    }
    assert_eq!(entries, [root.join(name)], "{arch}");
    let bytes = std::fs::read(root.join(name)).unwrap();
    assert!(is_static_elf(&bytes), "{arch}: not a static ELF");
    assert!(bytes.len() <= SIZE_BUDGET, "{arch}: {} bytes", bytes.len());
    // cargo auditable's section, named in the section-name table that strip keeps.
    assert!(
        bytes.windows(8).any(|w| w == b".dep-v0\0"),
        "{arch}: no .dep-v0 section (built without cargo auditable?)"
    );
    println!("{arch}: /{name} is {} bytes", bytes.len());
    bytes.len()
}

#[test]
#[ignore = "needs the exported image: just image-test"]
fn the_receiver_as_pid_1_takes_a_beat_and_exits_with_its_verdict() {
    let mut command = Command::new("/usr/bin/unshare");
    command
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            "/usr/sbin/chroot",
            "--userspec=65532:65532",
        ])
        .arg(receiver_root("amd64"))
        .args([
            "/heartbeats-receiver",
            "--listen",
            "127.0.0.1:0",
            "--expect",
            "1",
            "--within",
            "20s",
        ])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    receives_one_beat(support::Listening::start(&mut command), "amd64");
}

/// Sends one beat from the image's sender (amd64, or `arch`'s under qemu) to `receiver`, which
/// must take it and exit 0.
fn receives_one_beat(receiver: support::Listening, arch: &str) {
    let sink_url = receiver.url();
    let f = run(Command::new(root("amd64").join("heartbeats"))
        .env_clear()
        .env("K_SINK", &sink_url)
        .env("POD_NAME", "p")
        .env("POD_NAMESPACE", arch)
        .env("ONE_SHOT", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped()));
    assert_eq!(f.code(), Some(0), "{arch}: {}", f.stderr);
    let done = receiver.running.finish(Duration::from_secs(20));
    assert_eq!(done.code(), Some(0), "{arch}: {}", done.stderr);
    assert!(
        done.stdout.contains(&format!(
            "  source: https://knative.dev/eventing-contrib/cmd/heartbeats/#{arch}/p\n"
        )),
        "{arch}: {}",
        done.stdout
    );
}

#[test]
#[ignore = "needs the exported image: just image-test"]
fn every_other_platforms_receiver_takes_a_beat_under_qemu() {
    for (arch, qemu) in PLATFORMS {
        let Some(qemu) = qemu else { continue };
        let mut command = Command::new(qemu);
        command
            .arg(receiver_root(arch).join("heartbeats-receiver"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--expect",
                "1",
                "--within",
                "30s",
            ])
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        receives_one_beat(support::Listening::start(&mut command), arch);
    }
}

#[test]
#[ignore = "needs the exported image: just image-test"]
fn one_shot_from_pid_1_as_user_65532_delivers_an_intact_event() {
    let sink = Sink::start(vec![]);
    let f = run(as_pid_1(&sink, &["--label=image"]).env("ONE_SHOT", "true"));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    let r = sink.expect();
    assert_eq!(r.body_str(), r#"{"id":1,"label":"image"}"#);
    assert_eq!(
        r.header("ce-source"),
        "https://knative.dev/eventing-contrib/cmd/heartbeats/#image-test/image-pod"
    );
    assert_eq!(
        r.header("ce-type"),
        "dev.knative.eventing.samples.heartbeat"
    );
}

#[test]
#[ignore = "needs the exported image: just image-test"]
fn sigterm_to_pid_1_ends_the_loop_at_once_with_exit_0() {
    let sink = Sink::start(vec![]);
    let running = Running::start(&mut as_pid_1(&sink, &["--period=1h"]));
    sink.expect();
    // unshare forks once: its only child is the namespace's PID 1, which exec'd into heartbeats.
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", running.pid)).unwrap();
    let pid_1: i32 = children
        .split_whitespace()
        .next()
        .expect("unshare's child")
        .parse()
        .unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid_1}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .to_owned()
    };
    assert!(field("NSpid:").ends_with("\t1"), "{}", field("NSpid:"));
    assert!(
        field("Uid:").starts_with("Uid:\t65532"),
        "{}",
        field("Uid:")
    );
    assert_eq!(field("Threads:"), "Threads:\t1");
    let sent = Instant::now();
    // SAFETY: kill(2) on a live pid we just read from /proc; a stale pid fails the assert.
    assert_eq!(unsafe { libc::kill(pid_1, libc::SIGTERM) }, 0);
    let f = running.finish(Duration::from_secs(5));
    let took = sent.elapsed();
    println!("PID 1 exited {took:?} after SIGTERM");
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    assert!(took < Duration::from_millis(500), "{took:?}");
}

/// `arch`'s `/heartbeats` under its qemu-user, aimed at `sink`.
fn under_qemu(arch: &str, qemu: &str, sink: &Sink) -> Command {
    let mut command = Command::new(qemu);
    command
        .arg(root(arch).join("heartbeats"))
        .env_clear()
        .env("K_SINK", sink.url())
        .env("POD_NAME", "p")
        .env("POD_NAMESPACE", "n")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A lower-case UUID v4, as `ce-id` must be: a byte-order slip would show in the version nibble.
fn is_uuid_v4(id: &str) -> bool {
    let b = id.as_bytes();
    id.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
        && id
            .bytes()
            .all(|c| c == b'-' || c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

#[test]
#[ignore = "needs the exported image: just image-test"]
fn every_other_platform_delivers_an_intact_event_under_qemu_and_stops_on_sigterm() {
    for (arch, qemu) in PLATFORMS {
        let Some(qemu) = qemu else { continue };
        let sink = Sink::start(vec![]);
        let f = run(under_qemu(arch, qemu, &sink)
            .arg(format!("--msg={arch}"))
            .env("ONE_SHOT", "1"));
        assert_eq!(f.code(), Some(0), "{arch}: {}", f.stderr);
        let r = sink.expect();
        assert_eq!(
            r.body_str(),
            format!(r#"{{"id":1,"label":"","msg":"{arch}"}}"#)
        );
        assert!(
            is_uuid_v4(r.header("ce-id")),
            "{arch}: {}",
            r.header("ce-id")
        );
        assert_eq!(
            r.header("ce-source"),
            "https://knative.dev/eventing-contrib/cmd/heartbeats/#n/p"
        );
        assert_eq!(r.header("content-length"), r.body.len().to_string());

        let running = Running::start(under_qemu(arch, qemu, &sink).arg("--period=1h"));
        sink.expect();
        running.wait_until_sleeping();
        let sent = Instant::now();
        running.signal(libc::SIGTERM);
        let f = running.finish(Duration::from_secs(10));
        println!("{arch}: exited {:?} after SIGTERM", sent.elapsed());
        assert_eq!(f.code(), Some(0), "{arch}: {}", f.stderr);
        assert!(
            sent.elapsed() < Duration::from_secs(2),
            "{arch}: {:?}",
            sent.elapsed()
        );
    }
}

#[test]
#[ignore = "needs the exported image: just image-test"]
fn a_traced_beat_on_s390x_and_ppc64le_exports_spans_that_match_the_event() {
    for (arch, qemu) in [
        ("s390x", "qemu-s390x-static"),
        ("ppc64le", "qemu-ppc64le-static"),
    ] {
        let sink = Sink::start(vec![]);
        let collector = Sink::start(vec![]);
        let config = format!(
            r#"{{"tracing":{{"protocol":"http/protobuf","endpoint":"http://127.0.0.1:{}","samplingRate":1}}}}"#,
            collector.port
        );
        let f = run(under_qemu(arch, qemu, &sink)
            .env("ONE_SHOT", "1")
            .env("K_OBSERVABILITY_CONFIG", config));
        assert_eq!(f.code(), Some(0), "{arch}: {}", f.stderr);
        let event = sink.expect();
        let traceparent = event.header("traceparent").to_owned();
        let parts: Vec<&str> = traceparent.split('-').collect();
        let export = collector.expect();
        assert_eq!(export.path, "/v1/traces", "{arch}");
        let export = ExportTraceServiceRequest::decode(&export.body[..]).expect("OTLP traces");
        let spans: Vec<_> = export
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .collect();
        assert_eq!(
            spans.len(),
            2,
            "{arch}: a span for the event and one for its attempt"
        );
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let attempt = spans
            .iter()
            .find(|s| hex(&s.span_id) == parts[2])
            .expect("the attempt");
        assert_eq!(hex(&attempt.trace_id), parts[1], "{arch}");
        let parent = spans
            .iter()
            .find(|s| s.span_id == attempt.parent_span_id)
            .expect("its parent");
        let id = parent
            .attributes
            .iter()
            .find(|kv| kv.key == "cloudevents.event_id");
        let id = id.and_then(|kv| kv.value.as_ref()?.value.as_ref());
        assert_eq!(
            id,
            Some(&any_value::Value::StringValue(
                event.header("ce-id").to_owned()
            )),
            "{arch}"
        );
        assert!(
            attempt.start_time_unix_nano >= parent.start_time_unix_nano,
            "{arch}"
        );
        assert!(
            attempt.end_time_unix_nano <= parent.end_time_unix_nano,
            "{arch}"
        );
        // Nanoseconds since the epoch, this year: a swapped byte order would be far off.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let age = now
            .as_nanos()
            .abs_diff(u128::from(parent.start_time_unix_nano));
        assert!(
            age < 60_000_000_000,
            "{arch}: start {}",
            parent.start_time_unix_nano
        );
    }
}

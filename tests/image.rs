//! The shipped image, as exported by `just image-test`: its root filesystem holds only a static
//! `/heartbeats`, which runs as PID 1 of a new PID namespace, chrooted, as user 65532, and the
//! arm64 one under qemu. Ignored by a plain `cargo test` (it needs the exported roots, root
//! privileges and qemu); `just image-test` sets HEARTBEATS_IMAGE_ROOT_{AMD64,ARM64} and runs it.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Running, Sink, run};

fn root(arch: &str) -> PathBuf {
    let var = format!("HEARTBEATS_IMAGE_ROOT_{}", arch.to_uppercase());
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

/// True for an ELF executable with no program interpreter (PT_INTERP): statically linked.
fn is_static_elf(bytes: &[u8]) -> bool {
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 {
        return false;
    }
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum)
        .all(|i| u32::from_le_bytes(bytes[phoff + i * phentsize..][..4].try_into().unwrap()) != 3)
}

#[test]
#[ignore = "needs the exported image: just image-test"]
fn each_image_holds_exactly_one_file_a_static_binary_with_its_dependency_list() {
    for arch in ["amd64", "arm64"] {
        let root = root(arch);
        let mut entries = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path.clone());
                }
                entries.push(path);
            }
        }
        assert_eq!(entries, [root.join("heartbeats")], "{arch}");
        let bytes = std::fs::read(root.join("heartbeats")).unwrap();
        assert!(is_static_elf(&bytes), "{arch}: not a static ELF");
        assert!(bytes.len() <= 1_600_000, "{arch}: {} bytes", bytes.len());
        // cargo auditable's section, named in the section-name table that strip keeps.
        assert!(
            bytes.windows(8).any(|w| w == b".dep-v0\0"),
            "{arch}: no .dep-v0 section (built without cargo auditable?)"
        );
        println!("{arch}: /heartbeats is {} bytes", bytes.len());
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

#[test]
#[ignore = "needs the exported image: just image-test"]
fn the_arm64_binary_delivers_under_qemu() {
    let sink = Sink::start(vec![]);
    let f = run(Command::new("qemu-aarch64-static")
        .arg(root("arm64").join("heartbeats"))
        .arg("--msg=arm64")
        .env_clear()
        .env("K_SINK", sink.url())
        .env("ONE_SHOT", "1")
        .env("POD_NAME", "p")
        .env("POD_NAMESPACE", "n")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped()));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    assert_eq!(
        sink.expect().body_str(),
        r#"{"id":1,"label":"","msg":"arm64"}"#
    );
}

//! Hostile input, table-driven: every flag and variable with empty, blank, huge, non-UTF-8,
//! control-character and header-injection values. Each run either exits 1 with one line naming
//! the input, having sent nothing, or delivers a request in which nothing was injected and the
//! value survived (percent-encoded where the header encoding says); the table says which of the
//! two each input and value must give. Nothing panics.

mod support;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::time::Duration;

use support::{Sink, TempDir, heartbeats, heartbeats_to, run};

const INJECTION: &str = "a\r\nX-Injected: 1";

/// The hostile values. Exec limits one argument or variable to 128 KiB, so "huge" is 100 KiB
/// here; the token file below is 1 MiB.
fn values() -> Vec<(&'static str, OsString)> {
    vec![
        ("empty", OsString::new()),
        ("blank", OsString::from(" \t ")),
        ("huge", OsString::from("x".repeat(100 * 1024))),
        (
            "non-UTF-8",
            OsString::from_vec(vec![b'a', 0xff, 0xfe, b'z']),
        ),
        ("control", OsString::from("a\u{1}\u{7f}\u{1b}[31mz")),
        ("injection", OsString::from(INJECTION)),
    ]
}

/// How one hostile input may legitimately be sent: where its value must show up.
#[derive(Clone, Copy)]
enum Lands {
    /// In this header (percent-encoded by compat mode where needed).
    Header(&'static str),
    /// In this field of the JSON body.
    Body(&'static str),
    /// Nowhere visible (a path, a number, a setting).
    Nowhere,
}

/// Every input: how to set it, where its value lands when accepted, and which of the values
/// of [`values`] it refuses, in their order: `1` refused (exit 1), `0` sent.
fn inputs() -> Vec<(&'static str, Lands, &'static str)> {
    vec![
        ("--sink", Lands::Nowhere, "000100"),
        ("--eventSource", Lands::Header("ce-source"), "001100"),
        ("--eventType", Lands::Header("ce-type"), "111100"),
        ("--label", Lands::Body("label"), "000100"),
        ("--msg", Lands::Body("msg"), "000100"),
        ("--period", Lands::Nowhere, "011111"),
        ("--timeout", Lands::Nowhere, "011111"),
        ("--count", Lands::Nowhere, "111111"),
        ("--cacerts", Lands::Nowhere, "000100"),
        ("--oidc-token-file", Lands::Nowhere, "000100"),
        ("--ce-header-encoding", Lands::Nowhere, "111111"),
        ("K_SINK", Lands::Nowhere, "011111"),
        ("K_CE_OVERRIDES", Lands::Nowhere, "001111"),
        ("override name", Lands::Nowhere, "111111"),
        ("override value", Lands::Header("ce-hostile"), "001000"),
        ("K_CA_CERTS", Lands::Nowhere, "000100"),
        ("K_SINK_TIMEOUT", Lands::Nowhere, "011111"),
        ("POD_NAME", Lands::Nowhere, "101100"),
        ("POD_NAMESPACE", Lands::Nowhere, "101100"),
        ("ONE_SHOT", Lands::Nowhere, "011111"),
        // Read only for an https sink: for this http one every value is a warning (tls.rs has
        // the https refusals).
        ("TLS_MIN_VERSION", Lands::Nowhere, "000000"),
    ]
}

fn json_string(value: &OsString) -> String {
    serde_json::to_string(&value.to_string_lossy()).unwrap()
}

#[test]
fn every_input_with_every_hostile_value_is_refused_by_name_or_sent_intact() {
    for (input, lands, refuses) in inputs() {
        for ((kind, value), refused) in values().into_iter().zip(refuses.bytes()) {
            let sink = Sink::start(vec![]);
            let mut command = heartbeats();
            command.env("K_SINK", sink.url()).arg("--timeout=2s");
            // One event, whichever input is under test (an empty ONE_SHOT means false).
            if input != "--count" {
                command.arg("--count=1");
            } else {
                command.env("ONE_SHOT", "true");
            }
            match input {
                flag if flag.starts_with("--") => {
                    let mut arg = OsString::from(format!("{flag}="));
                    arg.push(&value);
                    command.arg(arg);
                }
                "override name" => {
                    command.env(
                        "K_CE_OVERRIDES",
                        format!(r#"{{"extensions":{{{}:"x"}}}}"#, json_string(&value)),
                    );
                }
                "override value" => {
                    command.env(
                        "K_CE_OVERRIDES",
                        format!(r#"{{"extensions":{{"hostile":{}}}}}"#, json_string(&value)),
                    );
                }
                "K_SINK" if value.is_empty() => {
                    command
                        .env("K_SINK", "")
                        .arg(format!("--sink={}", sink.url()));
                }
                variable => {
                    command.env(variable, &value);
                }
            }
            let f = run(&mut command);
            let what = format!(
                "{input} = {kind}: exit {:?}, stderr {}",
                f.code(),
                &f.stderr[..f.stderr.len().min(600)]
            );
            assert!(matches!(f.code(), Some(0..=3)), "crashed: {what}");
            let expected = if refused == b'1' { 1 } else { 0 };
            assert_eq!(f.code(), Some(expected), "{what}");
            let request = sink.next(Duration::from_millis(if f.code() == Some(1) {
                20
            } else {
                2000
            }));
            if f.code() == Some(1) {
                assert_eq!(f.stderr.lines().count(), 1, "{what}");
                let named = if input.starts_with("override") {
                    "K_CE_OVERRIDES"
                } else {
                    input
                };
                assert!(
                    f.stderr.contains(named) || f.stderr.contains("no sink"),
                    "does not name it: {what}"
                );
                assert!(request.is_none(), "refused yet sent: {what}");
                continue;
            }
            let request = request.unwrap_or_else(|| panic!("accepted but nothing sent: {what}"));
            assert!(!request.has_header("x-injected"), "{what}");
            let text = value.to_string_lossy();
            match lands {
                // An empty value means "not set": the default is sent, as in Go.
                _ if value.is_empty() => {}
                Lands::Header(name) => {
                    let sent = request.header(name);
                    let expected = if name == "ce-type" {
                        text.trim()
                    } else {
                        &text
                    };
                    // An independent decoder: the percent-encoding crate.
                    let decoded: Vec<u8> = percent_encoding::percent_decode_str(sent).collect();
                    assert_eq!(decoded, expected.as_bytes(), "{what}");
                }
                Lands::Body(field) => {
                    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
                    let sent = body[field].as_str().unwrap_or("");
                    assert_eq!(sent, text, "{what}");
                }
                Lands::Nowhere => {}
            }
        }
    }
}

#[test]
fn hostile_token_files_never_inject_nor_leak() {
    let dir = TempDir::new("hostile-token");
    let path = dir.join("token");
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("huge", b"s3cr3t".repeat(1 << 18), false),
        ("non-UTF-8", b"s3cr3t\xff".to_vec(), false),
        ("control", b"s3cr3t\x01".to_vec(), false),
        (
            "injection",
            format!("s3cr3t{INJECTION}").into_bytes(),
            false,
        ),
        ("blank", b" \n\t ".to_vec(), true),
    ];
    for (kind, content, sendable) in cases {
        std::fs::write(&path, &content).unwrap();
        let sink = Sink::start(vec![]);
        let f = run(heartbeats_to(&sink)
            .env("ONE_SHOT", "1")
            .arg(format!("--oidc-token-file={}", path.display())));
        assert!(matches!(f.code(), Some(0 | 3)), "{kind}: {}", f.stderr);
        assert!(
            !f.stderr.contains("s3cr3t"),
            "{kind}: token leaked: {}",
            f.stderr
        );
        let request = sink.next(Duration::from_millis(500));
        if sendable {
            let request = request.unwrap_or_else(|| panic!("{kind}: nothing sent"));
            assert!(!request.has_header("x-injected"));
        } else {
            assert!(
                request.is_none(),
                "{kind}: sent with a token a header cannot carry"
            );
            assert!(f.stderr.contains("OIDC token in"), "{kind}: {}", f.stderr);
        }
    }
}

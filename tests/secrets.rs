//! No password of a URL from configuration reaches the log, whole or in part, even one holding
//! `/`, `?` or `#` (as base64 tokens do), where a URL parser ends the userinfo early: in
//! `K_SINK`, `HTTP_PROXY`/`HTTPS_PROXY`, an OTLP endpoint in `K_OBSERVABILITY_CONFIG`, and the
//! `OTEL_EXPORTER_OTLP_*ENDPOINT` variables.

mod support;

use support::dns::{Behaviour, FakeDns};
use support::*;

/// A password with what ends a userinfo for a parser; its pieces must never be logged.
const PASSWORD: &str = "hunter2/zzz?qqq#www";
const PIECES: [&str; 4] = ["hunter2", "zzz", "qqq", "www"];

#[track_caller]
fn assert_hidden(f: &Finished) {
    for piece in PIECES {
        assert!(
            !f.stderr.contains(piece) && !f.stdout.contains(piece),
            "{piece:?} logged:\n{}",
            f.stderr
        );
    }
}

#[test]
fn a_sink_password_is_never_logged_whatever_the_url_parser_makes_of_it() {
    // The parser reads `user` as the host and `hunter2` as its port: refused, not quoted.
    let f = one_shot(heartbeats().env("K_SINK", format!("http://user:{PASSWORD}@127.0.0.1:9/")));
    assert_eq!(f.code(), Some(1), "{}", f.stderr);
    f.assert_logged("invalid K_SINK \"http://***@127.0.0.1:9/\"");
    assert_hidden(&f);
    // Here it reads host `user`, port 1, and the rest as the path: the start-up line and the
    // failure never show it.
    let dns = FakeDns::start(Behaviour::default());
    let mut command = heartbeats();
    dns.configure(&mut command, "");
    let running = Running::start(
        command
            .env("K_SINK", "http://user:1/zzz?qqq#www@127.0.0.1:9/")
            .args(["--period=100ms", "--timeout=200ms"]),
    );
    running.line_containing("event 1 id");
    running.signal(libc::SIGTERM);
    let f = running.finish(std::time::Duration::from_secs(5));
    f.assert_logged("sink=http://***@127.0.0.1:9/");
    assert_hidden(&f);
}

#[test]
fn a_proxy_password_is_never_logged() {
    for (variable, sink) in [
        ("HTTP_PROXY", "http://10.0.0.1/"),
        ("HTTPS_PROXY", "https://10.0.0.1/"),
        ("http_proxy", "http://10.0.0.1/"),
    ] {
        let f = one_shot(
            heartbeats()
                .env("K_SINK", sink)
                .env(variable, format!("http://user:{PASSWORD}@127.0.0.1:3128")),
        );
        assert_eq!(f.code(), Some(1), "{variable}: {}", f.stderr);
        f.assert_logged(&format!("invalid {variable} \"http://***@127.0.0.1:3128\""));
        assert_hidden(&f);
    }
}

#[test]
fn an_otlp_endpoint_password_is_never_logged() {
    let sink = Sink::start(vec![]);
    // Nothing listens on port 9: every export fails, and says so.
    let endpoint = format!("http://user:{PASSWORD}@127.0.0.1:9");
    let in_config = format!(
        r#"{{"metrics":{{"protocol":"http/protobuf","endpoint":"{endpoint}"}},
            "tracing":{{"protocol":"http/protobuf","endpoint":"{endpoint}","samplingRate":1}}}}"#
    );
    let otel_config = r#"{"metrics":{"protocol":"http/protobuf"},
        "tracing":{"protocol":"http/protobuf","samplingRate":1}}"#;
    let cases = [
        vec![("K_OBSERVABILITY_CONFIG", in_config.clone())],
        vec![
            ("K_OBSERVABILITY_CONFIG", otel_config.to_owned()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()),
        ],
        vec![
            ("K_OBSERVABILITY_CONFIG", otel_config.to_owned()),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint.clone()),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", endpoint.clone()),
        ],
    ];
    for vars in cases {
        let mut command = heartbeats_to(&sink);
        for (name, value) in &vars {
            command.env(name, value);
        }
        let f = one_shot(&mut command);
        assert_eq!(f.code(), Some(0), "{vars:?}: {}", f.stderr);
        f.assert_logged("OTLP to http://***@127.0.0.1:9");
        f.assert_logged("exporting");
        assert_hidden(&f);
    }
}

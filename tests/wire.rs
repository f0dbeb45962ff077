//! What reaches the sink: the event's headers and body, byte for byte, for each flag and variable.

mod support;

use support::{Request, Sink, TempDir, heartbeats, heartbeats_to, run};

fn one_event(args: &[&str], env: &[(&str, &str)]) -> (Request, support::Finished) {
    let sink = Sink::start(vec![]);
    let finished = support::one_shot(heartbeats_to(&sink).args(args).envs(env.iter().copied()));
    let request = sink.expect();
    assert!(sink.drain().is_empty(), "exactly one request");
    (request, finished)
}

fn is_uuid_v4(s: &str) -> bool {
    let hex = |r: std::ops::Range<usize>| {
        s[r].bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    s.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| &s[i..=i] == "-")
        && hex(0..8)
        && hex(9..13)
        && hex(14..18)
        && hex(19..23)
        && hex(24..36)
        && &s[14..15] == "4"
        && matches!(&s[19..20], "8" | "9" | "a" | "b")
}

fn is_rfc3339_utc(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() >= 20 && b[4] == b'-' && b[10] == b'T' && s.ends_with('Z') && !s.ends_with("0Z")
}

#[test]
fn default_event_carries_every_header_once_in_a_fixed_order() {
    let (r, finished) = one_event(&["--label=hello"], &[]);
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/"));
    let names: Vec<String> = r
        .headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    let ce: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| n.starts_with("ce-") || *n == "content-type")
        .collect();
    assert_eq!(
        ce,
        [
            "ce-specversion",
            "ce-id",
            "ce-time",
            "ce-source",
            "ce-type",
            "ce-the",
            "ce-heart",
            "ce-beats",
            "content-type"
        ]
    );
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "duplicate headers: {names:?}");
    assert_eq!(r.header("ce-specversion"), "1.0");
    assert!(is_uuid_v4(r.header("ce-id")), "{}", r.header("ce-id"));
    assert!(
        is_rfc3339_utc(r.header("ce-time")),
        "{}",
        r.header("ce-time")
    );
    assert_eq!(
        r.header("ce-source"),
        "https://knative.dev/eventing-contrib/cmd/heartbeats/#event-test/example-pod"
    );
    assert_eq!(
        r.header("ce-type"),
        "dev.knative.eventing.samples.heartbeat"
    );
    assert_eq!(
        (
            r.header("ce-the"),
            r.header("ce-heart"),
            r.header("ce-beats")
        ),
        ("42", "yes", "true")
    );
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.header("content-length"), "24");
    assert!(!r.has_header("ce-datacontenttype"));
    assert!(!r.has_header("authorization"));
    assert_eq!(r.body_str(), r#"{"id":1,"label":"hello"}"#);
}

/// One request of `tests/vectors/go-requests.txt` (the Go image's, captured raw): its request
/// line, its headers as (lower-case name, value) and its body.
fn go_request(number: usize) -> (String, Vec<(String, String)>, String) {
    let capture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/go-requests.txt"
    ))
    .expect("tests/vectors/go-requests.txt");
    let text = capture
        .split(&format!("# {number})"))
        .nth(1)
        .expect("that capture");
    let mut lines = text.lines().skip_while(|l| !l.starts_with("POST "));
    let request_line = lines.next().expect("a request line").to_owned();
    let headers = lines
        .by_ref()
        .take_while(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(": ").expect("name: value");
            (n.to_ascii_lowercase(), v.to_owned())
        })
        .collect();
    let body = lines.next().expect("a body").to_owned();
    (request_line, headers, body)
}

/// Issue 33: our whole request against the Go image's, captured with the same flags and
/// variables. Header order and the case of names carry no meaning in HTTP; everything else must
/// be the same bytes, but for the fields that must differ: the sink's port in `host`, the
/// client in `user-agent`, the event's own `ce-id` and `ce-time`, and what each client says it
/// takes (`accept-encoding: gzip` from Go, `accept: */*` from ureq).
#[test]
fn a_whole_request_is_the_go_images_but_for_the_fields_that_must_differ() {
    type Case<'a> = (usize, &'a [&'a str], &'a [(&'a str, &'a str)]);
    let cases: [Case; 2] = [
        (
            1,
            &["--label=hello", "--msg=hi"],
            &[(
                "K_CE_OVERRIDES",
                r#"{"extensions":{"heart":"no","extra":"with space \"quote\" 100% ünï"}}"#,
            )],
        ),
        (2, &["--label=hello"], &[]),
    ];
    for (number, args, env) in cases {
        let (go_line, go_headers, go_body) = go_request(number);
        let (r, f) = one_event(args, env);
        assert_eq!(f.code(), Some(0), "{}", f.stderr);
        assert_eq!(format!("{} {} HTTP/1.1", r.method, r.path), go_line);
        let differ = [
            "host",
            "user-agent",
            "ce-id",
            "ce-time",
            "accept-encoding",
            "accept",
        ];
        let kept = |headers: &[(String, String)]| {
            let mut kept: Vec<(String, String)> = headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
                .filter(|(n, _)| !differ.contains(&n.as_str()))
                .collect();
            kept.sort();
            kept
        };
        assert_eq!(kept(&r.headers), kept(&go_headers), "capture {number}");
        assert_eq!(r.body_str(), go_body, "capture {number}");
        // The fields that differ are there, with the values they must have.
        assert!(r.header("host").starts_with("127.0.0.1:"));
        assert!(r.header("user-agent").starts_with("heartbeats/"));
        assert!(is_uuid_v4(r.header("ce-id")));
        assert!(is_rfc3339_utc(r.header("ce-time")));
        assert_eq!(r.header("accept"), "*/*");
        assert!(!r.has_header("accept-encoding"));
    }
}

/// The test sink reads requests as strictly as a careful server: what it refuses, a test sees.
#[test]
fn the_test_sink_refuses_a_request_a_strict_server_would() {
    use std::io::Write;
    let cases: [(&[u8], &str); 5] = [
        (
            b"POST / HTTP/1.1\nhost: x\ncontent-length: 0\n\n",
            "bare LF",
        ),
        (
            b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
            "transfer-encoding",
        ),
        (b"POST / HTTP/1.1\r\nhost:x\r\n\r\n", "not `name: value`"),
        (
            b"POST / HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 1\r\n\r\nx",
            "content-length",
        ),
        (b"POST / HTTP/1.1\r\nbad header\r\n\r\n", "httparse refused"),
    ];
    for (bytes, problem) in cases {
        let sink = Sink::start(vec![]);
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", sink.port)).unwrap();
        stream.write_all(bytes).unwrap();
        let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink.expect()));
        let message = refused.expect_err("refused").downcast::<String>().unwrap();
        assert!(message.contains(problem), "{problem}: {message}");
    }
}

#[test]
fn every_flag_reaches_the_wire() {
    let (r, f) = one_event(
        &[
            "-eventSource",
            "urn:src",
            "--eventType= my.type ",
            r#"-label="tab\there \u00e9""#,
            "--msg=hi there",
        ],
        &[],
    );
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    assert_eq!(r.header("ce-source"), "urn:src");
    assert_eq!(r.header("ce-type"), "my.type");
    assert_eq!(
        r.body_str(),
        "{\"id\":1,\"label\":\"tab\\there é\",\"msg\":\"hi there\"}"
    );
}

#[test]
fn an_unparsable_quoted_label_is_sent_raw_with_a_warning() {
    let (r, f) = one_event(&[r#"--label="oops"#], &[]);
    assert_eq!(r.body_str(), r#"{"id":1,"label":"\"oops"}"#);
    f.assert_logged("not a valid Go string literal");
}

#[test]
fn k_sink_wins_over_the_sink_flag() {
    let decoy = Sink::start(vec![]);
    let (r, _) = one_event(&["--sink", &decoy.url()], &[]);
    assert_eq!(r.method, "POST");
    assert!(decoy.drain().is_empty());
}

#[test]
fn the_sink_flag_is_used_when_k_sink_is_empty() {
    let sink = Sink::start(vec![]);
    let f = run(heartbeats()
        .env("K_SINK", "")
        .env("ONE_SHOT", "1")
        .arg(format!("-sink={}x/y?z=1", sink.url())));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    assert_eq!(sink.expect().path, "/x/y?z=1");
}

#[test]
fn overrides_replace_heart_and_add_extensions_sent_raw_in_compat_mode() {
    let overrides = r#"{"extensions":{"heart":"no","wow":"so extended","extra":"with space \"quote\" 100% ünï"}}"#;
    let (r, f) = one_event(&[], &[("K_CE_OVERRIDES", overrides)]);
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    assert_eq!(r.header("ce-heart"), "no");
    assert_eq!(r.header("ce-wow"), "so extended");
    // As the Go image sent it (tests/vectors/go-requests.txt, capture 1).
    assert_eq!(r.header("ce-extra"), "with space \"quote\" 100% ünï");
}

#[test]
fn percent_mode_encodes_as_the_cloudevents_http_binding_says() {
    let overrides = r#"{"extensions":{"wow":"so extended","extra":"100% ünï"}}"#;
    let (r, _) = one_event(
        &["--ce-header-encoding=percent", "--eventSource=a b"],
        &[("K_CE_OVERRIDES", overrides)],
    );
    assert_eq!(r.header("ce-wow"), "so%20extended");
    assert_eq!(r.header("ce-extra"), "100%25%20%C3%BCn%C3%AF");
    assert_eq!(r.header("ce-source"), "a%20b");
}

#[test]
fn crlf_in_any_value_never_reaches_the_wire_raw() {
    let evil = "x\r\nX-Injected: 1";
    let overrides = format!(
        r#"{{"extensions":{{"evil":{}}}}}"#,
        serde_json::to_string(evil).unwrap()
    );
    for encoding in ["compat", "percent"] {
        let (r, f) = one_event(
            &[
                &format!("--ce-header-encoding={encoding}"),
                &format!("--eventSource={evil}"),
                &format!("--eventType={evil}"),
                &format!("--label={evil}"),
                &format!("--msg={evil}"),
            ],
            &[("K_CE_OVERRIDES", &overrides)],
        );
        assert_eq!(f.code(), Some(0), "{}", f.stderr);
        assert!(!r.has_header("x-injected"), "{encoding}: {:?}", r.headers);
        assert!(
            r.header("ce-source").starts_with("x%0D%0AX-Injected"),
            "{}",
            r.header("ce-source")
        );
        assert!(r.header("ce-evil").starts_with("x%0D%0AX-Injected"));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            (body["label"].as_str(), body["msg"].as_str()),
            (Some(evil), Some(evil))
        );
    }
}

#[test]
fn a_token_file_adds_one_authorization_header_trimmed() {
    let dir = TempDir::new("wire-token");
    let token = dir.join("token");
    std::fs::write(&token, "  eyJ.abc.def \n").unwrap();
    let (r, _) = one_event(&[&format!("--oidc-token-file={}", token.display())], &[]);
    assert_eq!(r.header("authorization"), "Bearer eyJ.abc.def");
    assert_eq!(r.header("ce-id").len(), 36, "ce headers still once each");
}

#[test]
fn the_token_file_is_re_read_before_each_send() {
    let dir = TempDir::new("wire-rotate");
    let token = dir.join("token");
    std::fs::write(&token, "first\n").unwrap();
    let sink = Sink::start(vec![]);
    let running = support::Running::start(heartbeats_to(&sink).args([
        "--period=150ms",
        "--count=4",
        &format!("--oidc-token-file={}", token.display()),
    ]));
    assert_eq!(sink.expect().header("authorization"), "Bearer first");
    std::fs::write(&token, "second").unwrap();
    assert_eq!(sink.expect().header("authorization"), "Bearer second");
    std::fs::write(&token, "").unwrap();
    assert!(!sink.expect().has_header("authorization"));
    std::fs::remove_file(&token).unwrap();
    assert!(!sink.expect().has_header("authorization"));
    let f = running.finish(std::time::Duration::from_secs(5));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    // Once per change: sent (beats 1 and 2), then gone (emptied, then deleted).
    assert_eq!(
        f.stderr.matches("OIDC token: sending").count(),
        1,
        "{}",
        f.stderr
    );
    let gone = "no OIDC token sent: ";
    assert_eq!(f.stderr.matches(gone).count(), 1, "{}", f.stderr);
    f.assert_logged("token does not exist or is empty");
}

#[test]
fn a_token_with_a_line_break_is_never_sent_nor_logged() {
    let dir = TempDir::new("wire-evil-token");
    let token = dir.join("token");
    std::fs::write(&token, "secret\r\nX-Injected: 1").unwrap();
    let sink = Sink::start(vec![]);
    let f = run(heartbeats_to(&sink)
        .env("ONE_SHOT", "1")
        .arg(format!("--oidc-token-file={}", token.display())));
    assert_eq!(f.code(), Some(3), "{}", f.stderr);
    assert!(sink.next(std::time::Duration::from_millis(50)).is_none());
    f.assert_logged("holds characters a header cannot carry");
    assert!(!f.stderr.contains("secret"), "{}", f.stderr);
}

#[test]
fn sink_userinfo_is_sent_as_basic_auth_percent_decoded_as_go_does() {
    let sink = Sink::start(vec![]);
    let url = format!("http://al%40ce:p%23ss@127.0.0.1:{}/", sink.port);
    let f = run(heartbeats().env("K_SINK", &url).env("ONE_SHOT", "true"));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    // base64("al@ce:p#ss"): the decoded bytes, as Go's net/http sends them.
    assert_eq!(
        sink.expect().header("authorization"),
        "Basic YWxAY2U6cCNzcw=="
    );
    assert!(
        !f.stderr.contains("p%23ss") && !f.stderr.contains("al%40ce"),
        "{}",
        f.stderr
    );
    f.assert_logged(&format!("sink=http://***@127.0.0.1:{}/", sink.port));
}

#[test]
fn an_oidc_token_takes_the_place_of_the_sink_userinfo() {
    let dir = TempDir::new("wire-token-basic");
    let token = dir.join("token");
    std::fs::write(&token, "eyJ.abc.def").unwrap();
    let sink = Sink::start(vec![]);
    let url = format!("http://user:pass@127.0.0.1:{}/", sink.port);
    let f = run(heartbeats()
        .env("K_SINK", &url)
        .env("ONE_SHOT", "true")
        .arg(format!("--oidc-token-file={}", token.display())));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    assert_eq!(sink.expect().header("authorization"), "Bearer eyJ.abc.def");
}

#[test]
fn numeric_override_values_are_sent_as_their_literal_json_text() {
    let overrides = r#"{"extensions":{"price":12.50,"big":12345678901234567890123,"ok":true}}"#;
    let (r, f) = one_event(&[], &[("K_CE_OVERRIDES", overrides)]);
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    assert_eq!(r.header("ce-price"), "12.50");
    assert_eq!(r.header("ce-big"), "12345678901234567890123");
    assert_eq!(r.header("ce-ok"), "true");
}

#[test]
fn a_token_path_that_is_a_fifo_or_a_directory_sends_without_a_token_and_says_so_once() {
    let dir = TempDir::new("wire-fifo");
    let fifo = dir.join("fifo");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a NUL-terminated path that lives across the call.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    for (token, why) in [
        (&fifo, "is not a regular file"),
        (&dir.path().to_path_buf(), "is a directory, not a file"),
    ] {
        let sink = Sink::start(vec![]);
        // A FIFO with no writer used to block the open forever: the run would never end.
        let f = support::Running::start(heartbeats_to(&sink).args([
            "--period=10ms",
            "--count=3",
            &format!("--oidc-token-file={}", token.display()),
        ]))
        .finish(std::time::Duration::from_secs(10));
        assert_eq!(f.code(), Some(0), "{}", f.stderr);
        for _ in 0..3 {
            assert!(!sink.expect().has_header("authorization"));
        }
        let said = format!("no OIDC token sent: {} {why}", token.display());
        assert_eq!(f.stderr.matches(&said).count(), 1, "{}", f.stderr);
    }
}

#[test]
fn overrides_named_like_core_attributes_are_ignored_and_the_rest_sent() {
    let overrides = r#"{"extensions":{"type":"x","Cluster":"edge","id":"1"}}"#;
    let (r, f) = one_event(&[], &[("K_CE_OVERRIDES", overrides)]);
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    assert_eq!(r.header("ce-cluster"), "edge");
    assert_eq!(
        r.header("ce-type"),
        "dev.knative.eventing.samples.heartbeat"
    );
    assert_eq!(r.header("ce-id").len(), 36);
    f.assert_logged("extension \"type\" ignored: a core CloudEvents attribute cannot be an extension; set it with --eventType");
    assert_eq!(
        f.stderr
            .matches("warning: K_CE_OVERRIDES extension")
            .count(),
        2
    );
}

#[test]
fn unusable_ca_material_is_only_a_warning_for_an_http_sink() {
    let (r, f) = one_event(&[], &[("K_CA_CERTS", "not a certificate")]);
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    assert_eq!(r.header("ce-specversion"), "1.0");
    f.assert_logged(
        "warning: invalid K_CA_CERTS: no PEM certificate found; ignored, since the sink is plain http",
    );
}

/// The longest lines and the largest body a request can have, on connections whose buffers
/// start small: a 16 KiB token, a 4 KiB source percent-encoded to 12 KiB, the largest body one
/// argument can carry (Linux limits an argument to 128 KiB, below the 256 KiB cap); twice on one
/// connection (the second after the buffers gave back what they grew by), over http and https;
/// then an answer head of 127 KiB is still read.
#[test]
fn the_longest_lines_and_the_largest_body_go_out_whole_over_http_and_https() {
    let dir = TempDir::new("wire-longest");
    let token_path = dir.join("token");
    let token = "t".repeat(16 * 1024);
    std::fs::write(&token_path, &token).unwrap();
    let body: Vec<u8> = (0..128 * 1024 - 16)
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    let data = String::from_utf8(body.clone()).unwrap();
    let source = " ".repeat(4 * 1024);
    let (ca, server) = support::tls_pair("127.0.0.1");
    for tls in [None, Some(server)] {
        let https = tls.is_some();
        let sink = Sink::start_with(vec![], tls);
        let scheme = if https { "https" } else { "http" };
        let f = run(heartbeats()
            .env("K_SINK", format!("{scheme}://127.0.0.1:{}/", sink.port))
            .env("K_CA_CERTS", &ca)
            .args(["--count=2", "--period=50ms", "--ce-header-encoding=percent"])
            .arg(format!("--oidc-token-file={}", token_path.display()))
            .arg(format!("--eventSource={source}"))
            .arg(format!("--data={data}")));
        assert_eq!(f.code(), Some(0), "{scheme}: {}", f.stderr);
        for _ in 0..2 {
            let r = sink.expect();
            assert_eq!(r.body, body, "{scheme}");
            assert_eq!(
                r.header("authorization"),
                format!("Bearer {token}"),
                "{scheme}"
            );
            assert_eq!(r.header("ce-source"), "%20".repeat(4 * 1024), "{scheme}");
        }
        assert_eq!(
            sink.connections.load(std::sync::atomic::Ordering::SeqCst),
            1
        );
    }
    let head = format!(
        "HTTP/1.1 200 OK\r\nx-big: {}\r\ncontent-length: 0\r\n\r\n",
        "b".repeat(127 * 1024)
    );
    let sink = Sink::start(vec![support::Reply::Raw(head.into_bytes(), 4096)]);
    let f = support::one_shot(&mut heartbeats_to(&sink));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    assert!(!f.stderr.contains("warning"), "{}", f.stderr);
}

/// The size limits the README promises, at their boundaries: an extension name of 128
/// characters goes out, 129 is refused; extension values of 16 KiB in all go out, one byte more
/// is refused (each value at most 4 KiB).
#[test]
fn the_limits_on_overrides_hold_at_their_boundaries() {
    let name = |n: usize| "x".repeat(n);
    let overrides = |pairs: &[(String, String)]| {
        let members: Vec<String> = pairs
            .iter()
            .map(|(n, v)| format!("\"{n}\":\"{v}\""))
            .collect();
        format!("{{\"extensions\":{{{}}}}}", members.join(","))
    };
    let (r, f) = one_event(
        &[],
        &[("K_CE_OVERRIDES", &overrides(&[(name(128), "v".into())]))],
    );
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    assert_eq!(r.header(&format!("ce-{}", name(128))), "v");
    let f = support::one_shot(
        heartbeats()
            .env("K_SINK", "http://127.0.0.1:9/")
            .env("K_CE_OVERRIDES", overrides(&[(name(129), "v".into())])),
    );
    assert_eq!(f.code(), Some(1), "{}", f.stderr);
    f.assert_logged("longer than 128 characters");
    // Four values of 4 KiB: 16 KiB in all.
    let full: Vec<(String, String)> = (0..4)
        .map(|i| (format!("v{i}"), "a".repeat(4096)))
        .collect();
    let (r, f) = one_event(&[], &[("K_CE_OVERRIDES", &overrides(&full))]);
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    assert_eq!(r.header("ce-v3").len(), 4096);
    let mut over = full.clone();
    over.push(("v4".into(), "a".into()));
    let f = support::one_shot(
        heartbeats()
            .env("K_SINK", "http://127.0.0.1:9/")
            .env("K_CE_OVERRIDES", overrides(&over)),
    );
    assert_eq!(f.code(), Some(1), "{}", f.stderr);
    f.assert_logged("extension values total more than 16384 bytes");
}

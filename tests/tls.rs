//! https sinks: the extra CA from K_CA_CERTS or --cacerts, failures that are not retried, and
//! TLS_MIN_VERSION.

mod support;

use std::process::Command;

use support::{Sink, heartbeats, run, tls_pair, tls_pair_with};

fn https_url(sink: &Sink) -> String {
    format!("https://127.0.0.1:{}/", sink.port)
}

/// The binary pointed at `sink` over https, trusting `ca`.
fn https(sink: &Sink, ca: &str) -> Command {
    let mut command = heartbeats();
    command.env("K_SINK", https_url(sink)).env("K_CA_CERTS", ca);
    command
}

/// One event to `sink` over https, trusting `ca`.
fn one_shot(sink: &Sink, ca: &str) -> support::Finished {
    support::one_shot(&mut https(sink, ca))
}

/// The run failed on the certificate: exit 3, one connection, no request, no retry.
fn assert_refused_once(f: &support::Finished, sink: &Sink) {
    assert_eq!(f.code(), Some(3), "{}", f.stderr);
    f.assert_logged("TLS: invalid peer certificate");
    f.assert_logged("1 attempt(s)");
    assert_eq!(
        sink.connections.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    assert!(sink.drain().is_empty());
}

#[test]
fn an_https_sink_signed_by_the_ca_in_k_ca_certs_gets_the_event() {
    let (ca, server) = tls_pair("127.0.0.1");
    let sink = Sink::start_with(vec![], Some(server));
    let f = run(https(&sink, &ca).env("ONE_SHOT", "1").arg("--msg=tls"));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    let r = sink.expect();
    assert_eq!(r.body_str(), r#"{"id":1,"label":"","msg":"tls"}"#);
    assert_eq!(r.header("ce-specversion"), "1.0");
}

#[test]
fn the_cacerts_flag_works_when_the_variable_is_unset() {
    let (ca, server) = tls_pair("127.0.0.1");
    let sink = Sink::start_with(vec![], Some(server));
    let f = run(heartbeats()
        .env("K_SINK", https_url(&sink))
        .env("ONE_SHOT", "1")
        .arg(format!("--cacerts={ca}")));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    sink.expect();
}

#[test]
fn a_sink_signed_by_another_ca_fails_once_without_retry() {
    let (_, server) = tls_pair("127.0.0.1");
    let (other_ca, _) = tls_pair("127.0.0.1");
    let sink = Sink::start_with(vec![], Some(server));
    assert_refused_once(&one_shot(&sink, &other_ca), &sink);
}

#[test]
fn a_certificate_for_another_host_fails_without_retry() {
    let (ca, server) = tls_pair("sink.example.com");
    let sink = Sink::start_with(vec![], Some(server));
    assert_refused_once(&one_shot(&sink, &ca), &sink);
}

#[test]
fn tls_min_version_decides_whether_a_tls12_only_sink_is_reached() {
    let (ca, server) = tls_pair_with("127.0.0.1", &[&rustls::version::TLS12]);
    let sink = Sink::start_with(vec![], Some(server));
    let refused = one_shot(&sink, &ca);
    assert_eq!(refused.code(), Some(3), "{}", refused.stderr);
    refused.assert_logged("TLS:");
    let f = run(https(&sink, &ca)
        .env("TLS_MIN_VERSION", "1.2")
        .env("ONE_SHOT", "1"));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    sink.expect();
}

#[test]
fn the_https_loop_keeps_one_connection() {
    let (ca, server) = tls_pair("127.0.0.1");
    let sink = Sink::start_with(vec![], Some(server));
    let f = run(https(&sink, &ca).args(["--count=3", "--period=30ms"]));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    let connections: Vec<_> = (0..3).map(|_| sink.expect().connection).collect();
    assert_eq!(connections, [0, 0, 0]);
}

#[test]
fn an_odd_but_unambiguous_head_over_https_is_an_acknowledgement() {
    let (ca, server) = tls_pair("127.0.0.1");
    let answer = "HTTP/1.1 200 OK\r\nx-a: 1\r\n\t2\r\nContent-Length : 0\r\n\r\n";
    let script = vec![support::Reply::Raw(answer.as_bytes().to_vec(), 3)];
    let sink = Sink::start_with(script, Some(server));
    let f = run(https(&sink, &ca).args(["--count=2", "--period=50ms"]));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    assert_eq!(
        f.stderr
            .matches("delivered: HTTP 200, 1 attempt(s)")
            .count(),
        2
    );
    let connections = sink.connections.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(connections, 1);
}

/// A TLS 1.2-only sink offering one cipher suite and one key exchange group.
fn tls12_sink_with(suite: rustls::CipherSuite, group: rustls::NamedGroup) -> (String, Sink) {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.retain(|s| s.suite() == suite);
    provider.kx_groups.retain(|g| g.name() == group);
    let (ca, server) =
        support::tls_pair_with_provider("127.0.0.1", &[&rustls::version::TLS12], provider);
    (ca, Sink::start_with(vec![], Some(server)))
}

#[test]
fn the_tls_variables_of_knatives_network_tls_constrain_the_handshake() {
    use rustls::CipherSuite as S;
    use rustls::NamedGroup as G;
    let chacha = "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305";
    let aes = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384";
    // (variables, delivered?) against a TLS 1.2 sink with AES-256 and P-384 only.
    let cases: [(&[(&str, &str)], bool); 6] = [
        (&[("TLS_MIN_VERSION", "1.2")], true),
        (
            &[("TLS_MIN_VERSION", "1.2"), ("TLS_MAX_VERSION", "1.2")],
            true,
        ),
        (&[], false),
        (
            &[("TLS_MIN_VERSION", "1.2"), ("TLS_CIPHER_SUITES", chacha)],
            false,
        ),
        (
            &[("TLS_MIN_VERSION", "1.2"), ("TLS_CIPHER_SUITES", aes)],
            true,
        ),
        (
            &[
                ("TLS_MIN_VERSION", "1.2"),
                ("TLS_CURVE_PREFERENCES", "X25519"),
            ],
            false,
        ),
    ];
    for (vars, delivered) in cases {
        let (ca, sink) = tls12_sink_with(S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, G::secp384r1);
        let mut command = https(&sink, &ca);
        command.env("ONE_SHOT", "1").envs(vars.iter().copied());
        let f = run(&mut command);
        let expected = if delivered { 0 } else { 3 };
        assert_eq!(f.code(), Some(expected), "{vars:?}: {}", f.stderr);
    }
    // The curve the sink has, named Go's way and the P- way.
    for curve in ["CurveP384", "P-384"] {
        let (ca, sink) = tls12_sink_with(S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, G::secp384r1);
        let vars = [("TLS_MIN_VERSION", "1.2"), ("TLS_CURVE_PREFERENCES", curve)];
        let f = run(https(&sink, &ca).env("ONE_SHOT", "1").envs(vars));
        assert_eq!(f.code(), Some(0), "{curve}: {}", f.stderr);
    }
}

#[test]
fn ssl_cert_file_and_ssl_cert_dir_are_trusted_and_an_unreadable_one_is_a_warning() {
    let dir = support::TempDir::new("tls-ssl-cert");
    for variable in ["SSL_CERT_FILE", "SSL_CERT_DIR"] {
        let (ca, server) = tls_pair("127.0.0.1");
        let sink = Sink::start_with(vec![], Some(server));
        let file = dir.join(&format!("{variable}.pem"));
        std::fs::write(&file, ca).unwrap();
        let value = match variable {
            "SSL_CERT_FILE" => file.display().to_string(),
            _ => {
                let certs = dir.join("certs");
                std::fs::create_dir_all(&certs).unwrap();
                std::fs::rename(&file, certs.join("ca.pem")).unwrap();
                format!("/nonexistent/heartbeats:{}", certs.display())
            }
        };
        let f = run(heartbeats()
            .env("K_SINK", https_url(&sink))
            .env(variable, value)
            .env("ONE_SHOT", "1"));
        assert_eq!(f.code(), Some(0), "{variable}: {}", f.stderr);
        sink.expect();
        if variable == "SSL_CERT_DIR" {
            f.assert_logged("warning: SSL_CERT_DIR directory /nonexistent/heartbeats skipped");
        }
    }
}

#[test]
fn a_bad_file_in_a_trust_bundle_is_skipped_with_a_warning_and_the_rest_trusted() {
    let bundles = support::TempDir::new("tls-bundles");
    let (ca, server) = tls_pair("127.0.0.1");
    let sink = Sink::start_with(vec![], Some(server));
    // As Knative mounts them: /knative-custom-certs/<bundle>/<key>.
    std::fs::create_dir_all(bundles.join("team-a")).unwrap();
    std::fs::create_dir_all(bundles.join("team-b")).unwrap();
    std::fs::write(bundles.join("team-a/ca.crt"), ca).unwrap();
    let bad = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
    std::fs::write(bundles.join("team-b/ca.crt"), bad).unwrap();
    // A file named as certificates that holds none (a ConfigMap key left empty).
    std::fs::write(bundles.join("team-b/next.pem"), "").unwrap();
    let f = run(heartbeats()
        .env("K_SINK", https_url(&sink))
        .env("HEARTBEATS_TRUST_BUNDLE_DIR", bundles.path())
        .env("ONE_SHOT", "1"));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    sink.expect();
    f.assert_logged(&format!(
        "warning: trust bundle file {} skipped: PEM block 1 (CERTIFICATE): not valid base64",
        bundles.join("team-b/ca.crt").display()
    ));
    f.assert_logged(&format!(
        "warning: trust bundle file {} skipped: no PEM block found",
        bundles.join("team-b/next.pem").display()
    ));
}

/// Red team 3, item 5: Go reads the TLS variables only for an https sink. For an http sink a
/// bad one crash-looped the pod (exit 1); for an https one the wrong variable was named.
#[test]
fn tls_variables_are_a_warning_for_an_http_sink_and_named_right_for_an_https_one() {
    let bad = [
        ("TLS_MIN_VERSION", "1.1"),
        ("TLS_CIPHER_SUITES", "bogus"),
        ("TLS_CURVE_PREFERENCES", "CurveP999"),
    ];
    for (variable, value) in bad {
        let sink = Sink::start(vec![]);
        let f = support::one_shot(support::heartbeats_to(&sink).env(variable, value));
        assert_eq!(f.code(), Some(0), "{variable}: {}", f.stderr);
        f.assert_logged(&format!("warning: invalid {variable} \"{value}\""));
        f.assert_logged("ignored, since the sink is plain http");
        sink.expect();
        let (ca, server) = tls_pair("127.0.0.1");
        let sink = Sink::start_with(vec![], Some(server));
        let f = support::one_shot(https(&sink, &ca).env(variable, value));
        assert_eq!(f.code(), Some(1), "{variable}: {}", f.stderr);
        f.assert_logged(&format!("invalid {variable} \"{value}\""));
        assert!(sink.drain().is_empty());
    }
    // A list without a name is Go's defaults, over https too.
    let (ca, server) = tls_pair("127.0.0.1");
    let sink = Sink::start_with(vec![], Some(server));
    let f = support::one_shot(
        https(&sink, &ca)
            .env("TLS_CURVE_PREFERENCES", ",")
            .env("TLS_CIPHER_SUITES", " , "),
    );
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    sink.expect();
}

/// Peak resident memory of process `pid` (VmHWM), in KiB.
fn peak_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Red team 3, item 6: SSL_CERT_FILE naming a FIFO hung in open with SIGTERM unread,
/// /dev/zero grew to 13 GB, SSL_CERT_DIR=/proc/self read pagemap into 7 GB. Every file of
/// certificates is now read as the token is: regular files only, without blocking, bounded.
/// (They are read for an https sink: an http one reads none, as the next test shows.)
#[test]
fn system_ca_paths_that_are_not_plain_files_cost_a_warning_not_a_hang_nor_memory() {
    let dir = support::TempDir::new("ca-paths");
    let fifo = dir.join("fifo");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let fifo = fifo.to_str().unwrap().to_owned();
    let cases = [
        (
            "SSL_CERT_FILE",
            fifo.as_str(),
            "fifo skipped: is not a regular file",
        ),
        (
            "SSL_CERT_FILE",
            "/dev/zero",
            "zero skipped: is not a regular file",
        ),
        ("SSL_CERT_DIR", "/proc/self", "pagemap skipped: "),
    ];
    for (variable, value, why) in cases {
        let (ca, server) = tls_pair("127.0.0.1");
        let sink = Sink::start_with(vec![], Some(server));
        let running =
            support::Running::start(https(&sink, &ca).env(variable, value).arg("--period=10s"));
        running.line_containing(why);
        running.line_containing("delivered");
        let peak = peak_kib(running.pid);
        assert!(peak < 64 * 1024, "{variable}={value}: peak RSS {peak} KiB");
        running.signal(libc::SIGTERM);
        let f = running.finish(std::time::Duration::from_secs(5));
        assert_eq!(f.code(), Some(0), "{variable}={value}: {}", f.stderr);
    }
}

/// Issue 28: Go reads trust files only when it first verifies a certificate. For an http sink
/// (with http exports) no TLS configuration is built, so not one file of `SSL_CERT_FILE`,
/// `SSL_CERT_DIR` or the trust bundles is opened: a FIFO there would hang an open that happens,
/// and none is even mentioned.
#[test]
fn an_http_sink_opens_no_certificate_file() {
    let dir = support::TempDir::new("no-tls");
    let fifo = dir.join("fifo.pem");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    std::fs::write(dir.join("broken.pem"), "-----BEGIN CERTIFICATE-----\n!!\n").unwrap();
    let sink = Sink::start(vec![]);
    let f = support::one_shot(
        support::heartbeats_to(&sink)
            .env("SSL_CERT_FILE", &fifo)
            .env("SSL_CERT_DIR", dir.path())
            .env("HEARTBEATS_TRUST_BUNDLE_DIR", dir.path()),
    );
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    sink.expect();
    assert!(
        !f.stderr.contains("fifo") && !f.stderr.contains("broken"),
        "{}",
        f.stderr
    );
}

//! Proxies from HTTP_PROXY, HTTPS_PROXY and NO_PROXY, as the Go image honours them: http sinks
//! through the proxy in absolute form, https sinks through a CONNECT tunnel with TLS to the
//! sink's own name, credentials as Proxy-Authorization and never logged, loopback never
//! proxied. The sink is named by a host that does not resolve: only the proxy can reach it.

mod support;

use std::time::Duration;

use support::{FakeProxy, Running, Sink, heartbeats, heartbeats_to, run, tls_pair};

/// A name that no resolver knows (RFC 6761 reserves .test).
const SINK_HOST: &str = "sink.heartbeats.test";

#[test]
fn an_http_sink_is_reached_through_http_proxy_in_absolute_form() {
    let sink = Sink::start(vec![]);
    let authority = format!("{SINK_HOST}:{}", sink.port);
    let proxy = FakeProxy::start(vec![(authority.clone(), sink.port)]);
    let f = run(heartbeats()
        .env("K_SINK", format!("http://{authority}/events"))
        .env("HTTP_PROXY", proxy.url("al%40ce:s3cr%23t@"))
        .env("ONE_SHOT", "true"));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    let asked = proxy
        .next(Duration::from_secs(5))
        .expect("the proxy was used");
    assert_eq!(
        asked.line,
        format!("POST http://{authority}/events HTTP/1.1")
    );
    // base64("al@ce:s3cr#t"): decoded as Go decodes the proxy URL's userinfo.
    assert_eq!(
        asked.authorization.as_deref(),
        Some("Basic YWxAY2U6czNjciN0")
    );
    let request = sink.expect();
    assert_eq!(request.path, "/events");
    assert_eq!(request.header("ce-specversion"), "1.0");
    f.assert_logged(&format!(
        "proxy=http://***@127.0.0.1:{} (HTTP_PROXY)",
        proxy.port
    ));
    assert!(
        !f.stderr.contains("s3cr") && !f.stderr.contains("al%40ce"),
        "{}",
        f.stderr
    );
}

/// A TLS sink named SINK_HOST (its certificate names `certified`), a proxy that reaches it,
/// the sink's authority, and the binary pointed at it trusting its CA (proxy variable unset).
fn https_sink_behind_a_proxy(certified: &str) -> (Sink, FakeProxy, String, std::process::Command) {
    let (ca, server) = tls_pair(certified);
    let sink = Sink::start_with(vec![], Some(server));
    let authority = format!("{SINK_HOST}:{}", sink.port);
    let proxy = FakeProxy::start(vec![(authority.clone(), sink.port)]);
    let mut command = heartbeats();
    command
        .env("K_SINK", format!("https://{authority}/"))
        .env("K_CA_CERTS", ca);
    (sink, proxy, authority, command)
}

#[test]
fn an_https_sink_is_reached_through_a_connect_tunnel_checked_against_its_own_name() {
    let (sink, proxy, authority, mut command) = https_sink_behind_a_proxy(SINK_HOST);
    let f = run(command
        .env("https_proxy", proxy.url("user:pw@"))
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .args(["--count=2", "--period=50ms"]));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    let asked = proxy
        .next(Duration::from_secs(5))
        .expect("the proxy was used");
    assert_eq!(asked.line, format!("CONNECT {authority} HTTP/1.1"));
    assert_eq!(asked.authorization.as_deref(), Some("Basic dXNlcjpwdw=="));
    sink.expect();
    sink.expect();
    // Both events over the one tunnel.
    assert!(proxy.next(Duration::from_millis(50)).is_none());
    f.assert_logged("(https_proxy)");
}

#[test]
fn a_tunnel_to_a_sink_whose_certificate_names_another_host_fails() {
    let (_sink, proxy, _, mut command) = https_sink_behind_a_proxy("other.heartbeats.test");
    let f = run(command
        .env("HTTPS_PROXY", proxy.url(""))
        .env("ONE_SHOT", "true"));
    assert_eq!(f.code(), Some(3), "{}", f.stderr);
    f.assert_logged("TLS: invalid peer certificate");
}

#[test]
fn loopback_sinks_and_no_proxy_hosts_are_not_proxied() {
    let sink = Sink::start(vec![]);
    let proxy = FakeProxy::start(vec![]);
    let f = run(heartbeats_to(&sink)
        .env("HTTP_PROXY", proxy.url(""))
        .env("ONE_SHOT", "true"));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    sink.expect();
    f.assert_logged("proxy=none");
    // NO_PROXY: the name goes to the local resolver, which does not know it; once the first
    // attempt has failed and the process sleeps before retrying, the proxy was never asked.
    let running = Running::start(
        heartbeats()
            .env("K_SINK", format!("http://{SINK_HOST}:1/"))
            .env("HTTP_PROXY", proxy.url(""))
            .env("NO_PROXY", "localhost,.heartbeats.test")
            .arg("--period=10s"),
    );
    running.wait_until_sleeping();
    running.signal(libc::SIGTERM);
    let f = running.finish(Duration::from_secs(5));
    f.assert_logged("proxy=none");
    // Not one connection, not only no request: one cut by SIGTERM would have sent nothing.
    assert_eq!(proxy.accepted(), 0);
    assert!(proxy.next(Duration::from_millis(50)).is_none());
}

#[test]
fn a_proxy_that_refuses_the_tunnel_is_retried_and_reported_without_its_credentials() {
    let proxy = FakeProxy::start(vec![]);
    let running = Running::start(
        heartbeats()
            .env("K_SINK", format!("https://{SINK_HOST}/"))
            .env("HTTPS_PROXY", proxy.url("u:hunter2@"))
            .arg("--period=100ms"),
    );
    // Event 1's attempt and its retry, then event 2's first: event 1 has been given up by then.
    for _ in 0..3 {
        proxy.next(Duration::from_secs(5)).expect("a CONNECT");
    }
    running.signal(libc::SIGTERM);
    let f = running.finish(Duration::from_secs(5));
    f.assert_logged(&format!(
        "proxy http://***@127.0.0.1:{} answered CONNECT with \"HTTP/1.1 502 Bad Gateway\"",
        proxy.port
    ));
    assert!(!f.stderr.contains("hunter2"), "{}", f.stderr);
}

/// Red team 3, item 9: a proxy answering CONNECT with an oversized head was logged as
/// `timeout: connect`. Each way a proxy can fail is named for what it is.
#[test]
fn a_proxy_that_fails_the_tunnel_is_named_for_what_it_did() {
    let big = format!("HTTP/1.1 200 OK\r\nx-big: {}\r\n", "a".repeat(10 * 1024));
    let cases = [
        (
            big.into_bytes(),
            false,
            "answered CONNECT with a head over 8192 bytes",
        ),
        (Vec::new(), true, "closed the connection during CONNECT"),
        (
            b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec(),
            false,
            "answered CONNECT with something that is not HTTP",
        ),
        (Vec::new(), false, "did not answer CONNECT in time"),
    ];
    for (answer, close, what) in cases {
        let proxy = FakeProxy::answering(answer, close);
        let running = Running::start(
            heartbeats()
                .env("K_SINK", format!("https://{SINK_HOST}/"))
                .env("HTTPS_PROXY", proxy.url(""))
                .args(["--period=600ms", "--timeout=300ms"]),
        );
        let line = running.line_containing("event 1 id");
        assert!(line.contains(what), "{what}: {line}");
        assert!(!line.contains("timeout: connect"), "{line}");
        running.signal(libc::SIGTERM);
        running.finish(Duration::from_secs(5));
    }
}

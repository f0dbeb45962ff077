//! The Istio sidecar shutdown call after ONE_SHOT/--count, to a sidecar of the test's own on an
//! ephemeral port (`HEARTBEATS_ISTIO_PORT`; 15020 in a pod, and no other test uses it).

mod support;

use std::time::Duration;

use support::{Running, Sink, heartbeats_to, run};

#[test]
fn the_sidecar_is_asked_to_quit_after_the_last_event_but_not_when_stopped() {
    let sidecar = Sink::start(vec![]);
    let sink = Sink::start(vec![]);
    let heartbeats = || {
        let mut command = heartbeats_to(&sink);
        command.env("HEARTBEATS_ISTIO_PORT", sidecar.port.to_string());
        command
    };

    let running = Running::start(heartbeats().arg("--period=1h"));
    sink.expect();
    running.signal(libc::SIGTERM);
    assert_eq!(running.finish(Duration::from_secs(5)).code(), Some(0));
    assert!(
        sidecar.next(Duration::from_millis(200)).is_none(),
        "a stopped loop called the sidecar"
    );

    let f = run(heartbeats().env("ONE_SHOT", "true"));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    let event = sink.expect();
    let quit = sidecar.expect();
    assert_eq!(
        (quit.method.as_str(), quit.path.as_str()),
        ("POST", "/quitquitquit")
    );
    assert!(quit.at >= event.at);
    assert!(!quit.has_header("ce-id"));
    // With nothing listening (connection refused), the call is silent.
    let f = run(heartbeats_to(&sink).env("ONE_SHOT", "true"));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    assert!(!f.stderr.contains("sidecar"), "{}", f.stderr);
}

//! The Istio sidecar shutdown call after ONE_SHOT/--count. Its own test binary: the port is fixed
//! (15020), and cargo runs test binaries one after another, so no other test's run can hit it.
//! One test, since the two cases share the port.

mod support;

use std::time::Duration;

use support::{Running, Sink, heartbeats_to, run};

#[test]
fn the_sidecar_is_asked_to_quit_after_the_last_event_but_not_when_stopped() {
    let sidecar = Sink::start_on(15020, vec![], None);
    let sink = Sink::start(vec![]);

    let running = Running::start(heartbeats_to(&sink).arg("--period=1h"));
    sink.expect();
    running.signal(libc::SIGTERM);
    assert_eq!(running.finish(Duration::from_secs(5)).code(), Some(0));
    assert!(
        sidecar.next(Duration::from_millis(200)).is_none(),
        "a stopped loop called the sidecar"
    );

    let f = run(heartbeats_to(&sink).env("ONE_SHOT", "true"));
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    let event = sink.expect();
    let quit = sidecar.expect();
    assert_eq!(
        (quit.method.as_str(), quit.path.as_str()),
        ("POST", "/quitquitquit")
    );
    assert!(quit.at >= event.at);
    assert!(!quit.has_header("ce-id"));
}

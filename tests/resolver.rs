//! Names looked up by our own resolver, against a fake name server on 127.0.0.1: over UDP, over
//! TCP when an answer comes truncated, ignoring answers to other questions, following the search
//! domains and `ndots` of resolv.conf, and bounded by the attempt's timeout when no answer comes.

mod support;

use std::time::{Duration, Instant};

use support::dns::{Behaviour, FakeDns, Question, Rule, Server};
use support::*;

/// One event to `sink` named `sink.test`, through `dns` with `options` in its resolv.conf.
fn one_named_event(sink: &Sink, dns: &FakeDns, options: &str, args: &[&str]) -> Finished {
    let mut command = heartbeats();
    command.env("K_SINK", format!("http://sink.test:{}/", sink.port));
    dns.configure(&mut command, options);
    one_shot(command.args(args))
}

fn questions_for(dns: &FakeDns, name: &str) -> Vec<Question> {
    dns.drain().into_iter().filter(|q| q.name == name).collect()
}

#[test]
fn a_sink_name_is_looked_up_over_udp_asking_for_a_and_aaaa() {
    let sink = Sink::start(vec![]);
    let dns = FakeDns::start(Behaviour::answering("sink.test", [127, 0, 0, 1]));
    let f = one_named_event(&sink, &dns, "", &[]);
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    assert_eq!(sink.expect().path, "/");
    let mut asked = questions_for(&dns, "sink.test.");
    asked.sort_by_key(|q| q.qtype);
    let types: Vec<(u16, bool)> = asked.iter().map(|q| (q.qtype, q.tcp)).collect();
    assert_eq!(types, [(1, false), (28, false)]);
}

#[test]
fn a_truncated_answer_is_asked_again_over_tcp() {
    let sink = Sink::start(vec![]);
    let dns = FakeDns::start(Behaviour {
        truncate: true,
        ..Behaviour::answering("sink.test", [127, 0, 0, 1])
    });
    let f = one_named_event(&sink, &dns, "", &[]);
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    sink.expect();
    let over_tcp = questions_for(&dns, "sink.test.")
        .iter()
        .filter(|q| q.tcp && q.qtype == 1)
        .count();
    assert_eq!(over_tcp, 1);
}

#[test]
fn an_answer_with_another_id_is_ignored_and_the_right_one_taken() {
    let sink = Sink::start(vec![]);
    // The wrong answer names 127.0.0.254, where nothing listens: taking it would fail the event.
    let dns = FakeDns::start(Behaviour {
        wrong_id_first: true,
        ..Behaviour::answering("sink.test", [127, 0, 0, 1])
    });
    let f = one_named_event(&sink, &dns, "", &[]);
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    sink.expect();
}

#[test]
fn search_domains_and_ndots_order_the_names_asked_as_go_does() {
    let sink = Sink::start(vec![]);
    let dns = FakeDns::start(Behaviour::answering("sink.test.b.example", [127, 0, 0, 1]));
    let f = one_named_event(
        &sink,
        &dns,
        "search a.example b.example\noptions ndots:5",
        &[],
    );
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    sink.expect();
    // Fewer dots than ndots: the search domains first, and the second one answers.
    let names: Vec<String> = dns
        .drain()
        .into_iter()
        .filter(|q| q.qtype == 1)
        .map(|q| q.name)
        .collect();
    assert_eq!(names, ["sink.test.a.example.", "sink.test.b.example."]);
}

/// The binary beating every `period` to `sink` named `sink.test`, through `dns`.
fn named_loop(sink: &Sink, dns: &FakeDns, options: &str, args: &[&str]) -> Running {
    let mut command = heartbeats();
    command.env("K_SINK", format!("http://sink.test:{}/", sink.port));
    dns.configure(&mut command, options);
    Running::start(command.args(args))
}

/// A server answering `sink.test` with `a` (A records) and `aaaa` (AAAA records): each `answer
/// IP...`, or `nodata`.
fn dual_stack(a: &str, aaaa: &str) -> FakeDns {
    let rule = |qtype: &str, say: &str| Rule {
        name: "sink.test.".into(),
        qtype: qtype.into(),
        say: vec![say.into()],
    };
    FakeDns::servers(&[Server {
        address: "127.0.0.1".into(),
        rules: vec![rule("A", a), rule("AAAA", aaaa)],
    }])
}

#[test]
fn a_sink_with_only_an_ipv6_address_gets_its_beats() {
    let sink = Sink::start_v6(vec![]);
    let dns = dual_stack("nodata", "answer ::1");
    let f = one_named_event(&sink, &dns, "", &[]);
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    let request = sink.expect();
    assert_eq!(request.header("host"), format!("sink.test:{}", sink.port));
}

#[test]
fn an_address_that_refuses_is_followed_by_the_next_in_rfc_6724_order() {
    // ::1 comes first (precedence 50 over IPv4's 35) but nothing listens there: the connection
    // goes on to 127.0.0.1 within the same attempt, as Go's dialer does.
    let sink = Sink::start(vec![]);
    let dns = dual_stack("answer 127.0.0.1", "answer ::1");
    let f = one_named_event(&sink, &dns, "", &[]);
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    sink.expect();
    f.assert_logged("event 1 id");
    assert!(!f.stderr.contains("failed"), "{}", f.stderr);
}

#[test]
fn a_name_that_does_not_exist_fails_the_event_with_the_name_in_the_reason() {
    let sink = Sink::start(vec![]);
    let dns = FakeDns::start(Behaviour::default());
    let running = named_loop(&sink, &dns, "", &["--period=300ms"]);
    let line = running.line_containing("event 1 id");
    assert!(
        line.contains("failed: io: lookup sink.test: no such host"),
        "{line}"
    );
    running.signal(libc::SIGTERM);
    assert_eq!(running.finish(Duration::from_secs(5)).code(), Some(0));
    assert!(sink.drain().is_empty());
}

#[test]
fn a_silent_name_server_costs_the_attempt_timeout_and_sigterm_ends_a_lookup_at_once() {
    let sink = Sink::start(vec![]);
    let dns = FakeDns::start(Behaviour {
        silent: true,
        ..Behaviour::default()
    });
    // resolv.conf allows 30 s a question and five rounds; an attempt has 300 ms, and the event
    // gives up when the next one is due, 1 s later.
    let started = Instant::now();
    let running = named_loop(
        &sink,
        &dns,
        "options timeout:30 attempts:5",
        &["--timeout=300ms", "--period=1s"],
    );
    let line = running.line_containing("event 1 id");
    let failed_after = started.elapsed();
    assert!(
        line.contains("lookup sink.test: no answer from the name server 127.0.0.1:"),
        "{line}"
    );
    assert!(line.contains("gave up: the next beat is due"), "{line}");
    assert!(
        failed_after < Duration::from_millis(1500),
        "{failed_after:?}"
    );
    // Event 2's lookup is under way: SIGTERM ends it, and the process, at once.
    dns.next(Duration::from_secs(5))
        .expect("event 2 looks the name up");
    let signalled = Instant::now();
    running.signal(libc::SIGTERM);
    let f = running.finish(Duration::from_secs(5));
    let took = signalled.elapsed();
    assert_eq!(f.code(), Some(0), "{}", f.stderr);
    assert!(took < STOP_LIMIT, "exit {took:?} after SIGTERM");
    f.assert_logged("SIGTERM: stopping");
}

//! The configuration's tests: helpers every module's tests use (a fake environment, a parse),
//! the tests of `Config` as a whole, and two test-only rooms of their own: the table of refused
//! input ([`refusals`]) and Go's cron vectors run through the command line ([`cron_vectors`]).

mod cron_vectors;
mod refusals;

use super::*;
use crate::config::tls::TlsVersion;
use std::collections::HashMap;

/// An environment of `vars` and, maybe, a namespace file.
#[derive(Default)]
pub(crate) struct FakeHost {
    pub vars: HashMap<&'static str, OsString>,
    pub namespace_file: Option<String>,
}

impl FakeHost {
    pub fn new(vars: &[(&'static str, &str)]) -> FakeHost {
        FakeHost {
            vars: vars.iter().map(|(k, v)| (*k, OsString::from(v))).collect(),
            namespace_file: None,
        }
    }
}

impl Host for FakeHost {
    fn var(&self, name: &str) -> Option<OsString> {
        self.vars.get(name).cloned()
    }
    fn read_file(&self, path: &str) -> Option<String> {
        assert_eq!(path, NAMESPACE_FILE);
        self.namespace_file.clone()
    }
}

pub(crate) fn host(vars: &[(&'static str, &str)]) -> FakeHost {
    let mut host = FakeHost::new(vars);
    host.vars.entry(POD_NAME).or_insert_with(|| "pod".into());
    host.vars
        .entry(POD_NAMESPACE)
        .or_insert_with(|| "ns".into());
    host
}

pub(crate) fn parse(args: &[&str], host: &FakeHost) -> Result<Config, Error> {
    match parse_args(args.iter().map(OsString::from), host)? {
        Command::Run(config) => Ok(*config),
        other => panic!("expected a run, got {other:?}"),
    }
}

/// The heartbeat's `data.label` and `data.msg` in `config`.
pub(crate) fn label(config: &Config) -> &str {
    heartbeat(config).0
}

pub(crate) fn msg(config: &Config) -> &str {
    heartbeat(config).1
}

fn heartbeat(config: &Config) -> (&str, &str) {
    match &config.event.content {
        Content::Heartbeat { label, msg } => (label, msg),
        other => panic!("not the heartbeat: {other:?}"),
    }
}

pub(crate) fn sinked(args: &[&str]) -> Result<Config, Error> {
    let mut all = vec!["--sink", "http://127.0.0.1:1/"];
    all.extend_from_slice(args);
    parse(&all, &host(&[]))
}

#[test]
fn defaults_match_the_go_image() {
    let c = sinked(&[]).unwrap();
    assert_eq!(
        c.event.source,
        "https://knative.dev/eventing-contrib/cmd/heartbeats/#ns/pod"
    );
    assert_eq!(c.event.event_type, DEFAULT_TYPE);
    assert_eq!((label(&c), msg(&c)), ("", ""));
    assert_eq!(
        (&c.beats.timing, c.sink.timeout, c.count),
        (
            &crate::schedule::Timing::Period(DEFAULT_PERIOD),
            DEFAULT_TIMEOUT,
            None
        )
    );
    assert_eq!(
        (c.event.encoding, c.sink.tls.min, c.sink.tls.max),
        (HeaderEncoding::Compat, TlsVersion::V13, TlsVersion::V13)
    );
    assert_eq!(c.sink.token_file, PathBuf::from("/oidc/token"));
}

#[test]
fn stray_arguments_are_skipped_with_a_warning_and_the_flags_after_them_read() {
    let c = sinked(&["<no value>", "--label=x", "more"]).unwrap();
    assert_eq!(label(&c), "x");
    assert_eq!(
        c.warnings,
        [
            "ignored the argument \"<no value>\": not a flag",
            "ignored the argument \"more\": not a flag",
        ]
    );
    // `--` still ends the flags: what follows is skipped too.
    let c = sinked(&["--", "--label=x"]).unwrap();
    assert_eq!(label(&c), "");
    assert_eq!(
        c.warnings,
        ["ignored the argument \"--label=x\": not a flag"]
    );
}

#[test]
fn env_wins_over_flags_when_non_empty() {
    let h = host(&[
        (K_SINK, "http://127.0.0.1:2/e"),
        (K_CA_CERTS, "envpem"),
        (K_SINK_TIMEOUT, "3"),
    ]);
    let c = parse(
        &[
            "--sink=http://127.0.0.1:1/",
            "--cacerts=flagpem",
            "--timeout=9s",
        ],
        &h,
    )
    .unwrap();
    assert_eq!(c.sink.url.url, "http://127.0.0.1:2/e");
    let named = |name: &str, value: &str| Named {
        name: name.into(),
        value: value.into(),
    };
    assert_eq!(c.sink.trust.extra, Some(named("K_CA_CERTS", "envpem")));
    assert_eq!(c.sink.timeout, Duration::from_secs(3));
    let h = host(&[(K_SINK, ""), (K_CA_CERTS, "")]);
    let c = parse(&["--sink=http://127.0.0.1:1/", "--cacerts=flagpem"], &h).unwrap();
    assert_eq!(c.sink.url.url, "http://127.0.0.1:1/");
    assert_eq!(c.sink.trust.extra, Some(named("--cacerts", "flagpem")));
}

#[test]
fn one_shot_uses_go_parse_bool() {
    for (value, count) in [
        ("true", Some(1)),
        ("T", Some(1)),
        ("0", None),
        ("False", None),
    ] {
        let c = parse(&["--sink=http://h/"], &host(&[(ONE_SHOT, value)])).unwrap();
        assert_eq!(c.count, count, "{value}");
    }
    let error = parse(&["--sink=http://h/"], &host(&[(ONE_SHOT, "yes")])).unwrap_err();
    assert!(
        error.to_string().starts_with("invalid ONE_SHOT \"yes\""),
        "{error}"
    );
}

#[test]
fn the_sink_userinfo_is_split_off_and_decoded() {
    let h = host(&[(K_SINK, "https://al%40ce:p%23ss@h:8443/e?q=a@b")]);
    let c = parse(&[], &h).unwrap();
    assert_eq!(c.sink.url.url, "https://h:8443/e?q=a@b");
    assert_eq!(c.sink.url.userinfo.as_deref(), Some(&b"al@ce:p#ss"[..]));
    let c = parse(&["--sink=http://h:65535/"], &host(&[])).unwrap();
    assert_eq!(
        (c.sink.url.url.as_str(), c.sink.url.userinfo),
        ("http://h:65535/", None)
    );
}

#[test]
fn a_refused_sink_url_never_shows_its_credentials() {
    for sink in [
        "ftp://alice:secret@h/",
        "http://alice:secret@h:70000/",
        "http://alice:secret%@h/",
        "http://alice:secret@/",
    ] {
        let line = parse(&[], &host(&[(K_SINK, sink)]))
            .unwrap_err()
            .to_string();
        assert!(line.starts_with("invalid K_SINK"), "{line}");
        assert!(
            !line.contains("alice") && !line.contains("secret"),
            "{line}"
        );
    }
}

#[test]
fn no_sink_is_its_own_error() {
    assert_eq!(parse(&[], &host(&[])), Err(Error::NoSink));
    assert_eq!(
        parse(&["--sink="], &host(&[(K_SINK, "")])),
        Err(Error::NoSink)
    );
}

#[cfg(unix)]
#[test]
fn non_utf8_values_are_refused_by_name() {
    use std::os::unix::ffi::OsStringExt;
    let args = vec![
        OsString::from("--sink=http://h/"),
        OsString::from("--msg"),
        OsString::from_vec(vec![0xff]),
    ];
    let error = parse_args(args, &host(&[])).unwrap_err();
    assert!(error.to_string().starts_with("invalid --msg"), "{error}");
    let mut h = host(&[]);
    h.vars
        .insert(K_SINK, OsString::from_vec(b"http://h/\xff".to_vec()));
    let error = parse(&[], &h).unwrap_err();
    assert!(error.to_string().starts_with("invalid K_SINK"), "{error}");
}

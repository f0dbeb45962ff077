//! The specification of refused input, as a table: every bad value of a flag or variable a
//! person writes exits 1 with one line naming it.

use super::{host, parse};
use crate::config::tls::{
    TLS_CIPHER_SUITES, TLS_CURVE_PREFERENCES, TLS_MAX_VERSION, TLS_MIN_VERSION,
};
use crate::config::*;

/// The TLS variables are only read for an https sink.
const HTTPS: &str = "https://127.0.0.1:1/";

/// The specification of refused input: one line naming the flag or variable, exit 1. The
/// process-level test (tests/process.rs) keeps a few rows to show the same holds end to end.
#[test]
fn every_bad_value_names_its_flag_or_variable() {
    type Case = (
        &'static [&'static str],
        &'static [(&'static str, &'static str)],
        &'static str,
    );
    let cases: &[Case] = &[
        (&["--period=0"], &[], "invalid --period \"0\""),
        (&["--period=-1s"], &[], "invalid --period \"-1s\""),
        (&["--period=5x"], &[], "invalid --period \"5x\""),
        (&["--period=9223372037"], &[], "invalid --period"),
        (
            &["--schedule=@every 1d"],
            &[],
            "invalid --schedule \"@every 1d\": @every \"1d\": expected a positive Go duration",
        ),
        (
            &["--schedule=@every 0s"],
            &[],
            "invalid --schedule \"@every 0s\": @every \"0s\": expected a positive",
        ),
        (
            &["--schedule=@every -1s"],
            &[],
            "invalid --schedule \"@every -1s\": @every \"-1s\": expected a positive",
        ),
        (&["--timeout=0s"], &[], "invalid --timeout \"0s\""),
        (
            &[],
            &[(K_SINK_TIMEOUT, "soon")],
            "invalid K_SINK_TIMEOUT \"soon\"",
        ),
        (&["--count=0"], &[], "invalid --count \"0\""),
        (&["--count=-3"], &[], "invalid --count"),
        (
            &["--ce-header-encoding=raw"],
            &[],
            "invalid --ce-header-encoding \"raw\"",
        ),
        (
            &[],
            &[(TLS_MIN_VERSION, "1.1"), (K_SINK, HTTPS)],
            "invalid TLS_MIN_VERSION \"1.1\"",
        ),
        (&["--eventType=  "], &[], "invalid --eventType \"  \""),
        (&[], &[(K_SINK, "ftp://h/")], "invalid K_SINK \"ftp://h/\""),
        (&[], &[(K_SINK, "/relative")], "invalid K_SINK"),
        (&[], &[(K_SINK, "http://")], "invalid K_SINK"),
        (&[], &[(K_SINK, "http://a b/")], "invalid K_SINK"),
        (
            &[],
            &[(K_SINK, "http://127.0.0.1:99999/e")],
            "invalid K_SINK \"http://127.0.0.1:99999/e\": expected a port from 1 to 65535",
        ),
        (&[], &[(K_SINK, "http://h:65536/")], "invalid K_SINK"),
        (&[], &[(K_SINK, "https://h:0/")], "invalid K_SINK"),
        (
            &[],
            &[(K_SINK, "http://u:p%zz@h/")],
            "invalid K_SINK \"http://***@h/\": the userinfo holds an invalid %-escape",
        ),
        (&[], &[(K_SINK, "http://u:p%+1@h/")], "invalid K_SINK"),
        (&[], &[("K_CE_OVERRIDES", "{")], "invalid K_CE_OVERRIDES"),
        (
            &[],
            &[("K_CE_OVERRIDES", "not json")],
            "invalid K_CE_OVERRIDES \"not json\"",
        ),
        (
            &[],
            &[("K_CE_OVERRIDES", "{\"extensions\":{\"bad-name\":\"x\"}}")],
            "invalid K_CE_OVERRIDES extension name \"bad-name\"",
        ),
        (
            &[],
            &[(K_SINK, "ftp://alice:secret@127.0.0.1/")],
            "invalid K_SINK \"ftp://***@127.0.0.1/\"",
        ),
        (
            &["--sink=127.0.0.1:8080"],
            &[],
            "invalid --sink \"127.0.0.1:8080\"",
        ),
        (&["--timeout=never"], &[], "invalid --timeout \"never\""),
        (
            &[],
            &[(K_SINK_TIMEOUT, "-1")],
            "invalid K_SINK_TIMEOUT \"-1\"",
        ),
        (&["--count=none"], &[], "invalid --count \"none\""),
        (&[], &[(ONE_SHOT, "yes")], "invalid ONE_SHOT \"yes\""),
        (
            &[],
            &[(TLS_MAX_VERSION, "1.2"), (K_SINK, HTTPS)],
            "invalid TLS_MIN_VERSION \"1.3\": above TLS_MAX_VERSION 1.2",
        ),
        (
            &[],
            &[(TLS_CURVE_PREFERENCES, "X25519,CurveP521"), (K_SINK, HTTPS)],
            "invalid TLS_CURVE_PREFERENCES \"CurveP521\": not supported",
        ),
        (
            &[],
            &[(TLS_CIPHER_SUITES, "TLS_NOPE"), (K_SINK, HTTPS)],
            "invalid TLS_CIPHER_SUITES \"TLS_NOPE\": unknown",
        ),
        (&[], &[(POD_NAME, "")], "invalid POD_NAME"),
        (
            &[],
            &[
                (K_SINK, "http://10.1.2.3/"),
                ("HTTP_PROXY", "socks5://u:pw@127.0.0.1:1080"),
            ],
            "invalid HTTP_PROXY \"socks5://***@127.0.0.1:1080\": only http:// proxies",
        ),
    ];
    for (args, vars, prefix) in cases {
        let error = sinked_with(args, vars).unwrap_err();
        let line = error.to_string();
        assert!(
            line.starts_with(prefix) && !line.contains('\n'),
            "{args:?} {vars:?}: {line}"
        );
        assert_eq!(error.exit_code(), 1);
    }
}

fn sinked_with(args: &[&str], vars: &[(&'static str, &str)]) -> Result<Config, Error> {
    let mut all = vec!["--sink", "http://127.0.0.1:1/"];
    all.extend_from_slice(args);
    parse(&all, &host(vars))
}

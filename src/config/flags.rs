//! The command line in Go's flag syntax (`-name` or `--name`, value as `=v` or the next
//! argument), since Knative manifests written for the Go image pass flags that way: each flag's
//! name, its line in the usage text, and the values as given, before defaults and environment.

use std::ffi::OsString;

use crate::error::Error;

pub const SINK: &str = "sink";
pub const SOURCE: &str = "eventSource";
pub const TYPE: &str = "eventType";
pub const LABEL: &str = "label";
pub const MSG: &str = "msg";
pub const PERIOD: &str = "period";
pub const CACERTS: &str = "cacerts";
pub const TOKEN_FILE: &str = "oidc-token-file";
pub const TIMEOUT: &str = "timeout";
pub const COUNT: &str = "count";
pub const ENCODING: &str = "ce-header-encoding";
pub const SCHEDULE: &str = "schedule";
pub const TIMEZONE: &str = "timezone";
pub const NEXT: &str = "next";
pub const FROM: &str = "from";
pub const DATA: &str = "data";
pub const DATA_BASE64: &str = "data-base64";
pub const CONTENT_TYPE: &str = "content-type";
pub const RETRY: &str = "retry";
pub const BACKOFF_POLICY: &str = "backoff-policy";
pub const BACKOFF_DELAY: &str = "backoff-delay";
pub const RETRY_AFTER_MAX: &str = "retry-after-max";
pub const DEAD_LETTER_SINK: &str = "dead-letter-sink";
pub const ID: &str = "id";
pub const ALIGN: &str = "align";
pub const SEQUENCE: &str = "sequence";
pub const STATE_FILE: &str = "state-file";
pub const CATCH_UP: &str = "catch-up";
pub const CATCH_UP_WINDOW: &str = "catch-up-window";
pub const JITTER: &str = "jitter";
pub const START: &str = "start";
pub const LOOKUP: &str = "lookup";
pub const END: &str = "end";

/// Every flag that takes a value, with its usage line (`--help`); the others (`-h`, `--help`,
/// `--version`) stand alone.
const VALUE_FLAGS: [(&str, &str, &str); 31] = [
    (
        SINK,
        "URL",
        "where to POST events (env K_SINK wins when set)",
    ),
    (
        SOURCE,
        "S",
        "ce-source [https://knative.dev/eventing-contrib/cmd/heartbeats/#NS/POD]",
    ),
    (
        TYPE,
        "T",
        "ce-type [dev.knative.eventing.samples.heartbeat]",
    ),
    (
        LABEL,
        "L",
        "data.label; a leading \" means a Go string literal",
    ),
    (MSG, "M", "data.msg, omitted when empty"),
    (
        PERIOD,
        "P",
        "Go duration (500ms, 1.5h) or whole seconds [5s]",
    ),
    (
        SCHEDULE,
        "CRON",
        "cron as PingSource's, instead of --period: \"0 9 * * 1-5\", \"*/10 * * * * *\", @daily",
    ),
    (
        TIMEZONE,
        "ZONE",
        "IANA zone of --schedule, e.g. Europe/Berlin [env TZ, else UTC]",
    ),
    (
        NEXT,
        "N",
        "print the next N beat times and exit, sending nothing",
    ),
    (
        FROM,
        "TIME",
        "with --next: start at this RFC 3339 time [now]",
    ),
    (DATA, "TEXT", "the body, instead of the heartbeat JSON"),
    (
        DATA_BASE64,
        "B64",
        "the body as standard base64 (binary payloads)",
    ),
    (
        CONTENT_TYPE,
        "TYPE",
        "Content-Type of the body, omitted when empty [application/json]",
    ),
    (
        LOOKUP,
        "HOST",
        "print HOST's addresses as a connection would look them up, and exit",
    ),
    (
        TIMEOUT,
        "D",
        "per-attempt timeout, Go duration or seconds [10s] (env K_SINK_TIMEOUT wins)",
    ),
    (
        COUNT,
        "N",
        "stop after N events; exit 3 if one was not delivered",
    ),
    (
        RETRY,
        "N",
        "retries after the first attempt, as Knative's delivery.retry [10]",
    ),
    (
        BACKOFF_POLICY,
        "P",
        "exponential or linear, as delivery.backoffPolicy [exponential]",
    ),
    (
        BACKOFF_DELAY,
        "D",
        "the first retry's wait, ISO 8601 (PT0.2S) or Go duration [40ms]",
    ),
    (
        RETRY_AFTER_MAX,
        "D",
        "the longest wait a Retry-After may ask for; 0 ignores it [20.48s]",
    ),
    (
        DEAD_LETTER_SINK,
        "URL",
        "where an event goes when its retries run out, with Knative's error extensions",
    ),
    (
        ID,
        "KIND",
        "random (a UUID v4 each event), or schedule (a UUID v5 of source and fire time) [random]",
    ),
    (
        STATE_FILE,
        "PATH",
        "keep the last delivered fire time (and --sequence) here, written atomically",
    ),
    (
        CATCH_UP,
        "HOW",
        "with --state-file, fires missed while down: none, last or all [none]",
    ),
    (
        CATCH_UP_WINDOW,
        "D",
        "catch up only fires this recent (Go duration or ISO 8601) [no limit]",
    ),
    (
        JITTER,
        "D",
        "a random delay in [0, D) before each fire [none]",
    ),
    (START, "TIME", "fire nothing before this RFC 3339 time"),
    (
        END,
        "TIME",
        "exit 0 once no fire time is left before this RFC 3339 time",
    ),
    (
        CACERTS,
        "PEM",
        "extra trusted CA certificates, PEM text (env K_CA_CERTS wins)",
    ),
    (
        TOKEN_FILE,
        "PATH",
        "bearer token file, re-read before every send [/oidc/token]",
    ),
    (
        ENCODING,
        "E",
        "compat (raw, as sdk-go) or percent (CloudEvents HTTP 3.1.3.2) [compat]",
    ),
];

/// Every flag that takes no value (Go's boolean flags: `--name`, or `--name=false`).
const BOOL_FLAGS: [(&str, &str); 2] = [
    (
        ALIGN,
        "fire at multiples of --period since the Unix epoch, the same instants everywhere",
    ),
    (
        SEQUENCE,
        "carry the CloudEvents sequence extension, one more each fire",
    ),
];

/// The usage text `--help` prints.
pub fn help() -> String {
    let mut text = String::from(
        "heartbeats: sends a CloudEvent to a sink every period or on a cron schedule (Knative ContainerSource)\n\n\
         Usage: heartbeats [flags]     (flags as -name or --name, value as =v or the next argument)\n\n\
         Flags:\n",
    );
    let line = |text: &mut String, flag: String, meaning: &str| {
        text.push_str(&format!("  {flag:<27}{meaning}\n"));
    };
    for (name, value, meaning) in VALUE_FLAGS {
        line(&mut text, format!("--{name} {value}"), meaning);
    }
    for (name, meaning) in BOOL_FLAGS {
        line(&mut text, format!("--{name}"), meaning);
    }
    line(&mut text, "-h, --help".into(), "this text");
    line(&mut text, "--version".into(), "the version");
    text.push_str(
        "\nEnvironment:\n  \
         K_SINK, K_CE_OVERRIDES, K_CA_CERTS, K_SINK_TIMEOUT, POD_NAME, POD_NAMESPACE,\n  \
         ONE_SHOT (Go ParseBool), TLS_MIN_VERSION (1.2 or 1.3, default 1.3),\n  \
         TZ (the zone of --schedule without --timezone),\n  \
         K_OBSERVABILITY_CONFIG (metrics and tracing, JSON; see the README)\n\n\
         Exit status: 0 ok, 1 configuration error, 2 usage error, 3 event not delivered,\n  \
         4 event dead-lettered (3 and 4: ONE_SHOT/--count)\n",
    );
    text
}

/// The flag values as given (the last of a repeated flag).
#[derive(Default)]
pub struct Flags {
    pub sink: Option<String>,
    pub source: Option<String>,
    pub event_type: Option<String>,
    pub label: Option<String>,
    pub msg: Option<String>,
    pub period: Option<String>,
    pub cacerts: Option<String>,
    pub token_file: Option<String>,
    pub timeout: Option<String>,
    pub count: Option<String>,
    pub encoding: Option<String>,
    pub schedule: Option<String>,
    pub timezone: Option<String>,
    pub next: Option<String>,
    pub from: Option<String>,
    pub data: Option<String>,
    pub data_base64: Option<String>,
    pub content_type: Option<String>,
    pub retry: Option<String>,
    pub backoff_policy: Option<String>,
    pub backoff_delay: Option<String>,
    pub retry_after_max: Option<String>,
    pub dead_letter_sink: Option<String>,
    pub id: Option<String>,
    pub state_file: Option<String>,
    pub catch_up: Option<String>,
    pub catch_up_window: Option<String>,
    pub jitter: Option<String>,
    pub start: Option<String>,
    pub lookup: Option<String>,
    pub end: Option<String>,
    pub align: bool,
    pub sequence: bool,
    /// Arguments that were not flags, skipped: one warning each.
    pub warnings: Vec<String>,
}

/// What the command line asks for besides running.
#[derive(Debug, PartialEq, Eq)]
pub enum Asked {
    Help,
    Version,
}

/// Reads `args` (without the program name).
pub fn read(args: impl IntoIterator<Item = OsString>) -> Result<Result<Flags, Asked>, Error> {
    use lexopt::prelude::*;

    let mut flags = Flags::default();
    let mut parser = lexopt::Parser::from_args(go_style(args));
    while let Some(arg) = parser.next().map_err(usage)? {
        let name = match &arg {
            Long(name) => named(name),
            _ => String::new(),
        };
        let slot = match arg {
            Long("h" | "help") => return Ok(Err(Asked::Help)),
            Long("version") => return Ok(Err(Asked::Version)),
            Long(SINK) => &mut flags.sink,
            Long(SOURCE) => &mut flags.source,
            Long(TYPE) => &mut flags.event_type,
            Long(LABEL) => &mut flags.label,
            Long(MSG) => &mut flags.msg,
            Long(PERIOD) => &mut flags.period,
            Long(CACERTS) => &mut flags.cacerts,
            Long(TOKEN_FILE) => &mut flags.token_file,
            Long(TIMEOUT) => &mut flags.timeout,
            Long(COUNT) => &mut flags.count,
            Long(ENCODING) => &mut flags.encoding,
            Long(SCHEDULE) => &mut flags.schedule,
            Long(TIMEZONE) => &mut flags.timezone,
            Long(NEXT) => &mut flags.next,
            Long(FROM) => &mut flags.from,
            Long(DATA) => &mut flags.data,
            Long(DATA_BASE64) => &mut flags.data_base64,
            Long(CONTENT_TYPE) => &mut flags.content_type,
            Long(RETRY) => &mut flags.retry,
            Long(BACKOFF_POLICY) => &mut flags.backoff_policy,
            Long(BACKOFF_DELAY) => &mut flags.backoff_delay,
            Long(RETRY_AFTER_MAX) => &mut flags.retry_after_max,
            Long(DEAD_LETTER_SINK) => &mut flags.dead_letter_sink,
            Long(ID) => &mut flags.id,
            Long(STATE_FILE) => &mut flags.state_file,
            Long(CATCH_UP) => &mut flags.catch_up,
            Long(CATCH_UP_WINDOW) => &mut flags.catch_up_window,
            Long(JITTER) => &mut flags.jitter,
            Long(START) => &mut flags.start,
            Long(LOOKUP) => &mut flags.lookup,
            Long(END) => &mut flags.end,
            Long(ALIGN) => {
                flags.align = boolean(&mut parser, &name)?;
                continue;
            }
            Long(SEQUENCE) => {
                flags.sequence = boolean(&mut parser, &name)?;
                continue;
            }
            // Knative's own template renders a missing value as `<no value>`; Go's flag package
            // stops there. Skip it, say so, and read the flags after it.
            Value(stray) => {
                let stray = stray.to_string_lossy();
                flags
                    .warnings
                    .push(format!("ignored the argument {stray:?}: not a flag"));
                continue;
            }
            _ => return Err(usage(arg.unexpected())),
        };
        let value = parser.value().map_err(usage)?;
        *slot = Some(super::env::utf8(&name, value)?);
    }
    Ok(Ok(flags))
}

/// A boolean flag's value, as Go's flag package takes it: alone it is true, `=v` is
/// `strconv.ParseBool`'s (the next argument is never its value).
fn boolean(parser: &mut lexopt::Parser, name: &str) -> Result<bool, Error> {
    let Some(value) = parser.optional_value() else {
        return Ok(true);
    };
    let value = super::env::utf8(name, value)?;
    super::goparse::parse_bool(&value).ok_or_else(|| {
        Error::Usage(format!(
            "invalid boolean value {value:?} for {name}: expected true or false (see --help)"
        ))
    })
}

/// `--name`: how a flag is named in messages.
pub fn named(name: &str) -> String {
    format!("--{name}")
}

fn usage(error: lexopt::Error) -> Error {
    Error::Usage(format!("{error} (see --help)"))
}

/// Rewrites Go's single-dash long flags (`-period=1`) to `--period=1` for lexopt, leaving values
/// alone (`--label -x` keeps `-x`), and drops empty arguments, which Knative's own manifests pass,
/// except as a flag's value (`--data ""` is an empty body).
fn go_style(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut takes_value = false;
    let mut flags_done = false;
    for arg in args {
        if arg.is_empty() && !takes_value {
            continue;
        }
        let bytes = arg.as_encoded_bytes();
        if takes_value || flags_done || bytes.len() < 2 || bytes[0] != b'-' {
            takes_value = false;
            out.push(arg);
            continue;
        }
        flags_done = bytes == b"--";
        let name = bytes.strip_prefix(b"--").unwrap_or(&bytes[1..]);
        takes_value = VALUE_FLAGS.iter().any(|(f, _, _)| f.as_bytes() == name);
        if bytes[1] == b'-' {
            out.push(arg);
        } else {
            let mut long = OsString::from("-");
            long.push(&arg);
            out.push(long);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Flags {
        match read(args.iter().map(OsString::from)) {
            Ok(Ok(flags)) => flags,
            Ok(Err(asked)) => panic!("{args:?}: asked for {asked:?}"),
            Err(error) => panic!("{args:?}: {error}"),
        }
    }

    #[test]
    fn go_flag_syntax_single_or_double_dash_with_equals_or_next_argument() {
        for args in [
            &["-period=2s", "-label", "x"][..],
            &["--period", "2s", "--label=x"],
            &["", "-period", "2s", "", "-label=x"],
        ] {
            let f = flags(args);
            assert_eq!(
                (f.period.as_deref(), f.label.as_deref()),
                (Some("2s"), Some("x")),
                "{args:?}"
            );
        }
        let f = flags(&["-label", "-x", "--msg", "--period"]);
        assert_eq!(
            (f.label.as_deref(), f.msg.as_deref()),
            (Some("-x"), Some("--period"))
        );
        // An empty argument is dropped, except as a flag's value.
        let f = flags(&["--data", "", "", "--label", "x"]);
        assert_eq!(
            (f.data.as_deref(), f.label.as_deref()),
            (Some(""), Some("x"))
        );
    }

    #[test]
    fn help_and_version_are_asked_for() {
        for (arg, asked) in [
            ("-h", Asked::Help),
            ("--help", Asked::Help),
            ("-help", Asked::Help),
            ("-version", Asked::Version),
        ] {
            let got = read([OsString::from(arg)]).unwrap().err();
            assert_eq!(got, Some(asked), "{arg}");
        }
    }

    #[test]
    fn unknown_flags_and_missing_values_are_usage_errors() {
        for args in [
            &["--nope"][..],
            &["-x"],
            &["--period"],
            &["<no value>", "--nope"],
        ] {
            let error = read(args.iter().map(OsString::from)).err().unwrap();
            assert_eq!(error.exit_code(), 2, "{args:?}: {error}");
        }
    }

    #[test]
    fn stray_arguments_are_skipped_with_a_warning_and_the_flags_after_them_read() {
        let f = flags(&["<no value>", "--label=x", "more"]);
        assert_eq!(f.label.as_deref(), Some("x"));
        assert_eq!(
            f.warnings,
            [
                "ignored the argument \"<no value>\": not a flag",
                "ignored the argument \"more\": not a flag",
            ]
        );
        // `--` still ends the flags: what follows is skipped too.
        let f = flags(&["--", "--label=x"]);
        assert_eq!(f.label, None);
        assert_eq!(
            f.warnings,
            ["ignored the argument \"--label=x\": not a flag"]
        );
    }

    #[test]
    fn the_usage_names_every_flag() {
        let text = help();
        for (name, _, _) in VALUE_FLAGS {
            assert!(text.contains(&format!("--{name} ")), "{name}");
        }
        for (name, _) in BOOL_FLAGS {
            assert!(text.contains(&format!("--{name} ")), "{name}");
        }
    }

    #[test]
    fn boolean_flags_take_no_value_but_an_attached_one() {
        let f = flags(&["--align", "--label", "x", "-sequence=true"]);
        assert!(f.align && f.sequence);
        assert_eq!(f.label.as_deref(), Some("x"));
        let f = flags(&["--align=false", "--sequence=0"]);
        assert!(!f.align && !f.sequence);
        // The next argument is not a boolean's value: a stray argument, skipped.
        let f = flags(&["--align", "false"]);
        assert!(f.align);
        assert_eq!(f.warnings.len(), 1);
        let error = read(["--align=maybe"].map(OsString::from)).err().unwrap();
        assert_eq!(error.exit_code(), 2, "{error}");
    }

    #[cfg(unix)]
    #[test]
    fn a_value_that_is_not_utf8_is_refused_by_name() {
        use std::os::unix::ffi::OsStringExt;
        let args = vec![OsString::from("--msg"), OsString::from_vec(vec![0xff])];
        let error = read(args).err().unwrap();
        assert!(error.to_string().starts_with("invalid --msg"), "{error}");
    }
}

//! The receiver's flags and the `PORT` variable, read into [`Settings`]; every bad value is one
//! line naming the flag and quoting the value, before anything listens.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::config::goparse::parse_duration;
use crate::config::url::go_split_host_port;
use crate::error::Error;

/// Where the receiver listens without `--listen` or `PORT`: every address, port 8080.
const DEFAULT_PORT: u16 = 8080;
/// The largest request body taken by default.
const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// The largest `--max-body`.
const MAX_MAX_BODY: usize = 64 * 1024 * 1024;

/// How each received event is printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// As Knative's `event_display` prints it.
    Text,
    /// One JSON line an event (or a refusal), for a test to parse.
    Json,
    /// Nothing (the report and metrics still count).
    None,
}

/// The certificate chain and key of `--tls-cert` and `--tls-key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Everything the receiver was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub listen: SocketAddr,
    /// The port came from nowhere (`:8080` by default): listen on IPv4 too if IPv6 is missing.
    pub any_address: bool,
    pub tls: Option<TlsFiles>,
    pub max_body: usize,
    pub output: Output,
    /// `--period`: an event later than this (plus the tolerance) after its source's previous
    /// one is late.
    pub period: Option<Duration>,
    pub tolerance: Duration,
    pub expect: Option<u64>,
    pub within: Option<Duration>,
    pub strict: bool,
    /// The status of each event request in turn; the last repeats.
    pub answers: Vec<u16>,
    pub answer_delay: Duration,
    /// `Retry-After` on answers other than 2xx, in seconds.
    pub retry_after: Option<u64>,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(Box<Settings>),
    Help,
    Version,
}

/// Reads `args` (without the program name) and `port`, the `PORT` variable.
pub fn parse(
    args: impl IntoIterator<Item = OsString>,
    port: Option<String>,
) -> Result<Command, Error> {
    use lexopt::prelude::*;

    let mut values: Vec<(&'static str, String)> = Vec::new();
    let mut strict = false;
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(usage)? {
        let name = match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Long("version") => return Ok(Command::Version),
            Long("strict") => {
                strict = true;
                continue;
            }
            Long(name) => match FLAGS.iter().find(|(flag, _, _)| *flag == name) {
                Some((flag, _, _)) => *flag,
                None => return Err(Error::Usage(format!("unknown flag --{name} (see --help)"))),
            },
            other => return Err(usage(other.unexpected())),
        };
        let value = parser.value().map_err(usage)?;
        let value = value.into_string().map_err(|raw| {
            Error::invalid(
                format!("--{name}"),
                &raw.to_string_lossy(),
                "expected UTF-8 text",
            )
        })?;
        values.retain(|(flag, _)| *flag != name);
        values.push((name, value));
    }
    let given = |flag: &str| {
        values
            .iter()
            .find(|(name, _)| *name == flag)
            .map(|(_, value)| value.as_str())
    };
    let (listen, any_address) = match (given("listen"), port.as_deref().filter(|p| !p.is_empty())) {
        (Some(text), _) => (listen_address("--listen", text)?, false),
        (None, Some(port)) => (listen_address("PORT", &format!(":{port}"))?, true),
        (None, None) => (
            SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), DEFAULT_PORT),
            true,
        ),
    };
    let tls = match (given("tls-cert"), given("tls-key")) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.into(),
            key: key.into(),
        }),
        (None, None) => None,
        (Some(cert), None) => {
            return Err(Error::invalid(
                "--tls-cert",
                cert,
                "--tls-key is needed too",
            ));
        }
        (None, Some(key)) => {
            return Err(Error::invalid("--tls-key", key, "--tls-cert is needed too"));
        }
    };
    let output = match given("output").unwrap_or("text") {
        "text" => Output::Text,
        "json" => Output::Json,
        "none" => Output::None,
        other => {
            return Err(Error::invalid(
                "--output",
                other,
                "expected text, json or none",
            ));
        }
    };
    let duration = |flag: &str| -> Result<Option<Duration>, Error> {
        given(flag)
            .map(|text| {
                parse_duration(text)
                    .filter(|&nanos| nanos >= 0)
                    .map(|nanos| Duration::from_nanos(nanos as u64))
                    .ok_or_else(|| {
                        Error::invalid(
                            format!("--{flag}"),
                            text,
                            "expected a Go duration like 500ms or 1m30s",
                        )
                    })
            })
            .transpose()
    };
    let period = duration("period")?.filter(|p| !p.is_zero());
    let tolerance =
        duration("tolerance")?.unwrap_or_else(|| period.map_or(Duration::ZERO, |p| p / 2));
    let within = duration("within")?;
    let expect = match given("expect") {
        Some(text) => Some(text.parse::<u64>().ok().filter(|&n| n > 0).ok_or_else(|| {
            Error::invalid("--expect", text, "expected a number of events, 1 or more")
        })?),
        None => None,
    };
    if let (Some(within), None) = (given("within"), expect) {
        return Err(Error::invalid(
            "--within",
            within,
            "it bounds --expect, which was not given",
        ));
    }
    if strict && expect.is_none() {
        return Err(Error::Usage(
            "--strict goes with --expect (see --help)".into(),
        ));
    }
    let max_body = match given("max-body") {
        Some(text) => bytes(text)
            .filter(|&n| (1..=MAX_MAX_BODY).contains(&n))
            .ok_or_else(|| {
                Error::invalid(
                    "--max-body",
                    text,
                    "expected a size from 1 byte to 64MiB, like 1048576, 512KiB or 1MiB",
                )
            })?,
        None => DEFAULT_MAX_BODY,
    };
    let answers = match given("answer") {
        Some(text) => text
            .split(',')
            .map(|code| {
                code.trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|c| (200..=599).contains(c))
            })
            .collect::<Option<Vec<u16>>>()
            .filter(|codes| !codes.is_empty())
            .ok_or_else(|| {
                Error::invalid(
                    "--answer",
                    text,
                    "expected status codes from 200 to 599, comma separated, like 503,503,202",
                )
            })?,
        None => vec![202],
    };
    let retry_after = match given("retry-after") {
        Some(text) => Some(
            text.parse::<u64>()
                .ok()
                .filter(|&s| s <= 86_400)
                .ok_or_else(|| {
                    Error::invalid("--retry-after", text, "expected whole seconds, 0 to 86400")
                })?,
        ),
        None => None,
    };
    Ok(Command::Run(Box::new(Settings {
        listen,
        any_address,
        tls,
        max_body,
        output,
        period,
        tolerance,
        expect,
        within,
        strict,
        answers,
        answer_delay: duration("answer-delay")?.unwrap_or_default(),
        retry_after,
    })))
}

/// `host:port`, `:port` or `[v6]:port` (an IP address, or `localhost`); an empty host is every
/// address, as Go listens.
fn listen_address(name: &str, text: &str) -> Result<SocketAddr, Error> {
    let refuse = || {
        Error::invalid(
            name,
            text,
            "expected :PORT, IP:PORT or [IPv6]:PORT, port 0 to 65535",
        )
    };
    let (host, port) = go_split_host_port(text).ok_or_else(refuse)?;
    let port: u16 = port.parse().map_err(|_| refuse())?;
    let ip: IpAddr = match host {
        "" => Ipv6Addr::UNSPECIFIED.into(),
        "localhost" => IpAddr::from([127, 0, 0, 1]),
        host => host.parse().map_err(|_| refuse())?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// Bytes, with an optional `KiB` or `MiB` suffix.
fn bytes(text: &str) -> Option<usize> {
    let (number, unit) = match text {
        t if t.ends_with("KiB") => (&t[..t.len() - 3], 1024),
        t if t.ends_with("MiB") => (&t[..t.len() - 3], 1024 * 1024),
        t => (t, 1),
    };
    number.parse::<usize>().ok()?.checked_mul(unit)
}

fn usage(error: lexopt::Error) -> Error {
    Error::Usage(format!("{error} (see --help)"))
}

/// The flags that take a value: (name, value, meaning), for `--help`.
const FLAGS: [(&str, &str, &str); 12] = [
    (
        "listen",
        "ADDR",
        "where to listen: :PORT, IP:PORT or [IPv6]:PORT [PORT, else :8080]",
    ),
    (
        "tls-cert",
        "FILE",
        "serve HTTPS with this PEM certificate chain (re-read when it changes)",
    ),
    ("tls-key", "FILE", "the PEM private key of --tls-cert"),
    (
        "max-body",
        "SIZE",
        "the largest request body, in bytes, KiB or MiB; larger is 413 [1MiB]",
    ),
    (
        "output",
        "FORMAT",
        "text (as event_display), json (a line an event) or none [text]",
    ),
    (
        "period",
        "D",
        "the senders' period: an event later than D plus the tolerance is late",
    ),
    (
        "tolerance",
        "D",
        "how much later than --period an event may come [half the period]",
    ),
    (
        "expect",
        "N",
        "exit 0 once N events came with no gap and no duplicate",
    ),
    (
        "within",
        "D",
        "with --expect: exit 3 if they have not come within D",
    ),
    (
        "answer",
        "CODES",
        "the status of each event request in turn, the last repeating [202]",
    ),
    (
        "answer-delay",
        "D",
        "wait D before answering each event request",
    ),
    (
        "retry-after",
        "S",
        "send Retry-After: S (seconds) with answers other than 2xx",
    ),
];

/// The usage text `--help` prints.
pub fn help() -> String {
    let mut text = String::from(
        "heartbeats-receiver: receives CloudEvents over HTTP, prints them, and judges the stream\n\n\
         Usage: heartbeats-receiver [flags]\n\nFlags:\n",
    );
    let mut line = |flag: String, meaning: &str| text.push_str(&format!("  {flag:<22}{meaning}\n"));
    for (name, value, meaning) in FLAGS {
        line(format!("--{name} {value}"), meaning);
    }
    line(
        "--strict".into(),
        "with --expect: exit 1 at the first gap, duplicate, reordering or late event",
    );
    line("-h, --help".into(), "this text");
    line("--version".into(), "the version");
    text.push_str(
        "\nEndpoints: POST (any path) an event in binary, structured or batch mode, answered 202;\n  \
         GET /report (JSON), GET /metrics (Prometheus text), GET /healthz.\n\n\
         Environment: PORT (the port, when --listen is not given).\n\n\
         Exit status: 0 the expected events came, or stopped by SIGTERM/SIGINT without --expect;\n  \
         1 configuration error, or a violation with --strict; 2 usage error;\n  \
         3 --within ran out (or a stop came) before the expected events.\n",
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], port: Option<&str>) -> Result<Settings, Error> {
        match parse(args.iter().map(OsString::from), port.map(str::to_owned))? {
            Command::Run(settings) => Ok(*settings),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_listen_on_8080_answer_202_and_print_as_event_display() {
        let s = run(&[], None).unwrap();
        assert_eq!(s.listen, "[::]:8080".parse().unwrap());
        assert!(s.any_address);
        assert_eq!(
            (s.answers.clone(), s.output, s.max_body),
            (vec![202], Output::Text, 1 << 20)
        );
        assert_eq!(run(&[], Some("9000")).unwrap().listen.port(), 9000);
        let s = run(&["--listen", "127.0.0.1:0", "--period", "2s"], Some("9000")).unwrap();
        assert_eq!(s.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(s.tolerance, Duration::from_secs(1));
    }

    #[test]
    fn every_bad_value_names_its_flag() {
        for (args, port, named) in [
            (&["--listen", "nowhere"][..], None, "--listen"),
            (&[][..], Some("http"), "PORT"),
            (&["--answer", "503,99"], None, "--answer"),
            (&["--expect", "0"], None, "--expect"),
            (&["--within", "5s"], None, "--within"),
            (&["--max-body", "2GiB"], None, "--max-body"),
            (&["--output", "yaml"], None, "--output"),
            (&["--period", "soon"], None, "--period"),
            (&["--tls-cert", "c.pem"], None, "--tls-cert"),
            (&["--retry-after", "-1"], None, "--retry-after"),
        ] {
            let error = run(args, port).unwrap_err().to_string();
            assert!(error.starts_with(&format!("invalid {named} ")), "{error}");
        }
        assert!(matches!(run(&["--strict"], None), Err(Error::Usage(_))));
        assert!(matches!(run(&["--nope"], None), Err(Error::Usage(_))));
    }

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(bytes("512KiB"), Some(512 * 1024));
        assert_eq!(bytes("2MiB"), Some(2 << 20));
        assert_eq!(bytes("100"), Some(100));
        assert_eq!(bytes("1.5MiB"), None);
    }
}

//! Flags and environment to one [`Config`], parsed once at start-up. Flag syntax is Go's
//! (`-name` or `--name`, value as `=v` or the next argument), since Knative manifests written for
//! the Go image pass flags that way. Every refusal names the flag or variable and the value.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;
use crate::event::{self, HeaderEncoding};
use crate::goparse;
use crate::observability::{self, Observability};
use crate::overrides;
use crate::proxy::{self, Proxy};
use crate::tls::{TRUST_BUNDLE_DIR, TlsSettings};
use crate::userinfo;

pub const FLAG_SINK: &str = "sink";
pub const FLAG_SOURCE: &str = "eventSource";
pub const FLAG_TYPE: &str = "eventType";
pub const FLAG_LABEL: &str = "label";
pub const FLAG_MSG: &str = "msg";
pub const FLAG_PERIOD: &str = "period";
pub const FLAG_CACERTS: &str = "cacerts";
pub const FLAG_TOKEN_FILE: &str = "oidc-token-file";
pub const FLAG_TIMEOUT: &str = "timeout";
pub const FLAG_COUNT: &str = "count";
pub const FLAG_ENCODING: &str = "ce-header-encoding";

/// Flags that take a value; all others (`-h`, `--help`, `--version`) stand alone.
const VALUE_FLAGS: [&str; 11] = [
    FLAG_SINK,
    FLAG_SOURCE,
    FLAG_TYPE,
    FLAG_LABEL,
    FLAG_MSG,
    FLAG_PERIOD,
    FLAG_CACERTS,
    FLAG_TOKEN_FILE,
    FLAG_TIMEOUT,
    FLAG_COUNT,
    FLAG_ENCODING,
];

pub const ENV_SINK: &str = "K_SINK";
pub const ENV_CA_CERTS: &str = "K_CA_CERTS";
pub const ENV_TIMEOUT: &str = "K_SINK_TIMEOUT";
pub const ENV_POD_NAME: &str = "POD_NAME";
pub const ENV_POD_NAMESPACE: &str = "POD_NAMESPACE";
pub const ENV_HOSTNAME: &str = "HOSTNAME";
pub const ENV_ONE_SHOT: &str = "ONE_SHOT";
pub const ENV_TLS_MIN: &str = "TLS_MIN_VERSION";
pub const ENV_TLS_MAX: &str = "TLS_MAX_VERSION";
pub const ENV_TLS_CIPHER_SUITES: &str = "TLS_CIPHER_SUITES";
pub const ENV_TLS_CURVES: &str = "TLS_CURVE_PREFERENCES";
pub const ENV_SSL_CERT_FILE: &str = "SSL_CERT_FILE";
pub const ENV_SSL_CERT_DIR: &str = "SSL_CERT_DIR";
pub const ENV_TRUST_BUNDLE_DIR: &str = "HEARTBEATS_TRUST_BUNDLE_DIR";

pub const DEFAULT_TYPE: &str = "dev.knative.eventing.samples.heartbeat";
pub const DEFAULT_SOURCE_PREFIX: &str = "https://knative.dev/eventing-contrib/cmd/heartbeats/#";
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(5);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_TOKEN_FILE: &str = "/oidc/token";
/// The longest pod name or namespace taken for the default source (Kubernetes allows 253).
const MAX_POD_IDENTITY: usize = 1024;
/// Where Kubernetes mounts the pod's namespace; the fallback for `POD_NAMESPACE`.
pub const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

pub const HELP: &str = "\
heartbeats: sends a CloudEvent to a sink every period (Knative ContainerSource)

Usage: heartbeats [flags]     (flags as -name or --name, value as =v or the next argument)

Flags:
  --sink URL                 where to POST events (env K_SINK wins when set)
  --eventSource S            ce-source [https://knative.dev/eventing-contrib/cmd/heartbeats/#NS/POD]
  --eventType T              ce-type [dev.knative.eventing.samples.heartbeat]
  --label L                  data.label; a leading \" means a Go string literal
  --msg M                    data.msg, omitted when empty
  --period P                 Go duration (500ms, 1.5h) or whole seconds [5s]
  --timeout D                per-attempt timeout, Go duration or seconds [10s] (env K_SINK_TIMEOUT wins)
  --count N                  stop after N events; exit 3 if one was not delivered
  --cacerts PEM              extra trusted CA certificates, PEM text (env K_CA_CERTS wins)
  --oidc-token-file PATH     bearer token file, re-read before every send [/oidc/token]
  --ce-header-encoding E     compat (raw, as sdk-go) or percent (CloudEvents HTTP 3.1.3.2) [compat]
  -h, --help                 this text
  --version                  the version

Environment:
  K_SINK, K_CE_OVERRIDES, K_CA_CERTS, K_SINK_TIMEOUT, POD_NAME, POD_NAMESPACE,
  ONE_SHOT (Go ParseBool), TLS_MIN_VERSION (1.2 or 1.3, default 1.3),
  K_OBSERVABILITY_CONFIG (metrics and tracing, JSON; see the README)

Exit status: 0 ok, 1 configuration error, 2 usage error, 3 event not delivered (ONE_SHOT/--count)
";

/// Everything the program needs, from flags and environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where to POST: env `K_SINK` when non-empty, else `--sink`, without its userinfo. No
    /// default.
    pub sink: String,
    /// The same, parsed.
    pub sink_uri: ureq::http::Uri,
    /// The sink URL's userinfo, percent-decoded (`user:password`), sent as Basic auth.
    pub sink_userinfo: Option<Vec<u8>>,
    /// The proxy the sink is reached through: `HTTP_PROXY`/`HTTPS_PROXY` unless `NO_PROXY`.
    pub proxy: Option<Proxy>,
    /// `ce-source`: `--eventSource`, default [`DEFAULT_SOURCE_PREFIX`] + `namespace/pod`.
    pub source: String,
    /// `ce-type`: `--eventType`, trimmed; default [`DEFAULT_TYPE`].
    pub event_type: String,
    /// `data.label`: `--label`, Go-unquoted when it starts with `"`; default empty.
    pub label: String,
    /// What start-up tolerated rather than refused, one line each, to log as warnings: a
    /// `--label` that looked quoted but was not a valid Go literal (sent raw), stray arguments,
    /// overrides named like core attributes.
    pub warnings: Vec<String>,
    /// `data.msg`: `--msg`; default empty (omitted).
    pub msg: String,
    /// Time between beats: `--period`, default 5 s.
    pub period: Duration,
    /// Per-attempt request timeout: env `K_SINK_TIMEOUT`, else `--timeout`; default 10 s.
    pub timeout: Duration,
    /// Events to send before exiting: `--count`, or 1 for `ONE_SHOT`; `None` runs forever.
    pub count: Option<u64>,
    /// Header value encoding: `--ce-header-encoding`, default compat.
    pub encoding: HeaderEncoding,
    /// Extra trusted CAs as PEM text: env `K_CA_CERTS`, else `--cacerts`; with that name.
    pub ca_certs: Option<Named>,
    /// Extensions from env `K_CE_OVERRIDES`, validated.
    pub overrides: Vec<(String, String)>,
    /// OIDC token file: `--oidc-token-file`, default `/oidc/token`.
    pub token_file: PathBuf,
    /// TLS versions, cipher suites and curves: env `TLS_MIN_VERSION` (default 1.3, Knative's),
    /// `TLS_MAX_VERSION`, `TLS_CIPHER_SUITES`, `TLS_CURVE_PREFERENCES`.
    pub tls: TlsSettings,
    /// Extra trusted CAs as Go and OpenSSL read them: env `SSL_CERT_FILE` (a PEM file) and
    /// `SSL_CERT_DIR` (colon-separated directories of PEM files).
    pub ssl_cert_file: Option<PathBuf>,
    pub ssl_cert_dirs: Vec<PathBuf>,
    /// Knative's trust bundles: `/knative-custom-certs`, or env `HEARTBEATS_TRUST_BUNDLE_DIR`
    /// (for tests: Knative always mounts them at the default).
    pub trust_bundle_dir: PathBuf,
    /// Metrics and tracing: env `K_OBSERVABILITY_CONFIG` and the `OTEL_*` overrides.
    pub observability: Observability,
}

/// A value with the name of the variable or flag it came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub name: String,
    pub value: String,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Run(Box<Config>),
    Help,
    Version,
}

/// Where configuration comes from, so that tests never touch the process.
pub trait Host {
    /// An environment variable.
    fn var(&self, name: &str) -> Option<OsString>;
    /// A small file's text (the namespace file), `None` when unreadable.
    fn read_file(&self, path: &str) -> Option<String>;
}

/// The real process environment and file system.
pub struct Process;

impl Host for Process {
    fn var(&self, name: &str) -> Option<OsString> {
        std::env::var_os(name)
    }
    fn read_file(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }
}

/// The flag values as given (the last of a repeated flag), before defaults and environment.
#[derive(Default)]
struct Flags {
    sink: Option<String>,
    source: Option<String>,
    event_type: Option<String>,
    label: Option<String>,
    msg: Option<String>,
    period: Option<String>,
    cacerts: Option<String>,
    token_file: Option<String>,
    timeout: Option<String>,
    count: Option<String>,
    encoding: Option<String>,
}

/// Parses `args` (without the program name) and the environment from `host`.
pub fn parse_args(
    args: impl IntoIterator<Item = OsString>,
    host: &dyn Host,
) -> Result<Command, Error> {
    use lexopt::prelude::*;

    let mut flags = Flags::default();
    let mut warnings = Vec::new();
    let mut parser = lexopt::Parser::from_args(go_style(args));
    while let Some(arg) = parser.next().map_err(usage)? {
        let name = match &arg {
            Long(name) => flag(name),
            _ => String::new(),
        };
        let slot = match arg {
            Long("h" | "help") => return Ok(Command::Help),
            Long("version") => return Ok(Command::Version),
            Long(FLAG_SINK) => &mut flags.sink,
            Long(FLAG_SOURCE) => &mut flags.source,
            Long(FLAG_TYPE) => &mut flags.event_type,
            Long(FLAG_LABEL) => &mut flags.label,
            Long(FLAG_MSG) => &mut flags.msg,
            Long(FLAG_PERIOD) => &mut flags.period,
            Long(FLAG_CACERTS) => &mut flags.cacerts,
            Long(FLAG_TOKEN_FILE) => &mut flags.token_file,
            Long(FLAG_TIMEOUT) => &mut flags.timeout,
            Long(FLAG_COUNT) => &mut flags.count,
            Long(FLAG_ENCODING) => &mut flags.encoding,
            // Knative's own template renders a missing value as `<no value>`; Go's flag package
            // stops there. Skip it, say so, and read the flags after it.
            Value(stray) => {
                let stray = stray.to_string_lossy();
                warnings.push(format!("ignored the argument {stray:?}: not a flag"));
                continue;
            }
            _ => return Err(usage(arg.unexpected())),
        };
        *slot = Some(utf8(&name, &parser.value().map_err(usage)?)?);
    }
    let mut config = resolve(flags, host)?;
    warnings.append(&mut config.warnings);
    config.warnings = warnings;
    Ok(Command::Run(Box::new(config)))
}

fn usage(error: lexopt::Error) -> Error {
    Error::Usage(format!("{error} (see --help)"))
}

/// Rewrites Go's single-dash long flags (`-period=1`) to `--period=1` for lexopt, leaving values
/// alone (`--label -x` keeps `-x`), and drops empty arguments, which Knative's own manifests pass.
fn go_style(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut takes_value = false;
    let mut flags_done = false;
    for arg in args.into_iter().filter(|a| !a.is_empty()) {
        let bytes = arg.as_encoded_bytes();
        if takes_value || flags_done || bytes.len() < 2 || bytes[0] != b'-' {
            takes_value = false;
            out.push(arg);
            continue;
        }
        flags_done = bytes == b"--";
        let name = bytes.strip_prefix(b"--").unwrap_or(&bytes[1..]);
        takes_value = VALUE_FLAGS.iter().any(|f| f.as_bytes() == name);
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

fn utf8(name: &str, value: &OsStr) -> Result<String, Error> {
    value
        .to_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::invalid(name, &value.to_string_lossy(), "expected UTF-8 text"))
}

/// An environment variable as text; unset and empty are both `None`.
fn env(host: &dyn Host, name: &str) -> Result<Option<String>, Error> {
    match host.var(name) {
        Some(v) if !v.is_empty() => utf8(name, &v).map(Some),
        _ => Ok(None),
    }
}

/// `--name`: how a flag is named in messages.
fn flag(name: &str) -> String {
    format!("--{name}")
}

/// A setting both a variable and a flag can give: the variable wins when non-empty, an empty
/// flag counts as unset. The value, with the name it came under (for messages).
fn either(
    host: &dyn Host,
    var: &str,
    flag_name: &str,
    flag_value: Option<String>,
) -> Result<Option<Named>, Error> {
    Ok(match env(host, var)? {
        Some(value) => Some(Named {
            name: var.to_owned(),
            value,
        }),
        None => flag_value.filter(|v| !v.is_empty()).map(|value| Named {
            name: flag(flag_name),
            value,
        }),
    })
}

/// Applies defaults and the environment to the flags and checks every value.
fn resolve(flags: Flags, host: &dyn Host) -> Result<Config, Error> {
    let sink = match either(host, ENV_SINK, FLAG_SINK, flags.sink)? {
        Some(Named { name, value }) => check_sink(&name, value)?,
        None => return Err(Error::NoSink),
    };
    let proxy = proxy::for_sink(&sink.uri, |name| env(host, name).ok().flatten())?;
    let (source, event_type) = attributes(host, flags.source, flags.event_type)?;
    let (label, label_warning) = unquote_label(flags.label.unwrap_or_default());
    let mut warnings: Vec<String> = label_warning.into_iter().collect();
    let (period, timeout, count) = timing(host, flags.period, flags.timeout, flags.count)?;
    let encoding = encoding(flags.encoding)?;
    let ca_certs = either(host, ENV_CA_CERTS, FLAG_CACERTS, flags.cacerts)?;
    let (overrides, ignored) =
        overrides::parse(&env(host, overrides::ENV_OVERRIDES)?.unwrap_or_default())?;
    warnings.extend(ignored);
    // Knative writes these, not the user: problems are warnings (see the observability module).
    let (observability, more) =
        observability::from_env(&|name| host.var(name).and_then(|v| v.into_string().ok()));
    warnings.extend(more);
    Ok(Config {
        sink: sink.url,
        sink_uri: sink.uri,
        sink_userinfo: sink.userinfo,
        proxy,
        source,
        event_type,
        label,
        warnings,
        msg: flags.msg.unwrap_or_default(),
        period,
        timeout,
        count,
        encoding,
        ca_certs,
        overrides,
        token_file: PathBuf::from(flags.token_file.as_deref().unwrap_or(DEFAULT_TOKEN_FILE)),
        tls: TlsSettings::parse(
            env(host, ENV_TLS_MIN)?.as_deref(),
            env(host, ENV_TLS_MAX)?.as_deref(),
            env(host, ENV_TLS_CIPHER_SUITES)?.as_deref(),
            env(host, ENV_TLS_CURVES)?.as_deref(),
        )?,
        ssl_cert_file: env(host, ENV_SSL_CERT_FILE)?.map(PathBuf::from),
        ssl_cert_dirs: env(host, ENV_SSL_CERT_DIR)?
            .map(|dirs| {
                dirs.split(':')
                    .filter(|d| !d.is_empty())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default(),
        trust_bundle_dir: env(host, ENV_TRUST_BUNDLE_DIR)?
            .map_or_else(|| PathBuf::from(TRUST_BUNDLE_DIR), PathBuf::from),
        observability,
    })
}

/// `ce-source` (`--eventSource`, else the default from the pod) and `ce-type` (`--eventType`,
/// trimmed, not empty), each at most [`event::MAX_HEADER_VALUE`] bytes.
fn attributes(
    host: &dyn Host,
    source: Option<String>,
    event_type: Option<String>,
) -> Result<(String, String), Error> {
    let source = match source.filter(|s| !s.is_empty()) {
        Some(source) => source,
        None => default_source(host)?,
    };
    let event_type = event_type
        .as_deref()
        .unwrap_or(DEFAULT_TYPE)
        .trim()
        .to_owned();
    if event_type.is_empty() {
        return Err(Error::invalid(
            flag(FLAG_TYPE),
            "",
            "ce-type must not be empty",
        ));
    }
    for (name, value) in [(FLAG_SOURCE, &source), (FLAG_TYPE, &event_type)] {
        if value.len() > event::MAX_HEADER_VALUE {
            let limit = format!("longer than {} bytes", event::MAX_HEADER_VALUE);
            return Err(Error::invalid(flag(name), value, limit));
        }
    }
    Ok((source, event_type))
}

/// The period (`--period`), the per-attempt timeout (`K_SINK_TIMEOUT`, else `--timeout`) and
/// how many events to send (`ONE_SHOT` means 1, else `--count`, else unlimited).
fn timing(
    host: &dyn Host,
    period: Option<String>,
    timeout: Option<String>,
    count: Option<String>,
) -> Result<(Duration, Duration, Option<u64>), Error> {
    let period = match period.filter(|p| !p.is_empty()) {
        None => DEFAULT_PERIOD,
        Some(p) => positive_duration(&flag(FLAG_PERIOD), &p)?,
    };
    let timeout = match either(host, ENV_TIMEOUT, FLAG_TIMEOUT, timeout)? {
        Some(Named { name, value }) => positive_duration(&name, &value)?,
        None => DEFAULT_TIMEOUT,
    };
    let one_shot = match env(host, ENV_ONE_SHOT)? {
        None => false,
        Some(v) => goparse::parse_bool(&v).ok_or_else(|| {
            let expected = "expected 1, t, T, TRUE, true, True, 0, f, F, FALSE, false or False";
            Error::invalid(ENV_ONE_SHOT, &v, expected)
        })?,
    };
    let count = match count {
        Some(n) => Some(n.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            let expected = "expected a whole number of events, at least 1";
            Error::invalid(flag(FLAG_COUNT), &n, expected)
        })?),
        None => None,
    };
    Ok((period, timeout, if one_shot { Some(1) } else { count }))
}

/// `--ce-header-encoding`: `compat` (the default) or `percent`.
fn encoding(value: Option<String>) -> Result<HeaderEncoding, Error> {
    match value.as_deref() {
        None | Some("compat") => Ok(HeaderEncoding::Compat),
        Some("percent") => Ok(HeaderEncoding::Percent),
        Some(other) => Err(Error::invalid(
            flag(FLAG_ENCODING),
            other,
            "expected compat or percent",
        )),
    }
}

/// Only absolute `http`/`https` URLs with a host and a port that fits 16 bits: anything else
/// could never be delivered to. The userinfo, if any, is split off and percent-decoded as Go's
/// `net/url` does (an invalid escape is refused); the value in an error never shows it.
fn check_sink(name: &str, sink: String) -> Result<CheckedSink, Error> {
    let shown = crate::log::redact_userinfo(&sink).into_owned();
    let refuse = |expected: &str| Error::invalid(name, &shown, expected);
    let expected = "expected an absolute http:// or https:// URL with a host";
    let (url, userinfo) = userinfo::split(&sink);
    let userinfo = match userinfo {
        Some(info) => Some(
            userinfo::percent_decode(info)
                .ok_or_else(|| refuse("the userinfo holds an invalid %-escape"))?,
        ),
        None => None,
    };
    let uri: ureq::http::Uri = url.parse().map_err(|_| refuse(expected))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let host_ok = uri.host().is_some_and(|h| !h.is_empty());
    if !scheme_ok || !host_ok {
        return Err(refuse(expected));
    }
    // `http` reports no port when it does not fit a u16, and ureq then quietly uses 80 or 443:
    // read the port's text. An empty one (`host:`) is the default, as in Go.
    let authority = uri.authority().map_or("", |a| a.as_str());
    let after_host = authority
        .rfind(']')
        .map_or(authority, |end| &authority[end..]);
    if let Some((_, port)) = after_host.rsplit_once(':') {
        if !port.is_empty() && port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(refuse("expected a port from 1 to 65535"));
        }
    }
    Ok(CheckedSink { url, uri, userinfo })
}

/// A sink URL that passed [`check_sink`]: as given but without its userinfo, parsed, and the
/// userinfo decoded.
struct CheckedSink {
    url: String,
    uri: ureq::http::Uri,
    userinfo: Option<Vec<u8>>,
}

/// Go's default source needs the pod and namespace; unlike Go, which exits when they are unset,
/// fall back to `HOSTNAME` (the pod name in Kubernetes) and the service account's namespace file.
fn default_source(host: &dyn Host) -> Result<String, Error> {
    let name = match env(host, ENV_POD_NAME)? {
        Some(name) => name,
        None => env(host, ENV_HOSTNAME)?.ok_or_else(|| {
            Error::invalid(
                ENV_POD_NAME,
                "",
                "unset, and so is HOSTNAME; set it or --eventSource",
            )
        })?,
    };
    let namespace = match env(host, ENV_POD_NAMESPACE)? {
        Some(ns) => ns,
        None => host
            .read_file(NAMESPACE_FILE)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Error::invalid(
                    ENV_POD_NAMESPACE,
                    "",
                    format!("unset, and {NAMESPACE_FILE} is unreadable; set it or --eventSource"),
                )
            })?,
    };
    // Kubernetes names are at most 253 characters; these only guard the 4 KiB header limit.
    for (variable, value) in [(ENV_POD_NAME, &name), (ENV_POD_NAMESPACE, &namespace)] {
        if value.len() > MAX_POD_IDENTITY {
            return Err(Error::invalid(
                variable,
                value,
                format!("longer than {MAX_POD_IDENTITY} bytes"),
            ));
        }
    }
    Ok(format!("{DEFAULT_SOURCE_PREFIX}{namespace}/{name}"))
}

/// `--label`: a value starting with `"` is a Go string literal. Go sends `""` when it does not
/// parse; we keep the raw text and say so. Bytes that are not UTF-8 (`\xff`) become U+FFFD, as
/// Go's JSON encoder does.
fn unquote_label(label: String) -> (String, Option<String>) {
    if !label.starts_with('"') {
        return (label, None);
    }
    if let Some(bytes) = goparse::unquote(&label) {
        (String::from_utf8_lossy(&bytes).into_owned(), None)
    } else {
        let warning = format!(
            "--{FLAG_LABEL} starts with \" but is not a valid Go string literal; sending it as given"
        );
        (label, Some(warning))
    }
}

/// `--period`/`--timeout`: a Go duration, or a bare whole number of seconds (as the Go image);
/// zero and negative are refused (Go panics on them in `time.NewTicker`).
fn positive_duration(name: &str, text: &str) -> Result<Duration, Error> {
    let expected = "expected a positive Go duration like 10s or 500ms, or whole seconds";
    let nanos = goparse::parse_duration(text).or_else(|| {
        let secs: i64 = text.parse().ok()?;
        secs.checked_mul(1_000_000_000)
    });
    match nanos {
        Some(n) if n > 0 => Ok(Duration::from_nanos(n as u64)),
        _ => Err(Error::invalid(name, text, expected)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::TlsVersion;
    use std::collections::HashMap;

    #[derive(Default)]
    struct FakeHost {
        vars: HashMap<&'static str, OsString>,
        namespace_file: Option<String>,
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

    fn host(vars: &[(&'static str, &str)]) -> FakeHost {
        let mut vars: HashMap<_, _> = vars.iter().map(|(k, v)| (*k, OsString::from(v))).collect();
        vars.entry(ENV_POD_NAME).or_insert_with(|| "pod".into());
        vars.entry(ENV_POD_NAMESPACE).or_insert_with(|| "ns".into());
        FakeHost {
            vars,
            namespace_file: None,
        }
    }

    fn parse(args: &[&str], host: &FakeHost) -> Result<Config, Error> {
        match parse_args(args.iter().map(OsString::from), host)? {
            Command::Run(config) => Ok(*config),
            other => panic!("expected a run, got {other:?}"),
        }
    }

    fn sinked(args: &[&str]) -> Result<Config, Error> {
        let mut all = vec!["--sink", "http://127.0.0.1:1/"];
        all.extend_from_slice(args);
        parse(&all, &host(&[]))
    }

    #[test]
    fn defaults_match_the_go_image() {
        let c = sinked(&[]).unwrap();
        assert_eq!(
            c.source,
            "https://knative.dev/eventing-contrib/cmd/heartbeats/#ns/pod"
        );
        assert_eq!(c.event_type, DEFAULT_TYPE);
        assert_eq!((c.label.as_str(), c.msg.as_str()), ("", ""));
        assert_eq!(
            (c.period, c.timeout, c.count),
            (DEFAULT_PERIOD, DEFAULT_TIMEOUT, None)
        );
        assert_eq!(
            (c.encoding, c.tls.min, c.tls.max),
            (HeaderEncoding::Compat, TlsVersion::V13, TlsVersion::V13)
        );
        assert_eq!(c.token_file, PathBuf::from("/oidc/token"));
    }

    #[test]
    fn go_flag_syntax_single_or_double_dash_with_equals_or_next_argument() {
        for args in [
            &["-period=2s", "-label", "x"][..],
            &["--period", "2s", "--label=x"],
            &["", "-period", "2", "", "-label=x"],
        ] {
            let c = sinked(args).unwrap();
            assert_eq!(
                (c.period, c.label.as_str()),
                (Duration::from_secs(2), "x"),
                "{args:?}"
            );
        }
        let c = sinked(&["-label", "-x", "--msg", "--period"]).unwrap();
        assert_eq!((c.label.as_str(), c.msg.as_str()), ("-x", "--period"));
    }

    #[test]
    fn help_and_version_are_commands() {
        for (arg, help) in [
            ("-h", true),
            ("--help", true),
            ("-help", true),
            ("-version", false),
        ] {
            let command = parse_args([OsString::from(arg)], &host(&[])).unwrap();
            assert_eq!(matches!(command, Command::Help), help, "{arg}");
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
            let error = parse_args(args.iter().map(OsString::from), &host(&[])).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{args:?}: {error}");
        }
    }

    #[test]
    fn stray_arguments_are_skipped_with_a_warning_and_the_flags_after_them_read() {
        let c = sinked(&["<no value>", "--label=x", "more"]).unwrap();
        assert_eq!(c.label, "x");
        assert_eq!(
            c.warnings,
            [
                "ignored the argument \"<no value>\": not a flag",
                "ignored the argument \"more\": not a flag",
            ]
        );
        // `--` still ends the flags: what follows is skipped too.
        let c = sinked(&["--", "--label=x"]).unwrap();
        assert_eq!(c.label, "");
        assert_eq!(
            c.warnings,
            ["ignored the argument \"--label=x\": not a flag"]
        );
    }

    #[test]
    fn source_and_type_longer_than_4_kib_are_refused() {
        for flag in ["--eventSource", "--eventType"] {
            let long = format!("{flag}={}", "s".repeat(4097));
            let error = sinked(&[&long]).unwrap_err().to_string();
            assert!(error.starts_with(&format!("invalid {flag}")), "{error}");
            assert!(error.ends_with("longer than 4096 bytes"), "{error}");
            assert!(sinked(&[&format!("{flag}={}", "s".repeat(4096))]).is_ok());
        }
    }

    #[test]
    fn env_wins_over_flags_when_non_empty() {
        let h = host(&[
            (ENV_SINK, "http://127.0.0.1:2/e"),
            (ENV_CA_CERTS, "envpem"),
            (ENV_TIMEOUT, "3"),
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
        assert_eq!(c.sink, "http://127.0.0.1:2/e");
        let named = |name: &str, value: &str| Named {
            name: name.into(),
            value: value.into(),
        };
        assert_eq!(c.ca_certs, Some(named("K_CA_CERTS", "envpem")));
        assert_eq!(c.timeout, Duration::from_secs(3));
        let h = host(&[(ENV_SINK, ""), (ENV_CA_CERTS, "")]);
        let c = parse(&["--sink=http://127.0.0.1:1/", "--cacerts=flagpem"], &h).unwrap();
        assert_eq!(c.sink, "http://127.0.0.1:1/");
        assert_eq!(c.ca_certs, Some(named("--cacerts", "flagpem")));
    }

    #[test]
    fn pod_identity_falls_back_to_hostname_and_namespace_file() {
        let mut h = host(&[
            (ENV_POD_NAME, ""),
            (ENV_POD_NAMESPACE, ""),
            (ENV_HOSTNAME, "hb-7d9f"),
        ]);
        h.namespace_file = Some("team-a\n".into());
        let c = parse(&["--sink=http://h/"], &h).unwrap();
        assert_eq!(c.source, format!("{DEFAULT_SOURCE_PREFIX}team-a/hb-7d9f"));
        h.namespace_file = None;
        let error = parse(&["--sink=http://h/"], &h).unwrap_err();
        assert!(
            error.to_string().starts_with("invalid POD_NAMESPACE"),
            "{error}"
        );
        assert!(parse(&["--sink=http://h/", "--eventSource=s"], &h).is_ok());
    }

    #[test]
    fn one_shot_uses_go_parse_bool() {
        for (value, count) in [
            ("true", Some(1)),
            ("T", Some(1)),
            ("0", None),
            ("False", None),
        ] {
            let c = parse(&["--sink=http://h/"], &host(&[(ENV_ONE_SHOT, value)])).unwrap();
            assert_eq!(c.count, count, "{value}");
        }
        let error = parse(&["--sink=http://h/"], &host(&[(ENV_ONE_SHOT, "yes")])).unwrap_err();
        assert!(
            error.to_string().starts_with("invalid ONE_SHOT \"yes\""),
            "{error}"
        );
    }

    #[test]
    fn label_is_unquoted_when_quoted_and_kept_with_a_warning_when_not_valid() {
        let c = sinked(&[r#"--label="a\tb\u00e9""#]).unwrap();
        assert_eq!((c.label.as_str(), c.warnings.len()), ("a\tbé", 0));
        let c = sinked(&[r#"--label="\xff""#]).unwrap();
        assert_eq!(c.label, "\u{fffd}");
        let c = sinked(&[r#"--label="broken"#]).unwrap();
        assert_eq!(c.label, "\"broken");
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    /// The specification of refused input: one line naming the flag or variable, exit 1. The
    /// process-level test (tests/process.rs) keeps a few rows to show the same holds end to end.
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
            (&["--timeout=0s"], &[], "invalid --timeout \"0s\""),
            (
                &[],
                &[(ENV_TIMEOUT, "soon")],
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
                &[(ENV_TLS_MIN, "1.1")],
                "invalid TLS_MIN_VERSION \"1.1\"",
            ),
            (&["--eventType=  "], &[], "invalid --eventType"),
            (
                &[],
                &[(ENV_SINK, "ftp://h/")],
                "invalid K_SINK \"ftp://h/\"",
            ),
            (&[], &[(ENV_SINK, "/relative")], "invalid K_SINK"),
            (&[], &[(ENV_SINK, "http://")], "invalid K_SINK"),
            (&[], &[(ENV_SINK, "http://a b/")], "invalid K_SINK"),
            (
                &[],
                &[(ENV_SINK, "http://127.0.0.1:99999/e")],
                "invalid K_SINK \"http://127.0.0.1:99999/e\": expected a port from 1 to 65535",
            ),
            (&[], &[(ENV_SINK, "http://h:65536/")], "invalid K_SINK"),
            (&[], &[(ENV_SINK, "https://h:0/")], "invalid K_SINK"),
            (
                &[],
                &[(ENV_SINK, "http://u:p%zz@h/")],
                "invalid K_SINK \"http://***@h/\": the userinfo holds an invalid %-escape",
            ),
            (&[], &[(ENV_SINK, "http://u:p%+1@h/")], "invalid K_SINK"),
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
                &[(ENV_SINK, "ftp://alice:secret@127.0.0.1/")],
                "invalid K_SINK \"ftp://***@127.0.0.1/\"",
            ),
            (
                &["--sink=127.0.0.1:8080"],
                &[],
                "invalid --sink \"127.0.0.1:8080\"",
            ),
            (&["--timeout=never"], &[], "invalid --timeout \"never\""),
            (&[], &[(ENV_TIMEOUT, "-1")], "invalid K_SINK_TIMEOUT \"-1\""),
            (&["--count=none"], &[], "invalid --count \"none\""),
            (&[], &[(ENV_ONE_SHOT, "yes")], "invalid ONE_SHOT \"yes\""),
            (
                &[],
                &[(ENV_TLS_MAX, "1.2")],
                "invalid TLS_MIN_VERSION \"1.3\": above TLS_MAX_VERSION 1.2",
            ),
            (
                &[],
                &[(ENV_TLS_CURVES, "X25519,CurveP521")],
                "invalid TLS_CURVE_PREFERENCES \"CurveP521\": not supported",
            ),
            (
                &[],
                &[(ENV_TLS_CIPHER_SUITES, "TLS_NOPE")],
                "invalid TLS_CIPHER_SUITES \"TLS_NOPE\": unknown",
            ),
            (&[], &[(ENV_POD_NAME, "")], "invalid POD_NAME"),
            (
                &[],
                &[
                    (ENV_SINK, "http://10.1.2.3/"),
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

    #[test]
    fn the_sink_userinfo_is_split_off_and_percent_decoded_as_go_does() {
        let h = host(&[(ENV_SINK, "https://al%40ce:p%23ss@h:8443/e?q=a@b")]);
        let c = parse(&[], &h).unwrap();
        assert_eq!(c.sink, "https://h:8443/e?q=a@b");
        assert_eq!(c.sink_userinfo.as_deref(), Some(&b"al@ce:p#ss"[..]));
        let c = parse(&["--sink=http://h:65535/"], &host(&[])).unwrap();
        assert_eq!(
            (c.sink.as_str(), c.sink_userinfo),
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
            let line = parse(&[], &host(&[(ENV_SINK, sink)]))
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
            parse(&["--sink="], &host(&[(ENV_SINK, "")])),
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
            .insert(ENV_SINK, OsString::from_vec(b"http://h/\xff".to_vec()));
        let error = parse(&[], &h).unwrap_err();
        assert!(error.to_string().starts_with("invalid K_SINK"), "{error}");
    }
}

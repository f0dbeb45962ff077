//! Flags and environment to one [`Config`], parsed once at start-up; every refusal names the
//! flag or variable and the value. The command line is [`flags`]'s, the environment is read
//! one way ([`env`]); Go's syntaxes ([`goparse`]), `K_CE_OVERRIDES` ([`overrides`]), URLs
//! ([`url`]), the proxy ([`proxy`]), TLS ([`tls`]) and observability ([`observability`]) each
//! have a module. What Knative itself generates (stray arguments, overrides its webhook lets
//! through, the observability config) is tolerated with a warning, never refused.

mod attributes;
pub(crate) mod delivery;
mod env;
pub(crate) mod flags;
pub(crate) mod goparse;
pub(crate) mod json;
mod names;
pub(crate) mod observability;
pub(crate) mod overrides;
mod payload;
pub(crate) mod proxy;
mod timing;
pub(crate) mod tls;
pub(crate) mod url;

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::event::{Content, EventSettings, HeaderEncoding};
use delivery::{DeadLetter, Retries};
use env::Env;
pub use env::{Host, Process};
use flags::{Asked, Flags, named};
pub(crate) use names::NameService;
use observability::Observability;
use proxy::Proxy;
pub(crate) use timing::{Beats, CatchUpHow, Preview};
use tls::{TlsSettings, Trust};
use url::SinkUrl;

pub const K_SINK: &str = "K_SINK";
pub const K_CA_CERTS: &str = "K_CA_CERTS";
pub const K_SINK_TIMEOUT: &str = "K_SINK_TIMEOUT";
pub(crate) const POD_NAME: &str = "POD_NAME";
pub const POD_NAMESPACE: &str = "POD_NAMESPACE";
pub const HOSTNAME: &str = "HOSTNAME";
pub const ONE_SHOT: &str = "ONE_SHOT";
/// For tests: Istio's sidecar always listens on [`ISTIO_PORT`].
pub const HEARTBEATS_ISTIO_PORT: &str = "HEARTBEATS_ISTIO_PORT";
/// Where Istio's sidecar takes `POST /quitquitquit`.
pub const ISTIO_PORT: u16 = 15020;

pub const DEFAULT_TYPE: &str = "dev.knative.eventing.samples.heartbeat";
pub const DEFAULT_SOURCE_PREFIX: &str = "https://knative.dev/eventing-contrib/cmd/heartbeats/#";
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(5);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_TOKEN_FILE: &str = "/oidc/token";
/// Where Kubernetes mounts the pod's namespace; the fallback for `POD_NAMESPACE`.
pub const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Everything the program needs, from flags and environment: one section per layer, each
/// handed only to the layer that reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// What every event says: the event's own module reads it.
    pub(crate) event: EventSettings,
    /// When beats are due: `--period` (default 5 s) or `--schedule`, in a zone.
    pub(crate) beats: Beats,
    /// The way to the sink.
    pub(crate) sink: SinkSettings,
    /// Metrics and tracing: env `K_OBSERVABILITY_CONFIG` and the `OTEL_*` overrides.
    pub(crate) observability: Observability,
    /// Events to send before exiting: `--count`, or 1 for `ONE_SHOT`; `None` runs forever.
    pub(crate) count: Option<u64>,
    /// `--state-file`: where the last delivered fire time (and `--sequence`'s count) is kept.
    pub(crate) state_file: Option<PathBuf>,
    /// What start-up tolerated rather than refused, one line each, to log as warnings: a
    /// `--label` that looked quoted but was not a valid Go literal (sent raw), stray arguments,
    /// overrides named like core attributes, observability settings that are off.
    pub(crate) warnings: Vec<String>,
}

/// The way to the sink: the `sink` section, all that `sink/` reads.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkSettings {
    /// Where to POST: env `K_SINK` when non-empty, else `--sink`. No default.
    pub(crate) url: SinkUrl,
    /// The proxy the sink is reached through: `HTTP_PROXY`/`HTTPS_PROXY` unless `NO_PROXY`.
    pub(crate) proxy: Option<Proxy>,
    /// Per-attempt request timeout: env `K_SINK_TIMEOUT`, else `--timeout`; default 10 s.
    pub(crate) timeout: Duration,
    /// The retries of an event: `--retry`, `--backoff-policy`, `--backoff-delay`,
    /// `--retry-after-max`; sdk-go's by default.
    pub(crate) retries: Retries,
    /// OIDC token file: `--oidc-token-file`, default `/oidc/token`.
    pub(crate) token_file: PathBuf,
    /// TLS versions, cipher suites and curves (`TLS_*`).
    pub(crate) tls: TlsSettings,
    /// Trusted CAs besides the bundled roots: `K_CA_CERTS`/`--cacerts`, `SSL_CERT_FILE`,
    /// `SSL_CERT_DIR`, Knative's trust bundles.
    pub(crate) trust: Trust,
    /// Where host names are looked up (the variables are for tests).
    pub(crate) names: NameService,
    /// The Istio sidecar's port on 127.0.0.1, asked to quit after ONE_SHOT/`--count`: 15020
    /// (env `HEARTBEATS_ISTIO_PORT`, for tests).
    pub(crate) sidecar_port: u16,
    /// `--dead-letter-sink`: where an event goes when its retries run out.
    pub(crate) dead_letter: Option<DeadLetter>,
}

impl fmt::Display for SinkSettings {
    /// The start-up line's part: never a credential.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proxy = match &self.proxy {
            Some(proxy) => format!("{} ({})", proxy.shown(), proxy.variable),
            None => "none".to_owned(),
        };
        write!(
            f,
            "sink={} timeout={:?} {} extra_ca={} tls_min={} tls_max={} token_file={} proxy={proxy}",
            self.url.shown(),
            self.timeout,
            self.retries,
            self.trust
                .extra
                .as_ref()
                .map_or("none", |ca| ca.name.as_str()),
            self.tls.min.name(),
            self.tls.max.name(),
            self.token_file.display(),
        )?;
        if let Some(dead_letter) = &self.dead_letter {
            write!(f, " dead_letter_sink={}", dead_letter.url.shown())?;
            if let Some(proxy) = &dead_letter.proxy {
                write!(f, " ({} through {})", proxy.shown(), proxy.variable)?;
            }
        }
        Ok(())
    }
}

/// `--lookup HOST`: look HOST up as a connection to the sink would, within the attempt's
/// timeout, and print its addresses.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup {
    pub(crate) host: String,
    pub(crate) names: NameService,
    pub(crate) timeout: Duration,
}

/// A value with the name of the variable or flag it came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Named {
    pub(crate) name: String,
    pub(crate) value: String,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Run(Box<Config>),
    /// `--next`: print beat times, send nothing.
    Next(Box<Preview>),
    /// `--lookup`: print a host's addresses, send nothing.
    Lookup(Box<Lookup>),
    Help,
    Version,
}

/// Parses `args` (without the program name) and the environment from `host`.
pub fn parse_args(
    args: impl IntoIterator<Item = OsString>,
    host: &dyn Host,
) -> Result<Command, Error> {
    match flags::read(args)? {
        Ok(flags) if flags.lookup.is_some() => {
            let env = Env(host);
            let (timeout, _) = timeout_and_count(env, flags.timeout, None)?;
            Ok(Command::Lookup(Box::new(Lookup {
                host: flags.lookup.unwrap_or_default(),
                names: NameService::from_env(env)?,
                timeout,
            })))
        }
        Ok(flags) if flags.next.is_some() => {
            let env = Env(host);
            let beats = timing::beats(env, &flags, true)?;
            let next = flags.next.unwrap_or_default();
            let preview = timing::preview(&next, flags.from.as_deref(), beats)?;
            Ok(Command::Next(Box::new(preview)))
        }
        Ok(flags) => resolve(flags, Env(host)).map(|c| Command::Run(Box::new(c))),
        Err(Asked::Help) => Ok(Command::Help),
        Err(Asked::Version) => Ok(Command::Version),
    }
}

/// A setting both a variable and a flag can give: the variable wins when non-empty, an empty
/// flag counts as unset. The value, with the name it came under (for messages).
fn either(
    env: Env,
    var: &str,
    flag_name: &str,
    flag_value: Option<String>,
) -> Result<Option<Named>, Error> {
    Ok(match env.get(var)? {
        Some(value) => Some(Named {
            name: var.to_owned(),
            value,
        }),
        None => flag_value.filter(|v| !v.is_empty()).map(|value| Named {
            name: named(flag_name),
            value,
        }),
    })
}

/// Applies defaults and the environment to the flags and checks every value.
fn resolve(flags: Flags, env: Env) -> Result<Config, Error> {
    let url = match either(env, K_SINK, flags::SINK, flags.sink.clone())? {
        Some(Named { name, value }) => SinkUrl::parse(&name, &value)?,
        None => return Err(Error::NoSink),
    };
    let proxy = proxy::for_sink(&url, env)?;
    let dead_letter = delivery::dead_letter(flags.dead_letter_sink.as_deref(), env)?;
    let beats = timing::beats(env, &flags, false)?;
    let ids = attributes::ids(flags.id.as_deref(), &beats.timing)?;
    let sequence = flags.sequence;
    let state_file = flags
        .state_file
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    let (source, event_type) = attributes::source_and_type(env, flags.source, flags.event_type)?;
    let mut warnings = flags.warnings;
    let label = attributes::unquote_label(flags.label.unwrap_or_default(), &mut warnings);
    if let Some(from) = &flags.from {
        return Err(Error::invalid(
            named(flags::FROM),
            from,
            "--from goes with --next",
        ));
    }
    let payload = payload::payload(flags.data, flags.data_base64, flags.content_type)?;
    let (timeout, count) = timeout_and_count(env, flags.timeout, flags.count)?;
    let encoding = encoding(flags.encoding)?;
    let extra_ca = either(env, K_CA_CERTS, flags::CACERTS, flags.cacerts)?;
    let overrides_text = env.get(overrides::K_CE_OVERRIDES)?.unwrap_or_default();
    let (mut overrides, ignored) = overrides::parse(&overrides_text)?;
    warnings.extend(ignored);
    overrides.retain(|(name, _)| {
        let ours = attributes::set_per_event(name, &beats.timing, sequence);
        if let Some(flag) = ours {
            warnings.push(format!(
                "{} extension {name:?} ignored: {flag} sets it for every event",
                overrides::K_CE_OVERRIDES
            ));
        }
        ours.is_none()
    });
    // Go reads the TLS variables only for an https sink: for an http one a bad value is a
    // warning (the exports, if https, then use the defaults).
    let any_https = url.is_https() || dead_letter.as_ref().is_some_and(|d| d.url.is_https());
    let tls = match TlsSettings::from_env(env) {
        Err(error) if !any_https => {
            warnings.push(format!("{error}; ignored, since the sink is plain http"));
            TlsSettings::default()
        }
        result => result?,
    };
    // Knative writes these, not the user: problems are warnings (see the observability module).
    let (observability, more) = observability::from_env(env);
    warnings.extend(more);
    let content = match payload.data {
        Some(data) => Content::Fixed(Arc::from(data)),
        None => Content::Heartbeat {
            label,
            msg: flags.msg.unwrap_or_default(),
        },
    };
    Ok(Config {
        event: EventSettings {
            source,
            event_type,
            content,
            content_type: payload.content_type,
            encoding,
            overrides,
            ids,
            sequence,
        },
        beats,
        sink: SinkSettings {
            url,
            proxy,
            timeout,
            retries: delivery::retries(
                flags.retry,
                flags.backoff_policy,
                flags.backoff_delay,
                flags.retry_after_max,
            )?,
            token_file: PathBuf::from(flags.token_file.as_deref().unwrap_or(DEFAULT_TOKEN_FILE)),
            tls,
            trust: Trust::from_env(env, extra_ca)?,
            names: NameService::from_env(env)?,
            sidecar_port: names::port(env, HEARTBEATS_ISTIO_PORT, ISTIO_PORT)?,
            dead_letter,
        },
        observability,
        count,
        state_file,
        warnings,
    })
}

/// The per-attempt timeout (`K_SINK_TIMEOUT`, else `--timeout`) and how many events to send
/// (`ONE_SHOT` means 1, else `--count`, else unlimited).
fn timeout_and_count(
    env: Env,
    timeout: Option<String>,
    count: Option<String>,
) -> Result<(Duration, Option<u64>), Error> {
    let timeout = match either(env, K_SINK_TIMEOUT, flags::TIMEOUT, timeout)? {
        Some(Named { name, value }) => positive_duration(&name, &value)?,
        None => DEFAULT_TIMEOUT,
    };
    let one_shot = match env.get(ONE_SHOT)? {
        None => false,
        Some(v) => goparse::parse_bool(&v).ok_or_else(|| {
            let expected = "expected 1, t, T, TRUE, true, True, 0, f, F, FALSE, false or False";
            Error::invalid(ONE_SHOT, &v, expected)
        })?,
    };
    let count = match count {
        Some(n) => Some(n.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            let expected = "expected a whole number of events, at least 1";
            Error::invalid(named(flags::COUNT), &n, expected)
        })?),
        None => None,
    };
    Ok((timeout, if one_shot { Some(1) } else { count }))
}

/// `--ce-header-encoding`: `compat` (the default) or `percent`.
fn encoding(value: Option<String>) -> Result<HeaderEncoding, Error> {
    match value.as_deref() {
        None | Some("compat") => Ok(HeaderEncoding::Compat),
        Some("percent") => Ok(HeaderEncoding::Percent),
        Some(other) => Err(Error::invalid(
            named(flags::ENCODING),
            other,
            "expected compat or percent",
        )),
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
pub(crate) mod tests;

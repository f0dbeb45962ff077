//! What the event says, from configuration: `ce-source` (`--eventSource`, or Go's default
//! from the pod's name and namespace, with fallbacks Go lacks), `ce-type` (`--eventType`) and
//! `data.label` (`--label`, a Go string literal when quoted).

use super::env::Env;
use super::flags::{self, named};
use super::{
    DEFAULT_SOURCE_PREFIX, DEFAULT_TYPE, HOSTNAME, NAMESPACE_FILE, POD_NAME, POD_NAMESPACE, goparse,
};
use crate::error::Error;
use crate::event::{self, IdKind, SCHEDULED_TIME, SEQUENCE};
use crate::schedule::Timing;

/// The longest pod name or namespace taken for the default source (Kubernetes allows 253).
const MAX_POD_IDENTITY: usize = 1024;

/// `ce-source` (`--eventSource`, else the default from the pod) and `ce-type` (`--eventType`,
/// trimmed, not empty), each at most [`event::MAX_HEADER_VALUE`] bytes.
pub fn source_and_type(
    env: Env,
    source: Option<String>,
    event_type: Option<String>,
) -> Result<(String, String), Error> {
    let source = match source.filter(|s| !s.is_empty()) {
        Some(source) => source,
        None => default_source(env)?,
    };
    let given = event_type.as_deref().unwrap_or(DEFAULT_TYPE);
    let event_type = given.trim().to_owned();
    if event_type.is_empty() {
        // The value as given, not as trimmed: `"  "` says what was wrong with it.
        return Err(Error::invalid(
            named(flags::TYPE),
            given,
            "ce-type must not be empty (surrounding whitespace is trimmed)",
        ));
    }
    for (name, value) in [(flags::SOURCE, &source), (flags::TYPE, &event_type)] {
        if value.len() > event::MAX_HEADER_VALUE {
            let limit = format!("longer than {} bytes", event::MAX_HEADER_VALUE);
            return Err(Error::invalid(named(name), value, limit));
        }
    }
    Ok((source, event_type))
}

/// `--id`: `random` (a UUID v4, the default) or `schedule` (a UUID v5 of the source and the
/// fire time), which needs fires with times of their own.
pub fn ids(given: Option<&str>, timing: &Timing) -> Result<IdKind, Error> {
    match given.filter(|t| !t.is_empty()) {
        None | Some("random") => Ok(IdKind::Random),
        Some("schedule") if timing.has_fire_times() => Ok(IdKind::Schedule),
        Some(text @ "schedule") => {
            let expected = "needs --schedule, or --align with --period, so that every replica \
                            and restart gives a fire the same time";
            Err(Error::invalid(named(flags::ID), text, expected))
        }
        Some(other) => Err(Error::invalid(
            named(flags::ID),
            other,
            "expected random or schedule",
        )),
    }
}

/// The flag that sets extension `name` on every event, if one does: an override of the same
/// name would send the header twice.
pub fn set_per_event(name: &str, timing: &Timing, sequence: bool) -> Option<&'static str> {
    match name {
        SCHEDULED_TIME if timing.has_fire_times() => Some("--schedule or --align"),
        SEQUENCE if sequence => Some("--sequence"),
        _ => None,
    }
}

/// Go's default source needs the pod and namespace; unlike Go, which exits when they are unset,
/// fall back to `HOSTNAME` (the pod name in Kubernetes) and the service account's namespace file.
fn default_source(env: Env) -> Result<String, Error> {
    let name = match env.get(POD_NAME)? {
        Some(name) => name,
        None => env.get(HOSTNAME)?.ok_or_else(|| {
            Error::invalid(
                POD_NAME,
                "",
                "unset, and so is HOSTNAME; set it or --eventSource",
            )
        })?,
    };
    let namespace = match env.get(POD_NAMESPACE)? {
        Some(ns) => ns,
        None => env
            .read_file(NAMESPACE_FILE)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Error::invalid(
                    POD_NAMESPACE,
                    "",
                    format!("unset, and {NAMESPACE_FILE} is unreadable; set it or --eventSource"),
                )
            })?,
    };
    // Kubernetes names are at most 253 characters; these only guard the 4 KiB header limit.
    for (variable, value) in [(POD_NAME, &name), (POD_NAMESPACE, &namespace)] {
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
pub fn unquote_label(label: String, warnings: &mut Vec<String>) -> String {
    if !label.starts_with('"') {
        return label;
    }
    if let Some(bytes) = goparse::unquote(&label) {
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        warnings.push(format!(
            "{} starts with \" but is not a valid Go string literal; sending it as given",
            named(flags::LABEL)
        ));
        label
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{host, label, parse, sinked};
    use super::super::*;

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
    fn an_event_type_of_only_whitespace_is_refused_as_given() {
        let error = sinked(&["--eventType=  \t"]).unwrap_err().to_string();
        assert!(
            error.starts_with("invalid --eventType \"  \\t\": ce-type must not be empty"),
            "{error}"
        );
    }

    #[test]
    fn pod_identity_falls_back_to_hostname_and_namespace_file() {
        let mut h = host(&[(POD_NAME, ""), (POD_NAMESPACE, ""), (HOSTNAME, "hb-7d9f")]);
        h.namespace_file = Some("team-a\n".into());
        let c = parse(&["--sink=http://h/"], &h).unwrap();
        assert_eq!(
            c.event.source,
            format!("{DEFAULT_SOURCE_PREFIX}team-a/hb-7d9f")
        );
        h.namespace_file = None;
        let error = parse(&["--sink=http://h/"], &h).unwrap_err();
        assert!(
            error.to_string().starts_with("invalid POD_NAMESPACE"),
            "{error}"
        );
        assert!(parse(&["--sink=http://h/", "--eventSource=s"], &h).is_ok());
    }

    #[test]
    fn label_is_unquoted_when_quoted_and_kept_with_a_warning_when_not_valid() {
        let c = sinked(&[r#"--label="a\tb\u00e9""#]).unwrap();
        assert_eq!((label(&c), c.warnings.len()), ("a\tbé", 0));
        let c = sinked(&[r#"--label="\xff""#]).unwrap();
        assert_eq!(label(&c), "\u{fffd}");
        let c = sinked(&[r#"--label="broken"#]).unwrap();
        assert_eq!(label(&c), "\"broken");
        assert_eq!(c.warnings.len(), 1);
    }
}

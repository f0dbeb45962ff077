//! How an event is delivered when the sink fails: Knative's `DeliverySpec` as flags. `--retry`,
//! `--backoff-policy`, `--backoff-delay` and `--retry-after-max` are its `retry`,
//! `backoffPolicy`, `backoffDelay` and `retryAfterMax`, durations written as Knative writes them
//! (ISO 8601, `PT0.2S`) or as Go durations; their defaults are sdk-go's, as the Go image sends.

use std::time::Duration;

use super::env::Env;
use super::flags::{self, named};
use super::goparse;
use super::proxy::{self, Proxy};
use super::url::SinkUrl;
use crate::error::Error;

/// Retries after the first attempt, as sdk-go: 11 attempts in all.
pub const DEFAULT_RETRIES: u32 = 10;
/// The first retry's wait; each later one doubles it (40 ms … 20.48 s).
pub const DEFAULT_DELAY: Duration = Duration::from_millis(40);
/// The longest a `Retry-After` may make us wait: the default policy's last step.
pub const DEFAULT_RETRY_AFTER_MAX: Duration = Duration::from_millis(20_480);

/// How the wait before a retry grows (`backoffPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackoffPolicy {
    /// The delay, doubled for each retry after the first (Knative's `delay × 2^n` from n = 0).
    Exponential,
    /// The delay times the retry's number: 1×, 2×, 3× (Knative's docs; its dispatcher starts at
    /// 0×, a first retry without a wait).
    Linear,
}

/// The retries of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retries {
    /// `--retry`: retries after the first attempt.
    pub retries: u32,
    /// `--backoff-policy`.
    pub policy: BackoffPolicy,
    /// `--backoff-delay`: the first retry's wait.
    pub delay: Duration,
    /// `--retry-after-max`: the longest wait a sink's `Retry-After` may ask for; zero ignores
    /// `Retry-After` (Knative's `PT0S`).
    pub retry_after_max: Duration,
}

impl Default for Retries {
    fn default() -> Self {
        Retries {
            retries: DEFAULT_RETRIES,
            policy: BackoffPolicy::Exponential,
            delay: DEFAULT_DELAY,
            retry_after_max: DEFAULT_RETRY_AFTER_MAX,
        }
    }
}

impl std::fmt::Display for Retries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let policy = match self.policy {
            BackoffPolicy::Exponential => "exponential",
            BackoffPolicy::Linear => "linear",
        };
        write!(
            f,
            "retry={} backoff={policy} {:?} retry_after_max={:?}",
            self.retries, self.delay, self.retry_after_max
        )
    }
}

/// `--retry`, `--backoff-policy`, `--backoff-delay` and `--retry-after-max`.
pub fn retries(
    retry: Option<String>,
    policy: Option<String>,
    delay: Option<String>,
    retry_after_max: Option<String>,
) -> Result<Retries, Error> {
    let mut retries = Retries::default();
    if let Some(text) = retry.filter(|t| !t.is_empty()) {
        retries.retries = text.trim().parse().map_err(|_| {
            let expected = "expected a whole number of retries after the first attempt, 0 or more";
            Error::invalid(named(flags::RETRY), &text, expected)
        })?;
    }
    match policy.as_deref().filter(|t| !t.is_empty()) {
        None | Some("exponential") => {}
        Some("linear") => retries.policy = BackoffPolicy::Linear,
        Some(other) => {
            let expected = "expected exponential or linear";
            return Err(Error::invalid(
                named(flags::BACKOFF_POLICY),
                other,
                expected,
            ));
        }
    }
    if let Some(text) = delay.filter(|t| !t.is_empty()) {
        retries.delay = duration(&named(flags::BACKOFF_DELAY), &text)?;
    }
    if let Some(text) = retry_after_max.filter(|t| !t.is_empty()) {
        retries.retry_after_max = duration(&named(flags::RETRY_AFTER_MAX), &text)?;
    }
    Ok(retries)
}

/// `--dead-letter-sink`: where an event whose attempts ran out goes (Knative's
/// `delivery.deadLetterSink`), reached through a proxy as the sink is.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub url: SinkUrl,
    pub proxy: Option<Proxy>,
}

/// `--dead-letter-sink`, checked as the sink is, with its proxy from the environment.
pub fn dead_letter(text: Option<&str>, env: Env) -> Result<Option<DeadLetter>, Error> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let url = SinkUrl::parse(&named(flags::DEAD_LETTER_SINK), text)?;
    let proxy = proxy::for_sink(&url, env)?;
    Ok(Some(DeadLetter { url, proxy }))
}

/// A duration as Knative writes one (ISO 8601, see [`iso8601`]) or a Go duration; zero or more.
pub fn duration(name: &str, text: &str) -> Result<Duration, Error> {
    let expected = "expected an ISO 8601 duration like PT0.2S or PT1M, or a Go duration like 200ms";
    let parsed = if text.starts_with(['P', 'p']) {
        iso8601(text)
    } else {
        goparse::parse_duration(text).and_then(|n| u64::try_from(n).ok().map(Duration::from_nanos))
    };
    parsed.ok_or_else(|| Error::invalid(name, text, expected))
}

/// An ISO 8601 duration as Knative's `period.Parse` takes it for a delivery: `P`, then weeks and
/// days, then `T` with hours, minutes and seconds, each a number with an optional fraction
/// (`PT0.2S`, `P1DT12H`, `PT1M30S`). Years and months, which have no fixed length, are refused,
/// as is a negative duration.
pub fn iso8601(text: &str) -> Option<Duration> {
    let rest = text.strip_prefix(['P', 'p'])?;
    let (date, time) = match rest.split_once(['T', 't']) {
        Some((date, time)) if !time.is_empty() => (date, Some(time)),
        Some(_) => return None,
        None => (rest, None),
    };
    if date.is_empty() && time.is_none() {
        return None;
    }
    let mut nanos = 0u128;
    let date_units: &[(char, f64)] = &[('W', 604_800.0), ('D', 86_400.0)];
    let time_units: &[(char, f64)] = &[('H', 3600.0), ('M', 60.0), ('S', 1.0)];
    for (part, units) in [(date, date_units), (time.unwrap_or(""), time_units)] {
        let mut text = part;
        let mut allowed = units;
        while !text.is_empty() {
            let end = text.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))?;
            let (number, after) = text.split_at(end);
            let unit = after.chars().next()?.to_ascii_uppercase();
            let position = allowed.iter().position(|(u, _)| *u == unit)?;
            let seconds = allowed[position].1;
            allowed = &allowed[position + 1..];
            let value: f64 = number.replace(',', ".").parse().ok()?;
            if !value.is_finite() || number.is_empty() {
                return None;
            }
            nanos += (value * seconds * 1e9).round() as u128;
            text = &after[1..];
        }
    }
    let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
    Some(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_8601_durations_read_as_knative_writes_them() {
        let ms = Duration::from_millis;
        for (text, expected) in [
            ("PT0.2S", Some(ms(200))),
            ("PT1S", Some(ms(1000))),
            ("PT0S", Some(Duration::ZERO)),
            ("PT1M30S", Some(ms(90_000))),
            ("PT1H", Some(ms(3_600_000))),
            ("P1D", Some(ms(86_400_000))),
            ("P1DT12H", Some(ms(129_600_000))),
            ("P2W", Some(ms(1_209_600_000))),
            ("pt0,5s", Some(ms(500))),
            ("PT0.001S", Some(ms(1))),
            ("P", None),
            ("PT", None),
            ("P1Y", None),
            ("P1M", None),
            ("PT1S1M", None),
            ("PT1.5", None),
            ("PTS", None),
            ("-PT1S", None),
            ("1S", None),
        ] {
            assert_eq!(iso8601(text), expected, "{text}");
        }
    }

    #[test]
    fn the_flags_default_to_sdk_gos_policy_and_take_knatives_values() {
        assert_eq!(retries(None, None, None, None), Ok(Retries::default()));
        let r = retries(
            Some("3".into()),
            Some("linear".into()),
            Some("PT0.5S".into()),
            Some("2s".into()),
        )
        .unwrap();
        assert_eq!(
            r,
            Retries {
                retries: 3,
                policy: BackoffPolicy::Linear,
                delay: Duration::from_millis(500),
                retry_after_max: Duration::from_secs(2),
            }
        );
        for (args, named) in [
            ([Some("-1"), None, None, None], "invalid --retry \"-1\""),
            (
                [None, Some("fibonacci"), None, None],
                "invalid --backoff-policy",
            ),
            (
                [None, None, Some("P1M"), None],
                "invalid --backoff-delay \"P1M\"",
            ),
            (
                [None, None, Some("-1s"), None],
                "invalid --backoff-delay \"-1s\"",
            ),
            (
                [None, None, None, Some("soon")],
                "invalid --retry-after-max",
            ),
        ] {
            let [a, b, c, d] = args.map(|a| a.map(str::to_owned));
            let error = retries(a, b, c, d).unwrap_err().to_string();
            assert!(error.starts_with(named), "{error}");
        }
    }
}

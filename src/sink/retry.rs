//! The retry policy: which answers and failures are worth another attempt, and how long to
//! wait before it. sdk-go's (the statuses it retries, 40 ms doubling, ten retries) with what users
//! need beyond it: jitter, `Retry-After`, no retry of what would only fail again (a certificate,
//! a request that cannot be written) or might duplicate an event (an answer that began).

use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ureq::Body;

use super::dead_letter::MAX_ANSWER_KEPT;
use crate::config::delivery::{BackoffPolicy, Retries};
use crate::log::Bounded;

/// The longest wait before a retry, whatever the policy computes (a linear or exponential
/// growth over many retries would otherwise wait for years).
pub const MAX_BACKOFF: Duration = Duration::from_secs(24 * 60 * 60);
/// Statuses retried by sdk-go's default policy.
pub const RETRIED_STATUSES: [u16; 7] = [404, 413, 425, 429, 502, 503, 504];
/// How much of a response body is read to keep the connection; a longer one closes it.
const MAX_DRAINED_BODY: u64 = 64 * 1024;
/// The most characters of a `Location` a log line shows: the sink controls it.
const MAX_SHOWN_LOCATION: usize = 200;

/// One attempt's result.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    Ack(u16),
    /// Worth another attempt, after at least `retry_after` when the sink asked for it.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    Fatal(String),
}

/// 2xx is an ACK; sdk-go's retried statuses are retried (honouring `Retry-After` on 429 and
/// 503); redirects are reported, not followed; anything else fails at once. The body is read to
/// its end (up to a bound) so the connection goes back to the pool; its start is returned too,
/// for a dead-letter sink's `knativeerrordata`.
pub fn classify_status(
    status: u16,
    headers: &ureq::http::HeaderMap,
    mut body: Body,
) -> (Attempt, Vec<u8>) {
    let mut reader = body.as_reader().take(MAX_DRAINED_BODY);
    let mut start = Vec::new();
    if !(200..300).contains(&status) {
        let _ = (&mut reader)
            .take(MAX_ANSWER_KEPT as u64)
            .read_to_end(&mut start);
    }
    let _ = std::io::copy(&mut reader, &mut std::io::sink());
    (classify(status, headers), start)
}

/// What answer `status` (with `headers`) means for the event.
fn classify(status: u16, headers: &ureq::http::HeaderMap) -> Attempt {
    if (200..300).contains(&status) {
        return Attempt::Ack(status);
    }
    let location = headers.get("location").and_then(|v| v.to_str().ok());
    let reason = match location {
        Some(to) if (300..400).contains(&status) => {
            let to = Bounded(to, MAX_SHOWN_LOCATION);
            format!("HTTP {status} redirect to {to} (not followed)")
        }
        _ => format!("HTTP {status}"),
    };
    if !RETRIED_STATUSES.contains(&status) {
        return Attempt::Fatal(reason);
    }
    let retry_after = match status {
        429 | 503 => headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now())),
        _ => None,
    };
    Attempt::Retry {
        reason,
        retry_after,
    }
}

/// Connection failures and timeouts are retried; a certificate the sink's name or our roots do
/// not accept is not (it will not change in 40 ms), nor is a request we could not build, nor an
/// answer that began but could not be read, nor a request that cannot be written.
pub fn classify_error(error: &ureq::Error) -> Attempt {
    use ureq::Error as E;
    let tls = match error {
        E::Io(io) => io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    if let Some(tls) = tls {
        return Attempt::Fatal(format!("TLS: {tls}"));
    }
    match error {
        E::BadUri(_) | E::Http(_) | E::Tls(_) | E::TlsRequired => Attempt::Fatal(error.to_string()),
        // A request that cannot be written (it does not fit) fails the same way every time; an
        // answer that began but cannot be parsed may mean the sink took the event, and sending
        // it again could make a duplicate. Go's client reads what we read (see the head module).
        E::Protocol(_) => Attempt::Fatal(format!(
            "{error}; not retried: it would recur, or the sink may already have taken the event"
        )),
        E::LargeResponseHeader(..) => Attempt::Fatal(format!(
            "the sink's answer could not be read ({error}); not retried: the sink may already \
             have taken the event"
        )),
        _ => Attempt::Retry {
            reason: error.to_string(),
            retry_after: None,
        },
    }
}

/// `error.type` of an attempt that got no answer, in OTel's lower_snake style.
pub fn failure(error: &ureq::Error) -> &'static str {
    use std::io::ErrorKind as K;
    use ureq::Error as E;
    if let E::Io(io) = error {
        if io
            .get_ref()
            .is_some_and(|e| e.is::<super::transport::LookupFailure>())
        {
            return match io.kind() {
                K::NotFound => "host_not_found",
                K::TimedOut => "lookup_timeout",
                _ => "lookup_failed",
            };
        }
    }
    match error {
        E::Timeout(_) => "timeout",
        E::HostNotFound => "host_not_found",
        E::ConnectionFailed => "connection_failed",
        E::Protocol(_) | E::LargeResponseHeader(..) => "protocol",
        E::Io(io) if io.get_ref().is_some_and(|e| e.is::<rustls::Error>()) => "tls",
        E::Io(io) => match io.kind() {
            K::ConnectionRefused => "connection_refused",
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => "connection_reset",
            K::TimedOut | K::WouldBlock => "timeout",
            K::UnexpectedEof => "connection_closed",
            _ => "io",
        },
        _ => "other",
    }
}

/// The wait before retry number `retry` (from 1) under `retries`' policy (by default 40 ms
/// doubling), scaled by `jitter` (0.8–1.2), replaced by the sink's `Retry-After` when that is
/// longer, up to `retry_after_max` (zero: `Retry-After` is not honoured, as Knative's `PT0S`).
pub fn backoff(
    retries: &Retries,
    retry: u32,
    jitter: f64,
    retry_after: Option<Duration>,
) -> Duration {
    let factor = match retries.policy {
        BackoffPolicy::Exponential => {
            2f64.powi(i32::try_from(retry - 1).unwrap_or(i32::MAX).min(64))
        }
        BackoffPolicy::Linear => f64::from(retry),
    };
    let computed = Duration::try_from_secs_f64(retries.delay.as_secs_f64() * factor * jitter)
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF);
    match retry_after {
        Some(asked) if asked > computed && !retries.retry_after_max.is_zero() => {
            asked.min(retries.retry_after_max).max(computed)
        }
        _ => computed,
    }
}

/// A factor in [0.8, 1.2): ±20 % jitter, so many sources do not retry in lockstep.
pub fn jitter() -> f64 {
    let mut b = [0u8; 2];
    // Without randomness, retry unjittered rather than not at all.
    if getrandom::getrandom(&mut b).is_err() {
        return 1.0;
    }
    0.8 + 0.4 * f64::from(u16::from_le_bytes(b)) / 65_536.0
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds, or an HTTP date (any of its three forms)
/// relative to `now`; a date past is no wait.
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = super::date::parse_http_date(value)?;
    let now = i64::try_from(now.duration_since(UNIX_EPOCH).ok()?.as_secs()).ok()?;
    Some(Duration::from_secs(
        u64::try_from(at.saturating_sub(now)).unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_40ms_and_retry_after_only_lengthens_it() {
        let ms = Duration::from_millis;
        let sdk_go = Retries::default();
        let backoff = |retry, jitter, after| backoff(&sdk_go, retry, jitter, after);
        assert_eq!(backoff(1, 1.0, None), ms(40));
        assert_eq!(backoff(2, 1.0, None), ms(80));
        assert_eq!(backoff(10, 1.0, None), ms(20_480));
        assert_eq!(backoff(1, 0.8, None), ms(32));
        assert_eq!(backoff(1, 1.2, None), ms(48));
        assert_eq!(backoff(1, 1.0, Some(ms(5))), ms(40));
        assert_eq!(backoff(1, 1.0, Some(ms(3000))), ms(3000));
        assert_eq!(backoff(1, 1.0, Some(Duration::from_secs(3600))), ms(20_480));
    }

    #[test]
    fn knatives_policies_and_retry_after_max() {
        let ms = Duration::from_millis;
        let linear = Retries {
            retries: 100,
            policy: BackoffPolicy::Linear,
            delay: ms(200),
            retry_after_max: Duration::ZERO,
        };
        let waits: Vec<Duration> = (1..=4).map(|n| backoff(&linear, n, 1.0, None)).collect();
        assert_eq!(waits, [ms(200), ms(400), ms(600), ms(800)]);
        // A zero maximum: Retry-After is not honoured (Knative's PT0S).
        assert_eq!(backoff(&linear, 1, 1.0, Some(ms(5000))), ms(200));
        let exponential = Retries {
            policy: BackoffPolicy::Exponential,
            retry_after_max: ms(1000),
            ..linear
        };
        let waits: Vec<Duration> = (1..=4)
            .map(|n| backoff(&exponential, n, 1.0, None))
            .collect();
        assert_eq!(waits, [ms(200), ms(400), ms(800), ms(1600)]);
        assert_eq!(backoff(&exponential, 1, 1.0, Some(ms(5000))), ms(1000));
        // However many retries, no wait is longer than a day.
        assert_eq!(backoff(&exponential, 90, 1.0, None), MAX_BACKOFF);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        for _ in 0..1000 {
            let j = jitter();
            assert!((0.8..1.2).contains(&j), "{j}");
        }
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:40 GMT", now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        // The obsolete forms too, as Go's net/http reads them.
        for date in ["Sunday, 06-Nov-94 08:49:40 GMT", "Sun Nov  6 08:49:40 1994"] {
            assert_eq!(
                parse_retry_after(date, now),
                Some(Duration::from_secs(3)),
                "{date}"
            );
        }
        for bad in [
            "",
            "-1",
            "soon",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sat, 31 Feb 2026 08:49:37 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
    }
}

//! When beats are due: `--period` (on fire times of its own with `--align`), or `--schedule`
//! with its zone (`--timezone`, the schedule's own `CRON_TZ=`/`TZ=` prefix, else `TZ` as Go reads
//! it, else UTC); between `--start` and `--end`, each after a `--jitter`; which fires missed
//! while down are caught up (`--catch-up`, `--catch-up-window`); and the `--next`/`--from`
//! preview, which needs no sink.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::env::Env;
use super::flags::{self, Flags, named};
use super::{DEFAULT_PERIOD, positive_duration};
use crate::error::Error;
use crate::schedule::Timing;
use crate::schedule::cron::{self, When};
use crate::schedule::zone::{TZDATA_VERSION, Zone, ZoneError};

pub const TZ: &str = "TZ";

/// The most beat times `--next` prints.
const MAX_PREVIEW: usize = 1_000_000;

/// When beats are due, with the zone they are reckoned in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beats {
    pub timing: Timing,
    /// The zone of `--schedule`, and of the local times `--next` prints.
    pub zone: Zone,
    /// `--schedule` as given, for the start-up line.
    pub schedule: Option<String>,
    /// `--start`: nothing fires before it.
    pub start: Option<SystemTime>,
    /// `--end`: once no fire time is left before it, the run ends (exit 0).
    pub end: Option<SystemTime>,
    /// `--jitter`: each fire waits a random time in [0, jitter) more; zero: none.
    pub jitter: Duration,
    /// `--catch-up` and `--catch-up-window`: which fires missed while down are sent at start.
    pub catch_up: CatchUp,
}

/// Which fires missed while the process was down are sent at start (with `--state-file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchUp {
    pub how: CatchUpHow,
    /// `--catch-up-window`: only fires this recent; `None`: since the saved one.
    pub window: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUpHow {
    /// Missed fires are skipped, as they always are without a state file.
    None,
    /// Only the latest missed fire is sent.
    Last,
    /// Every missed fire is sent, oldest first.
    All,
}

impl std::fmt::Display for Beats {
    /// `period=5s`, or `schedule="0 9 * * 1-5" zone=Europe/Berlin`, with what bounds it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.timing, &self.schedule) {
            (Timing::Period(period), _) => write!(f, "period={period:?}")?,
            (Timing::Aligned(period), _) => write!(f, "period={period:?} aligned")?,
            (_, schedule) => write!(
                f,
                "schedule={:?} zone={}",
                schedule.as_deref().unwrap_or_default(),
                self.zone.name()
            )?,
        }
        let mut at = |name: &str, time: Option<SystemTime>| match time {
            Some(time) => {
                let mut text = String::new();
                crate::time::push_rfc3339_nano(&mut text, time);
                write!(f, " {name}={text}")
            }
            None => Ok(()),
        };
        at("start", self.start)?;
        at("end", self.end)?;
        if !self.jitter.is_zero() {
            write!(f, " jitter={:?}", self.jitter)?;
        }
        match (self.catch_up.how, self.catch_up.window) {
            (CatchUpHow::None, _) => Ok(()),
            (how, window) => {
                let how = if how == CatchUpHow::All {
                    "all"
                } else {
                    "last"
                };
                write!(f, " catch_up={how}")?;
                window.map_or(Ok(()), |w| write!(f, " catch_up_window={w:?}"))
            }
        }
    }
}

/// `--next N [--from TIME]`: print the first N beat times of a run that starts at `from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    pub beats: Beats,
    pub from: SystemTime,
    pub count: usize,
}

/// `--period`, `--schedule`, `--timezone`, `--align`, `--start`, `--end`, `--jitter` and
/// `--catch-up`/`--catch-up-window`. `TZ` is read only when it matters: for a cron schedule
/// without a zone of its own, or for a preview's local times.
pub(super) fn beats(env: Env, flags: &Flags, preview: bool) -> Result<Beats, Error> {
    let (timing, zone, schedule) = timing(env, flags, preview)?;
    let moment = |flag: &str, text: &Option<String>| {
        text.as_deref()
            .filter(|t| !t.is_empty())
            .map(|t| parse_time(&named(flag), t))
            .transpose()
    };
    let (start, end) = (
        moment(flags::START, &flags.start)?,
        moment(flags::END, &flags.end)?,
    );
    if let (Some(start), Some(end)) = (start, end) {
        if end <= start {
            let text = flags.end.as_deref().unwrap_or_default();
            return Err(Error::invalid(named(flags::END), text, "not after --start"));
        }
    }
    let jitter = match flags.jitter.as_deref().filter(|t| !t.is_empty()) {
        Some(text) => super::delivery::duration(&named(flags::JITTER), text)?,
        None => Duration::ZERO,
    };
    let catch_up = catch_up(flags, &timing)?;
    Ok(Beats {
        timing,
        zone,
        schedule,
        start,
        end,
        jitter,
        catch_up,
    })
}

/// `--catch-up` and `--catch-up-window`: they need a state file, and fires with times of their
/// own (a schedule, an aligned period) to know which were missed.
fn catch_up(flags: &Flags, timing: &Timing) -> Result<CatchUp, Error> {
    let given = flags.catch_up.as_deref().filter(|t| !t.is_empty());
    let how = match given {
        None | Some("none") => CatchUpHow::None,
        Some("last") => CatchUpHow::Last,
        Some("all") => CatchUpHow::All,
        Some(other) => {
            let expected = "expected none, last or all";
            return Err(Error::invalid(named(flags::CATCH_UP), other, expected));
        }
    };
    let window = match flags.catch_up_window.as_deref().filter(|t| !t.is_empty()) {
        Some(text) => Some(super::delivery::duration(
            &named(flags::CATCH_UP_WINDOW),
            text,
        )?),
        None => None,
    };
    if how != CatchUpHow::None {
        let value = given.unwrap_or_default();
        if flags.state_file.as_deref().is_none_or(str::is_empty) {
            let expected = "needs --state-file, where the last delivered fire is kept";
            return Err(Error::invalid(named(flags::CATCH_UP), value, expected));
        }
        if !timing.has_fire_times() {
            let expected = "needs --schedule, or --align with --period: fire times of their own";
            return Err(Error::invalid(named(flags::CATCH_UP), value, expected));
        }
    }
    Ok(CatchUp { how, window })
}

/// The timing, its zone, and the schedule as given.
fn timing(env: Env, flags: &Flags, preview: bool) -> Result<(Timing, Zone, Option<String>), Error> {
    let period = flags.period.clone().filter(|p| !p.is_empty());
    let timezone = flags
        .timezone
        .as_deref()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    let Some(spec) = flags.schedule.clone().filter(|s| !s.is_empty()) else {
        let period = match period {
            Some(p) => positive_duration(&named(flags::PERIOD), &p)?,
            None => DEFAULT_PERIOD,
        };
        let zone = match timezone {
            Some(name) => zone(env, &named(flags::TIMEZONE), &name, &name)?,
            None if preview => local(env)?,
            None => Zone::utc(),
        };
        let timing = if flags.align {
            Timing::Aligned(period)
        } else {
            Timing::Period(period)
        };
        return Ok((timing, zone, None));
    };
    let flag = named(flags::SCHEDULE);
    if period.is_some() {
        let both = "--period was given too: use one or the other";
        return Err(Error::invalid(flag, &spec, both));
    }
    if flags.align {
        let why = "--align goes with --period: a schedule's fire times are already the same \
                   everywhere";
        return Err(Error::invalid(flag, &spec, why));
    }
    // PingSource hands robfig `CRON_TZ=<timezone> <schedule>`, and robfig trims what follows
    // the prefix: with --timezone, white space around the schedule does not count.
    let text = if timezone.is_some() {
        spec.trim()
    } else {
        &spec
    };
    let parsed = cron::parse(text).map_err(|e| Error::invalid(&flag, &spec, e.to_string()))?;
    let zone = match (timezone, parsed.zone) {
        (Some(given), Some(prefix)) if given != prefix => {
            let clash = format!("the schedule's own zone prefix says {prefix:?}");
            return Err(Error::invalid(named(flags::TIMEZONE), &given, clash));
        }
        (Some(name), _) => zone(env, &named(flags::TIMEZONE), &name, &name)?,
        (None, Some(name)) => zone(env, &flag, &spec, name)?,
        (None, None) if preview || matches!(parsed.when, When::Fields(_)) => local(env)?,
        (None, None) => Zone::utc(),
    };
    let timing = match parsed.when {
        When::Fields(fields) => Timing::Cron(fields),
        When::Every(text) => Timing::Every(every(&flag, &spec, text)?),
    };
    Ok((timing, zone, Some(spec)))
}

/// `@every D`'s D: a positive Go duration, as `--period` takes (robfig rounds it to whole
/// seconds and takes zero and less as one second; here they are refused as `--period 0` is).
fn every(flag: &str, spec: &str, text: &str) -> Result<Duration, Error> {
    match super::goparse::parse_duration(text) {
        Some(nanos) if nanos > 0 => Ok(Duration::from_nanos(nanos as u64)),
        _ => {
            let expected =
                format!("@every {text:?}: expected a positive Go duration like 90s or 1h30m");
            Err(Error::invalid(flag, spec, expected))
        }
    }
}

/// `--next` and `--from`, and the schedule they preview.
pub(super) fn preview(next: &str, from: Option<&str>, beats: Beats) -> Result<Preview, Error> {
    let count = next
        .parse()
        .ok()
        .filter(|n| (1..=MAX_PREVIEW).contains(n))
        .ok_or_else(|| {
            let expected = format!("expected a whole number of beat times, 1 to {MAX_PREVIEW}");
            Error::invalid(named(flags::NEXT), next, expected)
        })?;
    let from = match from {
        Some(text) => parse_time(&named(flags::FROM), text)?,
        None => SystemTime::now(),
    };
    Ok(Preview { beats, from, count })
}

/// `--from`, `--start`, `--end` (flag `name`): RFC 3339 (`2026-03-29T00:30:00+01:00`,
/// `2026-06-15T10:17:23.5Z`), from 1970 on.
fn parse_time(name: &str, text: &str) -> Result<SystemTime, Error> {
    let expected =
        "expected an RFC 3339 time like 2026-03-29T00:30:00Z or 2026-03-29T01:30:00+01:00";
    let (secs, nanos) =
        crate::time::parse_rfc3339(text).ok_or_else(|| Error::invalid(name, text, expected))?;
    u64::try_from(secs)
        .ok()
        .and_then(|secs| UNIX_EPOCH.checked_add(Duration::new(secs, nanos)))
        .ok_or_else(|| Error::invalid(name, text, "expected a time from 1970 on"))
}

/// The zone called `name`, from a setting named `source` that held `value`. `Local`, and
/// `localtime` (the zoneinfo link to `/etc/localtime`), are `TZ`'s.
fn zone(env: Env, source: &str, value: &str, name: &str) -> Result<Zone, Error> {
    if name == "Local" || name == "localtime" {
        return local(env);
    }
    Zone::named(name).map_err(|error| Error::invalid(source, value, unknown(name, error)))
}

/// Go's `Local` in a container without zoneinfo: `TZ` when set to a zone name (a leading `:`
/// dropped, a path under a `zoneinfo/` directory read as the name after it), else UTC.
fn local(env: Env) -> Result<Zone, Error> {
    let Some(value) = env.get(TZ)? else {
        return Ok(Zone::utc());
    };
    let name = value.strip_prefix(':').unwrap_or(&value);
    let name = match name.rsplit_once("zoneinfo/") {
        Some((dir, name)) if dir.starts_with('/') => name,
        _ => name,
    };
    Zone::named(name).map_err(|error| Error::invalid(TZ, &value, unknown(name, error)))
}

fn unknown(name: &str, error: ZoneError) -> String {
    let what = match error {
        ZoneError::Invalid => "an invalid zone name",
        ZoneError::Unknown => "an unknown time zone",
    };
    format!(
        "{name:?} is {what}; expected an IANA name like Europe/Berlin, case as written in the \
         tz database {TZDATA_VERSION}"
    )
}

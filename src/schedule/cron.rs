//! `--schedule`: cron as Knative's PingSource parses it (robfig/cron v3 with `SecondOptional |
//! Minute | Hour | Dom | Month | Dow | Descriptor`): five fields, or six with seconds first;
//! `*`, `?`, lists, ranges, steps, month and weekday names in any case; the descriptors; a
//! `CRON_TZ=` or `TZ=` prefix. Quirks kept, since a schedule PingSource takes must mean the same
//! here: `+5` is 5, empty list items are dropped (`1,,2`), `*-5` is `*`, `N/step` runs to the
//! maximum. Refusals name the field, the value and the allowed range; a schedule that can never
//! fire (`0 0 30 2 *`) is refused too, where robfig would wait forever.

use std::fmt;

/// A cron schedule's fields as bit sets (bit n set: value n matches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields {
    pub second: u64,
    pub minute: u64,
    pub hour: u64,
    /// Bits 1–31.
    pub dom: u64,
    /// Bits 1–12.
    pub month: u64,
    /// Bits 0–6, Sunday 0.
    pub dow: u64,
    /// The day-of-month field was `*` or `?` (without a step over 1): then a day must match both
    /// day fields, else either (robfig's `starBit`, cron(8)'s rule).
    pub dom_star: bool,
    pub dow_star: bool,
    /// Neither the minute nor the hour field has `*`, `?` or a step: a job at particular times,
    /// which ISC cron moves out of a daylight-saving gap and runs once in an overlap.
    pub fixed: bool,
}

/// What a schedule says, without its zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When<'a> {
    Fields(Fields),
    /// `@every D`, with D's text: a Go duration for the caller to read (the configuration reads
    /// it as it reads `--period`; robfig rounds it to whole seconds, we do not).
    Every(&'a str),
}

/// A parsed `--schedule`: what it says and the zone of its `CRON_TZ=`/`TZ=` prefix, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub zone: Option<&'a str>,
    pub when: When<'a>,
}

/// Why a schedule is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CronError {
    Empty,
    /// A `CRON_TZ=` or `TZ=` prefix with nothing after it.
    NothingAfterZone,
    FieldCount(usize),
    Field {
        field: &'static str,
        item: String,
        problem: Problem,
    },
    Descriptor(String),
    /// No date matches the day, weekday and month fields together (or a field is empty).
    Never,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    NotANumber(String),
    BelowMinimum(u64),
    AboveMaximum(u64),
    Backwards(u64, u64),
    ZeroStep,
    TooManyHyphens,
    TooManySlashes,
}

/// A field's name, range and value names.
struct Bounds {
    name: &'static str,
    min: u64,
    max: u64,
    names: &'static [&'static str],
    allowed: &'static str,
}

const SECOND: Bounds = Bounds::numbers("second", 0, 59, "0-59");
const MINUTE: Bounds = Bounds::numbers("minute", 0, 59, "0-59");
const HOUR: Bounds = Bounds::numbers("hour", 0, 23, "0-23");
const DOM: Bounds = Bounds::numbers("day of month", 1, 31, "1-31");
const MONTH: Bounds = Bounds {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
    allowed: "1-12 or JAN-DEC",
};
const DOW: Bounds = Bounds {
    name: "day of week",
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    allowed: "0-6 or SUN-SAT",
};
const FIELDS: [&Bounds; 6] = [&SECOND, &MINUTE, &HOUR, &DOM, &MONTH, &DOW];

impl Bounds {
    const fn numbers(name: &'static str, min: u64, max: u64, allowed: &'static str) -> Bounds {
        Bounds {
            name,
            min,
            max,
            names: &[],
            allowed,
        }
    }

    fn all(&self) -> u64 {
        bits(self.min, self.max, 1)
    }
}

/// Parses `spec` as PingSource does.
pub fn parse(spec: &str) -> Result<Parsed<'_>, CronError> {
    if spec.is_empty() {
        return Err(CronError::Empty);
    }
    let (zone, spec) = match spec.strip_prefix("CRON_TZ=").or(spec.strip_prefix("TZ=")) {
        Some(prefixed) => {
            let (zone, rest) = prefixed
                .split_once(' ')
                .ok_or(CronError::NothingAfterZone)?;
            (Some(zone), rest.trim())
        }
        None => (None, spec),
    };
    let when = match spec.strip_prefix('@') {
        Some(_) => descriptor(spec)?,
        None => When::Fields(fields(spec)?),
    };
    Ok(Parsed { zone, when })
}

fn descriptor(spec: &str) -> Result<When<'_>, CronError> {
    let (dom, month, dow) = (DOM.all(), MONTH.all(), DOW.all());
    // Second 0, minute 0, at `hour`, every day.
    let every_day = |hour| Fields {
        second: 1,
        minute: 1,
        hour,
        dom,
        month,
        dow,
        dom_star: true,
        dow_star: true,
        fixed: hour == 1,
    };
    let fields = match spec {
        "@yearly" | "@annually" => Fields {
            dom: 1 << 1,
            month: 1 << 1,
            dom_star: false,
            ..every_day(1)
        },
        "@monthly" => Fields {
            dom: 1 << 1,
            dom_star: false,
            ..every_day(1)
        },
        "@weekly" => Fields {
            dow: 1 << 0,
            dow_star: false,
            ..every_day(1)
        },
        "@daily" | "@midnight" => every_day(1),
        "@hourly" => every_day(HOUR.all()),
        _ => {
            return match spec.strip_prefix("@every ") {
                Some(text) => Ok(When::Every(text)),
                None => Err(CronError::Descriptor(spec.to_owned())),
            };
        }
    };
    Ok(When::Fields(fields))
}

fn fields(spec: &str) -> Result<Fields, CronError> {
    let mut given: Vec<&str> = spec.split_whitespace().collect();
    match given.len() {
        5 => given.insert(0, "0"),
        6 => {}
        n => return Err(CronError::FieldCount(n)),
    }
    let mut parsed = [(0, false); 6];
    for ((slot, text), bounds) in parsed.iter_mut().zip(&given).zip(FIELDS) {
        *slot = field(text, bounds)?;
    }
    let wild = |text: &str| text.contains(['*', '?', '/']);
    let fields = Fields {
        second: parsed[0].0,
        minute: parsed[1].0,
        hour: parsed[2].0,
        dom: parsed[3].0,
        month: parsed[4].0,
        dow: parsed[5].0,
        dom_star: parsed[3].1,
        dow_star: parsed[5].1,
        fixed: !wild(given[1]) && !wild(given[2]),
    };
    if fields.can_fire() {
        Ok(fields)
    } else {
        Err(CronError::Never)
    }
}

/// One field: its comma-separated items (empty ones dropped, as Go's `strings.FieldsFunc`), each
/// a range. Returns the bits and whether an item was a bare `*` or `?`.
fn field(text: &str, bounds: &Bounds) -> Result<(u64, bool), CronError> {
    let mut bits = 0;
    let mut star = false;
    for item in text.split(',').filter(|item| !item.is_empty()) {
        let (more, is_star) = range(item, bounds).map_err(|problem| CronError::Field {
            field: bounds.name,
            item: item.to_owned(),
            problem,
        })?;
        bits |= more;
        star |= is_star;
    }
    Ok((bits, star))
}

/// `*`, `?`, `N`, `N-M`, each maybe with `/step`; `N/step` runs to the maximum.
fn range(item: &str, bounds: &Bounds) -> Result<(u64, bool), Problem> {
    let mut slashes = item.split('/');
    let low_high = slashes.next().unwrap_or_default();
    let step_text = slashes.next();
    if slashes.next().is_some() {
        return Err(Problem::TooManySlashes);
    }
    let mut hyphens = low_high.split('-');
    let first = hyphens.next().unwrap_or_default();
    let (start, mut end, mut star) = if first == "*" || first == "?" {
        (bounds.min, bounds.max, true)
    } else {
        let start = number(first, bounds)?;
        let end = match (hyphens.next(), hyphens.next()) {
            (None, _) => start,
            (Some(end), None) => number(end, bounds)?,
            (Some(_), Some(_)) => return Err(Problem::TooManyHyphens),
        };
        (start, end, false)
    };
    let step = match step_text {
        None => 1,
        Some(step) => {
            if !low_high.contains('-') {
                end = bounds.max;
            }
            let step = number(step, &Bounds::numbers("", 0, 0, ""))?;
            star &= step <= 1;
            step
        }
    };
    if start < bounds.min {
        return Err(Problem::BelowMinimum(start));
    }
    if end > bounds.max {
        return Err(Problem::AboveMaximum(end));
    }
    if start > end {
        return Err(Problem::Backwards(start, end));
    }
    if step == 0 {
        return Err(Problem::ZeroStep);
    }
    Ok((bits(start, end, step), star))
}

/// A name of the field's (any case, as Go's `strings.ToLower` folds it), or digits as Go's
/// `strconv.Atoi` reads them (`+5` too).
fn number(text: &str, bounds: &Bounds) -> Result<u64, Problem> {
    // Besides ASCII, Unicode lowers two letters to ASCII ones, rune by rune as Go does: İ to i
    // and the Kelvin sign to k.
    let lower: String = text
        .chars()
        .map(|c| match c {
            '\u{130}' => 'i',
            '\u{212A}' => 'k',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    if let Some(i) = bounds.names.iter().position(|n| *n == lower) {
        return Ok(bounds.min + i as u64);
    }
    let digits = text.strip_prefix('+').unwrap_or(text);
    match digits.parse::<u64>() {
        Ok(n) if digits.bytes().all(|b| b.is_ascii_digit()) && n <= i64::MAX as u64 => Ok(n),
        _ => Err(Problem::NotANumber(text.to_owned())),
    }
}

fn bits(start: u64, end: u64, step: u64) -> u64 {
    (start..=end.min(63))
        .step_by(usize::try_from(step).unwrap_or(usize::MAX))
        .fold(0, |bits, n| bits | 1 << n)
}

/// Days in each month, February in a leap year.
const LONGEST_MONTHS: [u64; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

impl Fields {
    /// Whether some date and time matches: every field has a value, and some month of the
    /// month field has a day of the day field (every weekday falls on every date some year).
    fn can_fire(&self) -> bool {
        let day_in_some_month = (1..=12).any(|month: u64| {
            let days = bits(1, LONGEST_MONTHS[month as usize - 1], 1);
            self.month & 1 << month != 0 && self.dom & days != 0
        });
        let weekday_matches = self.dow != 0 && self.month != 0;
        let days = if self.dom_star || self.dow_star {
            day_in_some_month && self.dow != 0
        } else {
            day_in_some_month || weekday_matches
        };
        days && self.second != 0 && self.minute != 0 && self.hour != 0
    }

    /// Whether the day `day` (1–31) of a month, a `weekday` (0 Sunday), matches.
    pub fn day_matches(&self, day: u64, weekday: u64) -> bool {
        let dom = self.dom & 1 << day != 0;
        let dow = self.dow & 1 << weekday != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }
}

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CronError::Empty => write!(f, "empty schedule"),
            CronError::NothingAfterZone => write!(f, "nothing after the zone prefix"),
            CronError::FieldCount(n) => write!(
                f,
                "expected 5 to 6 fields, found {n} (second, optional; minute; hour; day of \
                 month; month; day of week)"
            ),
            CronError::Field {
                field,
                item,
                problem,
            } => {
                let bounds = FIELDS.iter().find(|b| b.name == *field).unwrap_or(&&SECOND);
                write!(f, "{field} {item:?}: {problem}; allowed {}", bounds.allowed)
            }
            CronError::Descriptor(d) => write!(
                f,
                "unrecognized descriptor {d:?}; expected @yearly, @annually, @monthly, @weekly, \
                 @daily, @midnight, @hourly or @every DURATION"
            ),
            CronError::Never => write!(
                f,
                "never fires: no date has that day and month (robfig/cron would wait forever)"
            ),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NotANumber(text) => write!(f, "{text:?} is not a number or a name"),
            Problem::BelowMinimum(n) => write!(f, "beginning of range ({n}) below minimum"),
            Problem::AboveMaximum(n) => write!(f, "end of range ({n}) above maximum"),
            Problem::Backwards(start, end) => write!(
                f,
                "beginning of range ({start}) beyond end of range ({end})"
            ),
            Problem::ZeroStep => write!(f, "step of range should be a positive number"),
            Problem::TooManyHyphens => write!(f, "too many hyphens"),
            Problem::TooManySlashes => write!(f, "too many slashes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields_of(spec: &str) -> Fields {
        match parse(spec).unwrap().when {
            When::Fields(fields) => fields,
            When::Every(_) => panic!("{spec}: not fields"),
        }
    }

    #[test]
    fn five_fields_get_second_zero_and_six_take_seconds_first() {
        let five = fields_of("30 2 * * *");
        assert_eq!((five.second, five.minute, five.hour), (1, 1 << 30, 1 << 2));
        assert!(five.fixed && five.dom_star && five.dow_star);
        let six = fields_of("*/20 30 2 * * *");
        assert_eq!(six.second, 1 | 1 << 20 | 1 << 40);
        assert!(six.fixed, "seconds do not make a job follow real time");
    }

    #[test]
    fn go_quirks_are_kept() {
        assert_eq!(fields_of("+5 * * * *").minute, 1 << 5);
        assert_eq!(fields_of("1,,2 * * * *").minute, 1 << 1 | 1 << 2);
        assert_eq!(fields_of("*-5 * * * *").minute, MINUTE.all());
        assert_eq!(fields_of("50/5 * * * *").minute, 1 << 50 | 1 << 55);
        let names = fields_of("0 0 * jan-MAR Sun,sat");
        assert_eq!((names.month, names.dow), (0b1110, 1 | 1 << 6));
        assert!(
            !fields_of("0 0 * * */2").dow_star,
            "a step over 1 is not a star"
        );
        assert!(fields_of("0 0 * * */1").dow_star);
        assert!(
            !fields_of("0-59/15 1 * * *").fixed,
            "a step follows real time"
        );
        assert!(!fields_of("0 ? * * *").fixed);
    }

    #[test]
    fn descriptors_are_the_fields_robfig_gives_them() {
        assert_eq!(fields_of("@daily"), fields_of("0 0 0 * * *"));
        assert_eq!(fields_of("@midnight"), fields_of("@daily"));
        assert_eq!(fields_of("@hourly"), fields_of("0 0 * * * *"));
        assert_eq!(fields_of("@weekly"), fields_of("0 0 0 * * 0"));
        assert_eq!(fields_of("@monthly"), fields_of("0 0 0 1 * *"));
        assert_eq!(fields_of("@yearly"), fields_of("0 0 0 1 1 *"));
        assert_eq!(fields_of("@annually"), fields_of("@yearly"));
        assert_eq!(parse("@every 1h30m").unwrap().when, When::Every("1h30m"));
        assert_eq!(
            parse("@every").unwrap_err(),
            CronError::Descriptor("@every".into())
        );
    }

    #[test]
    fn zone_prefixes_are_split_off_at_the_first_space() {
        let parsed = parse("CRON_TZ=Europe/Berlin  30 2 * * *").unwrap();
        assert_eq!(parsed.zone, Some("Europe/Berlin"));
        assert_eq!(parsed.when, When::Fields(fields_of("30 2 * * *")));
        assert_eq!(parse("TZ=UTC @daily").unwrap().zone, Some("UTC"));
        assert_eq!(parse("CRON_TZ=UTC"), Err(CronError::NothingAfterZone));
    }

    #[test]
    fn refusals_name_the_field_the_item_and_the_range() {
        let cases = [
            ("", "empty schedule"),
            ("* * *", "expected 5 to 6 fields, found 3"),
            (
                "60 * * * *",
                "minute \"60\": end of range (60) above maximum; allowed 0-59",
            ),
            (
                "0 0 0 * *",
                "day of month \"0\": beginning of range (0) below minimum; allowed 1-31",
            ),
            (
                "0 0 * * MON-SUN",
                "day of week \"MON-SUN\": beginning of range (1) beyond end of range (0)",
            ),
            (
                "0 0 * FOO *",
                "month \"FOO\": \"FOO\" is not a number or a name; allowed 1-12 or JAN-DEC",
            ),
            ("-1 * * * *", "minute \"-1\": \"\" is not a number"),
            (
                "*/0 * * * *",
                "minute \"*/0\": step of range should be a positive number",
            ),
            ("1-2-3 * * * *", "minute \"1-2-3\": too many hyphens"),
            ("*/5/2 * * * *", "too many slashes"),
            ("99999999999999999999 * * * *", "is not a number"),
            ("@Daily", "unrecognized descriptor \"@Daily\""),
            ("0 0 30 2 *", "never fires"),
            ("0 0 31 4,6 *", "never fires"),
            ("0 0 , * *", "never fires"),
        ];
        for (spec, expected) in cases {
            let error = parse(spec).unwrap_err().to_string();
            assert!(error.contains(expected), "{spec:?}: {error}");
        }
    }

    #[test]
    fn schedules_that_fire_rarely_are_not_never() {
        for spec in ["0 0 29 2 *", "0 0 31 4 MON", "0 0 31 * *", "0 0 30 2 1"] {
            assert!(parse(spec).is_ok(), "{spec}");
        }
    }
}

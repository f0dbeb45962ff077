//! Wall-clock text: RFC 3339 as Go's `RFC3339Nano` writes it (`ce-time`, log lines) and reads it
//! (`--from`), on the two calendar conversions between days since the epoch and proleptic
//! Gregorian dates (H. Hinnant's algorithms), which the schedule and HTTP dates use too.

use std::time::{SystemTime, UNIX_EPOCH};

const NANOS_PER_SEC: u32 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// `time` as Go's `RFC3339Nano` in UTC: up to nine fractional digits, trailing zeros dropped.
pub fn rfc3339_nano(time: SystemTime) -> String {
    let mut out = String::with_capacity(RFC3339_NANO_LEN);
    push_rfc3339_nano(&mut out, time);
    out
}

/// The longest [`rfc3339_nano`] of a year from 0 to 9999.
const RFC3339_NANO_LEN: usize = 30;

/// [`rfc3339_nano`], appended to `out`.
pub fn push_rfc3339_nano(out: &mut String, time: SystemTime) {
    let (secs, nanos) = unix(time);
    push_date_time(out, secs, nanos, None);
}

/// `time` as RFC 3339 in local time `offset` seconds east of UTC: `2026-03-29T03:00:00+02:00`.
pub fn push_rfc3339_local(out: &mut String, time: SystemTime, offset: i32) {
    let (secs, nanos) = unix(time);
    push_date_time(
        out,
        secs.saturating_add(i64::from(offset)),
        nanos,
        Some(offset),
    );
}

/// Whole seconds since the epoch (negative: before) and nanoseconds below a second.
pub fn unix(time: SystemTime) -> (i64, u32) {
    // Whole seconds and nanoseconds as they come: no 128-bit division in the common case.
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => (
            i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
            after.subsec_nanos(),
        ),
        Err(before) => {
            let before = before.duration();
            let secs = -i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            match before.subsec_nanos() {
                0 => (secs, 0),
                nanos => (secs - 1, NANOS_PER_SEC - nanos),
            }
        }
    }
}

/// `secs` after the epoch (negative: before) plus `nanos` (below a second), as RFC3339Nano,
/// ended by `Z`, or by `offset` as `+hh:mm` when given.
fn push_date_time(out: &mut String, secs: i64, nanos: u32, offset: Option<i32>) {
    let (days, day_secs) = (secs.div_euclid(SECS_PER_DAY), secs.rem_euclid(SECS_PER_DAY));
    let (year, month, day) = civil_from_days(days);
    // Written into a byte array and appended once, without 128-bit division: this runs twice a
    // beat (ce-time, the log line).
    let mut text = Ascii::default();
    match u64::try_from(year) {
        Ok(year) if year <= 9999 => text.digits(year, 4),
        _ => out.push_str(&format!("{year:04}")),
    }
    for (separator, value) in [
        (b'-', month),
        (b'-', day),
        (b'T', day_secs / 3600),
        (b':', day_secs / 60 % 60),
        (b':', day_secs % 60),
    ] {
        text.byte(separator);
        text.digits(u64::try_from(value).unwrap_or(0), 2);
    }
    if nanos > 0 {
        let (mut fraction, mut width) = (nanos, 9);
        while fraction % 10 == 0 {
            fraction /= 10;
            width -= 1;
        }
        text.byte(b'.');
        text.digits(u64::from(fraction), width);
    }
    let Some(offset) = offset else {
        text.byte(b'Z');
        out.push_str(text.as_str());
        return;
    };
    out.push_str(text.as_str());
    let mut text = Ascii::default();
    text.byte(if offset < 0 { b'-' } else { b'+' });
    let minutes = u64::from(offset.unsigned_abs() / 60);
    text.digits(minutes / 60, 2);
    text.byte(b':');
    text.digits(minutes % 60, 2);
    out.push_str(text.as_str());
}

/// RFC 3339 `date-time` (`2026-06-15T10:17:23.5Z`, `2026-03-29T03:00:00+02:00`; `t` and `z` in
/// either case, up to nine fractional digits) to seconds since the epoch and nanoseconds.
pub fn parse_rfc3339(text: &str) -> Option<(i64, u32)> {
    let b = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        digits.iter().all(u8::is_ascii_digit).then_some(())?;
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(i, c)| b.get(i) != Some(&c))
        || !matches!(b.get(10), Some(b'T' | b't'))
    {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = fraction[..digits].parse::<u32>().ok()? * 10u32.pow(9 - digits as u32);
        rest = &fraction[digits..];
    }
    let offset = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hm = std::str::from_utf8(&[*h1, *h2, *m1, *m2])
                .ok()?
                .parse::<i64>()
                .ok()?;
            let (h, m) = (hm / 100, hm % 100);
            if ![h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()) || h > 23 || m > 59 {
                return None;
            }
            if *sign == b'-' {
                -(h * 3600 + m * 60)
            } else {
                h * 3600 + m * 60
            }
        }
        _ => return None,
    };
    let days_in_month = days_from_civil(year + i64::from(month == 12), month % 12 + 1, 1)
        - days_from_civil(year, month, 1);
    let valid = (1..=12).contains(&month) && (1..=days_in_month).contains(&day);
    if !valid || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let local =
        days_from_civil(year, month, day) * SECS_PER_DAY + hour * 3600 + minute * 60 + second;
    Some((local - offset, nanos))
}

/// Go's RFC3339Nano of a count of nanoseconds since the epoch, as the vectors give it.
#[cfg(test)]
fn format_unix_nanos(nanos: i128) -> String {
    let secs = i64::try_from(nanos.div_euclid(i128::from(NANOS_PER_SEC))).unwrap_or(i64::MAX);
    let frac = u32::try_from(nanos.rem_euclid(i128::from(NANOS_PER_SEC))).unwrap_or(0);
    let mut out = String::new();
    push_date_time(&mut out, secs, frac, None);
    out
}

/// ASCII text of at most 32 bytes built in place (what does not fit is dropped).
#[derive(Default)]
struct Ascii {
    bytes: [u8; 32],
    len: usize,
}

impl Ascii {
    fn byte(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    /// The last `width` decimal digits of `value`, zero-padded.
    fn digits(&mut self, value: u64, width: usize) {
        let Some(slots) = self.bytes.get_mut(self.len..self.len + width) else {
            return;
        };
        let mut rest = value;
        for slot in slots.iter_mut().rev() {
            *slot = b'0' + u8::try_from(rest % 10).unwrap_or(0);
            rest /= 10;
        }
        self.len += width;
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month 1–12, day 1–31).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The day of the week of a day since 1970-01-01 (a Thursday): 0 Sunday to 6 Saturday.
pub fn weekday(days: i64) -> i64 {
    (days + 4).rem_euclid(7)
}

/// A proleptic Gregorian (year, month 1–12, day 1–31) to days since 1970-01-01.
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::goparse::tests::vectors;
    use std::time::Duration;

    #[test]
    fn rfc3339_matches_go_for_every_vector() {
        for (input, expected) in vectors("rfc3339nano") {
            let nanos: i128 = input.parse().unwrap();
            assert_eq!(format_unix_nanos(nanos), expected, "{input} ns");
        }
    }

    #[test]
    fn system_times_before_and_after_the_epoch_match_go() {
        let mut checked = 0;
        for (input, expected) in vectors("rfc3339nano") {
            let nanos: i128 = input.parse().unwrap();
            let offset = u64::try_from(nanos.unsigned_abs()).map(Duration::from_nanos);
            let time = match (nanos < 0, offset) {
                (false, Ok(after)) => UNIX_EPOCH.checked_add(after),
                (true, Ok(before)) => UNIX_EPOCH.checked_sub(before),
                _ => None,
            };
            if let Some(time) = time {
                assert_eq!(rfc3339_nano(time), expected, "{input} ns");
                checked += 1;
            }
        }
        assert!(checked > 10, "{checked} vectors fit a SystemTime");
        let before = UNIX_EPOCH - Duration::from_millis(1_500);
        assert_eq!(rfc3339_nano(before), "1969-12-31T23:59:58.5Z");
    }

    #[test]
    fn the_two_calendar_conversions_are_inverses() {
        // Every day from 1600 to 2400, both ways, leap years and centuries included.
        for days in -135_140..157_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn rfc3339_is_read_with_offsets_and_fractions() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(
            parse_rfc3339("2026-06-15T10:17:23.5Z"),
            Some((1_781_518_643, 500_000_000))
        );
        assert_eq!(
            parse_rfc3339("2026-03-29t03:00:00+02:00"),
            parse_rfc3339("2026-03-29T01:00:00z")
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00-00:30"), Some((1800, 0)));
        for bad in [
            "2026-06-15",
            "2026-06-15T10:17:23",
            "2026-06-15 10:17:23Z",
            "2026-02-29T00:00:00Z",
            "2026-06-15T24:00:00Z",
            "2026-06-15T10:17:23.Z",
            "2026-06-15T10:17:23.1234567890Z",
            "2026-06-15T10:17:23+0200",
            "2026-06-15T10:17:23+02:00x",
            "+026-06-15T10:17:23Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn local_times_carry_their_offset() {
        let spring = UNIX_EPOCH + Duration::from_secs(1_774_746_000);
        let mut out = String::new();
        push_rfc3339_local(&mut out, spring, 7200);
        assert_eq!(out, "2026-03-29T03:00:00+02:00");
        out.clear();
        push_rfc3339_local(
            &mut out,
            spring + Duration::from_millis(1500),
            -(9 * 3600 + 1800),
        );
        assert_eq!(out, "2026-03-28T15:30:01.5-09:30");
    }
}

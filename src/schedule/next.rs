//! The next fire time of cron fields in a zone, with daylight-saving changes handled as ISC cron
//! (cron(8)) handles them rather than as robfig/cron does: a job at a particular time (no `*`,
//! `?` or step in its minute and hour fields) whose local time is skipped by a change fires once,
//! at the change; one whose local time happens twice fires the first time only. Other jobs
//! follow real time: they fire whenever the local clock shows a matching time. (robfig loses the
//! skipped fire and repeats the doubled one; away from changes the two agree.)
//!
//! The search walks the zone's stretches of constant offset; inside one, local time is plain
//! calendar arithmetic. Instants are whole seconds since the Unix epoch.

use super::cron::Fields;
use super::zone::{Change, Zone};
use crate::time::{civil_from_days, days_from_civil, weekday};

const DAY: i64 = 86_400;
/// How far a search looks ahead: the longest wait between two fires of a schedule that can fire
/// at all is a February 29th after 2096 (the next is in 2104).
const HORIZON: i64 = 10 * 366 * DAY;

/// The first fire time at or after `start`, within ten years.
pub fn first_fire(fields: &Fields, zone: &Zone, start: i64) -> Option<i64> {
    let limit = start.saturating_add(HORIZON);
    let mut from = start;
    let mut recent = zone.recent_change(from);
    if let Some(change) = recent.filter(|c| c.at == from) {
        if skipped_a_fire(fields, &change) {
            return Some(from);
        }
    }
    while from < limit {
        let offset = i64::from(zone.kind_at(from).offset);
        let next = zone.next_change(from);
        let mut local_from = from + offset;
        if let Some(change) = recent.filter(|_| fields.fixed) {
            // Local times an earlier change repeated have had their fire already.
            local_from = local_from.max(change.at + i64::from(change.before.offset));
        }
        let local_end = next.map_or(limit, |c| c.at.min(limit)) + offset;
        if let Some(local) = first_local(fields, local_from, local_end) {
            return Some(local - offset);
        }
        let change = next?;
        if skipped_a_fire(fields, &change) {
            return Some(change.at);
        }
        from = change.at;
        recent = Some(change);
    }
    None
}

/// Whether `change` moves the clock forward over a local time a fixed-time job would fire at.
fn skipped_a_fire(fields: &Fields, change: &Change) -> bool {
    let skipped_from = change.at + i64::from(change.before.offset);
    let skipped_to = change.at + i64::from(change.after.offset);
    fields.fixed && first_local(fields, skipped_from, skipped_to).is_some()
}

/// The first local time (seconds since the epoch, in local calendar terms) in `from..end` that
/// the fields match.
fn first_local(fields: &Fields, from: i64, end: i64) -> Option<i64> {
    let mut t = from;
    while t < end {
        let days = t.div_euclid(DAY);
        let (year, month, day) = civil_from_days(days);
        let midnight = days * DAY;
        let next_day = midnight + DAY;
        if fields.month & 1 << month == 0 {
            t = if month == 12 {
                days_from_civil(year + 1, 1, 1)
            } else {
                days_from_civil(year, month + 1, 1)
            } * DAY;
            continue;
        }
        let (day, dow) = (day as u64, weekday(days) as u64);
        if !fields.day_matches(day, dow) {
            t = next_day;
            continue;
        }
        let secs = (t - midnight) as u64;
        let (hour, minute, second) = (secs / 3600, secs / 60 % 60, secs % 60);
        let Some(h) = next_bit(fields.hour, hour) else {
            t = next_day;
            continue;
        };
        if h > hour {
            t = midnight + h as i64 * 3600;
            continue;
        }
        let hour_start = midnight + hour as i64 * 3600;
        let Some(m) = next_bit(fields.minute, minute) else {
            t = hour_start + 3600;
            continue;
        };
        if m > minute {
            t = hour_start + m as i64 * 60;
            continue;
        }
        let minute_start = hour_start + minute as i64 * 60;
        match next_bit(fields.second, second) {
            Some(s) => t = minute_start + s as i64,
            None => {
                t = minute_start + 60;
                continue;
            }
        }
        return (t < end).then_some(t);
    }
    None
}

/// The lowest set bit of `bits` at or above `n`.
fn next_bit(bits: u64, n: u64) -> Option<u64> {
    let above = bits.checked_shr(u32::try_from(n).ok()?)? << n;
    (above != 0).then(|| u64::from(above.trailing_zeros()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::cron::{When, parse};

    fn fields(spec: &str) -> Fields {
        match parse(spec).unwrap().when {
            When::Fields(fields) => fields,
            When::Every(_) => panic!("{spec}"),
        }
    }

    /// The first `n` fires after `from` (seconds), as seconds.
    fn fires(spec: &str, zone: &str, from: i64, n: usize) -> Vec<i64> {
        let (fields, zone) = (fields(spec), Zone::named(zone).unwrap());
        let mut out = vec![];
        let mut t = from;
        while out.len() < n {
            t = first_fire(&fields, &zone, t + 1).unwrap();
            out.push(t);
        }
        out
    }

    /// 2026-03-29T00:00:00Z and 2026-10-25T00:00:00Z: Berlin's change days, at midnight UTC.
    const MARCH_29: i64 = 1_774_742_400;
    const OCTOBER_25: i64 = 1_792_886_400;
    const HOUR: i64 = 3600;

    #[test]
    fn a_fixed_time_in_the_spring_gap_fires_once_at_the_change() {
        // 02:30 does not exist in Berlin on 2026-03-29: it fires at 03:00 CEST (01:00Z).
        let got = fires("30 2 * * *", "Europe/Berlin", MARCH_29 - DAY, 3);
        assert_eq!(
            got,
            [
                MARCH_29 - DAY + HOUR + 1800,
                MARCH_29 + HOUR,
                MARCH_29 + DAY + 1800
            ]
        );
        // Two fixed times in the gap still fire once.
        let got = fires("0 15,45 2 * * *", "Europe/Berlin", MARCH_29, 2);
        assert_eq!(got, [MARCH_29 + HOUR, MARCH_29 + DAY + 15 * 60]);
    }

    #[test]
    fn a_fixed_time_in_the_autumn_overlap_fires_the_first_time_only() {
        // 02:30 happens at 00:30Z (CEST) and 01:30Z (CET) on 2026-10-25.
        let got = fires("30 2 * * *", "Europe/Berlin", OCTOBER_25 - HOUR, 2);
        assert_eq!(got, [OCTOBER_25 + 1800, OCTOBER_25 + DAY + HOUR + 1800]);
    }

    #[test]
    fn wildcard_jobs_follow_real_time_through_both_changes() {
        let got = fires("0 * * * *", "Europe/Berlin", OCTOBER_25 - 1, 3);
        assert_eq!(got, [OCTOBER_25, OCTOBER_25 + HOUR, OCTOBER_25 + 2 * HOUR]);
        let got = fires("*/30 2 * * *", "Europe/Berlin", MARCH_29 - DAY, 3);
        assert_eq!(
            got[2],
            MARCH_29 + DAY,
            "nothing in the gap: 02:00 CEST on the 30th"
        );
    }

    #[test]
    fn days_months_and_weekdays_combine_as_in_cron() {
        // 2026-06-15 is a Monday. Both day fields restricted: either matches.
        let june_15 = 1_781_481_600;
        let got = fires("0 0 1-7 * 1", "UTC", june_15, 3);
        assert_eq!(
            got,
            [june_15 + 7 * DAY, june_15 + 14 * DAY, june_15 + 16 * DAY]
        );
        // February 29th, from 2097: 2104.
        let from = days_from_civil(2097, 1, 1) * DAY;
        assert_eq!(
            fires("0 0 29 2 *", "UTC", from, 1),
            [days_from_civil(2104, 2, 29) * DAY]
        );
    }

    #[test]
    fn next_bit_finds_the_lowest_bit_at_or_above() {
        assert_eq!(next_bit(0b1010, 0), Some(1));
        assert_eq!(next_bit(0b1010, 2), Some(3));
        assert_eq!(next_bit(0b1010, 4), None);
        assert_eq!(next_bit(u64::MAX, 63), Some(63));
        assert_eq!(next_bit(u64::MAX, 64), None);
    }
}

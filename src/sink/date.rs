//! HTTP dates (RFC 9110 §5.6.7), for `Retry-After`, read as Go's `net/http.ParseTime` reads them:
//! the three layouts it tries in turn (IMF-fixdate, the obsolete RFC 850 and asctime forms),
//! each element with the rules of Go's `time.Parse` (names in any case, the weekday read but not
//! checked, a space in the layout matching one or more, a fraction after the seconds taken, the
//! day checked against its month, a zone name read and its offset not applied, as in a process
//! whose local zone is UTC). `tests/vectors/go-stdlib.tsv` holds Go's answers.

use crate::time::days_from_civil;

/// One element of a layout: Go's `time` layout tokens, and literal text.
#[derive(Debug, Clone, Copy)]
enum Element {
    /// `Mon`.
    ShortWeekday,
    /// `Monday`.
    LongWeekday,
    /// `02`: two digits.
    ZeroDay,
    /// `_2`: one or two digits, a space before one allowed.
    UnderDay,
    /// `Jan`.
    Month,
    /// `2006`.
    Year,
    /// `06`: 69 and above are 19xx, below 20xx.
    ShortYear,
    /// `15`: one or two digits.
    Hour,
    /// `04` and `05`: two digits, then (after the seconds) a fraction if one is there.
    Minute,
    Second,
    /// `MST`: a zone name, read and not applied.
    Zone,
    Text(&'static str),
}

use Element::*;

/// `http.TimeFormat`, `time.RFC850` and `time.ANSIC`: what `http.ParseTime` tries, in order.
const LAYOUTS: [&[Element]; 3] = [
    &[
        ShortWeekday,
        Text(", "),
        ZeroDay,
        Text(" "),
        Month,
        Text(" "),
        Year,
        Text(" "),
        Hour,
        Text(":"),
        Minute,
        Text(":"),
        Second,
        Text(" GMT"),
    ],
    &[
        LongWeekday,
        Text(", "),
        ZeroDay,
        Text("-"),
        Month,
        Text("-"),
        ShortYear,
        Text(" "),
        Hour,
        Text(":"),
        Minute,
        Text(":"),
        Second,
        Text(" "),
        Zone,
    ],
    &[
        ShortWeekday,
        Text(" "),
        Month,
        Text(" "),
        UnderDay,
        Text(" "),
        Hour,
        Text(":"),
        Minute,
        Text(":"),
        Second,
        Text(" "),
        Year,
    ],
];

const SHORT_DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Seconds since the epoch (negative before it) of the HTTP date `text`; `None` where Go's
/// `http.ParseTime` returns an error.
pub fn parse_http_date(text: &str) -> Option<i64> {
    LAYOUTS.iter().find_map(|layout| parse(text, layout))
}

/// The date and time read so far.
#[derive(Default)]
struct Fields {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
}

fn parse(text: &str, layout: &[Element]) -> Option<i64> {
    let mut rest = text.as_bytes();
    let mut f = Fields::default();
    for element in layout {
        rest = match *element {
            ShortWeekday => lookup(rest, &SHORT_DAYS)?.1,
            LongWeekday => lookup(rest, &LONG_DAYS)?.1,
            Month => {
                let (index, rest) = lookup(rest, &MONTHS)?;
                f.month = index as i64 + 1;
                rest
            }
            ZeroDay => number(rest, true, &mut f.day)?,
            UnderDay => number(rest.strip_prefix(b" ").unwrap_or(rest), false, &mut f.day)?,
            Year => {
                let digits = rest.get(..4)?;
                f.year = digits_value(digits)?;
                &rest[4..]
            }
            ShortYear => {
                let two = digits_value(rest.get(..2)?)?;
                f.year = if two >= 69 { 1900 + two } else { 2000 + two };
                &rest[2..]
            }
            Hour => in_range(number(rest, false, &mut f.hour)?, f.hour, 23)?,
            Minute => in_range(number(rest, true, &mut f.minute)?, f.minute, 59)?,
            Second => fraction(in_range(number(rest, true, &mut f.second)?, f.second, 59)?),
            Zone => zone(rest)?,
            Text(literal) => skip(rest, literal.as_bytes())?,
        };
    }
    if !rest.is_empty() {
        return None;
    }
    let days_in_month = days_from_civil(f.year + i64::from(f.month == 12), f.month % 12 + 1, 1)
        - days_from_civil(f.year, f.month, 1);
    if f.day < 1 || f.day > days_in_month {
        return None;
    }
    let days = days_from_civil(f.year, f.month, f.day);
    Some(days * 86_400 + f.hour * 3600 + f.minute * 60 + f.second)
}

/// Go's `lookup`: the first of `names` that `text` starts with, in any case, and what follows.
fn lookup<'a>(text: &'a [u8], names: &[&str]) -> Option<(usize, &'a [u8])> {
    names.iter().enumerate().find_map(|(index, name)| {
        let head = text.get(..name.len())?;
        head.eq_ignore_ascii_case(name.as_bytes())
            .then(|| (index, &text[name.len()..]))
    })
}

/// Go's `getnum`: one digit, or two; `fixed` wants exactly two.
fn number<'a>(text: &'a [u8], fixed: bool, out: &mut i64) -> Option<&'a [u8]> {
    let digit = |at: usize| {
        text.get(at)
            .filter(|b| b.is_ascii_digit())
            .map(|b| i64::from(b - b'0'))
    };
    let first = digit(0)?;
    match digit(1) {
        Some(second) => {
            *out = first * 10 + second;
            Some(&text[2..])
        }
        None if fixed => None,
        None => {
            *out = first;
            Some(&text[1..])
        }
    }
}

fn in_range(rest: &[u8], value: i64, max: i64) -> Option<&[u8]> {
    (value <= max).then_some(rest)
}

fn digits_value(digits: &[u8]) -> Option<i64> {
    digits.iter().try_fold(0i64, |value, &b| {
        b.is_ascii_digit().then(|| value * 10 + i64::from(b - b'0'))
    })
}

/// After the seconds, Go takes a fraction that the layout does not have: `.` or `,` and digits.
fn fraction(rest: &[u8]) -> &[u8] {
    match rest {
        [b'.' | b',', digit, ..] if digit.is_ascii_digit() => {
            let digits = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
            &rest[1 + digits..]
        }
        _ => rest,
    }
}

/// Go's `skip`: the literal `text`, where a space matches one or more spaces (and none at the
/// very end).
fn skip<'a>(mut text: &'a [u8], mut literal: &[u8]) -> Option<&'a [u8]> {
    while let Some((&first, after)) = literal.split_first() {
        if first == b' ' {
            if text.first().is_some_and(|&b| b != b' ') {
                return None;
            }
            literal = trim_spaces(literal);
            text = trim_spaces(text);
            continue;
        }
        if text.first() != Some(&first) {
            return None;
        }
        (text, literal) = (&text[1..], after);
    }
    Some(text)
}

fn trim_spaces(text: &[u8]) -> &[u8] {
    let spaces = text.iter().take_while(|&&b| b == b' ').count();
    &text[spaces..]
}

/// Go's `parseTimeZone` for a zone name: `UTC`, `GMT` with an optional signed hour, a signed
/// offset, or three to five capitals (four or five ending in `T`, or `WITA`, `ChST`, `MeST`).
fn zone(text: &[u8]) -> Option<&[u8]> {
    if text.starts_with(b"UTC") {
        return Some(&text[3..]);
    }
    if text.len() < 3 {
        return None;
    }
    if text.starts_with(b"ChST") || text.starts_with(b"MeST") {
        return Some(&text[4..]);
    }
    if let Some(after) = text.strip_prefix(b"GMT") {
        return Some(&after[signed_offset(after)..]);
    }
    if matches!(text[0], b'+' | b'-') {
        let length = signed_offset(text);
        return (length > 0).then(|| &text[length..]);
    }
    let capitals = text
        .iter()
        .take(6)
        .take_while(|b| b.is_ascii_uppercase())
        .count();
    let length = match capitals {
        3 => 3,
        4 if text[3] == b'T' || text.starts_with(b"WITA") => 4,
        5 if text[4] == b'T' => 5,
        _ => return None,
    };
    Some(&text[length..])
}

/// Go's `parseSignedOffset`: the length of `+h`/`-h` (hours, at most 23) at the start of
/// `text`, or 0.
fn signed_offset(text: &[u8]) -> usize {
    let Some(&sign) = text.first() else {
        return 0;
    };
    if sign != b'+' && sign != b'-' {
        return 0;
    }
    let digits = text[1..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return 0;
    }
    match digits_value(&text[1..1 + digits]) {
        Some(hours) if hours <= 23 => 1 + digits,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::goparse::tests::vectors;

    #[test]
    fn every_go_vector_is_read_as_net_http_reads_it() {
        for (input, expected) in vectors("httptime") {
            let got = parse_http_date(&input).map_or("error".to_owned(), |s| s.to_string());
            assert_eq!(got, expected, "http.ParseTime({input:?})");
        }
    }
}

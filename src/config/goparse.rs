//! The parts of Go's standard library whose input syntax heartbeats inherits from the Go image:
//! `time.ParseDuration` (for `--period`), `strconv.Unquote` (for a quoted `--label`) and
//! `strconv.ParseBool` (for `ONE_SHOT`). Each follows the Go source rule for rule and is tested
//! against results of Go itself in `tests/vectors/go-stdlib.tsv`.

/// `time.ParseDuration`: a signed sequence of decimal numbers, each with an optional fraction and
/// a unit (`ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`), as nanoseconds. `None` where Go errors.
pub fn parse_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    const LIMIT: u64 = 1 << 63;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let (int, after_int) = leading_int(rest)?;
        let has_int = after_int.len() != rest.len();
        rest = after_int;
        let (mut frac, mut scale, mut has_frac) = (0, 1.0, false);
        if let Some(after_dot) = rest.strip_prefix('.') {
            let after_frac;
            (frac, scale, after_frac) = leading_fraction(after_dot);
            has_frac = after_frac.len() != after_dot.len();
            rest = after_frac;
        }
        if !has_int && !has_frac {
            return None;
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = unit_nanos(&rest[..unit_len])?;
        rest = &rest[unit_len..];
        if int > LIMIT / unit {
            return None;
        }
        let mut value = int * unit;
        if frac > 0 {
            // Go computes the fractional part in float64; do the same to round alike.
            value += (frac as f64 * (unit as f64 / scale)) as u64;
            if value > LIMIT {
                return None;
            }
        }
        total = total.checked_add(value).filter(|t| *t <= LIMIT)?;
    }
    if neg {
        Some((total as i64).wrapping_neg())
    } else {
        i64::try_from(total).ok()
    }
}

fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Go's `leadingInt`: the leading digits of `s` as a number; `None` on overflow past 2^63.
fn leading_int(s: &str) -> Option<(u64, &str)> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let mut x: u64 = 0;
    for b in s[..digits].bytes() {
        if x > (1 << 63) / 10 {
            return None;
        }
        x = x * 10 + u64::from(b - b'0');
        if x > 1 << 63 {
            return None;
        }
    }
    Some((x, &s[digits..]))
}

/// Go's `leadingFraction`: digits after the dot, with the power of ten they scale by; digits past
/// what fits in 63 bits are consumed and ignored.
fn leading_fraction(s: &str) -> (u64, f64, &str) {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (mut x, mut scale, mut overflow) = (0u64, 1.0f64, false);
    for b in s[..digits].bytes() {
        if overflow || x > ((1 << 63) - 1) / 10 {
            overflow = true;
            continue;
        }
        let y = x * 10 + u64::from(b - b'0');
        if y > 1 << 63 {
            overflow = true;
            continue;
        }
        x = y;
        scale *= 10.0;
    }
    (x, scale, &s[digits..])
}

/// `strconv.Unquote`: a Go string literal (`"..."`, `'.'` or a raw `` `...` ``) to its bytes,
/// which need not be UTF-8 (`\xff`). `None` where Go errors.
pub fn unquote(s: &str) -> Option<Vec<u8>> {
    let quote = *s.as_bytes().first()?;
    if s.len() < 2 {
        return None;
    }
    match quote {
        b'`' => {
            let body = s[1..].strip_suffix('`')?;
            if body.contains('`') {
                return None;
            }
            Some(body.bytes().filter(|&b| b != b'\r').collect())
        }
        b'"' | b'\'' => unquote_escaped(&s[1..], quote),
        _ => None,
    }
}

/// The body of an interpreted string or rune literal after its opening quote.
fn unquote_escaped(mut rest: &str, quote: u8) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(rest.len());
    let mut chars = 0;
    while !rest.starts_with(quote as char) {
        if rest.starts_with('\n') {
            return None;
        }
        rest = unquote_char(rest, quote, &mut out)?;
        chars += 1;
        if quote == b'\'' {
            break;
        }
    }
    let after = rest.strip_prefix(quote as char)?;
    let rune_ok = quote != b'\'' || chars == 1;
    (after.is_empty() && rune_ok).then_some(out)
}

/// Go's `UnquoteChar`: decodes one character or escape at the start of `s` into `out`.
fn unquote_char<'a>(s: &'a str, quote: u8, out: &mut Vec<u8>) -> Option<&'a str> {
    let mut chars = s.chars();
    let c = chars.next()?;
    if c != '\\' {
        let mut buf = [0; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        return Some(chars.as_str());
    }
    let escape = chars.next()?;
    let rest = chars.as_str();
    let simple = match escape {
        'a' => Some(0x07),
        'b' => Some(0x08),
        'f' => Some(0x0c),
        'n' => Some(b'\n'),
        'r' => Some(b'\r'),
        't' => Some(b'\t'),
        'v' => Some(0x0b),
        '\\' => Some(b'\\'),
        '\'' | '"' if escape as u32 == u32::from(quote) => Some(quote),
        _ => None,
    };
    if let Some(byte) = simple {
        out.push(byte);
        return Some(rest);
    }
    match escape {
        'x' | 'u' | 'U' => {
            let len = match escape {
                'x' => 2,
                'u' => 4,
                _ => 8,
            };
            let hex = rest.get(..len)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let value = u32::from_str_radix(hex, 16).ok()?;
            if escape == 'x' {
                out.push(value as u8);
            } else {
                let mut buf = [0; 4];
                out.extend_from_slice(char::from_u32(value)?.encode_utf8(&mut buf).as_bytes());
            }
            Some(&rest[len..])
        }
        '0'..='7' => {
            let more = rest.get(..2)?;
            let mut value = escape as u32 - u32::from(b'0');
            for b in more.bytes() {
                if !(b'0'..=b'7').contains(&b) {
                    return None;
                }
                value = value << 3 | u32::from(b - b'0');
            }
            out.push(u8::try_from(value).ok()?);
            Some(&rest[2..])
        }
        _ => None,
    }
}

/// `strconv.ParseBool`: exactly `1 t T TRUE true True` or `0 f F FALSE false False`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Rows of `go-stdlib.tsv` for one function, as (input, expected) with the input unquoted.
    pub(crate) fn vectors(function: &str) -> Vec<(String, String)> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/go-stdlib.tsv");
        let text = std::fs::read_to_string(path).expect("tests/vectors/go-stdlib.tsv");
        let rows: Vec<_> = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let mut cols = line.splitn(3, '\t');
                (cols.next()? == function).then(|| {
                    let input = cols.next().expect("input column");
                    let input = unquote(input).expect("input is Go-quoted");
                    let input = String::from_utf8(input).expect("input is UTF-8");
                    (input, cols.next().expect("result column").to_owned())
                })
            })
            .collect();
        assert!(rows.len() > 5, "too few {function} rows in {path}");
        rows
    }

    #[test]
    fn parse_duration_matches_go_for_every_vector() {
        for (input, expected) in vectors("duration") {
            let got = parse_duration(&input).map_or("error".to_owned(), |ns| ns.to_string());
            assert_eq!(got, expected, "ParseDuration({input:?})");
        }
    }

    #[test]
    fn unquote_matches_go_for_every_vector() {
        for (input, expected) in vectors("unquote") {
            let expected = match expected.as_str() {
                "error" => None,
                quoted => Some(unquote(quoted).expect("result is Go-quoted")),
            };
            assert_eq!(unquote(&input), expected, "Unquote({input:?})");
        }
    }

    #[test]
    fn parse_bool_matches_go_for_every_vector() {
        for (input, expected) in vectors("parsebool") {
            let got = parse_bool(&input).map_or("error".to_owned(), |b| b.to_string());
            assert_eq!(got, expected, "ParseBool({input:?})");
        }
    }

    #[test]
    fn unquote_decodes_escapes_that_the_vectors_do_not_cover() {
        assert_eq!(unquote(r#""\060\x30\u0030""#), Some(b"000".to_vec()));
        assert_eq!(unquote(r#""\x4""#), None);
        assert_eq!(unquote(r#""\U00110000""#), None);
        assert_eq!(unquote("'ab'"), None);
        assert_eq!(unquote("\"a\\\""), None);
        assert_eq!(unquote("`a\rb`"), Some(b"ab".to_vec()));
    }
}

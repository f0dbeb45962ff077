//! JSON as Go reads it. An object's members read in document order with repeated keys kept, so
//! that a caller can decide as Go's `encoding/json` would (the last one wins) or refuse a repeat
//! (`K_CE_OVERRIDES` names must be unique); and what `json.Unmarshal` into a
//! `map[string]interface{}` refuses, as PingSource's webhook checks its data ([`object_problem`]).

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The members of a JSON object in order, repeated keys kept, each value still as its text.
pub struct Members(pub Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
}

/// How deep Go's scanner lets arrays and objects nest.
const MAX_DEPTH: usize = 10_000;

/// Why `json.Unmarshal` of `bytes` into a `map[string]interface{}` fails, if it does: a syntax
/// error, nesting deeper than 10,000, a number a float64 cannot hold, or a value other than an
/// object or `null`. As Go, bytes that are not UTF-8 inside strings are taken (Go replaces them),
/// and so are escapes of lone surrogates. The reason names a byte offset, never the text.
pub fn object_problem(bytes: &[u8]) -> Option<String> {
    object(bytes).err()
}

fn object(bytes: &[u8]) -> Result<(), String> {
    let mut scan = Scan { bytes, at: 0 };
    scan.space();
    match scan.peek() {
        Some(b'{') => {}
        Some(b'n') => {
            scan.literal(b"null")?;
            scan.space();
            return scan.end();
        }
        Some(_) => return Err("not a JSON object".into()),
        None => return Err("no JSON at all".into()),
    }
    // The open arrays and objects, innermost last.
    let mut open: Vec<u8> = Vec::new();
    'value: loop {
        scan.space();
        match scan.peek() {
            Some(c @ (b'{' | b'[')) => {
                open.push(c);
                if open.len() > MAX_DEPTH {
                    return Err(format!("nested deeper than {MAX_DEPTH} levels"));
                }
                scan.at += 1;
                scan.space();
                let close = if c == b'{' { b'}' } else { b']' };
                if scan.peek() == Some(close) {
                    scan.at += 1;
                    open.pop();
                } else if c == b'{' {
                    scan.key()?;
                    continue 'value;
                } else {
                    continue 'value;
                }
            }
            Some(b'"') => scan.string()?,
            Some(b't') => scan.literal(b"true")?,
            Some(b'f') => scan.literal(b"false")?,
            Some(b'n') => scan.literal(b"null")?,
            Some(b'-' | b'0'..=b'9') => scan.number()?,
            _ => return Err(scan.unexpected()),
        }
        // After a value: a comma and the next, or the end of what is open.
        loop {
            scan.space();
            let Some(&container) = open.last() else {
                return scan.end();
            };
            match (container, scan.peek()) {
                (b'{', Some(b',')) => {
                    scan.at += 1;
                    scan.space();
                    scan.key()?;
                    continue 'value;
                }
                (b'[', Some(b',')) => {
                    scan.at += 1;
                    continue 'value;
                }
                (b'{', Some(b'}')) | (b'[', Some(b']')) => {
                    scan.at += 1;
                    open.pop();
                }
                _ => return Err(scan.unexpected()),
            }
        }
    }
}

/// A cursor over JSON text; each step says why it failed.
struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// Skips JSON's white space (not Unicode's).
    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn unexpected(&self) -> String {
        match self.peek() {
            Some(_) => format!("unexpected byte at offset {}", self.at),
            None => "it ends too soon".into(),
        }
    }

    /// Nothing but the end is left.
    fn end(&self) -> Result<(), String> {
        match self.peek() {
            Some(_) => Err(self.unexpected()),
            None => Ok(()),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), String> {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(())
        } else {
            Err(format!("unexpected byte at offset {}", self.at))
        }
    }

    /// A member's key and its colon.
    fn key(&mut self) -> Result<(), String> {
        if self.peek() != Some(b'"') {
            return Err(self.unexpected());
        }
        self.string()?;
        self.space();
        if self.peek() != Some(b':') {
            return Err(self.unexpected());
        }
        self.at += 1;
        Ok(())
    }

    fn string(&mut self) -> Result<(), String> {
        self.at += 1;
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.at += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.at += 1
                        }
                        Some(b'u') => {
                            let hex = self.bytes.get(self.at + 1..self.at + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return Err(format!("a bad \\u escape at offset {}", self.at));
                            }
                            self.at += 5;
                        }
                        _ => return Err(format!("a bad escape at offset {}", self.at)),
                    }
                }
                Some(0..0x20) => return Err(format!("a control byte at offset {}", self.at)),
                Some(_) => self.at += 1,
                None => return Err(self.unexpected()),
            }
        }
    }

    fn number(&mut self) -> Result<(), String> {
        let start = self.at;
        let digits = |scan: &mut Self| {
            let from = scan.at;
            while scan.peek().is_some_and(|c| c.is_ascii_digit()) {
                scan.at += 1;
            }
            scan.at > from
        };
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(self.unexpected()),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if !digits(self) {
                return Err(self.unexpected());
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if !digits(self) {
                return Err(self.unexpected());
            }
        }
        // ASCII digits and signs only, by the grammar above.
        let text = std::str::from_utf8(&self.bytes[start..self.at]).unwrap_or_default();
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(()),
            _ => Err(format!(
                "the number at offset {start} does not fit a float64"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_keep_their_order_and_repeats() {
        let members: Members = serde_json::from_str(r#"{"b":1,"a":"x","b":[2]}"#).unwrap();
        let got: Vec<(&str, &str)> = members
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.get()))
            .collect();
        assert_eq!(got, [("b", "1"), ("a", "\"x\""), ("b", "[2]")]);
        assert!(serde_json::from_str::<Members>("[1]").is_err());
    }

    #[test]
    fn objects_are_checked_as_go_unmarshals_into_a_map() {
        let nested = |depth: usize| {
            format!(
                "{{\"a\":{}{}}}",
                "[".repeat(depth - 1),
                "]".repeat(depth - 1)
            )
        };
        for good in [
            "{}",
            " {\"a\":[1,{\"b\":null}],\"a\":true} ",
            "null",
            "{\"a\":-0.5e-3,\"b\":1e-400,\"c\":\"\\ud800\\n\\/\"}",
            "{\"a\":1.7976931348623157e308}",
            &nested(MAX_DEPTH),
        ] {
            assert_eq!(object_problem(good.as_bytes()), None, "{good}");
        }
        // Not UTF-8 inside a string: Go takes it.
        assert_eq!(object_problem(b"{\"a\":\"\xff\"}"), None);
        for (bad, why) in [
            ("[1]", "not a JSON object"),
            ("", "no JSON at all"),
            ("{\"a\":1e400}", "does not fit a float64"),
            ("{\"a\":01}", "offset 6"),
            ("{\"a\":1,}", "offset 7"),
            ("{\"a\":\"\x01\"}", "control byte"),
            ("{\"a\":\"\\x\"}", "bad escape"),
            ("{\"a\":1} x", "offset 8"),
            ("{\"a\":[1", "ends too soon"),
            ("nul", "offset 0"),
            (&nested(MAX_DEPTH + 1), "deeper than 10000"),
        ] {
            let problem = object_problem(bad.as_bytes()).unwrap_or_default();
            assert!(problem.contains(why), "{bad:.40}: {problem}");
        }
    }
}

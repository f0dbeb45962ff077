//! `K_CE_OVERRIDES`: the extensions a ContainerSource's `ceOverrides` adds, checked once at
//! start-up. This module owns what a name and a value may be, and which keys are warned about
//! rather than refused (Knative's webhook lets them through); [`crate::event`] then only
//! encodes the result into headers.

use super::json::Members;
use crate::error::Error;
use crate::event::MAX_HEADER_VALUE;

/// The variable Knative sets to the ContainerSource's `ceOverrides`.
pub const K_CE_OVERRIDES: &str = "K_CE_OVERRIDES";

/// The longest extension name taken; the CloudEvents spec advises at most 20 characters.
pub const MAX_NAME: usize = 128;
/// The most extension value bytes all overrides together may hold, before encoding.
pub const MAX_OVERRIDES_TOTAL: usize = 16 * 1024;

/// CloudEvents §3.1: attributes an extension must not shadow (plus `data`, the payload), each
/// with how to set it instead.
const RESERVED_NAMES: [(&str, &str); 9] = [
    ("id", "heartbeats sets a fresh one for every event"),
    ("source", "set it with --eventSource"),
    ("specversion", "heartbeats sends 1.0"),
    ("type", "set it with --eventType"),
    ("datacontenttype", "the body is application/json"),
    ("dataschema", "heartbeats sends none"),
    ("subject", "heartbeats sends none"),
    ("time", "heartbeats sets it when each event is made"),
    ("data", "the body is set with --label and --msg"),
];

/// An extension attribute as (name, value).
pub type Extension = (String, String);

/// `K_CE_OVERRIDES`, Knative's `CloudEventOverrides`: `{"extensions":{"name":"value",...}}`.
/// Empty, `{}` and `null` give none. Names are lower-cased and must be `[a-z0-9]+` and unique;
/// values are strings (numbers and booleans are taken as their literal JSON text). Returns the
/// extensions and a warning for each key named like a core attribute (or `data`), which is
/// ignored: Knative's webhook lets such keys through, and Go then fails every send while exiting
/// 0. A name the webhook would refuse can only come from a hand-set variable: an error.
pub fn parse(json: &str) -> Result<(Vec<Extension>, Vec<String>), Error> {
    #[derive(serde::Deserialize)]
    struct Overrides {
        /// In document order, repeats kept so that they are caught.
        extensions: Option<Members>,
    }
    if json.trim().is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let parsed: Option<Overrides> = serde_json::from_str(json).map_err(|e| {
        Error::invalid(
            K_CE_OVERRIDES,
            json,
            format!("expected {{\"extensions\":{{\"name\":\"value\"}}}} ({e})"),
        )
    })?;
    let raw = parsed
        .and_then(|o| o.extensions)
        .map_or_else(Vec::new, |e| e.0);
    let mut out: Vec<Extension> = Vec::with_capacity(raw.len());
    let mut ignored = Vec::new();
    for (given, value) in raw {
        let Some(name) = name(&given, &mut ignored)? else {
            continue;
        };
        if out.iter().any(|(n, _)| *n == name) {
            return Err(bad_name(
                &given,
                "given twice (names are compared lower-cased)",
            ));
        }
        let value = value_text(&name, value.get(), json)?;
        out.push((name, value));
    }
    let total: usize = out.iter().map(|(_, v)| v.len()).sum();
    if total > MAX_OVERRIDES_TOTAL {
        return Err(Error::invalid(
            K_CE_OVERRIDES,
            json,
            format!("extension values total more than {MAX_OVERRIDES_TOTAL} bytes"),
        ));
    }
    Ok((out, ignored))
}

fn bad_name(given: &str, expected: &str) -> Error {
    Error::invalid(format!("{K_CE_OVERRIDES} extension name"), given, expected)
}

/// The extension name for key `given`, lower-cased; `None` (with a warning in `ignored`) for a
/// core attribute's name, which Knative's webhook lets through (it checks only that names are
/// alphanumeric) and sdk-go then fails every send on.
fn name(given: &str, ignored: &mut Vec<String>) -> Result<Option<String>, Error> {
    let name = given.to_ascii_lowercase();
    let alphanumeric = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if name.is_empty() || !name.bytes().all(alphanumeric) {
        return Err(bad_name(
            given,
            "expected letters and digits only ([a-z0-9]+)",
        ));
    }
    if name.len() > MAX_NAME {
        let expected = format!("longer than {MAX_NAME} characters (CloudEvents advises 20)");
        return Err(bad_name(given, &expected));
    }
    if let Some((_, instead)) = RESERVED_NAMES.iter().find(|(n, _)| *n == name) {
        ignored.push(format!(
            "{K_CE_OVERRIDES} extension {given:?} ignored: a core CloudEvents attribute \
             cannot be an extension; {instead}"
        ));
        return Ok(None);
    }
    Ok(Some(name))
}

/// Extension `name`'s value from its JSON `text`: a string, or a number or boolean taken as its
/// literal text (`12.50` stays `12.50`); at most [`MAX_HEADER_VALUE`] bytes.
fn value_text(name: &str, text: &str, json: &str) -> Result<String, Error> {
    let value = match text.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(text)
            .map_err(|e| Error::invalid(K_CE_OVERRIDES, json, format!("bad string ({e})")))?,
        Some(b'-' | b'0'..=b'9') => text.to_owned(),
        _ if text == "true" || text == "false" => text.to_owned(),
        _ => {
            return Err(Error::invalid(
                format!("{K_CE_OVERRIDES} extension {name:?}"),
                text,
                "expected a string",
            ));
        }
    };
    if value.len() > MAX_HEADER_VALUE {
        return Err(Error::invalid(
            format!("{K_CE_OVERRIDES} extension {name:?}"),
            &value,
            format!("longer than {MAX_HEADER_VALUE} bytes"),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_accept_empty_null_numbers_and_booleans() {
        for empty in [
            "",
            "  ",
            "{}",
            "null",
            r#"{"extensions":null}"#,
            r#"{"extensions":{}}"#,
        ] {
            assert_eq!(parse(empty), Ok((vec![], vec![])), "{empty}");
        }
        let got = parse(
            r#"{"other":1,"extensions":{"n":7,"b":true,"f":1.5,"p":12.50,"big":12345678901234567890123,"e":-1E+3,"s":"a\"b\u00e9"}}"#,
        )
        .unwrap().0;
        // Numbers keep their literal text: the README promises "as their JSON text".
        let want = [
            ("n", "7"),
            ("b", "true"),
            ("f", "1.5"),
            ("p", "12.50"),
            ("big", "12345678901234567890123"),
            ("e", "-1E+3"),
            ("s", "a\"b\u{e9}"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()));
        assert_eq!(got, want);
    }

    #[test]
    fn overrides_named_like_core_attributes_are_ignored_with_a_way_to_set_them() {
        let (kept, ignored) =
            parse(r#"{"extensions":{"Type":"x","cluster":"edge","data":"d","ID":"1"}}"#).unwrap();
        assert_eq!(kept, [("cluster".to_owned(), "edge".to_owned())]);
        assert_eq!(
            ignored,
            [
                "K_CE_OVERRIDES extension \"Type\" ignored: a core CloudEvents attribute cannot \
                 be an extension; set it with --eventType",
                "K_CE_OVERRIDES extension \"data\" ignored: a core CloudEvents attribute cannot \
                 be an extension; the body is set with --label and --msg",
                "K_CE_OVERRIDES extension \"ID\" ignored: a core CloudEvents attribute cannot \
                 be an extension; heartbeats sets a fresh one for every event",
            ]
        );
    }

    #[test]
    fn overrides_reject_bad_names_values_and_json() {
        let cases = [
            (
                r#"{"extensions":{"foo-bar":"x"}}"#,
                "extension name \"foo-bar\"",
            ),
            (r#"{"extensions":{"":"x"}}"#, "extension name \"\""),
            (r#"{"extensions":{"a":"1","A":"2"}}"#, "given twice"),
            (r#"{"extensions":{"a":"1","a":"2"}}"#, "given twice"),
            (r#"{"extensions":{"a":null}}"#, "extension \"a\" \"null\""),
            (r#"{"extensions":{"a":["x"]}}"#, "expected a string"),
            (r#"{"extensions":["a"]}"#, "K_CE_OVERRIDES"),
            ("{not json", "K_CE_OVERRIDES"),
            (r#"{"extensions":{}} trailing"#, "K_CE_OVERRIDES"),
        ];
        for (json, needle) in cases {
            let line = parse(json).unwrap_err().to_string();
            assert!(
                line.contains(needle) && !line.contains('\n'),
                "{json}: {line}"
            );
        }
    }

    #[test]
    fn deeply_nested_overrides_are_an_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let json = format!(r#"{{"extensions":{{"a":{deep}}}}}"#);
        assert!(parse(&json).is_err());
    }
}

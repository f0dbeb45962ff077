//! What a beat carries: the heartbeat JSON, or `--data`/`--data-base64` as PingSource sends its
//! `data`/`dataBase64`, with `--content-type`; checked as PingSource's webhook checks them.

use base64::Engine;
use base64::alphabet::STANDARD;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};

use super::flags::{self, named};
use crate::error::Error;
use crate::event::{CONTENT_TYPE, MAX_HEADER_VALUE};

/// The largest body `--data` or `--data-base64` may give.
pub const MAX_BODY: usize = 256 * 1024;

/// Go's `base64.StdEncoding`: padding required, trailing bits not checked.
const GO_STD: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// A beat's body and its `Content-Type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The fixed body; `None` is the heartbeat JSON.
    pub data: Option<Vec<u8>>,
    /// `Content-Type`; `None` sends none.
    pub content_type: Option<String>,
}

/// `--data`, `--data-base64` and `--content-type`. Without data the body is the heartbeat JSON,
/// `application/json` unless `--content-type` says otherwise; with data the type is what
/// `--content-type` says, none if it says nothing. Empty data is no body and no type, as
/// PingSource sends an event without data.
pub(super) fn payload(
    data: Option<String>,
    data_base64: Option<String>,
    content_type: Option<String>,
) -> Result<Payload, Error> {
    // As PingSource: an empty one is not given, unless both are (an event without data).
    let data = match (data, data_base64) {
        (Some(text), Some(b64)) if !text.is_empty() && !b64.is_empty() => {
            let both = "--data was given too: use one or the other";
            return Err(Error::invalid(named(flags::DATA_BASE64), &b64, both));
        }
        (_, Some(b64)) if !b64.is_empty() => Some((named(flags::DATA_BASE64), decode(&b64)?)),
        (Some(text), _) if !text.is_empty() => Some((named(flags::DATA), text.into_bytes())),
        (Some(_), _) => Some((named(flags::DATA), Vec::new())),
        (None, Some(_)) => Some((named(flags::DATA_BASE64), Vec::new())),
        (None, None) => None,
    };
    let content_type = match content_type {
        Some(given) => Some(checked_type(given)?).filter(|t| !t.is_empty()),
        None if data.is_none() => Some(CONTENT_TYPE.to_owned()),
        None => None,
    };
    let Some((name, bytes)) = data else {
        return Ok(Payload {
            data: None,
            content_type,
        });
    };
    if bytes.len() > MAX_BODY {
        let reason = format!("{} bytes, more than the {MAX_BODY} allowed", bytes.len());
        return Err(Error::unusable(name, reason));
    }
    if let Some(problem) = is_json(content_type.as_deref())
        .then(|| super::json::object_problem(&bytes))
        .flatten()
    {
        // PingSource's webhook: json.Unmarshal into a map[string]interface{}.
        let reason =
            format!("with Content-Type application/json it must be a JSON object: {problem}");
        return Err(Error::unusable(name, reason));
    }
    Ok(Payload {
        content_type: content_type.filter(|_| !bytes.is_empty()),
        data: Some(bytes),
    })
}

/// Standard base64 as Go decodes it, line breaks skipped.
fn decode(b64: &str) -> Result<Vec<u8>, Error> {
    let joined: String = b64.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
    GO_STD.decode(joined).map_err(|_| {
        let expected = "expected standard base64 (A-Z, a-z, 0-9, +, /) with = padding";
        Error::invalid(named(flags::DATA_BASE64), b64, expected)
    })
}

/// A value a header can carry as it is, and not a type a binary-mode receiver would misread.
fn checked_type(given: String) -> Result<String, Error> {
    let name = named(flags::CONTENT_TYPE);
    let printable = given
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
    if !printable || given.len() > MAX_HEADER_VALUE || given.trim() != given {
        let expected =
            "expected a media type like text/plain, printable ASCII without spaces at the ends";
        return Err(Error::invalid(name, &given, expected));
    }
    if media_type(&given).starts_with("application/cloudevents") {
        let why = "in binary mode a receiver reads such a body as a whole structured event \
                   and rejects it; send the data's own type, such as application/json";
        return Err(Error::invalid(name, &given, why));
    }
    Ok(given)
}

/// The media type without parameters, lower case.
fn media_type(content_type: &str) -> String {
    let essence = content_type.split(';').next().unwrap_or_default();
    essence.trim().to_ascii_lowercase()
}

/// `application/json`, any case, with or without parameters (PingSource checks only the exact
/// string; a body labelled JSON that is not is malformed either way).
fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|t| media_type(t) == CONTENT_TYPE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(data: Option<&str>, b64: Option<&str>, ct: Option<&str>) -> Result<Payload, Error> {
        let own = |v: Option<&str>| v.map(str::to_owned);
        payload(own(data), own(b64), own(ct))
    }

    fn ok(
        data: Option<&str>,
        b64: Option<&str>,
        ct: Option<&str>,
    ) -> (Option<Vec<u8>>, Option<String>) {
        let p = given(data, b64, ct).unwrap();
        (p.data, p.content_type)
    }

    #[test]
    fn bodies_and_types_are_as_pingsource_sends_them() {
        let json = Some(CONTENT_TYPE.to_owned());
        assert_eq!(ok(None, None, None), (None, json.clone()));
        assert_eq!(ok(None, None, Some("")), (None, None));
        assert_eq!(ok(Some(""), None, Some("text/plain")), (Some(vec![]), None));
        assert_eq!(
            ok(Some("hello"), None, None),
            (Some(b"hello".to_vec()), None)
        );
        assert_eq!(
            ok(Some(r#"{"message":"hi"}"#), None, Some("application/json")),
            (Some(br#"{"message":"hi"}"#.to_vec()), json)
        );
        assert_eq!(ok(None, Some("AAEC/w=="), None).0, Some(vec![0, 1, 2, 255]));
        // Go's decoder skips line breaks and does not check the unused bits.
        assert_eq!(
            ok(None, Some("YmluAG\r\nFyeQ=="), None).0,
            Some(b"bin\0ary".to_vec())
        );
        assert_eq!(ok(None, Some("AAEC/x=="), None).0, Some(vec![0, 1, 2, 255]));
        // An empty one is not given, as PingSource's `data != ""` says; both empty is no data.
        assert_eq!(ok(Some(""), Some("eA=="), None).0, Some(b"x".to_vec()));
        assert_eq!(ok(Some("x"), Some(""), None).0, Some(b"x".to_vec()));
        assert_eq!(
            ok(Some(""), Some(""), Some("text/plain")),
            (Some(vec![]), None)
        );
        assert_eq!(ok(None, Some(""), None), (Some(vec![]), None));
    }

    #[test]
    fn refusals_name_the_flag() {
        let cases = [
            (Some("a"), Some("YQ=="), None, "--data-base64"),
            (None, Some("not base64"), None, "--data-base64"),
            (None, Some("AAEC/w"), None, "--data-base64"),
            (Some("[1]"), None, Some("application/json"), "--data"),
            (
                Some("{"),
                None,
                Some("Application/JSON; charset=utf-8"),
                "--data",
            ),
            (
                None,
                Some("WzFd"),
                Some("application/json"),
                "--data-base64",
            ),
            (
                Some("{}"),
                None,
                Some("application/cloudevents+json"),
                "--content-type",
            ),
            (
                Some("{}"),
                None,
                Some("Application/CloudEvents-Batch+JSON"),
                "--content-type",
            ),
            (
                Some("x"),
                None,
                Some("text/plain\r\nX-Injected: 1"),
                "--content-type",
            ),
            (Some("x"), None, Some(" text/plain"), "--content-type"),
            (Some("x"), None, Some("text/plaín"), "--content-type"),
        ];
        for (data, b64, ct, flag) in cases {
            let error = given(data, b64, ct).unwrap_err();
            assert_eq!(error.exit_code(), 1);
            assert!(
                error.to_string().starts_with(&format!("invalid {flag}")),
                "{error}"
            );
        }
        let big = "x".repeat(MAX_BODY + 1);
        let error = given(Some(&big), None, None).unwrap_err().to_string();
        assert!(
            error.contains("262145 bytes") && error.len() < 200,
            "{error}"
        );
    }
}

//! CloudEvents as sdk-go's HTTP receiver takes them: binary mode (`ce-*` headers, the body as
//! data), structured mode (`application/cloudevents+json`) and batch mode
//! (`application/cloudevents-batch+json`, each event on its own). The attributes are checked as
//! CloudEvents 1.0 and sdk-go's `Validate` check them; a refusal is one line saying what is
//! wrong. As sdk-go, header values are taken as sent (not percent-decoded), and the first of a
//! repeated header counts.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::value::RawValue;

use crate::config::json::Members;
use crate::time::{parse_rfc3339, push_rfc3339_nano};

/// The structured mode's media type.
pub const STRUCTURED: &str = "application/cloudevents+json";
/// The batch mode's media type.
pub const BATCH: &str = "application/cloudevents-batch+json";
/// Events in one batch at most.
pub const MAX_BATCH: usize = 10_000;

/// One event as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub specversion: String,
    pub id: String,
    pub source: String,
    pub kind: String,
    pub subject: Option<String>,
    /// RFC 3339 in UTC, as sdk-go prints it.
    pub time: Option<String>,
    pub dataschema: Option<String>,
    pub datacontenttype: Option<String>,
    /// By name.
    pub extensions: Vec<(String, Extension)>,
    pub data: Option<Data>,
}

/// An extension's value: text, or a JSON number or boolean (structured mode) as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extension {
    Text(String),
    Literal(String),
}

impl Extension {
    pub fn as_str(&self) -> &str {
        match self {
            Extension::Text(text) | Extension::Literal(text) => text,
        }
    }
}

/// The data, and whether it came base64-encoded (`data_base64`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data {
    pub bytes: Vec<u8>,
    pub base64: bool,
}

impl Received {
    /// The media type of the data, lower case, without parameters.
    pub fn media_type(&self) -> String {
        media_type(self.datacontenttype.as_deref().unwrap_or_default())
    }

    /// The heartbeat's `id` in JSON data (`{"id": 7, ...}`), which numbers a sender's events.
    pub fn beat(&self) -> Option<u64> {
        #[derive(serde::Deserialize)]
        struct Beat {
            id: u64,
        }
        let data = self.data.as_ref()?;
        let media = self.media_type();
        if !(media.is_empty() || is_json(&media)) || data.bytes.first() != Some(&b'{') {
            return None;
        }
        serde_json::from_slice::<Beat>(&data.bytes)
            .ok()
            .map(|b| b.id)
    }
}

/// The media type of `content_type`: lower case, without parameters.
pub fn media_type(content_type: &str) -> String {
    let essence = content_type.split(';').next().unwrap_or_default();
    essence.trim().to_ascii_lowercase()
}

/// `application/json` or a `+json` type.
pub fn is_json(media_type: &str) -> bool {
    media_type == "application/json" || media_type.ends_with("+json")
}

/// A binary-mode event: `ce` holds the `ce-*` headers (names lower case, without the prefix) in
/// the order received; `content_type` is the body's.
pub fn binary(
    ce: &[(String, String)],
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Result<Received, String> {
    let mut event = Builder::default();
    for (name, value) in ce {
        // As sdk-go: the first of a repeated header.
        if event.has(name) {
            continue;
        }
        event.set(name, Value::Text(value.clone()))?;
    }
    if event.specversion.is_none() {
        return Err(
            "not a CloudEvent: no ce-specversion header, and not structured or batch mode".into(),
        );
    }
    if let Some(content_type) = content_type {
        event.datacontenttype = Some(content_type.to_owned());
    }
    event.data = Some(Data {
        bytes: body,
        base64: false,
    })
    .filter(|d| !d.bytes.is_empty());
    event.finish()
}

/// A structured-mode event: one JSON object.
pub fn structured(body: &[u8]) -> Result<Received, String> {
    let text =
        std::str::from_utf8(body).map_err(|_| "the structured event is not UTF-8".to_owned())?;
    let members: Members = serde_json::from_str(text)
        .map_err(|e| format!("the structured event is not a JSON object: {e}"))?;
    from_members(members)
}

/// A batch: a JSON array of structured events, each judged on its own.
pub fn batch(body: &[u8]) -> Result<Vec<Result<Received, String>>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the batch is not UTF-8".to_owned())?;
    let items: Vec<Box<RawValue>> =
        serde_json::from_str(text).map_err(|e| format!("the batch is not a JSON array: {e}"))?;
    if items.len() > MAX_BATCH {
        return Err(format!(
            "{} events in one batch, more than {MAX_BATCH}",
            items.len()
        ));
    }
    Ok(items
        .into_iter()
        .map(|item| {
            let members: Members = serde_json::from_str(item.get())
                .map_err(|_| "a batch item is not a JSON object".to_owned())?;
            from_members(members)
        })
        .collect())
}

fn from_members(members: Members) -> Result<Received, String> {
    let mut event = Builder::default();
    let mut data: Option<Box<RawValue>> = None;
    let mut data_base64: Option<String> = None;
    // As Go's encoding/json: the last of a repeated member counts.
    for (name, raw) in members.0 {
        let text = raw.get();
        match name.as_str() {
            "data" => data = Some(raw),
            "data_base64" => {
                data_base64 = Some(
                    serde_json::from_str::<Option<String>>(text)
                        .map_err(|_| "data_base64 is not a JSON string".to_owned())?
                        .unwrap_or_default(),
                );
            }
            _ => {
                let value = match text.as_bytes().first() {
                    Some(b'"') => Value::Text(
                        serde_json::from_str(text)
                            .map_err(|_| format!("{name}: not a JSON string"))?,
                    ),
                    Some(b'n') => continue,
                    Some(b't' | b'f' | b'-' | b'0'..=b'9') => Value::Literal(text.to_owned()),
                    _ => {
                        return Err(format!(
                            "{}: an object or array is no attribute value",
                            shown(&name)
                        ));
                    }
                };
                event.forget(&name);
                event.set(&name, value)?;
            }
        }
    }
    if event.specversion.is_none() {
        return Err("not a CloudEvent: no specversion".into());
    }
    event.data = match (data, data_base64) {
        (Some(_), Some(_)) => return Err("both data and data_base64".into()),
        (None, Some(encoded)) => Some(Data {
            bytes: STANDARD
                .decode(encoded.as_bytes())
                .map_err(|_| "data_base64 is not standard base64".to_owned())?,
            base64: true,
        }),
        (Some(raw), None) if raw.get() == "null" => None,
        (Some(raw), None) => {
            let media = media_type(event.datacontenttype.as_deref().unwrap_or_default());
            let text = raw.get();
            // As sdk-go: a JSON string is the data itself unless the data is JSON.
            let bytes = match text.as_bytes().first() {
                Some(b'"') if !media.is_empty() && !is_json(&media) => {
                    serde_json::from_str::<String>(text)
                        .unwrap_or_default()
                        .into_bytes()
                }
                _ => text.as_bytes().to_vec(),
            };
            Some(Data {
                bytes,
                base64: false,
            })
        }
        (None, None) => None,
    };
    event.finish()
}

/// An attribute's value before it is checked.
enum Value {
    Text(String),
    /// A JSON number or boolean.
    Literal(String),
}

#[derive(Default)]
struct Builder {
    specversion: Option<String>,
    id: Option<String>,
    source: Option<String>,
    kind: Option<String>,
    subject: Option<String>,
    time: Option<String>,
    dataschema: Option<String>,
    datacontenttype: Option<String>,
    extensions: Vec<(String, Extension)>,
    data: Option<Data>,
}

impl Builder {
    fn slot(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "specversion" => &mut self.specversion,
            "id" => &mut self.id,
            "source" => &mut self.source,
            "type" => &mut self.kind,
            "subject" => &mut self.subject,
            "time" => &mut self.time,
            "dataschema" => &mut self.dataschema,
            "datacontenttype" => &mut self.datacontenttype,
            _ => return None,
        })
    }

    fn has(&mut self, name: &str) -> bool {
        match self.slot(name) {
            Some(slot) => slot.is_some(),
            None => self.extensions.iter().any(|(n, _)| n == name),
        }
    }

    fn forget(&mut self, name: &str) {
        match self.slot(name) {
            Some(slot) => *slot = None,
            None => self.extensions.retain(|(n, _)| n != name),
        }
    }

    fn set(&mut self, name: &str, value: Value) -> Result<(), String> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!(
                "{}: attribute names are ASCII letters and digits",
                shown(name)
            ));
        }
        match (self.slot(name), value) {
            (Some(slot), Value::Text(text)) => *slot = Some(text),
            (Some(_), Value::Literal(_)) => return Err(format!("{name}: not a string")),
            (None, Value::Text(text)) => self
                .extensions
                .push((name.to_owned(), Extension::Text(text))),
            (None, Value::Literal(text)) => {
                self.extensions
                    .push((name.to_owned(), Extension::Literal(text)));
            }
        }
        Ok(())
    }

    /// The checks of CloudEvents 1.0 and sdk-go's `Validate`.
    fn finish(self) -> Result<Received, String> {
        let specversion = self.specversion.unwrap_or_default();
        if specversion != "1.0" {
            return Err(format!(
                "specversion {}: only 1.0 is taken",
                shown(&specversion)
            ));
        }
        let required = |name: &str, value: Option<String>| match value {
            Some(v) if !v.trim().is_empty() => Ok(v),
            _ => Err(format!("{name} is required, and must not be empty")),
        };
        let id = required("id", self.id)?;
        let source = required("source", self.source)?;
        let kind = required("type", self.kind)?;
        if !is_uri_reference(&source) {
            return Err(format!("source {} is not a URI-reference", shown(&source)));
        }
        if self.subject.as_ref().is_some_and(|s| s.trim().is_empty()) {
            return Err("subject, when given, must not be empty".into());
        }
        let time = match self.time {
            Some(text) => {
                let (secs, nanos) = parse_rfc3339(&text)
                    .ok_or_else(|| format!("time {} is not an RFC 3339 timestamp", shown(&text)))?;
                let mut normal = String::new();
                let at = std::time::Duration::new(secs.unsigned_abs(), 0);
                let instant = if secs >= 0 {
                    std::time::UNIX_EPOCH.checked_add(at)
                } else {
                    std::time::UNIX_EPOCH.checked_sub(at)
                };
                let instant = instant
                    .and_then(|i| i.checked_add(std::time::Duration::from_nanos(nanos.into())))
                    .ok_or_else(|| format!("time {} is out of range", shown(&text)))?;
                push_rfc3339_nano(&mut normal, instant);
                Some(normal)
            }
            None => None,
        };
        if let Some(schema) = &self.dataschema {
            if !is_absolute_uri(schema) {
                return Err(format!(
                    "dataschema {} is not an absolute URI",
                    shown(schema)
                ));
            }
        }
        if let Some(content_type) = &self.datacontenttype {
            if !is_media_type(content_type) {
                return Err(format!(
                    "datacontenttype {} is not a media type",
                    shown(content_type)
                ));
            }
        }
        let mut extensions = self.extensions;
        extensions.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Received {
            specversion,
            id,
            source,
            kind,
            subject: self.subject,
            time,
            dataschema: self.dataschema,
            datacontenttype: self.datacontenttype,
            extensions,
            data: self.data,
        })
    }
}

/// A value for a refusal: quoted, control characters escaped, cut after 60 characters.
pub fn shown(text: &str) -> String {
    crate::log::Bounded(text, 60).to_string()
}

/// What Go's `url.Parse` takes: no control character, every `%` starting an escape.
fn is_uri_reference(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.iter().any(|&b| b < 0x20 || b == 0x7f || b == b' ')
        && bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'%')
            .all(|(at, _)| {
                bytes
                    .get(at + 1..at + 3)
                    .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
            })
}

/// A URI with a scheme (RFC 3986 §4.3).
fn is_absolute_uri(text: &str) -> bool {
    let Some((scheme, _)) = text.split_once(':') else {
        return false;
    };
    scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        && is_uri_reference(text)
}

/// `type/subtype` with optional `; name=value` parameters, as Go's `mime.ParseMediaType`.
fn is_media_type(text: &str) -> bool {
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    let mut parts = text.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    token(kind)
        && token(subtype)
        && parts.all(|param| {
            let param = param.trim();
            param.is_empty()
                || param.split_once('=').is_some_and(|(name, value)| {
                    token(name.trim())
                        && (token(value.trim())
                            || value.trim().len() >= 2
                                && value.trim().starts_with('"')
                                && value.trim().ends_with('"'))
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    const BASE: [(&str, &str); 4] = [
        ("specversion", "1.0"),
        ("id", "1"),
        ("source", "https://example.com/s"),
        ("type", "t"),
    ];

    #[test]
    fn a_binary_event_takes_its_headers_and_body() {
        let mut ce = headers(&BASE);
        ce.extend(headers(&[
            ("the", "42"),
            ("id", "ignored: the first counts"),
            ("time", "2026-01-02T03:04:05.5+01:00"),
        ]));
        let event = binary(
            &ce,
            Some("application/json"),
            br#"{"id":7,"label":""}"#.to_vec(),
        )
        .unwrap();
        assert_eq!(event.id, "1");
        assert_eq!(event.time.as_deref(), Some("2026-01-02T02:04:05.5Z"));
        assert_eq!(
            event.extensions,
            vec![("the".into(), Extension::Text("42".into()))]
        );
        assert_eq!(event.beat(), Some(7));
        assert_eq!(
            binary(&ce, Some("text/plain"), b"{\"id\":7}".to_vec())
                .unwrap()
                .beat(),
            None
        );
    }

    #[test]
    fn structured_and_batch_events_read_as_sdk_go_reads_them() {
        let event = structured(
            br#"{"specversion":"1.0","id":"a","source":"/s","type":"t","n":5,"ok":true,"datacontenttype":"text/plain","data":"hi"}"#,
        )
        .unwrap();
        assert_eq!(event.data.unwrap().bytes, b"hi");
        assert_eq!(
            event.extensions[0],
            ("n".into(), Extension::Literal("5".into()))
        );
        let event = structured(
            br#"{"specversion":"1.0","id":"a","source":"/s","type":"t","data_base64":"AAE="}"#,
        )
        .unwrap();
        assert_eq!(
            event.data,
            Some(Data {
                bytes: vec![0, 1],
                base64: true
            })
        );
        let events =
            batch(br#"[{"specversion":"1.0","id":"a","source":"/s","type":"t"},{"id":"b"}]"#)
                .unwrap();
        assert!(events[0].is_ok() && events[1].is_err());
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let cases: [(&[(&str, &str)], &str); 7] = [
            (
                &[
                    ("specversion", "0.3"),
                    ("id", "1"),
                    ("source", "/s"),
                    ("type", "t"),
                ],
                "only 1.0",
            ),
            (
                &[
                    ("specversion", "1.0"),
                    ("id", " "),
                    ("source", "/s"),
                    ("type", "t"),
                ],
                "id is required",
            ),
            (
                &[("specversion", "1.0"), ("id", "1"), ("type", "t")],
                "source is required",
            ),
            (
                &[
                    ("specversion", "1.0"),
                    ("id", "1"),
                    ("source", "a\u{1}"),
                    ("type", "t"),
                ],
                "URI-reference",
            ),
            (
                &[
                    ("specversion", "1.0"),
                    ("id", "1"),
                    ("source", "/s"),
                    ("type", "t"),
                    ("time", "yesterday"),
                ],
                "RFC 3339",
            ),
            (
                &[
                    ("specversion", "1.0"),
                    ("id", "1"),
                    ("source", "/s"),
                    ("type", "t"),
                    ("bad-name", "x"),
                ],
                "ASCII letters",
            ),
            (&[("id", "1")], "no ce-specversion"),
        ];
        for (ce, why) in cases {
            let error = binary(&headers(ce), None, Vec::new()).unwrap_err();
            assert!(error.contains(why), "{error}");
        }
        assert!(structured(b"[]").unwrap_err().contains("not a JSON object"));
        assert!(
            structured(br#"{"specversion":"1.0","id":"a","source":"/s","type":"t","x":{}}"#)
                .is_err()
        );
        assert!(!is_media_type("json"));
        assert!(is_media_type("application/json; charset=utf-8"));
    }
}

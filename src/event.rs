//! One heartbeat as a CloudEvent in the HTTP binding's binary content mode: the `ce-*` headers
//! (with their encoding), the JSON body and the random id, all built by hand.
//! The parts that never change between beats (source, type, extensions with their overrides) are
//! validated and encoded once at start-up in [`Template`].

use std::fmt::{self, Write as _};
use std::ops::Deref;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use crate::time::rfc3339_nano;

/// CloudEvents spec version sent in `ce-specversion`.
pub const SPEC_VERSION: &str = "1.0";
/// The heartbeat body's media type; binary mode carries it in `Content-Type`, not in
/// `ce-datacontenttype`.
pub const CONTENT_TYPE: &str = "application/json";

/// The extensions the Go image always sets, in its order; overrides may replace them.
const DEFAULT_EXTENSIONS: [(&str, &str); 3] = [("the", "42"), ("heart", "yes"), ("beats", "true")];

/// The longest header value taken from configuration, before encoding (which can triple it).
/// Together with the token limit this bounds the longest head line (which the connection's
/// output buffer must hold whole); sinks commonly refuse header lines over 8–16 KiB anyway.
pub const MAX_HEADER_VALUE: usize = 4 * 1024;

/// How header values are written: `--ce-header-encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderEncoding {
    /// As sdk-go does (raw), except what HTTP/1.1 cannot carry or would strip.
    Compat,
    /// HTTP binding §3.1.3.2 exactly.
    Percent,
}

/// Encodes one header value. Both modes return only bytes a field value may hold
/// (visible ASCII, space, tab inside, or UTF-8), and never CR or LF.
///
/// HTTP binding §3.1.3.2: space, `"`, `%` and anything outside U+0021–U+007E MUST be
/// percent-encoded (UTF-8, upper-case hex); `Percent` does exactly that. sdk-go (and so Knative's
/// brokers and e2e tests) neither encodes nor decodes, so `Compat` sends the value raw and
/// encodes only control characters other than tab, DEL, and leading or trailing space/tab
/// (which HTTP would strip).
pub fn encode_header_value(value: &str, encoding: HeaderEncoding) -> String {
    let is_ows = |b: u8| b == b' ' || b == b'\t';
    let bytes = value.as_bytes();
    let lead = bytes.iter().take_while(|&&b| is_ows(b)).count();
    let trail = bytes.len() - bytes.iter().rev().take_while(|&&b| is_ows(b)).count();
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.char_indices() {
        let needs = match encoding {
            HeaderEncoding::Percent => {
                matches!(c, ' ' | '"' | '%') || !('\u{21}'..='\u{7e}').contains(&c)
            }
            HeaderEncoding::Compat => {
                (c < ' ' && c != '\t') || c == '\u{7f}' || i < lead || i >= trail.max(lead)
            }
        };
        if needs {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What every event says: the configuration's `event` section, checked by `config` (flags and
/// `K_CE_OVERRIDES`), read here only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSettings {
    /// `ce-source`: `--eventSource`; default the Go image's, from the pod's namespace and name.
    pub source: String,
    /// `ce-type`: `--eventType`, trimmed; default `dev.knative.eventing.samples.heartbeat`.
    pub event_type: String,
    /// The body: the heartbeat JSON (`--label`, `--msg`), or `--data`/`--data-base64`.
    pub content: Content,
    /// `Content-Type`: `--content-type`; `application/json` for the heartbeat, none for data
    /// without one.
    pub content_type: Option<String>,
    /// Header value encoding: `--ce-header-encoding`, default compat.
    pub encoding: HeaderEncoding,
    /// Extensions from env `K_CE_OVERRIDES`, validated.
    pub overrides: Vec<(String, String)>,
    /// `--id`: how `ce-id` is made.
    pub ids: IdKind,
    /// `--sequence`: every event carries the CloudEvents sequence extension.
    pub sequence: bool,
}

/// How an event's `ce-id` is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// A random UUID v4, new for every event (and the same on its retries).
    Random,
    /// A UUID v5 of the source and the fire's scheduled time: the same fire gives the same id in
    /// every replica and after a restart, so a consumer can drop the duplicate.
    Schedule,
}

/// The extension that carries a fire's scheduled time (RFC 3339), beside `time` (when sent).
pub const SCHEDULED_TIME: &str = "scheduledtime";
/// The CloudEvents sequence extension.
pub const SEQUENCE: &str = "sequence";

impl fmt::Display for EventSettings {
    /// The start-up line's part: never the data itself (it may be anything), only its size.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let content_type = self.content_type.as_deref().unwrap_or("none");
        let names: Vec<&str> = self.overrides.iter().map(|(n, _)| n.as_str()).collect();
        write!(f, "source={:?} type={:?} ", self.source, self.event_type)?;
        match &self.content {
            Content::Heartbeat { .. } => write!(f, "body=heartbeat ({content_type})")?,
            Content::Fixed(data) => write!(f, "body={} bytes ({content_type})", data.len())?,
        }
        let encoding = match self.encoding {
            HeaderEncoding::Compat => "compat",
            HeaderEncoding::Percent => "percent",
        };
        write!(f, " encoding={encoding} overrides={names:?}")?;
        if self.ids == IdKind::Schedule {
            f.write_str(" id=schedule")?;
        }
        if self.sequence {
            f.write_str(" sequence")?;
        }
        Ok(())
    }
}

/// Everything about an event that is the same on every beat, validated and encoded once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// `ce-source`, `ce-type` and the extensions, as encoded `(header name, value)` pairs in the
    /// order they are sent; `ce-id` and `ce-time` go between `ce-specversion` and these.
    headers: Vec<(String, String)>,
    content: Content,
    /// `Content-Type`, when there is one.
    content_type: Option<String>,
    /// The source as given: with [`IdKind::Schedule`], ids are made from it.
    source: String,
    ids: IdKind,
    sequence: bool,
}

/// What every beat's body is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// `{"id":<sequence>,"label":...,"msg":...}`, `msg` omitted when empty.
    Heartbeat { label: String, msg: String },
    /// The same bytes every time (`--data`, `--data-base64`).
    Fixed(Arc<[u8]>),
}

/// A beat's body: made for it, or shared by all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Heartbeat(Vec<u8>),
    Fixed(Arc<[u8]>),
}

impl Deref for Body {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Body::Heartbeat(bytes) => bytes,
            Body::Fixed(bytes) => bytes,
        }
    }
}

/// One event: the per-beat attributes and its serialized body. A retry resends it unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `ce-id`: a random UUID v4, or with `--id=schedule` a UUID v5 of the fire.
    pub id: String,
    /// `ce-time`: when the event was made.
    pub time: String,
    /// `ce-scheduledtime`: the fire's scheduled time, when fires have times of their own.
    pub scheduled: Option<String>,
    /// `ce-sequence`: the fire's number, zero-padded (`--sequence`).
    pub sequence: Option<String>,
    /// The body, `{"id":<sequence>,"label":...}` or the fixed data.
    pub body: Body,
}

impl Event {
    /// The headers that change with every event, first in every request.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        let fire = [
            ("ce-scheduledtime", self.scheduled.as_deref()),
            ("ce-sequence", self.sequence.as_deref()),
        ];
        [
            ("ce-specversion", SPEC_VERSION),
            ("ce-id", self.id.as_str()),
            ("ce-time", self.time.as_str()),
        ]
        .into_iter()
        .chain(fire.into_iter().filter_map(|(n, v)| Some((n, v?))))
    }
}

/// What a fire gives its event besides the time it is sent: its scheduled time, when fires have
/// times of their own (a schedule, an aligned period), and its number (`--sequence`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fire {
    pub scheduled: Option<SystemTime>,
    pub sequence: Option<u64>,
}

/// RFC 9562's namespace for URLs: `--id=schedule`'s ids are version 5 UUIDs of it.
const NAMESPACE_URL: [u8; 16] = [
    0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8,
];

/// The name-based (version 5, SHA-1) UUID of `name` in `namespace` (RFC 9562 §5.5).
fn uuid_v5(namespace: &[u8; 16], name: &[u8]) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    context.update(namespace);
    context.update(name);
    let digest = context.finish();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest.as_ref()[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid_text(&b)
}

/// The id of the fire at `scheduled` from `source`, the same in every process: the UUID v5, in
/// the URL namespace, of the fire's time (RFC 3339, UTC), a space, and the source.
pub fn fire_id(source: &str, scheduled: SystemTime) -> String {
    let mut name = rfc3339_nano(scheduled);
    name.push(' ');
    name.push_str(source);
    uuid_v5(&NAMESPACE_URL, name.as_bytes())
}

#[derive(Serialize)]
struct Data<'a> {
    id: u64,
    label: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    msg: &'a str,
}

impl Template {
    /// The event every beat sends, as `settings` describe it (their overrides validated by
    /// [`crate::config::overrides::parse`], their content type a valid header value).
    pub fn new(settings: &EventSettings) -> Self {
        let encoding = settings.encoding;
        let mut extensions: Vec<(String, &str)> = DEFAULT_EXTENSIONS
            .iter()
            .map(|(name, value)| (name.to_string(), *value))
            .collect();
        for (name, value) in &settings.overrides {
            match extensions.iter_mut().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = value,
                None => extensions.push((name.clone(), value)),
            }
        }
        let mut headers = vec![
            (
                "ce-source".to_owned(),
                encode_header_value(&settings.source, encoding),
            ),
            (
                "ce-type".to_owned(),
                encode_header_value(&settings.event_type, encoding),
            ),
        ];
        headers.extend(
            extensions
                .into_iter()
                .map(|(name, value)| (format!("ce-{name}"), encode_header_value(value, encoding))),
        );
        Template {
            headers,
            content: settings.content.clone(),
            content_type: settings.content_type.clone(),
            source: settings.source.clone(),
            ids: settings.ids,
            sequence: settings.sequence,
        }
    }

    /// Event number `sequence` (from 1), made at `now`, with a fresh id.
    pub fn event(
        &self,
        sequence: u64,
        now: SystemTime,
        fire: Fire,
        ids: &mut Ids,
    ) -> Result<Event, getrandom::Error> {
        let body = match &self.content {
            Content::Heartbeat { label, msg } => {
                let data = Data {
                    id: sequence,
                    label,
                    msg,
                };
                // Serializing a struct of an integer and two strings cannot fail.
                Body::Heartbeat(serde_json::to_vec(&data).unwrap_or_default())
            }
            Content::Fixed(bytes) => Body::Fixed(bytes.clone()),
        };
        let id = match (self.ids, fire.scheduled) {
            (IdKind::Schedule, Some(scheduled)) => fire_id(&self.source, scheduled),
            _ => ids.fresh()?,
        };
        Ok(Event {
            id,
            time: rfc3339_nano(now),
            scheduled: fire.scheduled.map(rfc3339_nano),
            sequence: fire
                .sequence
                .filter(|_| self.sequence)
                .map(|n| format!("{n:020}")),
            body,
        })
    }

    /// Every header of `event` in the order sent, `Content-Type` last; each name appears once:
    /// [`Event::headers`], then [`Template::fixed_headers`].
    #[cfg(test)]
    pub fn headers<'a>(&'a self, event: &'a Event) -> impl Iterator<Item = (&'a str, &'a str)> {
        let own = event.headers().map(|(name, value)| (name as &str, value));
        own.chain(self.fixed_headers())
    }

    /// The headers that are the same on every beat, in the order sent after the event's own:
    /// `ce-source`, `ce-type`, the extensions, `Content-Type` (if any).
    pub fn fixed_headers(&self) -> impl Iterator<Item = (&str, &str)> {
        let content_type = self.content_type.as_deref();
        self.headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .chain(content_type.map(|t| ("content-type", t)))
    }
}

/// Event ids: random (version 4, variant 1) UUIDs in lower-case hex, RFC 9562 §5.4. The bytes
/// are the kernel's CSPRNG output (`getrandom`), the same as one call per id would give, fetched
/// 32 ids at a time so that a beat rarely pays for the system call.
#[derive(Debug)]
pub struct Ids {
    random: [u8; 512],
    /// Bytes of `random` already used; `random.len()` means none are left.
    used: usize,
}

impl Default for Ids {
    fn default() -> Self {
        Ids {
            random: [0; 512],
            used: 512,
        }
    }
}

impl Ids {
    /// `N` (at most 16) random bytes, from the buffer; each byte is used once, then zeroed.
    pub fn random<const N: usize>(&mut self) -> Result<[u8; N], getrandom::Error> {
        const { assert!(N <= 16) };
        if self.used + N > self.random.len() {
            getrandom::getrandom(&mut self.random)?;
            self.used = 0;
        }
        let mut out = [0u8; N];
        let taken = &mut self.random[self.used..self.used + N];
        out.copy_from_slice(taken);
        taken.fill(0);
        self.used += N;
        Ok(out)
    }

    /// A fresh id. Each byte of randomness is used once and then overwritten.
    pub fn fresh(&mut self) -> Result<String, getrandom::Error> {
        let mut b: [u8; 16] = self.random()?;
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Ok(uuid_text(&b))
    }
}

/// A UUID's 16 bytes as text: lower-case hex, in groups of 8, 4, 4, 4 and 12.
fn uuid_text(b: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (i, group) in [&b[..4], &b[4..6], &b[6..8], &b[8..10], &b[10..]]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            out.push('-');
        }
        push_hex(&mut out, group);
    }
    out
}

/// `bytes` in lower-case hex, appended to `out`: ids of events, traces and spans. Written into
/// an array and appended at once, not `write!` per byte: this runs for every event.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 32];
    for chunk in bytes.chunks(16) {
        for (pair, &byte) in text.chunks_exact_mut(2).zip(chunk) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0x0f)];
        }
        out.push_str(std::str::from_utf8(&text[..chunk.len() * 2]).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn uuid_is_version_4_lower_case_and_fresh() {
        let mut ids = Ids::default();
        let all: Vec<String> = (0..100).map(|_| ids.fresh().unwrap()).collect();
        let unique: std::collections::HashSet<&String> = all.iter().collect();
        assert_eq!(unique.len(), all.len(), "ids repeat across refills");
        let (a, b) = (&all[0], &all[1]);
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
        assert!(
            a.bytes()
                .all(|c| c == b'-' || c.is_ascii_digit() || c.is_ascii_lowercase())
        );
    }

    #[test]
    fn name_based_ids_are_rfc_9562_uuid_v5() {
        // RFC 9562 appendix A.4: www.example.com in the DNS namespace.
        let dns = [
            0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4,
            0x30, 0xc8,
        ];
        assert_eq!(
            uuid_v5(&dns, b"www.example.com"),
            "2ed6657d-e927-568b-95e1-2665a8aea6a2"
        );
        let at = UNIX_EPOCH + std::time::Duration::from_secs(1_790_000_000);
        let id = fire_id("urn:src", at);
        assert_eq!(id, fire_id("urn:src", at), "the same fire, the same id");
        assert_ne!(id, fire_id("urn:other", at));
        assert_ne!(
            id,
            fire_id("urn:src", at + std::time::Duration::from_secs(1))
        );
        assert_eq!(
            (&id[14..15], &id[19..20].chars().all(|c| "89ab".contains(c))),
            ("5", &true)
        );
    }

    #[test]
    fn a_fire_gives_its_scheduled_time_and_its_number_and_with_schedule_ids_its_id() {
        let at = UNIX_EPOCH + std::time::Duration::from_secs(1_790_000_000);
        let fire = Fire {
            scheduled: Some(at),
            sequence: Some(42),
        };
        let mut settings = EventSettings {
            source: "urn:src".into(),
            event_type: "t".into(),
            content: heartbeat("l", ""),
            content_type: None,
            encoding: HeaderEncoding::Compat,
            overrides: Vec::new(),
            ids: IdKind::Schedule,
            sequence: true,
        };
        let e = Template::new(&settings)
            .event(1, at, fire, &mut Ids::default())
            .unwrap();
        assert_eq!(e.id, fire_id("urn:src", at));
        let headers: Vec<_> = e.headers().collect();
        assert_eq!(
            headers[3..],
            [
                ("ce-scheduledtime", "2026-09-21T14:13:20Z"),
                ("ce-sequence", "00000000000000000042")
            ]
        );
        // Off: a random id, no sequence; a plain period has no scheduled time.
        (settings.ids, settings.sequence) = (IdKind::Random, false);
        let t = Template::new(&settings);
        let e = t.event(1, at, fire, &mut Ids::default()).unwrap();
        assert_ne!(e.id, fire_id("urn:src", at));
        assert_eq!(e.headers().count(), 4);
        let e = t
            .event(1, at, Fire::default(), &mut Ids::default())
            .unwrap();
        assert_eq!(e.headers().count(), 3);
    }

    #[test]
    fn header_encodings_follow_the_table() {
        use HeaderEncoding::*;
        let cases = [
            ("so extended", Compat, "so extended"),
            ("so extended", Percent, "so%20extended"),
            ("100% \"ünï\"", Compat, "100% \"ünï\""),
            ("100% \"ünï\"", Percent, "100%25%20%22%C3%BCn%C3%AF%22"),
            ("a\r\nX-Injected: 1", Compat, "a%0D%0AX-Injected: 1"),
            ("a\r\nX-Injected: 1", Percent, "a%0D%0AX-Injected:%201"),
            (" padded\t", Compat, "%20padded%09"),
            ("in\tside", Compat, "in\tside"),
            ("  ", Compat, "%20%20"),
            ("del\u{7f}", Compat, "del%7F"),
            ("", Compat, ""),
        ];
        for (input, encoding, expected) in cases {
            assert_eq!(
                encode_header_value(input, encoding),
                expected,
                "{input:?} {encoding:?}"
            );
        }
    }

    #[test]
    fn percent_encoding_round_trips_and_stays_visible_ascii() {
        let samples = [
            "",
            "plain",
            "a b%c\"d",
            "\u{0}\u{1f}\u{7f}\u{80}ü😀",
            " x ",
            "%25",
        ];
        for s in samples {
            let encoded = encode_header_value(s, HeaderEncoding::Percent);
            assert!(
                encoded.bytes().all(|b| (0x21..=0x7e).contains(&b)),
                "{encoded}"
            );
            let decoded: Vec<u8> = percent_encoding::percent_decode_str(&encoded).collect();
            assert_eq!(decoded, s.as_bytes());
        }
    }

    #[test]
    fn overrides_replace_defaults_in_place_and_append_new_ones() {
        let overrides =
            crate::config::overrides::parse(r#"{"extensions":{"heart":"no","Wow":"so extended"}}"#)
                .unwrap()
                .0;
        let t = template(
            "src",
            "type",
            &overrides,
            heartbeat("l", ""),
            Some(CONTENT_TYPE.into()),
        );
        let event = Event {
            id: "i".into(),
            time: "t".into(),
            scheduled: None,
            sequence: None,
            body: Body::Heartbeat(vec![]),
        };
        let names: Vec<_> = t.headers(&event).collect();
        assert_eq!(
            names,
            [
                ("ce-specversion", "1.0"),
                ("ce-id", "i"),
                ("ce-time", "t"),
                ("ce-source", "src"),
                ("ce-type", "type"),
                ("ce-the", "42"),
                ("ce-heart", "no"),
                ("ce-beats", "true"),
                ("ce-wow", "so extended"),
                ("content-type", "application/json"),
            ]
        );
    }

    #[test]
    fn body_omits_an_empty_msg_and_counts_from_the_given_sequence() {
        let t = template("s", "t", &[], heartbeat("hi \"x\"", ""), None);
        let e = t
            .event(7, UNIX_EPOCH, Fire::default(), &mut Ids::default())
            .unwrap();
        assert_eq!(*e.body, *br#"{"id":7,"label":"hi \"x\""}"#);
        assert_eq!(e.time, "1970-01-01T00:00:00Z");
        let t = template("s", "t", &[], heartbeat("l", "m"), None);
        assert_eq!(
            *t.event(1, UNIX_EPOCH, Fire::default(), &mut Ids::default())
                .unwrap()
                .body,
            *br#"{"id":1,"label":"l","msg":"m"}"#
        );
    }

    #[test]
    fn fixed_data_is_every_body_and_its_type_may_be_none() {
        let data: Arc<[u8]> = Arc::from(&b"bin\0ary"[..]);
        let t = template("s", "t", &[], Content::Fixed(data), None);
        let mut ids = Ids::default();
        for sequence in 1..3 {
            let e = t
                .event(sequence, UNIX_EPOCH, Fire::default(), &mut ids)
                .unwrap();
            assert_eq!(*e.body, *b"bin\0ary");
            assert!(t.headers(&e).all(|(name, _)| name != "content-type"));
        }
    }

    /// The template of events from `source` of `event_type` with these overrides and content.
    fn template(
        source: &str,
        event_type: &str,
        overrides: &[(String, String)],
        content: Content,
        content_type: Option<String>,
    ) -> Template {
        Template::new(&EventSettings {
            source: source.into(),
            event_type: event_type.into(),
            content,
            content_type,
            encoding: HeaderEncoding::Compat,
            overrides: overrides.to_vec(),
            ids: IdKind::Random,
            sequence: false,
        })
    }

    fn heartbeat(label: &str, msg: &str) -> Content {
        Content::Heartbeat {
            label: label.into(),
            msg: msg.into(),
        }
    }
}

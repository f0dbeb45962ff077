//! What the receiver prints on stdout: each event as Knative's `event_display` prints it
//! (sdk-go's `Event.String`), or as one JSON line (`--output json`) with the receive time, the
//! answer and the verdict. Printing never stalls the thread: the text gathers in a buffer written
//! between waits, stdout is non-blocking when it is a pipe or socket, and when a reader stops
//! reading, the buffer stops growing at [`MAX_PENDING`]: what does not fit is dropped, counted,
//! and the count said once printing goes on.

use std::io::{self, Write};
use std::time::SystemTime;

use super::cloudevent::{Extension, Received, is_json};
use super::config::Output;
use crate::log;
use crate::time::push_rfc3339_nano;

/// The most printed text waiting for stdout.
const MAX_PENDING: usize = 4 * 1024 * 1024;

pub struct Printer {
    output: Output,
    pending: Vec<u8>,
    /// Events not printed since the last time stdout took everything.
    dropped: u64,
}

impl Printer {
    pub fn new(output: Output) -> Printer {
        if output != Output::None {
            log::never_block_stdout();
        }
        Printer {
            output,
            pending: Vec::new(),
            dropped: 0,
        }
    }

    pub fn output(&self) -> Output {
        self.output
    }

    /// Prints an event answered with `status`, with its verdict (`ok`, or what was wrong).
    pub fn event(&mut self, event: &Received, status: u16, verdict: &str) {
        let start = self.pending.len();
        match self.output {
            Output::None => return,
            Output::Text => display(event, &mut self.pending),
            Output::Json => {
                let mut line = String::with_capacity(256);
                line.push_str("{\"received\":");
                received_now(&mut line);
                line.push_str(&format!(",\"status\":{status},\"verdict\":"));
                string(&mut line, verdict);
                line.push_str(",\"event\":");
                json_event(event, &mut line);
                line.push_str("}\n");
                self.pending.extend_from_slice(line.as_bytes());
            }
        }
        self.keep_within(start);
    }

    /// Notes a request refused as `status` for `reason` (JSON output only: text output logs it).
    pub fn refused(&mut self, status: u16, reason: &str) {
        if self.output != Output::Json {
            return;
        }
        let start = self.pending.len();
        let mut line = String::from("{\"received\":");
        received_now(&mut line);
        line.push_str(&format!(",\"status\":{status},\"refused\":"));
        string(&mut line, reason);
        line.push_str("}\n");
        self.pending.extend_from_slice(line.as_bytes());
        self.keep_within(start);
    }

    /// Prints `text` as it is (the report at the end), then writes everything, waiting if
    /// stdout must be waited for: the process is ending.
    pub fn last(&mut self, text: &str) {
        self.pending.extend_from_slice(text.as_bytes());
        let mut stdout = io::stdout().lock();
        let mut left = &self.pending[..];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while !left.is_empty() && std::time::Instant::now() < deadline {
            match stdout.write(left) {
                Ok(0) => break,
                Ok(n) => left = &left[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = stdout.flush();
        self.pending.clear();
    }

    /// Writes what stdout takes now, without waiting.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut stdout = io::stdout().lock();
        let mut written = 0;
        while written < self.pending.len() {
            match stdout.write(&self.pending[written..]) {
                Ok(0) => break,
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = stdout.flush();
        self.pending.drain(..written);
        if self.pending.is_empty() {
            if self.dropped > 0 {
                log::line(format_args!(
                    "{} event(s) not printed: stdout was not being read",
                    self.dropped
                ));
                self.dropped = 0;
            }
            if self.pending.capacity() > 64 * 1024 {
                self.pending = Vec::new();
            }
        }
    }

    /// Drops what was just added after `start` if the buffer is over its bound.
    fn keep_within(&mut self, start: usize) {
        if self.pending.len() > MAX_PENDING {
            self.pending.truncate(start);
            self.dropped += 1;
        }
    }
}

fn received_now(line: &mut String) {
    line.push('"');
    push_rfc3339_nano(line, SystemTime::now());
    line.push('"');
}

/// sdk-go's `Event.String`, after `event_display`'s title line.
fn display(event: &Received, out: &mut Vec<u8>) {
    let mut text = String::with_capacity(384);
    text.push_str("☁️  cloudevents.Event\nContext Attributes,\n");
    let mut attribute = |name: &str, value: &str| {
        text.push_str("  ");
        text.push_str(name);
        text.push_str(": ");
        text.push_str(value);
        text.push('\n');
    };
    attribute("specversion", &event.specversion);
    attribute("type", &event.kind);
    attribute("source", &event.source);
    if let Some(subject) = &event.subject {
        attribute("subject", subject);
    }
    attribute("id", &event.id);
    if let Some(time) = &event.time {
        attribute("time", time);
    }
    if let Some(schema) = &event.dataschema {
        attribute("dataschema", schema);
    }
    if let Some(content_type) = &event.datacontenttype {
        attribute("datacontenttype", content_type);
    }
    if !event.extensions.is_empty() {
        text.push_str("Extensions,\n");
        for (name, value) in &event.extensions {
            text.push_str("  ");
            text.push_str(name);
            text.push_str(": ");
            text.push_str(value.as_str());
            text.push('\n');
        }
    }
    out.extend_from_slice(text.as_bytes());
    if let Some(data) = &event.data {
        out.extend_from_slice(if data.base64 {
            b"Data (binary),\n  "
        } else {
            b"Data,\n  "
        });
        if event.media_type() == "application/json" && indent(&data.bytes, out).is_ok() {
        } else {
            out.extend_from_slice(&data.bytes);
        }
        out.push(b'\n');
    }
}

/// Go's `json.Indent(out, src, "  ", "  ")`: the tokens as written, one member or element a
/// line. On invalid JSON, `out` is left as it was.
fn indent(src: &[u8], out: &mut Vec<u8>) -> Result<(), ()> {
    if serde_json::from_slice::<serde::de::IgnoredAny>(src).is_err() {
        return Err(());
    }
    let mut depth = 0usize;
    // After an opening bracket: a newline is due unless the bracket closes at once.
    let mut opened = false;
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        out.extend_from_slice(b"  ");
        for _ in 0..depth {
            out.extend_from_slice(b"  ");
        }
    };
    let mut at = 0;
    while at < src.len() {
        let c = src[at];
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            at += 1;
            continue;
        }
        if opened && c != b'}' && c != b']' {
            newline(out, depth);
        }
        let was_opened = std::mem::take(&mut opened);
        match c {
            b'{' | b'[' => {
                out.push(c);
                depth += 1;
                opened = true;
            }
            b'}' | b']' => {
                depth -= 1;
                if !was_opened {
                    newline(out, depth);
                }
                out.push(c);
            }
            b',' => {
                out.push(c);
                newline(out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            b'"' => {
                let start = at;
                at += 1;
                while src[at] != b'"' {
                    at += if src[at] == b'\\' { 2 } else { 1 };
                }
                out.extend_from_slice(&src[start..=at]);
            }
            _ => out.push(c),
        }
        at += 1;
    }
    Ok(())
}

/// The event in the CloudEvents JSON format: the attributes, the extensions, and the data as
/// `data` (a JSON value for a JSON type, a string for text) or `data_base64`.
fn json_event(event: &Received, out: &mut String) {
    out.push('{');
    let member = |out: &mut String, name: &str, value: &str| {
        if !out.ends_with('{') {
            out.push(',');
        }
        string(out, name);
        out.push(':');
        string(out, value);
    };
    member(out, "specversion", &event.specversion);
    member(out, "id", &event.id);
    member(out, "source", &event.source);
    member(out, "type", &event.kind);
    for (name, value) in [
        ("subject", &event.subject),
        ("time", &event.time),
        ("dataschema", &event.dataschema),
        ("datacontenttype", &event.datacontenttype),
    ] {
        if let Some(value) = value {
            member(out, name, value);
        }
    }
    for (name, value) in &event.extensions {
        match value {
            Extension::Text(text) => member(out, name, text),
            Extension::Literal(literal) => {
                out.push(',');
                string(out, name);
                out.push(':');
                out.push_str(literal);
            }
        }
    }
    if let Some(data) = &event.data {
        let media = event.media_type();
        let json_value = is_json(&media) || media.is_empty() && !data.base64;
        let valid_json = json_value
            && serde_json::from_slice::<&RawJson>(&data.bytes).is_ok()
            && std::str::from_utf8(&data.bytes).is_ok();
        if valid_json {
            out.push_str(",\"data\":");
            out.push_str(std::str::from_utf8(&data.bytes).unwrap_or("null").trim());
        } else if let (false, true, Ok(text)) = (
            data.base64,
            media.starts_with("text/") || media.is_empty(),
            std::str::from_utf8(&data.bytes),
        ) {
            out.push_str(",\"data\":");
            string(out, text);
        } else {
            out.push_str(",\"data_base64\":\"");
            base64::Engine::encode_string(
                &base64::engine::general_purpose::STANDARD,
                &data.bytes,
                out,
            );
            out.push('"');
        }
    }
    out.push('}');
}

type RawJson = serde_json::value::RawValue;

/// `text` as a JSON string.
fn string(out: &mut String, text: &str) {
    out.push_str(&serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::cloudevent::binary;

    fn heartbeat() -> Received {
        let ce: Vec<(String, String)> = [
            ("specversion", "1.0"),
            ("id", "2b72d7bf"),
            (
                "source",
                "https://knative.dev/eventing-contrib/cmd/heartbeats/#event-test/mypod",
            ),
            ("type", "dev.knative.eventing.samples.heartbeat"),
            ("time", "2019-10-18T15:23:20.809775386Z"),
            ("the", "42"),
            ("heart", "yes"),
            ("beats", "true"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        binary(
            &ce,
            Some("application/json"),
            br#"{"id":2,"label":""}"#.to_vec(),
        )
        .unwrap()
    }

    #[test]
    fn text_is_event_displays() {
        let mut out = Vec::new();
        display(&heartbeat(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "☁️  cloudevents.Event\nContext Attributes,\n  specversion: 1.0\n  \
             type: dev.knative.eventing.samples.heartbeat\n  \
             source: https://knative.dev/eventing-contrib/cmd/heartbeats/#event-test/mypod\n  \
             id: 2b72d7bf\n  time: 2019-10-18T15:23:20.809775386Z\n  \
             datacontenttype: application/json\nExtensions,\n  beats: true\n  heart: yes\n  \
             the: 42\nData,\n  {\n    \"id\": 2,\n    \"label\": \"\"\n  }\n"
        );
    }

    #[test]
    fn json_is_indented_as_go_indents_it() {
        let mut out = Vec::new();
        indent(br#" {"a":[],"b":{},"c":[1, {"d":"x\"y"}]}"#, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\n    \"a\": [],\n    \"b\": {},\n    \"c\": [\n      1,\n      {\n        \"d\": \"x\\\"y\"\n      }\n    ]\n  }"
        );
        assert!(indent(b"{", &mut Vec::new()).is_err());
    }

    #[test]
    fn a_json_line_is_the_cloudevents_json_format() {
        let mut line = String::new();
        json_event(&heartbeat(), &mut line);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["data"]["id"], 2);
        assert_eq!(value["the"], "42");
        assert_eq!(value["datacontenttype"], "application/json");
    }
}

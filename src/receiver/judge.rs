//! Judging the stream, per `source`: how many events came, which heartbeat numbers never came
//! (gaps in `data.id`), which `ce-id`s came again, which came out of order, and which came late
//! (with `--period`). The report is JSON (`GET /report`, named as Knative's wathola receiver
//! names its report where the meaning is the same) and Prometheus text (`GET /metrics`).
//!
//! Memory is bounded whatever senders do: at most [`MAX_SOURCES`] sources are told apart (the
//! rest count together under `(other sources)`), a duplicate is a `ce-id` among the last
//! [`ID_WINDOW`] of its source, and at most [`MAX_AHEAD`] numbers wait above a gap (past that
//! the oldest gaps are counted missing for good).

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

/// Sources told apart.
pub const MAX_SOURCES: usize = 1024;
/// The `ce-id`s remembered per source for finding duplicates.
pub const ID_WINDOW: usize = 65_536;
/// Heartbeat numbers remembered above the lowest gap, per source.
pub const MAX_AHEAD: usize = 65_536;
/// Messages kept in each list of the report's `thrown`.
const MAX_THROWN: usize = 100;
/// The name the sources past [`MAX_SOURCES`] share.
const OTHER_SOURCES: &str = "(other sources)";

/// What was wrong with one event, if anything.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub duplicated: bool,
    pub out_of_order: bool,
    pub late: bool,
    /// Heartbeat numbers skipped by this one (missing, for now).
    pub gap: u64,
}

impl Verdict {
    pub fn is_ok(self) -> bool {
        self == Verdict::default()
    }

    /// `ok`, or what was wrong, comma separated.
    pub fn text(self) -> String {
        let mut parts = Vec::new();
        if self.duplicated {
            parts.push("duplicated".to_owned());
        }
        if self.out_of_order {
            parts.push("out of order".to_owned());
        }
        if self.late {
            parts.push("late".to_owned());
        }
        if self.gap > 0 {
            parts.push(format!("{} missing before it", self.gap));
        }
        if parts.is_empty() {
            "ok".into()
        } else {
            parts.join(", ")
        }
    }
}

/// One source's stream.
struct Stream {
    source: String,
    received: u64,
    duplicated: u64,
    out_of_order: u64,
    late: u64,
    /// Every heartbeat number up to this one came (numbers start at 1).
    base: u64,
    /// Numbers above `base` that came.
    ahead: BTreeSet<u64>,
    /// The highest number that came.
    highest: u64,
    /// Gaps given up on (see [`MAX_AHEAD`]).
    lost: u64,
    ids: HashSet<u64, Fixed>,
    order: VecDeque<u64>,
    last_arrival: Option<Instant>,
}

impl Stream {
    fn new(source: &str) -> Stream {
        Stream {
            source: source.to_owned(),
            received: 0,
            duplicated: 0,
            out_of_order: 0,
            late: 0,
            base: 0,
            ahead: BTreeSet::new(),
            highest: 0,
            lost: 0,
            ids: HashSet::with_hasher(Fixed),
            order: VecDeque::new(),
            last_arrival: None,
        }
    }

    fn missing(&self) -> u64 {
        self.lost + (self.highest - self.base) - self.ahead.len() as u64
    }

    /// Whether `id` came before (and remembers it).
    fn seen(&mut self, id: &str) -> bool {
        let hash = hash(id);
        if !self.ids.insert(hash) {
            return true;
        }
        self.order.push_back(hash);
        if self.order.len() > ID_WINDOW {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        false
    }

    /// Takes heartbeat number `beat`: the gap it opens, and whether it came out of order.
    fn number(&mut self, beat: u64) -> (u64, bool) {
        if beat <= self.base || self.ahead.contains(&beat) {
            // Below what all came, or a number that came already (a new ce-id): a replay, or a
            // sender that started again.
            return (0, true);
        }
        let out_of_order = beat < self.highest;
        let gap = if beat > self.highest {
            let gap = beat - self.highest - 1;
            self.highest = beat;
            gap
        } else {
            0
        };
        self.ahead.insert(beat);
        while self.ahead.first() == Some(&(self.base + 1)) {
            self.ahead.pop_first();
            self.base += 1;
        }
        if self.ahead.len() > MAX_AHEAD {
            // Give up on the lowest gap: what lies below the lowest number waiting is missing.
            if let Some(lowest) = self.ahead.pop_first() {
                self.lost += lowest - self.base - 1;
                self.base = lowest;
                while self.ahead.first() == Some(&(self.base + 1)) {
                    self.ahead.pop_first();
                    self.base += 1;
                }
            }
        }
        (gap, out_of_order)
    }

    /// The first numbers missing, up to `limit`.
    fn missing_numbers(&self, limit: usize) -> Vec<u64> {
        let mut found = Vec::new();
        let mut next = self.base + 1;
        for &came in &self.ahead {
            while next < came && found.len() < limit {
                found.push(next);
                next += 1;
            }
            next = came + 1;
            if found.len() >= limit {
                break;
            }
        }
        found
    }
}

/// A fixed hasher (FNV-1a over the bytes): ids are remembered as 64-bit hashes, and the hash
/// need not resist chosen collisions (a collision reads as one false duplicate).
#[derive(Clone, Copy, Default)]
struct Fixed;

impl BuildHasher for Fixed {
    type Hasher = Identity;
    fn build_hasher(&self) -> Identity {
        Identity(0)
    }
}

/// The set's hasher over values that are hashes already.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in text.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// See the module documentation.
pub struct Judge {
    streams: Vec<Stream>,
    /// The index of each source's stream, by the source's hash.
    index: std::collections::HashMap<u64, usize, Fixed>,
    period: Option<Duration>,
    tolerance: Duration,
    /// HTTP requests answered, by status code.
    statuses: Vec<(u16, u64)>,
    pub refused: u64,
    /// POST requests (carrying events or not).
    pub event_requests: u64,
    thrown_duplicated: Vec<String>,
    thrown_unexpected: Vec<String>,
}

impl Judge {
    pub fn new(period: Option<Duration>, tolerance: Duration) -> Judge {
        Judge {
            streams: Vec::new(),
            index: std::collections::HashMap::with_hasher(Fixed),
            period,
            tolerance,
            statuses: Vec::new(),
            refused: 0,
            event_requests: 0,
            thrown_duplicated: Vec::new(),
            thrown_unexpected: Vec::new(),
        }
    }

    /// Counts an answer.
    pub fn answered(&mut self, status: u16) {
        match self.statuses.iter_mut().find(|(code, _)| *code == status) {
            Some((_, count)) => *count += 1,
            None => {
                self.statuses.push((status, 1));
                self.statuses.sort_unstable();
            }
        }
    }

    /// Counts an event refused (not a CloudEvent, or an invalid one), for `reason`.
    pub fn refuse(&mut self, reason: &str) {
        self.refused += 1;
        if self.thrown_unexpected.len() < MAX_THROWN {
            self.thrown_unexpected.push(reason.to_owned());
        }
    }

    fn stream(&mut self, source: &str) -> &mut Stream {
        let key = hash(source);
        let at = match self.index.get(&key) {
            Some(&at) if self.streams[at].source == source => at,
            _ if self.streams.len() < MAX_SOURCES => {
                self.streams.push(Stream::new(source));
                let at = self.streams.len() - 1;
                self.index.insert(key, at);
                at
            }
            _ => {
                let other = hash(OTHER_SOURCES);
                match self.index.get(&other) {
                    Some(&at) => at,
                    None => {
                        self.streams.push(Stream::new(OTHER_SOURCES));
                        let at = self.streams.len() - 1;
                        self.index.insert(other, at);
                        at
                    }
                }
            }
        };
        &mut self.streams[at]
    }

    /// Judges an event accepted from `source` with `id` and, for a heartbeat, its number.
    pub fn event(&mut self, source: &str, id: &str, beat: Option<u64>, now: Instant) -> Verdict {
        let (period, tolerance) = (self.period, self.tolerance);
        let stream = self.stream(source);
        stream.received += 1;
        let mut verdict = Verdict::default();
        if let (Some(period), Some(last)) = (period, stream.last_arrival) {
            verdict.late = now.saturating_duration_since(last) > period + tolerance;
        }
        stream.last_arrival = Some(now);
        if stream.seen(id) {
            verdict.duplicated = true;
        } else if let Some(beat) = beat {
            (verdict.gap, verdict.out_of_order) = stream.number(beat);
        }
        stream.duplicated += u64::from(verdict.duplicated);
        stream.out_of_order += u64::from(verdict.out_of_order);
        stream.late += u64::from(verdict.late);
        if verdict.duplicated && self.thrown_duplicated.len() < MAX_THROWN {
            let message = format!("event {id:?} of {source:?} came again");
            self.thrown_duplicated.push(message);
        }
        verdict
    }

    /// Events accepted, duplicates included.
    pub fn received(&self) -> u64 {
        self.streams.iter().map(|s| s.received).sum()
    }

    pub fn duplicated(&self) -> u64 {
        self.streams.iter().map(|s| s.duplicated).sum()
    }

    pub fn missing(&self) -> u64 {
        self.streams.iter().map(Stream::missing).sum()
    }

    /// Events accepted that were neither duplicates nor below a number already taken.
    pub fn unique(&self) -> u64 {
        self.received() - self.duplicated()
    }

    /// The report as JSON, with `state` (`active`, `success` or `failed`).
    pub fn report(&self, state: &str) -> String {
        let mut out = String::with_capacity(512);
        let requests = self.event_requests;
        let _ = write!(
            out,
            "{{\"state\":\"{state}\",\"eventsReceived\":{},\"totalRequests\":{requests},\
             \"refused\":{},\"missing\":{},\"duplicated\":{},\"sources\":[",
            self.received(),
            self.refused,
            self.missing(),
            self.duplicated()
        );
        for (i, s) in self.streams.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"source\":");
            out.push_str(&json_string(&s.source));
            let _ = write!(
                out,
                ",\"received\":{},\"missing\":{},\"duplicated\":{},\"outOfOrder\":{},\"late\":{},\
                 \"lastNumber\":{}}}",
                s.received,
                s.missing(),
                s.duplicated,
                s.out_of_order,
                s.late,
                s.highest
            );
        }
        out.push_str("],\"thrown\":{\"duplicated\":");
        list(&mut out, self.thrown_duplicated.iter().map(String::as_str));
        out.push_str(",\"missing\":");
        let mut missing = Vec::new();
        for s in &self.streams {
            let left = MAX_THROWN.saturating_sub(missing.len());
            missing.extend(
                s.missing_numbers(left)
                    .into_iter()
                    .map(|n| format!("event {n} of {:?} has not come", s.source)),
            );
        }
        list(&mut out, missing.iter().map(String::as_str));
        out.push_str(",\"unexpected\":");
        list(&mut out, self.thrown_unexpected.iter().map(String::as_str));
        out.push_str("}}");
        out
    }

    /// The counts as Prometheus text.
    pub fn prometheus(&self) -> String {
        let mut out = String::with_capacity(1024);
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        };
        family(
            &mut out,
            "heartbeats_receiver_requests_total",
            "counter",
            "HTTP requests answered, by status code.",
        );
        for (code, count) in &self.statuses {
            let _ = writeln!(
                out,
                "heartbeats_receiver_requests_total{{code=\"{code}\"}} {count}"
            );
        }
        family(
            &mut out,
            "heartbeats_receiver_refused_events_total",
            "counter",
            "Requests refused as no valid CloudEvent.",
        );
        let _ = writeln!(
            out,
            "heartbeats_receiver_refused_events_total {}",
            self.refused
        );
        let per_source: [Family; 5] = [
            (
                "heartbeats_receiver_events_total",
                "counter",
                "Events accepted, by source.",
                |s| s.received,
            ),
            (
                "heartbeats_receiver_missing_events",
                "gauge",
                "Heartbeat numbers that have not come, by source.",
                Stream::missing,
            ),
            (
                "heartbeats_receiver_duplicated_events_total",
                "counter",
                "Events whose ce-id came before, by source.",
                |s| s.duplicated,
            ),
            (
                "heartbeats_receiver_out_of_order_events_total",
                "counter",
                "Events below a heartbeat number already taken, by source.",
                |s| s.out_of_order,
            ),
            (
                "heartbeats_receiver_late_events_total",
                "counter",
                "Events later than --period plus the tolerance after the one before, by source.",
                |s| s.late,
            ),
        ];
        for (name, kind, help, value) in per_source {
            family(&mut out, name, kind, help);
            for s in &self.streams {
                let _ = writeln!(
                    out,
                    "{name}{{source=\"{}\"}} {}",
                    label(&s.source),
                    value(s)
                );
            }
        }
        out
    }
}

/// A metric family per source: name, type, help, and its value for a stream.
type Family = (&'static str, &'static str, &'static str, fn(&Stream) -> u64);

/// A Prometheus label value: backslash, quote and line feed escaped.
fn label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

fn list<'a>(out: &mut String, items: impl Iterator<Item = &'a str>) {
    out.push('[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&json_string(item));
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(events: &[(&str, u64)]) -> Judge {
        let mut judge = Judge::new(None, Duration::ZERO);
        let now = Instant::now();
        for (id, beat) in events {
            judge.event("s", id, Some(*beat), now);
        }
        judge
    }

    #[test]
    fn gaps_duplicates_and_reordering_are_counted() {
        let j = judge(&[("a", 1), ("b", 2), ("c", 4), ("c", 4), ("e", 6), ("d", 3)]);
        let s = &j.streams[0];
        assert_eq!((s.received, s.duplicated, s.out_of_order), (6, 1, 1));
        // 5 never came; 3 came late.
        assert_eq!(s.missing(), 1);
        assert_eq!(s.missing_numbers(10), vec![5]);
        assert_eq!(j.unique(), 5);
        let report: serde_json::Value = serde_json::from_str(&j.report("active")).unwrap();
        assert_eq!(report["missing"], 1);
        assert_eq!(
            report["thrown"]["missing"][0],
            "event 5 of \"s\" has not come"
        );
        assert_eq!(report["sources"][0]["outOfOrder"], 1);
    }

    #[test]
    fn a_first_event_after_1_leaves_the_ones_before_missing() {
        let j = judge(&[("x", 3)]);
        assert_eq!(j.missing(), 2);
    }

    #[test]
    fn lateness_counts_against_the_period_and_tolerance() {
        let mut j = Judge::new(Some(Duration::from_secs(1)), Duration::from_millis(500));
        let t = Instant::now();
        assert!(!j.event("s", "1", None, t).late);
        assert!(
            !j.event("s", "2", None, t + Duration::from_millis(1400))
                .late
        );
        assert!(
            j.event("s", "3", None, t + Duration::from_millis(3000))
                .late
        );
    }

    #[test]
    fn memory_stays_bounded_whatever_comes() {
        let mut j = Judge::new(None, Duration::ZERO);
        let now = Instant::now();
        for i in 0..(MAX_SOURCES as u64 + 10) {
            j.event(&format!("s{i}"), "id", None, now);
        }
        assert_eq!(j.streams.len(), MAX_SOURCES + 1);
        let mut j = Judge::new(None, Duration::ZERO);
        // Only even numbers: every other one missing, more waiting than MAX_AHEAD.
        for n in 1..=(MAX_AHEAD as u64 + 100) {
            j.event("s", &n.to_string(), Some(n * 2), now);
        }
        let s = &j.streams[0];
        assert!(s.ahead.len() <= MAX_AHEAD + 1 && s.order.len() <= ID_WINDOW);
        assert_eq!(s.missing(), MAX_AHEAD as u64 + 100);
        let text = j.prometheus();
        assert!(text.contains("heartbeats_receiver_missing_events{source=\"s\"} 65636"));
    }
}

//! What the loop and the sender tell whoever watches them (telemetry) as a beat goes by: a small
//! interface below both, so that sending an event knows nothing of metrics or traces.

use std::fmt;

use crate::event::Event;

/// How an event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Not taken by the sink, taken by the dead-letter sink.
    DeadLettered,
    Failed,
    /// A due time that passed without an event (the previous send or a stopped process).
    Skipped,
}

/// Why an attempt failed: the status code of a 4xx or 5xx answer, else what failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    Status(u16),
    /// `timeout`, `connection_refused`, `tls`, … (Go names its error's type instead).
    Failure(&'static str),
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorType::Status(status) => write!(f, "{status}"),
            ErrorType::Failure(what) => f.write_str(what),
        }
    }
}

/// The events of a beat's life, in the order they happen.
pub trait Report {
    /// An event is about to be sent.
    fn start_event(&mut self, event: &Event);
    /// An attempt starts; returns the `traceparent` it carries when its event is traced.
    fn start_attempt(&mut self) -> Option<String>;
    /// The attempt ended with `status` (when an answer came) or `error`, having sent `body_size`
    /// bytes of body.
    fn end_attempt(&mut self, status: Option<u16>, error: Option<ErrorType>, body_size: usize);
    /// The event ended.
    fn end_event(&mut self, outcome: Outcome);
    /// Due times passed without an event.
    fn skipped(&mut self, beats: u64);
}

/// Tells no one: observability off.
pub struct Silent;

impl Report for Silent {
    fn start_event(&mut self, _: &Event) {}
    fn start_attempt(&mut self) -> Option<String> {
        None
    }
    fn end_attempt(&mut self, _: Option<u16>, _: Option<ErrorType>, _: usize) {}
    fn end_event(&mut self, _: Outcome) {}
    fn skipped(&mut self, _: u64) {}
}

//! The one error type: every way start-up can refuse to run, each rendered as one line that names
//! the flag or variable and quotes the offending value, and each mapped to an exit status.

use std::fmt;

/// Exit status for a configuration error (bad flag value, bad variable, bad certificate).
pub const EXIT_CONFIG: i32 = 1;
/// Exit status for a malformed command line (unknown flag, missing value).
pub const EXIT_USAGE: i32 = 2;
/// Exit status when `ONE_SHOT`/`--count` ended with an event that reached neither the sink nor
/// a dead-letter sink.
pub const EXIT_UNDELIVERED: i32 = 3;
/// Exit status when `ONE_SHOT`/`--count` ended with every event delivered, some of them only to
/// the dead-letter sink.
pub const EXIT_DEAD_LETTERED: i32 = 4;

/// Values longer than this are cut in messages, so that the error stays one readable line.
const SHOWN_VALUE_CHARS: usize = 120;

#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    /// Neither `K_SINK` nor `--sink` gave a sink.
    NoSink,
    /// A flag, variable or file holds a value that cannot be used.
    Invalid {
        /// The flag (`--period`), variable (`K_SINK`) or path that held it.
        name: String,
        /// The value as given, possibly cut.
        value: String,
        /// What was expected instead, lower case, no full stop.
        expected: String,
    },
    /// A flag, variable or file holds something that cannot be used and must not be quoted
    /// (PEM text, which may hold a private key).
    Unusable {
        /// The flag, variable or path that held it.
        name: String,
        /// What is wrong, lower case, no full stop; never the value itself.
        reason: String,
    },
    /// The command line is malformed: an unknown flag, a missing value, a stray argument.
    Usage(String),
}

impl Error {
    // Cold and out of line: a refusal is built in one place, not at each of its many callers.
    #[cold]
    #[inline(never)]
    pub fn invalid(name: impl Into<String>, value: &str, expected: impl Into<String>) -> Self {
        Error::Invalid {
            name: name.into(),
            value: value.to_owned(),
            expected: expected.into(),
        }
    }

    #[cold]
    #[inline(never)]
    pub fn unusable(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Unusable {
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// The process exit status this error ends with.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => EXIT_USAGE,
            Error::NoSink | Error::Invalid { .. } | Error::Unusable { .. } => EXIT_CONFIG,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoSink => write!(f, "no sink: set K_SINK or --sink"),
            Error::Invalid {
                name,
                value,
                expected,
            } => {
                // Debug quoting escapes control characters, so the message stays on one line.
                let shown = crate::log::Bounded(value, SHOWN_VALUE_CHARS);
                write!(f, "invalid {name} {shown}: {expected}")
            }
            Error::Unusable { name, reason } => write!(f, "invalid {name}: {reason}"),
            Error::Usage(message) => write!(f, "{message}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_value_renders_as_one_line_with_control_characters_escaped() {
        let error = Error::invalid("--label", "a\r\nX-Injected: 1", "whatever");
        assert_eq!(
            error.to_string(),
            r#"invalid --label "a\r\nX-Injected: 1": whatever"#
        );
    }

    #[test]
    fn huge_value_is_cut_in_the_message() {
        let error = Error::invalid("--msg", &"x".repeat(1 << 20), "shorter");
        let line = error.to_string();
        assert!(line.len() < 300, "{} bytes", line.len());
        assert!(line.contains("(and 1048456 more bytes)"), "{line}");
    }
}

//! The log: one line on stderr per thing worth saying, prefixed with the UTC time. This module
//! owns what a line may hold (text from the network bounded; URLs come to it with their
//! credentials already hidden by `config::url`) and how it is
//! written: a log reader that stalls must never stop the beat nor delay a stop, so when stderr is
//! a pipe or socket it is made non-blocking, and a line that cannot be written now is dropped,
//! counted, and the count reported in the next line that can be written.

use std::fmt;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use crate::sys;
use crate::time::push_rfc3339_nano;

/// The longest line written, newline included: `PIPE_BUF`, so that a write to a non-blocking
/// pipe is all or nothing and lines never interleave with other writers.
const MAX_LINE: usize = 4096;

/// The program's name, after the time on each line: `heartbeats`, or the receiver's.
static PROGRAM: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Names the program on every line from now on (once, at start; `heartbeats` otherwise).
pub fn set_program(name: &'static str) {
    let _ = PROGRAM.set(name);
}

/// Lines dropped since the last line written. A process-wide counter, since stderr is one.
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// The last write stopped mid-line (a socket took part of it): the next line starts afresh.
static BROKEN: AtomicBool = AtomicBool::new(false);

/// Makes stderr non-blocking when it is a pipe or a socket, where a reader that stops reading
/// would otherwise block the process in `write`. A terminal or file is left as it is (it never
/// stalls for long, and its open file description may be shared with an interactive shell).
pub fn never_block() {
    if let Err(error) = never_block_fd(io::stderr().as_fd()) {
        line(format_args!(
            "cannot make stderr non-blocking: {error}; a stalled log reader can stall beats"
        ));
    }
}

/// As [`never_block`], for stdout, where spans go when tracing writes them there.
pub fn never_block_stdout() {
    if let Err(error) = never_block_fd(io::stdout().as_fd()) {
        line(format_args!(
            "cannot make stdout non-blocking: {error}; a stalled reader can stall beats"
        ));
    }
}

fn never_block_fd(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    let meta = std::fs::File::from(fd.try_clone_to_owned()?).metadata()?;
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    if kind.is_fifo() || kind.is_socket() {
        sys::set_nonblocking(fd)?;
    }
    Ok(())
}

/// Writes `text` and a newline to stdout, whole or (when that would wait) not at all; lines
/// longer than `PIPE_BUF` may be cut by a socket. Returns whether it was written whole.
pub fn stdout_line(mut text: String) -> bool {
    text.push('\n');
    let mut stdout = io::stdout().lock();
    let written = matches!(write_all(&mut stdout, text.as_bytes()), Written::All);
    let _ = stdout.flush();
    written
}

/// Writes one line: the time, `heartbeats:`, the message, and how many earlier lines were
/// dropped, if any. Cut to [`MAX_LINE`] bytes.
pub fn line(message: fmt::Arguments) {
    let mut text = String::with_capacity(160);
    if BROKEN.swap(false, Ordering::Relaxed) {
        text.push('\n');
    }
    push_rfc3339_nano(&mut text, SystemTime::now());
    text.push(' ');
    text.push_str(PROGRAM.get().copied().unwrap_or("heartbeats"));
    text.push_str(": ");
    let _ = fmt::Write::write_fmt(&mut text, message);
    let dropped = DROPPED.load(Ordering::Relaxed);
    if dropped > 0 {
        let _ = fmt::Write::write_fmt(
            &mut text,
            format_args!(" ({dropped} earlier log line(s) dropped: stderr was not being read)"),
        );
    }
    cut(&mut text, MAX_LINE - 1);
    text.push('\n');
    match write_all(&mut io::stderr(), text.as_bytes()) {
        Written::All => DROPPED.store(0, Ordering::Relaxed),
        Written::Nothing => {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        Written::Part => {
            DROPPED.store(0, Ordering::Relaxed);
            BROKEN.store(true, Ordering::Relaxed);
        }
    }
}

enum Written {
    All,
    Nothing,
    Part,
}

/// Writes `bytes` unless that would wait; a socket may take part of it.
fn write_all(out: &mut impl Write, mut bytes: &[u8]) -> Written {
    let whole = bytes.len();
    while !bytes.is_empty() {
        match out.write(bytes) {
            Ok(0) => break,
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    match bytes.len() {
        0 => Written::All,
        left if left == whole => Written::Nothing,
        _ => Written::Part,
    }
}

/// Cuts `text` to at most `max` bytes, at a character boundary, marking the cut with `…`.
fn cut(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
}

/// Text from the network (a `Location`, an error from a peer) as it may appear in a line:
/// Debug-quoted (control characters escaped) and cut after `max` characters.
pub struct Bounded<'a>(pub &'a str, pub usize);

impl fmt::Display for Bounded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Bounded(text, max) = *self;
        let mut chars = text.chars();
        let shown: String = chars.by_ref().take(max).collect();
        match chars.as_str().len() {
            0 => write!(f, "{shown:?}"),
            more => write!(f, "{shown:?} (and {more} more bytes)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_text_is_quoted_and_bounded() {
        let long = "x".repeat(60_000);
        let shown = Bounded(&long, 100).to_string();
        assert!(shown.len() < 140, "{}", shown.len());
        assert!(shown.ends_with("(and 59900 more bytes)"), "{shown}");
        assert_eq!(Bounded("a\r\nb", 100).to_string(), r#""a\r\nb""#);
    }

    #[test]
    fn lines_are_cut_at_a_character_boundary() {
        let mut text = "é".repeat(3000);
        cut(&mut text, MAX_LINE - 1);
        assert!(text.len() < MAX_LINE);
        assert!(text.ends_with('…'));
        let mut short = "short".to_owned();
        cut(&mut short, 10);
        assert_eq!(short, "short");
    }

    /// A writer that takes `room` bytes, then would block.
    struct Full {
        room: usize,
    }

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_write_that_would_block_is_reported_as_none_or_part_of_the_line() {
        assert!(matches!(
            write_all(&mut Full { room: 10 }, b"12345"),
            Written::All
        ));
        assert!(matches!(
            write_all(&mut Full { room: 0 }, b"12345"),
            Written::Nothing
        ));
        assert!(matches!(
            write_all(&mut Full { room: 2 }, b"12345"),
            Written::Part
        ));
    }
}

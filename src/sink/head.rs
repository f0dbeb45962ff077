//! The response head as ureq's parser gets it. ureq parses heads with httparse's strict rules,
//! which refuse two forms that Go's client reads, and that a sink may send with a 2xx for an
//! event it took: an obs-folded header line (RFC 9112 §5.2: a line starting with space or tab
//! continues the one before) and whitespace between a field name and its colon
//! (`Content-Length : 0`, accepted by Go since golang/go#34540). Refusing them made us post an
//! acknowledged event again and again. The transports pass each response's bytes through a
//! [`HeadReader`]: a head httparse takes strictly goes over untouched; otherwise it is parsed
//! with httparse's two leniencies for exactly those forms and handed over rewritten (a fold
//! becomes one space, the whitespace before a colon goes), the rest as it came.
//!
//! Once a complete status line has come, the sink has answered: an event it acknowledged must
//! not be posted again. So when what follows cannot be read (a head over [`MAX_HEAD`], more
//! header lines than ureq takes, a line httparse cannot read, a stall, a reset, a close), the
//! status line is taken as the whole answer: ureq gets it with an empty body and
//! `connection: close`, the connection is dropped, and one warning says what came after it. Go
//! reads heads up to 10 MB; we stop at 128 KiB. Only what fails before a status line is complete
//! is left for ureq to refuse.

use std::io;

/// The longest head collected and rewritten: today's limit of ureq's input buffer. A longer
/// one is handed over as it came (and refused by ureq as too large).
pub const MAX_HEAD: usize = 128 * 1024;

/// The most header lines a head may have: ureq's parser takes no more.
const MAX_HEADERS: usize = 128;

/// Collects and rewrites the head of each response on one connection.
#[derive(Debug, Default)]
pub struct HeadReader {
    /// A request has gone out and its final (non-1xx) head has not been handed over yet.
    in_head: bool,
    /// Bytes read while collecting a head, not yet handed over.
    collected: Vec<u8>,
    /// Bytes ready to hand over (a rewritten head and what followed it), from `ready_at`.
    ready: Vec<u8>,
    ready_at: usize,
    /// `collected` may hold a complete head: a line ended since it was last parsed.
    check: bool,
    /// The answer was cut at its status line: nothing more is read on this connection.
    ended: bool,
}

/// What httparse made of the start of a response.
enum Parsed {
    /// A complete head of this many bytes; `final` unless informational.
    Head { len: usize, is_final: bool },
    /// Not complete yet.
    Partial,
    /// Unreadable: the status code, if the status line was complete, and what went wrong.
    Refused(Option<u16>, &'static str),
}

impl HeadReader {
    /// A request went out: the next bytes are the head of its response.
    pub fn expect_head(&mut self) {
        self.in_head = true;
    }

    /// Fills `out` with the next bytes of the response, calling `read` (which reads into the
    /// slice it is given, as `io::Read::read`) as often as a head needs. Returns 0 at the end.
    pub fn read(
        &mut self,
        out: &mut [u8],
        mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        if self.ready_at < self.ready.len() {
            return Ok(self.hand_over(out));
        }
        if self.ended {
            return Ok(0);
        }
        if !self.in_head {
            return read(out);
        }
        loop {
            if std::mem::take(&mut self.check) {
                if let Some(n) = self.take_collected(out) {
                    return Ok(n);
                }
            }
            if self.collected.len() > MAX_HEAD {
                return Ok(self.too_long(out));
            }
            let n = match read(out) {
                Ok(n) => n,
                Err(error) => match self.status() {
                    Some(code) => return Ok(self.cut(out, code, failure(&error))),
                    None => return Err(error),
                },
            };
            if n == 0 {
                return Ok(match self.status() {
                    Some(code) => self.cut(out, code, "the connection closed"),
                    // The peer closed before a status line: hand over what came, then the end.
                    None => self.give_up(out),
                });
            }
            if self.collected.is_empty() {
                if let Parsed::Head { is_final: true, .. } = parse(&out[..n], Leniency::None) {
                    // The usual case: a plain head in one read, nothing to collect or copy.
                    self.in_head = false;
                    return Ok(n);
                }
            }
            // A head can only be complete once another line has ended.
            self.check = memchr::memchr(b'\n', &out[..n]).is_some();
            self.collected.extend_from_slice(&out[..n]);
        }
    }

    /// Parses what was collected: `Some` of what was handed over into `out` once the head is
    /// complete or unreadable, `None` while it is still partial.
    fn take_collected(&mut self, out: &mut [u8]) -> Option<usize> {
        go_version(&mut self.collected);
        match parse(&self.collected, Leniency::Go) {
            Parsed::Head { len, .. } if len > MAX_HEAD => Some(self.too_long(out)),
            Parsed::Head { len, is_final } => {
                self.rewrite_collected(len, is_final);
                Some(self.hand_over(out))
            }
            Parsed::Refused(Some(code), what) if is_final(code) => Some(self.cut(out, code, what)),
            Parsed::Refused(..) => Some(self.give_up(out)),
            Parsed::Partial => None,
        }
    }

    /// A head over [`MAX_HEAD`]: cut at its status line if that came, else left to ureq.
    fn too_long(&mut self, out: &mut [u8]) -> usize {
        match self.status() {
            Some(code) => self.cut(out, code, "a head over 128 KiB"),
            None => self.give_up(out),
        }
    }

    /// The code of a complete, final status line at the start of what was collected.
    fn status(&self) -> Option<u16> {
        let line_end = memchr::memchr(b'\n', &self.collected)?;
        // The status line alone, as a head of its own.
        let mut line = self.collected[..=line_end].to_vec();
        line.extend_from_slice(b"\r\n");
        match parse(&line, Leniency::Go) {
            Parsed::Head { .. } => {}
            _ => return None,
        }
        let mut headers = [httparse::EMPTY_HEADER; 1];
        let mut response = httparse::Response::new(&mut headers);
        let _ = response.parse(&line);
        response.code.filter(|&code| is_final(code))
    }

    /// Takes the status line `code` as the whole answer (see the module documentation): one
    /// warning saying what came after it, then an empty body and the end of the connection.
    fn cut(&mut self, out: &mut [u8], code: u16, what: &str) -> usize {
        crate::log::line(format_args!(
            "warning: the sink answered HTTP {code}, then {what}: taken as its whole answer, \
             and the connection dropped"
        ));
        self.in_head = false;
        self.ended = true;
        self.collected = Vec::new();
        self.ready =
            format!("HTTP/1.1 {code:03} \r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .into_bytes();
        self.ready_at = 0;
        self.hand_over(out)
    }

    /// The head of `len` bytes at the start of `collected` goes to `ready`, rewritten; after a
    /// final head, so does everything after it.
    fn rewrite_collected(&mut self, len: usize, is_final: bool) {
        let rest = self.collected.split_off(len);
        let head = std::mem::replace(&mut self.collected, rest);
        self.ready.clear();
        self.ready_at = 0;
        rewrite(&head, &mut self.ready);
        if is_final {
            self.in_head = false;
            self.ready.append(&mut self.collected);
            // A long head's buffer is given back.
            self.collected = Vec::new();
        } else {
            self.check = !self.collected.is_empty();
        }
    }

    /// Stops rewriting this response: what was collected goes over as it came.
    fn give_up(&mut self, out: &mut [u8]) -> usize {
        self.in_head = false;
        self.ready.clear();
        self.ready_at = 0;
        self.ready.append(&mut self.collected);
        self.collected = Vec::new();
        self.hand_over(out)
    }

    fn hand_over(&mut self, out: &mut [u8]) -> usize {
        let ready = &self.ready[self.ready_at..];
        let n = ready.len().min(out.len());
        out[..n].copy_from_slice(&ready[..n]);
        self.ready_at += n;
        if self.ready_at == self.ready.len() && self.ready.capacity() > 4096 {
            self.ready = Vec::new();
            self.ready_at = 0;
        }
        n
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Leniency {
    /// httparse's defaults, as ureq parses.
    None,
    /// Also what Go's client reads: obs-folds and whitespace before a colon.
    Go,
}

fn config(leniency: Leniency) -> httparse::ParserConfig {
    let mut config = httparse::ParserConfig::default();
    if leniency == Leniency::Go {
        config
            .allow_obsolete_multiline_headers_in_responses(true)
            .allow_spaces_after_header_name_in_responses(true);
    }
    config
}

fn parse(bytes: &[u8], leniency: Leniency) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    // httparse fills the status fields as it reads them: a code is there once its line is.
    let result = config(leniency).parse_response(&mut response, bytes);
    let code = response.code.filter(|_| response.reason.is_some());
    match result {
        Ok(httparse::Status::Complete(len)) => Parsed::Head {
            len,
            is_final: code.is_none_or(is_final),
        },
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => Parsed::Refused(code, "more than 128 header lines"),
        Err(_) => Parsed::Refused(code, "a header line that cannot be read"),
    }
}

/// Go's client reads any `HTTP/1.N` status line (one digit, as its `ParseHTTPVersion`), where
/// httparse takes only 1.0 and 1.1: 1.2 to 1.9 are rewritten as 1.1, which is what they mean.
fn go_version(collected: &mut [u8]) {
    if let [
        b'H',
        b'T',
        b'T',
        b'P',
        b'/',
        b'1',
        b'.',
        minor @ b'2'..=b'9',
        b' ',
        ..,
    ] = collected
    {
        *minor = b'1';
    }
}

/// Not 1xx, or 101: no other head follows it.
fn is_final(code: u16) -> bool {
    !(100..200).contains(&code) || code == 101
}

/// What a failed read after the status line means, for the warning.
fn failure(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "nothing more within the timeout",
        io::ErrorKind::ConnectionReset => "a reset of the connection",
        _ => "a failure to read the rest",
    }
}

/// Writes the complete `head` (which [`parse`] took leniently) to `out` as httparse's strict
/// rules take it: each obs-fold joined into its line by one space, the whitespace between a
/// field name and its colon gone, lines ending in CRLF.
fn rewrite(head: &[u8], out: &mut Vec<u8>) {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    if config(Leniency::Go)
        .parse_response(&mut response, head)
        .is_err()
    {
        out.extend_from_slice(head);
        return;
    }
    let version = response.version.unwrap_or(1);
    let code = response.code.unwrap_or_default();
    let reason = response.reason.unwrap_or_default();
    out.extend_from_slice(format!("HTTP/1.{version} {code:03} {reason}\r\n").as_bytes());
    for header in response.headers.iter() {
        out.extend_from_slice(header.name.as_bytes());
        out.extend_from_slice(b": ");
        unfold(header.value, out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A header value with each line break and the whitespace around it made one space.
fn unfold(value: &[u8], out: &mut Vec<u8>) {
    let mut lines = value.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.extend_from_slice(line.trim_ascii_start());
        if lines.peek().is_some() {
            out.push(b' ');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `input` through a [`HeadReader`], `piece` bytes per read, into `out_size` slices.
    fn through(input: &[u8], piece: usize, out_size: usize) -> Vec<u8> {
        let mut reader = HeadReader::default();
        reader.expect_head();
        let mut rest = input;
        let mut got = Vec::new();
        loop {
            let mut out = vec![0; out_size];
            let n = reader
                .read(&mut out, |buf| {
                    let n = piece.min(rest.len()).min(buf.len());
                    buf[..n].copy_from_slice(&rest[..n]);
                    rest = &rest[n..];
                    Ok(n)
                })
                .unwrap();
            if n == 0 {
                return got;
            }
            got.extend_from_slice(&out[..n]);
        }
    }

    fn every_split(input: &str, expected: &str) {
        for piece in 1..=input.len() {
            for out_size in [1, 7, 4096] {
                let got = through(input.as_bytes(), piece, out_size);
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    expected,
                    "read {piece} at a time into {out_size}"
                );
            }
        }
    }

    #[test]
    fn a_plain_head_and_body_pass_unchanged() {
        let plain = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        every_split(plain, plain);
    }

    #[test]
    fn an_obs_fold_becomes_one_space() {
        every_split(
            "HTTP/1.1 200 OK\r\nX-Long: a\r\n  b\r\n\tc\r\nContent-Length: 2\r\n\r\nok",
            "HTTP/1.1 200 OK\r\nX-Long: a b c\r\nContent-Length: 2\r\n\r\nok",
        );
    }

    #[test]
    fn whitespace_before_a_colon_goes() {
        every_split(
            "HTTP/1.1 200 OK\r\nContent-Length : 0\r\nX-A\t: b\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-A: b\r\n\r\n",
        );
    }

    #[test]
    fn bare_line_feeds_become_crlf_in_a_rewritten_head() {
        every_split(
            "HTTP/1.1 200 OK\nContent-Length : 0\n\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        );
    }

    #[test]
    fn an_informational_head_is_followed_by_the_final_one_both_rewritten() {
        every_split(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        );
    }

    #[test]
    fn a_later_http_1_minor_version_is_read_as_1_1() {
        every_split(
            "HTTP/1.2 200 OK\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
        );
    }

    #[test]
    fn the_body_is_never_rewritten() {
        every_split(
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\na : b\r\n c",
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\na : b\r\n c",
        );
    }

    const CUT_200: &str = "HTTP/1.1 200 \r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

    #[test]
    fn a_head_cut_off_before_its_status_line_goes_over_as_it_came() {
        every_split("HTTP/1.1 20", "HTTP/1.1 20");
        every_split("HTTP/1.1 200 O", "HTTP/1.1 200 O");
    }

    #[test]
    fn after_a_status_line_a_close_a_long_head_or_an_unreadable_line_leave_the_status_alone() {
        every_split("HTTP/1.1 200 OK\r\nContent-len", CUT_200);
        every_split(
            "HTTP/1.1 200 OK\r\n X: folded onto the status line\r\n\r\n",
            CUT_200,
        );
        every_split("HTTP/1.1 200 OK\r\nx\u{1}y: 1\r\n\r\nbody", CUT_200);
        let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
        for long in [
            format!(
                "HTTP/1.1 200 OK\r\nX : {}\r\n\r\n",
                "a".repeat(MAX_HEAD + 10)
            ),
            format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD)),
            format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD * 2)),
        ] {
            assert_eq!(text(through(long.as_bytes(), 4096, 4096)), CUT_200);
        }
        let many = format!("HTTP/1.1 503 Busy\r\n{}\r\n", "x: 1\r\n".repeat(129));
        let cut_503 = CUT_200.replace("200", "503");
        assert_eq!(text(through(many.as_bytes(), 4096, 4096)), cut_503);
        let exactly = format!("HTTP/1.1 200 OK\r\n{}\r\n", "x: 1\r\n".repeat(128));
        assert!(through(exactly.as_bytes(), 4096, 4096) == exactly.as_bytes());
    }

    #[test]
    fn a_failed_read_after_a_status_line_ends_the_answer_there() {
        let mut reader = HeadReader::default();
        reader.expect_head();
        let mut given = false;
        let mut out = [0u8; 256];
        let n = reader
            .read(&mut out, |buf| {
                if std::mem::replace(&mut given, true) {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                buf[..17].copy_from_slice(b"HTTP/1.1 202 OK\r\n");
                Ok(17)
            })
            .unwrap();
        assert_eq!(&out[..n], CUT_200.replace("200", "202").as_bytes());
        // Nothing more is read on this connection.
        assert_eq!(
            reader
                .read(&mut out, |_| panic!("read after the end"))
                .unwrap(),
            0
        );
        // Before a status line, the failure is the caller's to see.
        let mut reader = HeadReader::default();
        reader.expect_head();
        let error = reader.read(&mut out, |_| Err(io::ErrorKind::TimedOut.into()));
        assert_eq!(error.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }
}

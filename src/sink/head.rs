//! The response head as ureq's parser gets it. ureq parses heads with httparse's strict rules,
//! which refuse two forms that Go's client reads, and that a sink may send with a 2xx for an
//! event it took: an obs-folded header line (RFC 9112 §5.2: a line starting with space or tab
//! continues the one before) and whitespace between a field name and its colon
//! (`Content-Length : 0`, accepted by Go since golang/go#34540). Refusing them made us post an
//! acknowledged event again and again. The transports pass each response's bytes through a
//! [`HeadReader`]: a head httparse takes strictly goes over untouched; otherwise it is parsed
//! with httparse's two leniencies for exactly those forms and handed over rewritten (a fold
//! becomes one space, the whitespace before a colon goes), the rest as it came. Anything else
//! odd is left for ureq to refuse.

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
}

/// What httparse made of the start of a response.
enum Parsed {
    /// A complete head of this many bytes; `final` unless informational.
    Head {
        len: usize,
        is_final: bool,
    },
    Partial,
    Refused,
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
        if !self.in_head {
            return read(out);
        }
        loop {
            if std::mem::take(&mut self.check) {
                match parse(&self.collected, Leniency::Go) {
                    Parsed::Head { len, is_final } => {
                        self.rewrite_collected(len, is_final);
                        return Ok(self.hand_over(out));
                    }
                    Parsed::Refused => return Ok(self.give_up(out)),
                    Parsed::Partial => {}
                }
            }
            if self.collected.len() > MAX_HEAD {
                return Ok(self.give_up(out));
            }
            let n = read(out)?;
            if n == 0 {
                // The peer closed mid-head: hand over what came, then the end.
                return Ok(self.give_up(out));
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
    match config(leniency).parse_response(&mut response, bytes) {
        Ok(httparse::Status::Complete(len)) => Parsed::Head {
            len,
            is_final: !response.code.is_some_and(is_informational),
        },
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(_) => Parsed::Refused,
    }
}

/// 1xx other than 101: the final head follows it.
fn is_informational(code: u16) -> bool {
    (100..200).contains(&code) && code != 101
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
    fn the_body_is_never_rewritten() {
        every_split(
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\na : b\r\n c",
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\na : b\r\n c",
        );
    }

    #[test]
    fn a_head_cut_off_or_too_long_goes_over_as_it_came() {
        every_split(
            "HTTP/1.1 200 OK\r\nContent-len",
            "HTTP/1.1 200 OK\r\nContent-len",
        );
        let long = format!("HTTP/1.1 200 OK\r\nX : {}", "a".repeat(MAX_HEAD + 10));
        assert_eq!(through(long.as_bytes(), 4096, 4096), long.as_bytes());
    }

    #[test]
    fn a_fold_right_after_the_status_line_is_left_for_the_parser_to_refuse() {
        let odd = "HTTP/1.1 200 OK\r\n X: a\r\n\r\n";
        every_split(odd, odd);
    }
}

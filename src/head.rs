//! The response head as ureq's parser gets it. httparse refuses two forms that Go's client
//! reads, and that a sink may send with a 2xx for an event it took: an obs-folded header line
//! (RFC 9112 §5.2: a line starting with space or tab continues the one before) and whitespace
//! between a field name and its colon (`Content-Length : 0`, accepted by Go since golang/go#34540).
//! Refusing them made us post an acknowledged event again and again. The transports pass each
//! response's bytes through a [`HeadReader`], which collects the head, rewrites those two forms
//! (a fold becomes one space; the whitespace before a colon goes) and hands over the rest as it
//! came. Anything else odd is left for httparse to refuse.

use std::io;

/// The longest head collected and rewritten: as much as ureq's input buffer holds. A longer one
/// is handed over as it came (and refused by ureq as too large).
pub const MAX_HEAD: usize = 128 * 1024;

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
            if let Some(end) = head_end(&self.collected) {
                let rest = self.collected.split_off(end);
                let head = std::mem::replace(&mut self.collected, rest);
                self.ready.clear();
                self.ready_at = 0;
                rewrite(&head, &mut self.ready);
                if !is_informational(&head) {
                    self.in_head = false;
                    self.ready.append(&mut self.collected);
                }
                return Ok(self.hand_over(out));
            }
            if self.collected.len() > MAX_HEAD {
                return Ok(self.give_up(out));
            }
            let n = read(out)?;
            if n == 0 {
                // The peer closed mid-head: hand over what came, then the end.
                return Ok(self.give_up(out));
            }
            if self.collected.is_empty() && !needs_rewrite(&out[..n]) {
                // The usual case: a plain head in one read, nothing to collect or copy.
                self.in_head = false;
                return Ok(n);
            }
            self.collected.extend_from_slice(&out[..n]);
        }
    }

    /// Stops rewriting this response: what was collected goes over as it came.
    fn give_up(&mut self, out: &mut [u8]) -> usize {
        self.in_head = false;
        self.ready.clear();
        self.ready_at = 0;
        self.ready.append(&mut self.collected);
        self.hand_over(out)
    }

    fn hand_over(&mut self, out: &mut [u8]) -> usize {
        let ready = &self.ready[self.ready_at..];
        let n = ready.len().min(out.len());
        out[..n].copy_from_slice(&ready[..n]);
        self.ready_at += n;
        n
    }
}

/// Where the head in `bytes` ends (after its empty line, CRLF or bare LF), if it is complete.
fn head_end(bytes: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            let line = &bytes[line_start..i];
            if line.is_empty() || line == b"\r" {
                return Some(i + 1);
            }
            line_start = i + 1;
        }
    }
    None
}

/// Whether `bytes` (the start of a response) may hold a form [`rewrite`] changes, or is an
/// incomplete or informational head: only a complete, final head without a fold or a space
/// before a colon goes over untouched.
fn needs_rewrite(bytes: &[u8]) -> bool {
    let Some(end) = head_end(bytes) else {
        return true;
    };
    let head = &bytes[..end];
    is_informational(head)
        || head
            .windows(2)
            .any(|w| w[0] == b'\n' && matches!(w[1], b' ' | b'\t'))
        || lines(head)
            .skip(1)
            .any(|line| name_of(line).is_some_and(|n| n.ends_with(b" ") || n.ends_with(b"\t")))
}

/// A 1xx head other than 101: the final head follows it.
fn is_informational(head: &[u8]) -> bool {
    // "HTTP/1.1 1xx": the status code is the second word.
    let code = head.split(|&b| b == b' ').nth(1).unwrap_or_default();
    code.len() == 3 && code[0] == b'1' && code != b"101"
}

/// The lines of a head without their line endings.
fn lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    head.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

/// A header line's name: what comes before the first colon.
fn name_of(line: &[u8]) -> Option<&[u8]> {
    line.iter()
        .position(|&b| b == b':')
        .map(|colon| &line[..colon])
}

/// Writes `head` to `out` with each obs-fold joined into its line by one space and the
/// whitespace between a field name and its colon removed; lines end in CRLF.
fn rewrite(head: &[u8], out: &mut Vec<u8>) {
    // Only a header line can be continued: not the status line, not the empty line.
    let mut after_header = false;
    for (index, line) in lines(head).enumerate() {
        let folded = after_header && matches!(line.first(), Some(b' ' | b'\t'));
        if folded {
            out.truncate(out.len() - 2);
            out.push(b' ');
            out.extend_from_slice(line.trim_ascii_start());
        } else {
            match name_of(line) {
                Some(name) if index > 0 => {
                    out.extend_from_slice(name.trim_ascii_end());
                    out.extend_from_slice(&line[name.len()..]);
                }
                _ => out.extend_from_slice(line),
            }
            after_header = index > 0 && !line.is_empty();
        }
        out.extend_from_slice(b"\r\n");
    }
    // `lines` yields one empty piece after the final LF; its CRLF is one too many.
    out.truncate(out.len() - 2);
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

//! Reading the receiver's HTTP/1.1 requests: the head through httparse, what the server needs
//! of it (the method, the path, keep-alive, the Content-Type, the `ce-*` headers, `Expect`), and
//! the body by length or chunked, as far as the input goes.

/// The longest request head.
pub const MAX_HEAD: usize = 16 * 1024;

/// What a request's head said.
pub struct Head {
    pub method: String,
    pub path: String,
    pub keep_alive: bool,
    pub content_type: Option<String>,
    /// The `ce-*` headers: names lower case without the prefix, values as sent.
    pub ce: Vec<(String, String)>,
    pub expect_continue: bool,
    pub body: Framing,
    /// Why the event cannot be valid whatever its body.
    pub invalid: Option<String>,
}

/// How a request's body is delimited, and how far it has come.
pub enum Framing {
    /// This many bytes more.
    Length(usize),
    Chunked(Chunked),
}

impl Framing {
    pub fn expects_body(&self) -> bool {
        !matches!(self, Framing::Length(0))
    }

    /// Moves what `input` holds of the body into `body`.
    pub fn take(&mut self, input: &mut Vec<u8>, body: &mut Vec<u8>, max: usize) -> Taken {
        match self {
            Framing::Length(left) => {
                let n = (*left).min(input.len());
                body.extend_from_slice(&input[..n]);
                input.drain(..n);
                *left -= n;
                if *left == 0 { Taken::Done } else { Taken::More }
            }
            Framing::Chunked(chunked) => chunked.take(input, body, max),
        }
    }
}

pub enum Taken {
    More,
    Done,
    TooLarge,
    Malformed(&'static str),
}

/// Where a chunked body is.
pub enum Chunked {
    /// Reading a chunk-size line.
    Size,
    /// This many data bytes of the chunk are left.
    Data(usize),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// The trailer lines after the last chunk.
    Trailer,
}

impl Chunked {
    fn take(&mut self, input: &mut Vec<u8>, body: &mut Vec<u8>, max: usize) -> Taken {
        let mut at = 0;
        let result = loop {
            match self {
                Chunked::Size | Chunked::Trailer => {
                    let Some(end) = memchr::memchr(b'\n', &input[at..]) else {
                        if input.len() - at > 1024 {
                            break Taken::Malformed("a chunk line is over 1 KiB");
                        }
                        break Taken::More;
                    };
                    let line = &input[at..at + end];
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    at += end + 1;
                    if let Chunked::Trailer = self {
                        if line.is_empty() {
                            break Taken::Done;
                        }
                        continue;
                    }
                    let digits = line
                        .split(|&b| b == b';')
                        .next()
                        .unwrap_or_default()
                        .trim_ascii();
                    let size = std::str::from_utf8(digits)
                        .ok()
                        .filter(|d| !d.is_empty() && d.len() <= 8)
                        .and_then(|d| usize::from_str_radix(d, 16).ok());
                    match size {
                        None => break Taken::Malformed("a chunk size is not hexadecimal"),
                        Some(0) => *self = Chunked::Trailer,
                        Some(n) if body.len() + n > max => break Taken::TooLarge,
                        Some(n) => *self = Chunked::Data(n),
                    }
                }
                Chunked::Data(left) => {
                    let n = (*left).min(input.len() - at);
                    body.extend_from_slice(&input[at..at + n]);
                    at += n;
                    *left -= n;
                    if *left > 0 {
                        break Taken::More;
                    }
                    *self = Chunked::DataEnd;
                }
                Chunked::DataEnd => match &input[at..] {
                    [b'\r', b'\n', ..] => {
                        at += 2;
                        *self = Chunked::Size;
                    }
                    [b'\n', ..] => {
                        at += 1;
                        *self = Chunked::Size;
                    }
                    [] | [b'\r'] => break Taken::More,
                    _ => break Taken::Malformed("a chunk's data is not followed by CRLF"),
                },
            }
        };
        input.drain(..at);
        result
    }
}

pub enum HeadRead {
    Partial,
    Complete(Head, usize),
    Refused(u16, &'static str),
}

/// The request head at the start of `input`, if it is all there.
pub fn read_head(input: &[u8], max_body: usize) -> HeadRead {
    // Room for one header a line.
    let lines = memchr::memchr_iter(b'\n', input).count();
    if lines < 2 && !input.starts_with(b"\r\n") && !input.starts_with(b"\n") {
        return HeadRead::Partial;
    }
    let mut headers = vec![httparse::EMPTY_HEADER; lines + 1];
    let mut request = httparse::Request::new(&mut headers);
    let length = match request.parse(input) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return HeadRead::Partial,
        Err(_) => return HeadRead::Refused(400, "the request head cannot be read"),
    };
    if length > MAX_HEAD {
        return HeadRead::Refused(431, "the request head is over 16 KiB");
    }
    let minor = request.version.unwrap_or(1);
    let mut head = Head {
        method: request.method.unwrap_or_default().to_owned(),
        path: request.path.unwrap_or_default().to_owned(),
        keep_alive: minor == 1,
        content_type: None,
        ce: Vec::new(),
        expect_continue: false,
        body: Framing::Length(0),
        invalid: None,
    };
    let mut length_given: Option<&[u8]> = None;
    let mut chunked = false;
    for header in request.headers.iter() {
        let name = header.name;
        let value = header.value.trim_ascii();
        if name.len() > 3 && name[..3].eq_ignore_ascii_case("ce-") {
            // An attribute that is not text makes the event invalid (its POST is refused as
            // such, counted with the others).
            if std::str::from_utf8(value).is_err() && head.invalid.is_none() {
                head.invalid = Some(format!("the ce-{} header is not UTF-8", &name[3..]));
            }
            let text = String::from_utf8_lossy(value).into_owned();
            head.ce.push((name[3..].to_ascii_lowercase(), text));
        } else if name.eq_ignore_ascii_case("content-type") {
            if head.content_type.is_none() {
                let Ok(text) = std::str::from_utf8(value) else {
                    return HeadRead::Refused(400, "the Content-Type is not UTF-8");
                };
                head.content_type = Some(text.to_owned());
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            if length_given.is_some_and(|given| given != value) {
                return HeadRead::Refused(400, "two different Content-Length headers");
            }
            length_given = Some(value);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.eq_ignore_ascii_case(b"chunked") || chunked {
                return HeadRead::Refused(501, "a transfer coding other than chunked");
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for option in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if option.eq_ignore_ascii_case(b"close") {
                    head.keep_alive = false;
                } else if option.eq_ignore_ascii_case(b"keep-alive") {
                    head.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") && value.eq_ignore_ascii_case(b"100-continue")
        {
            head.expect_continue = true;
        }
    }
    if chunked {
        head.body = Framing::Chunked(Chunked::Size);
    } else if let Some(given) = length_given {
        let digits = std::str::from_utf8(given)
            .ok()
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
        let Some(length) = digits.and_then(|d| d.parse::<usize>().ok()) else {
            return HeadRead::Refused(400, "the Content-Length is not a number");
        };
        if length > max_body {
            return HeadRead::Refused(413, "the body is over --max-body");
        }
        head.body = Framing::Length(length);
    }
    HeadRead::Complete(head, length)
}

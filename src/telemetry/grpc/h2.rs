//! An HTTP/2 client connection (RFC 9113) for one call at a time, on the one thread: the
//! preface and SETTINGS with their ACK; flow control on the connection and the stream (a body
//! larger than the peer's window waits for WINDOW_UPDATE); the peer's MAX_FRAME_SIZE and
//! MAX_HEADER_LIST_SIZE respected, ours enforced; header blocks over CONTINUATION frames; PING
//! answered; GOAWAY and RST_STREAM ending the call (the connection is not used again after a
//! GOAWAY or any error). Every wait goes through the waiter until the call's deadline, and a stop
//! signal ends it.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use rustls::ClientConnection;

use super::hpack::{self, Decoder, Field};
use crate::wait::{Interest, OnStop, Purpose, Unready, Waiter, Watched};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The largest frame payload we take (our SETTINGS_MAX_FRAME_SIZE: the protocol's default).
pub const MAX_FRAME: usize = 16_384;
/// The largest header list we take (our SETTINGS_MAX_HEADER_LIST_SIZE).
pub const MAX_HEADER_LIST: usize = 16_384;
/// The largest response body we keep: an OTLP export's answer is a few bytes.
const MAX_RESPONSE: usize = 256 * 1024;
/// The window of every stream and of the connection, as the protocol starts them.
const DEFAULT_WINDOW: i64 = 65_535;

mod kind {
    pub const DATA: u8 = 0;
    pub const HEADERS: u8 = 1;
    pub const RST_STREAM: u8 = 3;
    pub const SETTINGS: u8 = 4;
    pub const PUSH_PROMISE: u8 = 5;
    pub const PING: u8 = 6;
    pub const GOAWAY: u8 = 7;
    pub const WINDOW_UPDATE: u8 = 8;
    pub const CONTINUATION: u8 = 9;
}

mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// Why a call did not complete.
#[derive(Debug)]
pub enum Error {
    /// A stop signal ended a wait.
    Stopped(crate::wait::Stop),
    /// The deadline came.
    TimedOut,
    /// The connection closed, or failed to be read or written: worth a new one.
    Closed(String),
    /// The peer broke the protocol (a frame too large, garbage, an HTTP/1.x answer...).
    Protocol(String),
    /// The peer refused the stream: RST_STREAM, or GOAWAY before it.
    Refused(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Stopped(stop) => write!(f, "stopped by {}", stop.name()),
            Error::TimedOut => f.write_str("no answer in time"),
            Error::Closed(why) | Error::Protocol(why) | Error::Refused(why) => f.write_str(why),
        }
    }
}

/// The socket, in the clear or in TLS, read and written without blocking.
pub struct Io {
    stream: TcpStream,
    tls: Option<Box<ClientConnection>>,
    waiter: Arc<Waiter>,
}

impl Io {
    pub fn new(stream: TcpStream, tls: Option<ClientConnection>, waiter: Arc<Waiter>) -> Io {
        Io {
            stream,
            tls: tls.map(Box::new),
            waiter,
        }
    }

    fn wait(&self, interest: Interest, deadline: Instant) -> Result<(), Error> {
        let mut watched = [Watched::new(self.stream.as_raw_fd(), interest)];
        match self
            .waiter
            .wait_for(&mut watched, deadline, OnStop::End, Purpose::Other)
        {
            Ok(()) => Ok(()),
            Err(Unready::TimedOut) => Err(Error::TimedOut),
            Err(Unready::Stopped(stop)) => Err(Error::Stopped(stop)),
            Err(Unready::Failed(error)) => Err(Error::Closed(error.to_string())),
        }
    }

    /// Completes the TLS handshake, if any, and checks that the peer chose HTTP/2.
    pub fn handshake(&mut self, deadline: Instant) -> Result<(), Error> {
        let Some(tls) = &mut self.tls else {
            return Ok(());
        };
        while tls.is_handshaking() {
            if tls.wants_write() {
                match tls.write_tls(&mut self.stream) {
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        let mut watched = [Watched::new(self.stream.as_raw_fd(), Interest::Write)];
                        wait(&self.waiter, &mut watched, deadline)?;
                        continue;
                    }
                    Err(e) => return Err(Error::Closed(format!("TLS: {e}"))),
                }
            }
            match tls.read_tls(&mut self.stream) {
                Ok(0) => {
                    return Err(Error::Closed(
                        "the connection closed during the TLS handshake".into(),
                    ));
                }
                Ok(_) => {
                    if let Err(e) = tls.process_new_packets() {
                        let _ = tls.write_tls(&mut self.stream);
                        return Err(Error::Closed(format!("TLS: {e}")));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut watched = [Watched::new(self.stream.as_raw_fd(), Interest::Read)];
                    wait(&self.waiter, &mut watched, deadline)?;
                }
                Err(e) => return Err(Error::Closed(format!("TLS: {e}"))),
            }
        }
        if tls.alpn_protocol() != Some(b"h2") {
            return Err(Error::Protocol(
                "the collector did not choose HTTP/2 (ALPN h2) for TLS: it does not serve gRPC there".into(),
            ));
        }
        Ok(())
    }

    fn write_all(&mut self, mut bytes: &[u8], deadline: Instant) -> Result<(), Error> {
        let Io {
            stream,
            tls,
            waiter,
        } = self;
        if let Some(tls) = tls {
            tls.writer()
                .write_all(bytes)
                .map_err(|e| Error::Closed(e.to_string()))?;
            while tls.wants_write() {
                match tls.write_tls(stream) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        let mut watched = [Watched::new(stream.as_raw_fd(), Interest::Write)];
                        wait(waiter, &mut watched, deadline)?;
                    }
                    Err(e) => return Err(Error::Closed(e.to_string())),
                }
            }
            return Ok(());
        }
        while !bytes.is_empty() {
            match self.stream.write(bytes) {
                Ok(0) => return Err(Error::Closed("the connection closed".into())),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.wait(Interest::Write, deadline)?
                }
                Err(e) => return Err(Error::Closed(e.to_string())),
            }
        }
        Ok(())
    }

    /// Appends what comes next to `input`, waiting for at least one byte.
    fn read_more(&mut self, input: &mut Vec<u8>, deadline: Instant) -> Result<(), Error> {
        let mut chunk = [0u8; 4096];
        loop {
            let Io {
                stream,
                tls,
                waiter,
            } = self;
            if let Some(tls) = tls {
                match tls.reader().read(&mut chunk) {
                    Ok(0) => {
                        return Err(Error::Closed("the collector closed the connection".into()));
                    }
                    Ok(n) => {
                        input.extend_from_slice(&chunk[..n]);
                        return Ok(());
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(Error::Closed(e.to_string())),
                }
                match tls.read_tls(stream) {
                    Ok(0) => {
                        return Err(Error::Closed("the collector closed the connection".into()));
                    }
                    Ok(_) => {
                        if let Err(e) = tls.process_new_packets() {
                            return Err(Error::Closed(format!("TLS: {e}")));
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        let mut watched = [Watched::new(stream.as_raw_fd(), Interest::Read)];
                        wait(waiter, &mut watched, deadline)?;
                    }
                    Err(e) => return Err(Error::Closed(e.to_string())),
                }
                continue;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(Error::Closed("the collector closed the connection".into())),
                Ok(n) => {
                    input.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.wait(Interest::Read, deadline)?
                }
                Err(e) => return Err(Error::Closed(e.to_string())),
            }
        }
    }
}

fn wait(waiter: &Waiter, watched: &mut [Watched], deadline: Instant) -> Result<(), Error> {
    match waiter.wait_for(watched, deadline, OnStop::End, Purpose::Other) {
        Ok(()) => Ok(()),
        Err(Unready::TimedOut) => Err(Error::TimedOut),
        Err(Unready::Stopped(stop)) => Err(Error::Stopped(stop)),
        Err(Unready::Failed(error)) => Err(Error::Closed(error.to_string())),
    }
}

/// A frame as read: type, flags, stream, payload.
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

/// A call's answer: the response headers, the body, and the trailers (for a trailers-only
/// answer, the same fields as the headers).
#[derive(Debug, Default)]
pub struct Response {
    pub headers: Vec<Field>,
    pub body: Vec<u8>,
    pub trailers: Vec<Field>,
}

/// See the module documentation.
pub struct Connection {
    io: Io,
    decoder: Decoder,
    /// Bytes read and not yet framed.
    input: Vec<u8>,
    next_stream: u32,
    /// The peer's settings.
    peer_max_frame: usize,
    peer_window: i64,
    peer_max_header_list: usize,
    /// What we may still send on the connection.
    send_window: i64,
    /// What the peer may still send on the connection before we give more.
    receive_window: i64,
    /// A GOAWAY came, or the connection failed: no new stream on it.
    pub finished: bool,
}

impl Connection {
    /// Opens HTTP/2 on `io` (its TLS handshake done): the preface and our SETTINGS, then the
    /// peer's SETTINGS, which must come first and by `deadline`.
    pub fn open(io: Io, deadline: Instant) -> Result<Connection, Error> {
        let mut connection = Connection {
            io,
            decoder: Decoder::new(4096),
            input: Vec::new(),
            next_stream: 1,
            peer_max_frame: MAX_FRAME,
            peer_window: DEFAULT_WINDOW,
            peer_max_header_list: usize::MAX,
            send_window: DEFAULT_WINDOW,
            receive_window: DEFAULT_WINDOW,
            finished: false,
        };
        let mut hello = PREFACE.to_vec();
        // ENABLE_PUSH 0, MAX_HEADER_LIST_SIZE.
        let mut settings = Vec::new();
        for (id, value) in [(0x2u16, 0u32), (0x6, MAX_HEADER_LIST as u32)] {
            settings.extend_from_slice(&id.to_be_bytes());
            settings.extend_from_slice(&value.to_be_bytes());
        }
        frame(&mut hello, kind::SETTINGS, 0, 0, &settings);
        connection.io.write_all(&hello, deadline)?;
        let first = connection.read_frame(deadline)?;
        if first.kind != kind::SETTINGS || first.flags & flag::ACK != 0 {
            return Err(Error::Protocol(
                "the collector's first frame was not SETTINGS".into(),
            ));
        }
        connection.settings(&first.payload, deadline)?;
        Ok(connection)
    }

    /// One request on a new stream: `headers` (pseudo-headers first), then `body`; the answer
    /// once the stream ends, all by `deadline`.
    pub fn call(
        &mut self,
        headers: &[(&str, &str)],
        body: &[u8],
        deadline: Instant,
    ) -> Result<Response, Error> {
        let stream = self.next_stream;
        let result = self.exchange(headers, body, deadline);
        match &result {
            Ok(_) => {}
            // Out of time, or stopped (the exit's flush follows): the call is cancelled
            // (RST_STREAM CANCEL), and the connection kept if that can be said at once, as Go's
            // ClientConn keeps it.
            Err(Error::TimedOut | Error::Stopped(_)) => {
                let mut cancel = Vec::new();
                frame(
                    &mut cancel,
                    kind::RST_STREAM,
                    0,
                    stream,
                    &8u32.to_be_bytes(),
                );
                let soon = Instant::now() + std::time::Duration::from_millis(10);
                if self.io.write_all(&cancel, soon).is_err() {
                    self.finished = true;
                }
            }
            Err(_) => self.finished = true,
        }
        result
    }

    fn exchange(
        &mut self,
        headers: &[(&str, &str)],
        body: &[u8],
        deadline: Instant,
    ) -> Result<Response, Error> {
        let listed: usize = headers.iter().map(|(n, v)| n.len() + v.len() + 32).sum();
        if listed > self.peer_max_header_list {
            return Err(Error::Protocol(format!(
                "the request's headers ({listed} bytes) are over the collector's MAX_HEADER_LIST_SIZE"
            )));
        }
        let stream = self.next_stream;
        self.next_stream += 2;
        let mut block = Vec::new();
        hpack::encode(headers.iter().copied(), &mut block);
        let mut out = Vec::with_capacity(block.len() + 64);
        let end_stream = if body.is_empty() { flag::END_STREAM } else { 0 };
        let mut chunks = block.chunks(self.peer_max_frame).peekable();
        let mut first = true;
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            let end_headers = if last { flag::END_HEADERS } else { 0 };
            if first {
                frame(
                    &mut out,
                    kind::HEADERS,
                    end_stream | end_headers,
                    stream,
                    chunk,
                );
            } else {
                frame(&mut out, kind::CONTINUATION, end_headers, stream, chunk);
            }
            first = false;
        }
        self.io.write_all(&out, deadline)?;
        let mut stream_window = self.peer_window;
        let mut sent = 0;
        let mut response = Response::default();
        let mut state = StreamState::Open;
        while sent < body.len() {
            let room = self
                .send_window
                .min(stream_window)
                .min(self.peer_max_frame as i64);
            if room <= 0 {
                // Wait for WINDOW_UPDATE, taking whatever else comes meanwhile.
                let frame = self.read_frame(deadline)?;
                if let Some(increase) =
                    self.handle(frame, stream, &mut response, &mut state, deadline)?
                {
                    stream_window += increase;
                }
                if state != StreamState::Open {
                    // The server answered (or refused) before the body was all sent.
                    return self.finish(response, state);
                }
                continue;
            }
            let n = (room as usize).min(body.len() - sent);
            let last = sent + n == body.len();
            let mut data = Vec::with_capacity(n + 9);
            frame(
                &mut data,
                kind::DATA,
                if last { flag::END_STREAM } else { 0 },
                stream,
                &body[sent..sent + n],
            );
            self.io.write_all(&data, deadline)?;
            sent += n;
            self.send_window -= n as i64;
            stream_window -= n as i64;
        }
        while state == StreamState::Open {
            let frame = self.read_frame(deadline)?;
            self.handle(frame, stream, &mut response, &mut state, deadline)?;
        }
        self.finish(response, state)
    }

    fn finish(&mut self, response: Response, state: StreamState) -> Result<Response, Error> {
        match state {
            StreamState::Reset(code) => Err(Error::Refused(format!(
                "the collector reset the call (RST_STREAM {code})"
            ))),
            StreamState::GoneAway(code) => Err(Error::Refused(format!(
                "the collector went away (GOAWAY {code}) before the call"
            ))),
            _ => Ok(response),
        }
    }

    /// Takes one frame for a call on `stream`; a WINDOW_UPDATE for it returns the increase.
    fn handle(
        &mut self,
        frame: Frame,
        stream: u32,
        response: &mut Response,
        state: &mut StreamState,
        deadline: Instant,
    ) -> Result<Option<i64>, Error> {
        let ours = frame.stream == stream;
        match frame.kind {
            kind::SETTINGS if frame.flags & flag::ACK == 0 => {
                self.settings(&frame.payload, deadline)?
            }
            kind::SETTINGS => {}
            kind::PING if frame.flags & flag::ACK == 0 => {
                if frame.payload.len() != 8 {
                    return Err(Error::Protocol("a PING frame not 8 bytes long".into()));
                }
                let mut pong = Vec::new();
                self::frame(&mut pong, kind::PING, flag::ACK, 0, &frame.payload);
                self.io.write_all(&pong, deadline)?;
            }
            kind::PING => {}
            kind::WINDOW_UPDATE => {
                let increase = i64::from(u32_at(&frame.payload, 0)? & 0x7fff_ffff);
                if frame.stream == 0 {
                    self.send_window += increase;
                    if self.send_window > i64::from(i32::MAX) {
                        return Err(Error::Protocol("the connection's window overflowed".into()));
                    }
                } else if ours {
                    return Ok(Some(increase));
                }
            }
            kind::GOAWAY => {
                self.finished = true;
                let last = u32_at(&frame.payload, 0)? & 0x7fff_ffff;
                let code = u32_at(&frame.payload, 4).unwrap_or(0);
                if last < stream {
                    *state = StreamState::GoneAway(code);
                }
            }
            kind::RST_STREAM if ours => *state = StreamState::Reset(u32_at(&frame.payload, 0)?),
            kind::PUSH_PROMISE => {
                return Err(Error::Protocol(
                    "a PUSH_PROMISE, with push turned off".into(),
                ));
            }
            kind::HEADERS => {
                let end_stream = frame.flags & flag::END_STREAM != 0;
                let fields = self.header_block(frame, deadline)?;
                if ours {
                    if response.headers.is_empty() {
                        response.headers = fields;
                        if end_stream {
                            response.trailers = response.headers.clone();
                        }
                    } else {
                        response.trailers = fields;
                    }
                    if end_stream {
                        *state = StreamState::Ended;
                    }
                }
            }
            kind::CONTINUATION => {
                return Err(Error::Protocol("a CONTINUATION frame out of place".into()));
            }
            kind::DATA => {
                let data = unpad(&frame)?;
                let size = frame.payload.len() as i64;
                self.receive_window -= size;
                if ours {
                    if response.body.len() + data.len() > MAX_RESPONSE {
                        return Err(Error::Protocol(
                            "the collector's answer is over 256 KiB".into(),
                        ));
                    }
                    response.body.extend_from_slice(data);
                    if frame.flags & flag::END_STREAM != 0 {
                        *state = StreamState::Ended;
                    }
                }
                // Give the window back once half of it is used, on the connection and stream.
                if self.receive_window < DEFAULT_WINDOW / 2 {
                    let give = DEFAULT_WINDOW - self.receive_window;
                    let mut update = Vec::new();
                    self::frame(
                        &mut update,
                        kind::WINDOW_UPDATE,
                        0,
                        0,
                        &(give as u32).to_be_bytes(),
                    );
                    if ours && *state == StreamState::Open {
                        self::frame(
                            &mut update,
                            kind::WINDOW_UPDATE,
                            0,
                            stream,
                            &(give as u32).to_be_bytes(),
                        );
                    }
                    self.io.write_all(&update, deadline)?;
                    self.receive_window = DEFAULT_WINDOW;
                }
            }
            // Unknown types are ignored (RFC 9113 §4.1).
            _ => {}
        }
        Ok(None)
    }

    /// The fields of a header block: this HEADERS frame and the CONTINUATION frames after it.
    fn header_block(&mut self, first: Frame, deadline: Instant) -> Result<Vec<Field>, Error> {
        let mut block = unpad(&first)?.to_vec();
        if first.flags & flag::PRIORITY != 0 {
            if block.len() < 5 {
                return Err(Error::Protocol(
                    "a HEADERS frame too short for its priority".into(),
                ));
            }
            block.drain(..5);
        }
        let mut end = first.flags & flag::END_HEADERS != 0;
        while !end {
            let next = self.read_frame(deadline)?;
            if next.kind != kind::CONTINUATION || next.stream != first.stream {
                return Err(Error::Protocol(
                    "a header block not continued by CONTINUATION".into(),
                ));
            }
            if block.len() + next.payload.len() > MAX_HEADER_LIST * 2 {
                return Err(Error::Protocol(
                    "a header block over our MAX_HEADER_LIST_SIZE".into(),
                ));
            }
            block.extend_from_slice(&next.payload);
            end = next.flags & flag::END_HEADERS != 0;
        }
        self.decoder
            .decode(&block, MAX_HEADER_LIST)
            .map_err(|e| match e {
                hpack::Error::TooLarge => {
                    Error::Protocol("a header list over our MAX_HEADER_LIST_SIZE".into())
                }
                hpack::Error::Compression(why) => Error::Protocol(format!("HPACK: {why}")),
            })
    }

    /// Applies the peer's SETTINGS and acknowledges them.
    fn settings(&mut self, payload: &[u8], deadline: Instant) -> Result<(), Error> {
        if payload.len() % 6 != 0 {
            return Err(Error::Protocol(
                "a SETTINGS frame not a multiple of 6 bytes".into(),
            ));
        }
        for setting in payload.chunks(6) {
            let id = u16::from_be_bytes([setting[0], setting[1]]);
            let value = u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]);
            match id {
                0x4 => {
                    if value > 0x7fff_ffff {
                        return Err(Error::Protocol("an INITIAL_WINDOW_SIZE over 2^31-1".into()));
                    }
                    self.peer_window = i64::from(value);
                }
                0x5 => {
                    if !(16_384..=16_777_215).contains(&value) {
                        return Err(Error::Protocol("a MAX_FRAME_SIZE out of range".into()));
                    }
                    self.peer_max_frame = value as usize;
                }
                0x6 => self.peer_max_header_list = value as usize,
                _ => {}
            }
        }
        let mut ack = Vec::new();
        frame(&mut ack, kind::SETTINGS, flag::ACK, 0, &[]);
        self.io.write_all(&ack, deadline)
    }

    /// The next frame, waiting for it by `deadline`.
    fn read_frame(&mut self, deadline: Instant) -> Result<Frame, Error> {
        loop {
            if self.input.len() >= 9 {
                if self.input.starts_with(b"HTTP/1.") {
                    return Err(Error::Protocol(
                        "the collector answered in HTTP/1.x: it does not speak HTTP/2 (gRPC) on that port".into(),
                    ));
                }
                let length = usize::from(self.input[0]) << 16
                    | usize::from(self.input[1]) << 8
                    | usize::from(self.input[2]);
                if length > MAX_FRAME {
                    let mut goaway = Vec::new();
                    frame(&mut goaway, kind::GOAWAY, 0, 0, &[0, 0, 0, 0, 0, 0, 0, 6]);
                    let _ = self.io.write_all(&goaway, deadline);
                    return Err(Error::Protocol(format!(
                        "a frame of {length} bytes, over our MAX_FRAME_SIZE"
                    )));
                }
                if self.input.len() >= 9 + length {
                    let frame = Frame {
                        kind: self.input[3],
                        flags: self.input[4],
                        stream: u32::from_be_bytes([
                            self.input[5],
                            self.input[6],
                            self.input[7],
                            self.input[8],
                        ]) & 0x7fff_ffff,
                        payload: self.input[9..9 + length].to_vec(),
                    };
                    self.input.drain(..9 + length);
                    return Ok(frame);
                }
            }
            self.io.read_more(&mut self.input, deadline)?;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamState {
    Open,
    Ended,
    Reset(u32),
    GoneAway(u32),
}

/// Appends a frame.
fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let length = payload.len() as u32;
    out.extend_from_slice(&length.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// A frame's payload without its padding.
fn unpad(frame: &Frame) -> Result<&[u8], Error> {
    if frame.flags & flag::PADDED == 0 {
        return Ok(&frame.payload);
    }
    let pad = usize::from(
        *frame
            .payload
            .first()
            .ok_or_else(|| Error::Protocol("an empty padded frame".into()))?,
    );
    frame
        .payload
        .get(1..frame.payload.len().saturating_sub(pad))
        .filter(|_| pad < frame.payload.len())
        .ok_or_else(|| Error::Protocol("padding longer than its frame".into()))
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, Error> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| Error::Protocol("a frame too short".into()))
}

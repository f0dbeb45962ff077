//! The receiver's HTTP/1.1 server on the one thread: up to [`MAX_CONNECTIONS`] keep-alive
//! connections (plain or TLS), each non-blocking with its own buffers and deadline, served when
//! the waiter says their sockets are ready. Requests are read whole (heads up to
//! [`MAX_HEAD`], bodies up to `--max-body`, by length or chunked), pipelined requests answered in
//! order, and every bad request answered, never left hanging:
//!
//! | request | answer |
//! |---|---|
//! | not a valid CloudEvent | 400 and a one-line reason |
//! | another method | 405 |
//! | body over `--max-body` | 413, then the connection closes |
//! | head over 16 KiB | 431, then the connection closes |
//! | a transfer coding other than chunked | 501, then the connection closes |
//!
//! A client that sends its head too slowly, leaves a body unfinished or does not take its
//! answer loses its connection at a deadline; when every connection is taken, the one idle the
//! longest makes way for a new one.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::cloudevent::{self, BATCH, Received, STRUCTURED, media_type};
use super::config::{Output, Settings};
use super::judge::Judge;
use super::print::Printer;
use super::request::{Head, HeadRead, MAX_HEAD, Taken, read_head};
use super::tls::Tls;
use crate::linger::Linger;
use crate::log;
use crate::wait::{Interest, Watched};

/// Connections open at once.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a request head may take, from its first byte (or from the connection's start).
const HEAD_TIME: Duration = Duration::from_secs(10);
/// How long a body may take once its head came.
const BODY_TIME: Duration = Duration::from_secs(30);
/// How long a kept-alive connection may wait for its next request.
const IDLE_TIME: Duration = Duration::from_secs(120);
/// How long a client has to take an answer.
const ANSWER_TIME: Duration = Duration::from_secs(10);
/// Answers waiting to be taken before no further request of the connection is read.
const MAX_OUTPUT: usize = 1024 * 1024;

pub struct Server {
    listener: TcpListener,
    tls: Option<Tls>,
    connections: Vec<Connection>,
    pub judge: Judge,
    pub printer: Printer,
    answers: Vec<u16>,
    answered: usize,
    answer_delay: Duration,
    retry_after: Option<u64>,
    max_body: usize,
    strict: bool,
    expect: Option<u64>,
    /// The first violation of the expectations (`--strict`).
    pub violation: Option<String>,
    /// `--within` ran out before the expected events came.
    pub timed_out: bool,
}

impl Server {
    pub fn new(listener: TcpListener, tls: Option<Tls>, settings: &Settings) -> Server {
        Server {
            listener,
            tls,
            connections: Vec::new(),
            judge: Judge::new(settings.period, settings.tolerance),
            printer: Printer::new(settings.output),
            answers: settings.answers.clone(),
            answered: 0,
            answer_delay: settings.answer_delay,
            retry_after: settings.retry_after,
            max_body: settings.max_body,
            strict: settings.strict,
            expect: settings.expect,
            violation: None,
            timed_out: false,
        }
    }

    /// The expected events came: as many as `--expect`, none missing, none twice.
    pub fn expectation_met(&self) -> bool {
        self.expect.is_some_and(|n| {
            self.judge.unique() >= n && self.judge.missing() == 0 && self.judge.duplicated() == 0
        })
    }

    /// `active`, `success` or `failed`, as the report's `state`.
    pub fn state(&self) -> &'static str {
        if self.violation.is_some() || self.timed_out {
            "failed"
        } else if self.expectation_met() {
            "success"
        } else {
            "active"
        }
    }

    /// Writes the answers still waiting, for at most `budget` (the receiver is ending).
    pub fn settle_answers(&mut self, budget: Duration) {
        let until = Instant::now() + budget;
        while Instant::now() < until {
            self.connections.retain_mut(Connection::transmit);
            if !self.connections.iter().any(Connection::pending_output) {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Appends the descriptors to watch: the listener while a connection can be taken, and
    /// each connection for what it waits for.
    pub fn watch(&self, watched: &mut Vec<Watched>) {
        let room = self.connections.len() < MAX_CONNECTIONS
            || self.connections.iter().any(Connection::is_idle);
        if room {
            watched.push(Watched::new(self.listener.as_raw_fd(), Interest::Read));
        }
        for connection in &self.connections {
            if let Some(interest) = connection.interest() {
                watched.push(Watched::new(connection.stream.as_raw_fd(), interest));
            }
        }
    }

    /// When something must be done even if no socket is ready.
    pub fn due(&self) -> Option<Instant> {
        let connections = self.connections.iter().map(Connection::due).min();
        let tls = self.tls.as_ref().map(Tls::due);
        crate::wait::earliest(connections, tls)
    }

    /// Does what `ready` (the descriptors [`Server::watch`] appended, in order) and the time
    /// allow, without waiting.
    pub fn serve(&mut self, ready: &[Watched], now: Instant) {
        if let Some(tls) = &mut self.tls {
            tls.refresh(now);
        }
        let listener_fd = self.listener.as_raw_fd();
        let mut accept = false;
        let mut ready_fds: Vec<i32> = Vec::new();
        for w in ready.iter().filter(|w| w.ready) {
            if w.fd == listener_fd {
                accept = true;
            } else {
                ready_fds.push(w.fd);
            }
        }
        let mut connections = std::mem::take(&mut self.connections);
        connections.retain_mut(|connection| {
            let is_ready = ready_fds.contains(&connection.stream.as_raw_fd());
            self.step(connection, is_ready, now)
        });
        self.connections = connections;
        if accept {
            self.accept(now);
        }
    }

    fn accept(&mut self, now: Instant) {
        for _ in 0..MAX_CONNECTIONS {
            if self.connections.len() >= MAX_CONNECTIONS {
                // The connection idle the longest makes way.
                let idle = self
                    .connections
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.is_idle())
                    .min_by_key(|(_, c)| c.last_progress)
                    .map(|(i, _)| i);
                match idle {
                    Some(i) => drop(self.connections.remove(i)),
                    None => return,
                }
            }
            let Ok((stream, _)) = self.listener.accept() else {
                return;
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let _ = stream.set_nodelay(true);
            let tls = match &self.tls {
                Some(tls) => match rustls::ServerConnection::new(tls.config()) {
                    Ok(connection) => Some(Box::new(connection)),
                    Err(_) => continue,
                },
                None => None,
            };
            let mut connection = Connection::new(stream, tls, now);
            // A client that sent its request with the connection is served at once.
            if self.step(&mut connection, true, now) {
                self.connections.push(connection);
            }
        }
    }

    /// Moves `connection` on as far as it goes; false once it is done with.
    fn step(&mut self, connection: &mut Connection, ready: bool, now: Instant) -> bool {
        if let Phase::Lingering(linger) = &mut connection.phase {
            if ready && !linger.read(&mut connection.stream) {
                return false;
            }
            return now < linger.until();
        }
        if ready && connection.wants_input() {
            connection.last_progress = now;
        }
        if ready && connection.wants_input() && !connection.receive() {
            // The peer closed or the connection failed: what it asked is still answered if it
            // can be (a half-closed client reads on).
            connection.eof = true;
        }
        self.advance(connection, now);
        if !connection.transmit() {
            return false;
        }
        if connection.eof && !connection.pending_output() {
            // Nothing more can come: a request half read never ends.
            return false;
        }
        if connection.finished() && connection.closing {
            // Answered and closing: shut the write side, then drop what the client still
            // sends, so that its answer is not lost to a reset.
            return match Linger::start(&connection.stream, now) {
                Ok(linger) => {
                    connection.phase = Phase::Lingering(linger);
                    true
                }
                Err(_) => false,
            };
        }
        if connection.due() <= now {
            if connection.pending_output() {
                // Not taken in time: dropped with a reset, never cut short in silence.
                let _ = crate::sys::reset_on_close(&connection.stream);
            }
            return false;
        }
        true
    }

    /// Handles every whole request in the connection's input, in order.
    fn advance(&mut self, connection: &mut Connection, now: Instant) {
        loop {
            if connection.closing || connection.queued() > MAX_OUTPUT {
                return;
            }
            match std::mem::replace(&mut connection.phase, Phase::Head) {
                Phase::Head => match read_head(&connection.input, self.max_body) {
                    HeadRead::Partial if connection.input.len() > MAX_HEAD => {
                        self.refuse(connection, 431, "the request head is over 16 KiB", now);
                    }
                    HeadRead::Partial => {
                        if !connection.input.is_empty() && connection.head_started.is_none() {
                            connection.head_started = Some(now);
                        }
                        return;
                    }
                    HeadRead::Refused(status, reason) => {
                        self.refuse(connection, status, reason, now)
                    }
                    HeadRead::Complete(head, length) => {
                        connection.input.drain(..length);
                        connection.head_started = None;
                        connection.body_started = Some(now);
                        if head.expect_continue && head.body.expects_body() {
                            connection
                                .output
                                .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                            connection.writing_since.get_or_insert(now);
                        }
                        connection.phase = Phase::Body(Box::new(head), Vec::new());
                    }
                },
                Phase::Body(mut head, mut body) => {
                    match head
                        .body
                        .take(&mut connection.input, &mut body, self.max_body)
                    {
                        Taken::More => {
                            connection.phase = Phase::Body(head, body);
                            return;
                        }
                        Taken::TooLarge => {
                            let reason =
                                format!("the body is over --max-body ({} bytes)", self.max_body);
                            self.refuse(connection, 413, &reason, now);
                        }
                        Taken::Malformed(reason) => self.refuse(connection, 400, reason, now),
                        Taken::Done => {
                            let (answer, delayed) = self.request(&head, body, now);
                            connection.requests += 1;
                            let close = !head.keep_alive;
                            if delayed {
                                connection.phase =
                                    Phase::Delayed(now + self.answer_delay, answer, close);
                                return;
                            }
                            connection.answer(&answer, close, now);
                        }
                    }
                }
                Phase::Delayed(until, answer, close) => {
                    if now < until {
                        connection.phase = Phase::Delayed(until, answer, close);
                        return;
                    }
                    connection.answer(&answer, close, now);
                }
                lingering @ Phase::Lingering(..) => {
                    connection.phase = lingering;
                    return;
                }
            }
        }
    }

    /// Answers a request that cannot go on, and closes the connection after it.
    fn refuse(&mut self, connection: &mut Connection, status: u16, reason: &str, now: Instant) {
        self.judge.answered(status);
        let body = format!("{reason}\n");
        let answer = answer(
            status,
            &[],
            "text/plain; charset=utf-8",
            body.as_bytes(),
            true,
        );
        connection.answer(&answer, true, now);
    }

    /// The answer to a whole request, and whether it waits for `--answer-delay`.
    fn request(&mut self, head: &Head, body: Vec<u8>, now: Instant) -> (Vec<u8>, bool) {
        let close = !head.keep_alive;
        let path = head.path.split('?').next().unwrap_or_default();
        let reads = matches!(head.method.as_str(), "GET" | "HEAD");
        let (status, content_type, text) = match (head.method.as_str(), path) {
            ("POST", _) => return self.events(head, body, now),
            (_, "/report" | "/metrics" | "/healthz") if !reads => {
                self.judge.answered(405);
                let allow = [("allow", "GET, HEAD".to_owned())];
                return (
                    answer(
                        405,
                        &allow,
                        "text/plain; charset=utf-8",
                        b"GET or HEAD\n",
                        close,
                    ),
                    false,
                );
            }
            (_, "/report") => (200, "application/json", self.judge.report(self.state())),
            (_, "/metrics") => (
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                self.judge.prometheus(),
            ),
            (_, "/healthz") => (200, "text/plain; charset=utf-8", "ok\n".to_owned()),
            _ => {
                self.judge.answered(405);
                let allow = [("allow", "POST".to_owned())];
                let text = b"POST a CloudEvent, or GET /report or /metrics\n";
                return (
                    answer(405, &allow, "text/plain; charset=utf-8", text, close),
                    false,
                );
            }
        };
        self.judge.answered(status);
        let mut bytes = answer(status, &[], content_type, text.as_bytes(), close);
        if head.method == "HEAD" {
            bytes.truncate(bytes.len() - text.len());
        }
        (bytes, false)
    }

    /// Takes the event(s) of a POST: judges and prints each; the answer is the next of
    /// `--answer` when they are valid, 400 otherwise.
    fn events(&mut self, head: &Head, body: Vec<u8>, now: Instant) -> (Vec<u8>, bool) {
        let close = !head.keep_alive;
        let media = media_type(head.content_type.as_deref().unwrap_or_default());
        // A ce-specversion header makes it binary mode whatever the type (PingSource sends
        // application/cloudevents+json data that way).
        let binary = head.ce.iter().any(|(name, _)| name == "specversion");
        let events: Vec<Result<Received, String>> = match media.as_str() {
            _ if head.invalid.is_some() => vec![Err(head.invalid.clone().unwrap_or_default())],
            _ if binary => vec![cloudevent::binary(
                &head.ce,
                head.content_type.as_deref(),
                body,
            )],
            STRUCTURED => vec![cloudevent::structured(&body)],
            BATCH => match cloudevent::batch(&body) {
                Ok(events) => events,
                Err(reason) => vec![Err(reason)],
            },
            _ => vec![cloudevent::binary(
                &head.ce,
                head.content_type.as_deref(),
                body,
            )],
        };
        let refused: Vec<(usize, &String)> = events
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().err().map(|reason| (i, reason)))
            .collect();
        let status = if refused.is_empty() {
            let status = self.answers[self.answered.min(self.answers.len() - 1)];
            self.answered += 1;
            status
        } else {
            400
        };
        for (i, reason) in &refused {
            let reason = match media.as_str() {
                BATCH => format!("batch event {i}: {reason}"),
                _ => (*reason).clone(),
            };
            self.judge.refuse(&reason);
            self.printer.refused(400, &reason);
        }
        for event in events.iter().filter_map(|e| e.as_ref().ok()) {
            let accepted = (200..300).contains(&status);
            let verdict = if !refused.is_empty() {
                "not accepted: another event of its batch is invalid".to_owned()
            } else if accepted {
                let verdict = self
                    .judge
                    .event(&event.source, &event.id, event.beat(), now);
                if self.strict && !verdict.is_ok() && self.violation.is_none() {
                    self.violation = Some(format!(
                        "event {} of {}: {}",
                        cloudevent::shown(&event.id),
                        cloudevent::shown(&event.source),
                        verdict.text()
                    ));
                }
                verdict.text()
            } else {
                format!("not accepted: answered {status} (--answer)")
            };
            self.printer.event(event, status, &verdict);
        }
        self.judge.answered(status);
        self.judge.event_requests += 1;
        let answer = if let Some((i, reason)) = refused.first() {
            if self.printer.output() != Output::Json {
                log::line(format_args!("refused a request: {reason}"));
            }
            let text = match media.as_str() {
                BATCH => format!("batch event {i}: {reason}\n"),
                _ => format!("{reason}\n"),
            };
            answer(
                400,
                &[],
                "text/plain; charset=utf-8",
                text.as_bytes(),
                close,
            )
        } else {
            let retry = self
                .retry_after
                .filter(|_| !(200..300).contains(&status))
                .map(|s| ("retry-after", s.to_string()));
            answer(
                status,
                retry.as_slice(),
                "text/plain; charset=utf-8",
                b"",
                close,
            )
        };
        (answer, !self.answer_delay.is_zero())
    }
}

/// An answer: status line, headers, length, body.
fn answer(
    status: u16,
    extra: &[(&str, String)],
    content_type: &str,
    body: &[u8],
    close: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + body.len());
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in extra {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    if !body.is_empty() {
        let _ = write!(out, "content-type: {content_type}\r\n");
    }
    let _ = write!(out, "content-length: {}\r\n", body.len());
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// One client connection.
struct Connection {
    stream: TcpStream,
    tls: Option<Box<rustls::ServerConnection>>,
    /// Bytes received and not yet taken by a request (decrypted, with TLS).
    input: Vec<u8>,
    /// Answers not yet written (plain), or not yet handed to TLS.
    output: Vec<u8>,
    sent: usize,
    phase: Phase,
    accepted: Instant,
    /// When the request head now being read began to come.
    head_started: Option<Instant>,
    /// When the body now being read began (its head came).
    body_started: Option<Instant>,
    /// Since when answers have waited to be taken.
    writing_since: Option<Instant>,
    last_answer: Instant,
    /// When bytes last came.
    last_progress: Instant,
    requests: u64,
    /// Close once the answers are written.
    closing: bool,
    /// The peer closed its side, or the connection failed.
    eof: bool,
}

enum Phase {
    /// Waiting for, or reading, a request head.
    Head,
    /// The head came; the body is being read.
    Body(Box<Head>, Vec<u8>),
    /// The answer waits until then (`--answer-delay`); then the connection closes if true.
    Delayed(Instant, Vec<u8>, bool),
    /// Answered and closing: what the client still sends is read and dropped.
    Lingering(Linger),
}

impl Connection {
    fn new(
        stream: TcpStream,
        tls: Option<Box<rustls::ServerConnection>>,
        now: Instant,
    ) -> Connection {
        Connection {
            stream,
            tls,
            input: Vec::new(),
            output: Vec::new(),
            sent: 0,
            phase: Phase::Head,
            accepted: now,
            head_started: None,
            body_started: None,
            writing_since: None,
            last_answer: now,
            last_progress: now,
            requests: 0,
            closing: false,
            eof: false,
        }
    }

    /// Between requests or in a request's head, with nothing to write: it may make way for a
    /// new connection when every one is taken (the one whose bytes came the longest ago).
    fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Head) && !self.pending_output()
    }

    /// When the connection is given up if it has not moved on: its head, body, answer, idle
    /// wait, delay or linger runs out.
    fn due(&self) -> Instant {
        match (&self.phase, self.writing_since) {
            (Phase::Lingering(linger), _) => linger.until(),
            (Phase::Delayed(until, ..), _) => *until,
            (_, Some(since)) => since + ANSWER_TIME,
            (Phase::Body(..), None) => self.body_started.unwrap_or(self.accepted) + BODY_TIME,
            (Phase::Head, None) => match self.head_started {
                Some(started) => started + HEAD_TIME,
                None if self.requests == 0 => self.accepted + HEAD_TIME,
                None => self.last_answer + IDLE_TIME,
            },
        }
    }

    fn queued(&self) -> usize {
        self.output.len() - self.sent
    }

    fn pending_output(&self) -> bool {
        self.queued() > 0 || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    fn wants_input(&self) -> bool {
        !self.eof && !self.closing && self.input.len() <= MAX_HEAD + 64 * 1024
    }

    fn interest(&self) -> Option<Interest> {
        if self.pending_output() {
            return Some(Interest::Write);
        }
        match self.phase {
            Phase::Delayed(..) => None,
            Phase::Lingering(..) => Some(Interest::Read),
            _ if self.wants_input() => Some(Interest::Read),
            _ => None,
        }
    }

    /// All answered and written.
    fn finished(&self) -> bool {
        !self.pending_output() && matches!(self.phase, Phase::Head)
    }

    fn answer(&mut self, answer: &[u8], close: bool, now: Instant) {
        self.output.extend_from_slice(answer);
        self.writing_since.get_or_insert(now);
        self.closing |= close;
        self.last_answer = now;
        self.phase = Phase::Head;
    }

    /// Reads what the socket has; false at the end of the stream or on failure.
    fn receive(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match &mut self.tls {
            None => loop {
                match self.stream.read(&mut chunk) {
                    Ok(0) => return false,
                    Ok(n) => {
                        self.input.extend_from_slice(&chunk[..n]);
                        if n < chunk.len() || !self.wants_input() {
                            return true;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return e.kind() == io::ErrorKind::WouldBlock,
                }
            },
            Some(tls) => {
                loop {
                    match tls.read_tls(&mut self.stream) {
                        Ok(0) => return false,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => return false,
                    }
                    if tls.process_new_packets().is_err() {
                        // The alert goes out with the next write; then the connection ends.
                        let _ = tls.write_tls(&mut self.stream);
                        return false;
                    }
                }
                loop {
                    match tls.reader().read(&mut chunk) {
                        Ok(0) => return false,
                        Ok(n) => self.input.extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                        Err(_) => return false,
                    }
                }
            }
        }
    }

    /// Writes what is pending without waiting; false when the connection failed.
    fn transmit(&mut self) -> bool {
        match &mut self.tls {
            None => {
                while self.sent < self.output.len() {
                    match self.stream.write(&self.output[self.sent..]) {
                        Ok(0) => return false,
                        Ok(n) => self.sent += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                        Err(_) => return false,
                    }
                }
            }
            Some(tls) => {
                if self.sent < self.output.len() {
                    if tls.writer().write_all(&self.output[self.sent..]).is_err() {
                        return false;
                    }
                    self.sent = self.output.len();
                }
                while tls.wants_write() {
                    match tls.write_tls(&mut self.stream) {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                        Err(_) => return false,
                    }
                }
            }
        }
        self.output.clear();
        self.sent = 0;
        self.writing_since = None;
        if self.output.capacity() > 64 * 1024 {
            self.output = Vec::new();
        }
        if self.input.is_empty() && self.input.capacity() > 64 * 1024 {
            self.input = Vec::new();
        }
        true
    }
}

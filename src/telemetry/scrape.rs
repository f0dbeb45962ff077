//! The Prometheus scrape server: `GET /metrics` on the configured address, answered during
//! every wait of the thread (see [`crate::wait::Service`]) as Go's `net/http` answers it (see
//! [`ScrapeServer::answer`]). Every connection is non-blocking, with a buffer and a deadline of
//! its own, so an idle or trickling client delays no other scrape and no beat; the open
//! connections are capped, the oldest one still sending its request giving way to a new one. An
//! answer not taken by its deadline is dropped with a reset. Once an answer is written, the write
//! side is shut and what the client still sends (a body, the rest of a long head) is read and
//! dropped, up to 256 KiB or half a second, as Go's server does: closing with bytes unread would
//! reset the connection and lose the answer on the client's side.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::request::{self, Route};
use super::shared::{Shared, lock};
use crate::linger::Linger;
use crate::sys::{Interest, Watched};
use crate::wait::Service;

/// The most connections open at once.
pub const MAX_CONNECTIONS: usize = 16;
/// How long a client has to send its request head.
const REQUEST_TIME: Duration = Duration::from_secs(5);
/// How long a client has to take the answer.
const ANSWER_TIME: Duration = Duration::from_secs(10);
/// The most of a request head that is read.
const MAX_REQUEST_HEAD: usize = 8192;
/// The most connections taken from the listener in one go.
const ACCEPTS_PER_SERVE: usize = 32;
/// The Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// See the module documentation.
pub struct ScrapeServer {
    listener: TcpListener,
    connections: Vec<Connection>,
    shared: Arc<Mutex<Shared>>,
}

struct Connection {
    stream: TcpStream,
    deadline: Instant,
    state: State,
}

enum State {
    /// The request head so far.
    Reading(Vec<u8>),
    /// The answer, and how much of it was written.
    Writing(Vec<u8>, usize),
    /// Answered and the write side shut: what the client still sends is read and dropped.
    Lingering(Linger),
}

impl ScrapeServer {
    /// Serves on `listener` (non-blocking) what `shared` holds.
    pub fn new(listener: TcpListener, shared: Arc<Mutex<Shared>>) -> ScrapeServer {
        ScrapeServer {
            listener,
            connections: Vec::new(),
            shared,
        }
    }

    fn accept(&mut self, now: Instant) {
        for _ in 0..ACCEPTS_PER_SERVE {
            let Ok((stream, _)) = self.listener.accept() else {
                return;
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let _ = stream.set_nodelay(true);
            if self.connections.len() >= MAX_CONNECTIONS {
                // The oldest connection still sending its request, or already answered, gives
                // way; when every one is being answered, the newcomer waits for the next scrape.
                match self
                    .connections
                    .iter()
                    .position(|c| !matches!(c.state, State::Writing(..)))
                {
                    Some(oldest) => drop(self.connections.remove(oldest)),
                    None => continue,
                }
            }
            self.connections.push(Connection {
                stream,
                deadline: now + REQUEST_TIME,
                state: State::Reading(Vec::new()),
            });
        }
    }

    /// The answer to the request `head` (complete, or cut at [`MAX_REQUEST_HEAD`]), as Go's
    /// `net/http` serves knative.dev/pkg's `GET /metrics` route ([`request::route`]). Every
    /// answer states its length and closes.
    fn answer(&self, head: &[u8], complete: bool) -> Vec<u8> {
        let plain = "text/plain; charset=utf-8";
        let (status, kind, body, send_body) = match request::route(head, complete) {
            Route::Metrics { head } => {
                let shared = lock(&self.shared);
                let text = shared
                    .metrics
                    .as_ref()
                    .map(super::metrics::Metrics::prometheus);
                (
                    "200 OK".to_owned(),
                    PROMETHEUS_TEXT,
                    text.unwrap_or_default(),
                    !head,
                )
            }
            Route::Options => ("200 OK".to_owned(), plain, String::new(), false),
            Route::Redirect(location, head) => (
                format!("307 Temporary Redirect\r\nlocation: {location}"),
                "text/html; charset=utf-8",
                format!("<a href=\"{location}\">Temporary Redirect</a>.\n\n"),
                !head,
            ),
            Route::NotAllowed => (
                "405 Method Not Allowed\r\nallow: GET, HEAD".to_owned(),
                plain,
                "Method Not Allowed\n".to_owned(),
                true,
            ),
            Route::NotFound(head) => (
                "404 Not Found".to_owned(),
                plain,
                "404 page not found\n".to_owned(),
                !head,
            ),
            Route::Refused(status, "") => (status.to_owned(), plain, status.to_owned(), true),
            Route::Refused(status, why) => {
                (status.to_owned(), plain, format!("{status}: {why}"), true)
            }
        };
        let mut answer = format!(
            "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\nx-content-type-options: nosniff\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        if send_body {
            answer.extend_from_slice(body.as_bytes());
        }
        answer
    }

    /// Moves `connection` on as far as it goes without waiting; false when it is done.
    fn progress(&self, connection: &mut Connection, now: Instant) -> bool {
        loop {
            match &mut connection.state {
                State::Reading(head) => {
                    let mut chunk = [0u8; 1024];
                    match connection.stream.read(&mut chunk) {
                        Ok(0) => return false,
                        Ok(n) => head.extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return e.kind() == io::ErrorKind::WouldBlock,
                    }
                    let complete = head_complete(head);
                    if complete || head.len() > MAX_REQUEST_HEAD {
                        let answer = self.answer(head, complete);
                        connection.state = State::Writing(answer, 0);
                        connection.deadline = now + ANSWER_TIME;
                    }
                }
                State::Writing(answer, written) => {
                    match connection.stream.write(&answer[*written..]) {
                        Ok(0) => return false,
                        Ok(n) => *written += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return e.kind() == io::ErrorKind::WouldBlock,
                    }
                    if *written == answer.len() {
                        let Ok(linger) = Linger::start(&connection.stream, now) else {
                            return false;
                        };
                        connection.deadline = linger.until();
                        connection.state = State::Lingering(linger);
                    }
                }
                State::Lingering(linger) => return linger.read(&mut connection.stream),
            }
        }
    }
}

/// Whether `head` holds a whole request head: up to its empty line, or an empty first line
/// (which Go refuses at once).
fn head_complete(head: &[u8]) -> bool {
    let mut lines = head.split(|&b| b == b'\n');
    // The last piece has no line break after it yet: it does not count.
    let count = lines.clone().count() - 1;
    lines
        .by_ref()
        .take(count)
        .any(|line| line.is_empty() || line == b"\r")
}

impl Service for ScrapeServer {
    fn watch(&self, watched: &mut Vec<Watched>) {
        watched.push(Watched::new(self.listener.as_raw_fd(), Interest::Read));
        for connection in &self.connections {
            let interest = match connection.state {
                State::Reading(_) | State::Lingering(_) => Interest::Read,
                State::Writing(..) => Interest::Write,
            };
            watched.push(Watched::new(connection.stream.as_raw_fd(), interest));
        }
    }

    fn due(&self) -> Option<Instant> {
        self.connections.iter().map(|c| c.deadline).min()
    }

    fn serve(&mut self, ready: &[Watched], now: Instant) {
        // `ready` is what `watch` appended: the listener, then each connection in order.
        let mut connections = std::mem::take(&mut self.connections);
        let mut index = 0;
        connections.retain_mut(|connection| {
            index += 1;
            let is_ready = ready.get(index).is_some_and(|w| w.ready);
            if is_ready && !self.progress(connection, now) {
                return false;
            }
            if connection.deadline > now {
                return true;
            }
            if let State::Writing(..) = connection.state {
                // Not taken in time: dropped with a reset, never cut short in silence.
                let _ = crate::sys::reset_on_close(&connection.stream);
            }
            false
        });
        self.connections = connections;
        if ready.first().is_some_and(|w| w.ready) {
            self.accept(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn an_answer_not_taken_by_its_deadline_is_dropped_with_a_reset() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, _) = listener.accept().unwrap();
        let shared = Arc::new(Mutex::new(Shared {
            metrics: None,
            tracer: None,
            service_name: String::new(),
            resource: Vec::new(),
        }));
        let mut server = ScrapeServer::new(listener, shared);
        let now = Instant::now();
        server.connections.push(Connection {
            stream,
            deadline: now,
            state: State::Writing(
                b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\npartial".to_vec(),
                20,
            ),
        });
        server.serve(&[], now + Duration::from_millis(1));
        assert!(server.connections.is_empty());
        let mut answer = Vec::new();
        let error = client.read_to_end(&mut answer).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
    }
}

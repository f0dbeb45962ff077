//! How bytes reach the sink: a TCP transport for ureq whose every wait (the name lookup, the
//! connect, each read and write) goes through the [`Waiter`], and which spends as few system
//! calls per beat as it can. Names are looked up by our resolver, only when a connection is
//! opened. ureq's own TCP transport writes headers and body separately, resets both socket
//! timeouts on every call and probes a pooled connection twice (three calls each); here a
//! request goes out in one `write` when the response is awaited, and the probe before reuse is
//! one `recv(MSG_PEEK | MSG_DONTWAIT)`.
//!
//! When nothing but the socket needs watching while an answer is awaited (no scrape server, and
//! a stop signal may wait: an exchange with the sink), the socket blocks in `read` under a
//! timeout, reset only when off by more than 1/64: the cheapest wait. Otherwise it is
//! non-blocking and the waiter polls it beside the rest.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ureq::Timeout;

use super::buffers::{Buffers, INPUT_START, LineRoom};
use super::head::HeadReader;
use super::resolve::{LookupError, Resolver};
use super::tunnel::{self, AbsoluteForm};
use crate::config::proxy::Proxy;
use crate::config::url::host_port;
use crate::wait::{Interest, OnStop, Purpose, Unready, Waiter, Watched, deadline_in};
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver as UreqResolver};
use ureq::unversioned::transport::{
    Buffers as UreqBuffers, ConnectionDetails, Connector, Either, NextTimeout, Transport,
};

/// Leaves names to [`TcpConnector`]. ureq asks its resolver before every request, even one a
/// pooled connection will carry, and a lookup is `/etc/hosts`, `resolv.conf` and, in a cluster,
/// DNS queries for each search domain: once per beat. Go's transport looks a name up only when
/// it dials, and so does the connector, through this resolver's empty answer.
#[derive(Debug)]
pub struct ConnectorResolves;

impl UreqResolver for ConnectorResolves {
    fn resolve(
        &self,
        _: &Uri,
        _: &ureq::config::Config,
        _: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        Ok(self.empty())
    }
}

/// A lookup that failed, as the error a connection attempt reports.
#[derive(Debug)]
pub struct LookupFailure {
    pub name: String,
    pub error: LookupError,
}

impl fmt::Display for LookupFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lookup {}: {}", self.name, self.error)
    }
}

impl std::error::Error for LookupFailure {}

/// Connections made as the sink's are, for what is not ureq's (telemetry's gRPC): the name
/// looked up by the same resolver, the addresses tried in order with Go's share of the time,
/// every wait through the waiter and ended by a stop signal.
#[derive(Debug, Clone)]
pub struct Dialer {
    pub resolver: Resolver,
    pub waiter: Arc<Waiter>,
}

impl Dialer {
    /// A TCP connection to `host:port` (a name, or an IP literal, bracketed or not) by
    /// `deadline`, non-blocking, without Nagle.
    pub fn dial(&self, host: &str, port: u16, deadline: Instant) -> io::Result<TcpStream> {
        let connector = TcpConnector {
            proxies: Vec::new(),
            resolver: self.resolver.clone(),
            waiter: self.waiter.clone(),
            on_stop: OnStop::End,
            room: LineRoom::new(0),
            max_head: 0,
        };
        let addrs = connector.addresses(host, port, deadline).map_err(to_io)?;
        let mut last_error = io::Error::new(io::ErrorKind::NotFound, "no address");
        for (index, addr) in addrs.iter().enumerate() {
            let partial = partial_deadline(Instant::now(), deadline, addrs.len() - index);
            match connector.connect_to(addr, partial) {
                Ok(stream) => return Ok(stream),
                Err(error) => {
                    last_error = to_io(error);
                    if self.waiter.stopped().is_some() {
                        break;
                    }
                }
            }
        }
        Err(last_error)
    }
}

fn to_io(error: ureq::Error) -> io::Error {
    match error {
        ureq::Error::Io(error) => error,
        ureq::Error::Timeout(_) => io::Error::new(io::ErrorKind::TimedOut, "connecting timed out"),
        other => io::Error::other(other.to_string()),
    }
}

/// Opens a TCP connection when the pool has none: looks the host up (the proxy's, when the sink
/// is reached through one) and tries its addresses in order, all within the attempt's timeout.
#[derive(Debug)]
pub struct TcpConnector {
    /// The proxies, each for the one destination it serves (the sink, the dead-letter sink).
    pub proxies: Vec<Arc<Proxy>>,
    pub resolver: Resolver,
    pub waiter: Arc<Waiter>,
    /// What a stop signal does to this agent's exchanges (the sink's: [`OnStop::Defer`]).
    pub on_stop: OnStop,
    /// How long a plain connection's output buffer is (under TLS, ciphertext goes out in
    /// pieces, and the TLS transport's own buffers follow it).
    pub room: LineRoom,
    /// The longest answer head a plain connection reads.
    pub max_head: usize,
}

/// What a connection's gathered output starts with, and the most it keeps between requests.
const PENDING_START: usize = 1024;
const PENDING_KEPT: usize = 16 * 1024;

/// The most addresses of one name tried, as ureq keeps.
const MAX_ADDRESSES: usize = 16;

impl TcpConnector {
    /// The addresses of `host`: an IP literal as it is, a name as the resolver finds it.
    fn addresses(
        &self,
        host: &str,
        port: u16,
        deadline: Instant,
    ) -> Result<Vec<SocketAddr>, ureq::Error> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        match self.resolver.lookup(&self.waiter, bare, deadline) {
            Ok(found) => Ok(found
                .into_iter()
                .take(MAX_ADDRESSES)
                .map(|mut address| {
                    address.set_port(port);
                    address
                })
                .collect()),
            Err(error) => {
                let kind = match error {
                    LookupError::Stopped(_) => io::ErrorKind::Interrupted,
                    LookupError::TimedOut(_) => io::ErrorKind::TimedOut,
                    LookupError::NoSuchHost => io::ErrorKind::NotFound,
                    LookupError::Failed(_) => io::ErrorKind::Other,
                };
                let failure = LookupFailure {
                    name: bare.to_owned(),
                    error,
                };
                Err(ureq::Error::Io(io::Error::new(kind, failure)))
            }
        }
    }

    /// A connection to `addr` by `deadline`, through the waiter.
    fn connect_to(&self, addr: &SocketAddr, deadline: Instant) -> Result<TcpStream, ureq::Error> {
        let stream = crate::sys::connect_started(addr)?;
        let mut watched = [Watched::new(stream.as_raw_fd(), Interest::Write)];
        match self
            .waiter
            .wait_for(&mut watched, deadline, OnStop::End, Purpose::Other)
        {
            Ok(()) => {}
            Err(Unready::TimedOut) => return Err(ureq::Error::Timeout(Timeout::Connect)),
            Err(unready) => return Err(io::Error::from(unready).into()),
        }
        if let Some(error) = stream.take_error()? {
            return Err(error.into());
        }
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

impl<In: Transport> Connector<In> for TcpConnector {
    type Out = Either<In, TcpTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        if let Some(transport) = chained {
            return Ok(Some(Either::A(transport)));
        }
        let deadline = deadline_in(*details.timeout.after);
        let proxy = self
            .proxies
            .iter()
            .map(Arc::as_ref)
            .find(|p| p.serves(details.uri));
        let (host, port) = match proxy {
            Some(proxy) => (proxy.host.as_str(), proxy.port),
            None => host_port(details.uri),
        };
        let addrs = self.addresses(host, port, deadline)?;
        let mut last_error = None;
        for (index, addr) in addrs.iter().enumerate() {
            let partial = partial_deadline(Instant::now(), deadline, addrs.len() - index);
            let stream = match self.connect_to(addr, partial) {
                Ok(stream) => stream,
                Err(error @ ureq::Error::Io(_)) if self.waiter.stopped().is_some() => {
                    return Err(error);
                }
                Err(error) => {
                    last_error = Some(error);
                    continue;
                }
            };
            let tls = details.needs_tls();
            let buffers = if tls {
                Buffers::new(LineRoom::new(0), INPUT_START)
            } else {
                Buffers::new(self.room.clone(), self.max_head)
            };
            // Block in the kernel only when nothing else needs watching meanwhile.
            let blocking = self.on_stop == OnStop::Defer && !self.waiter.serves_while_waiting();
            let mut transport = TcpTransport::new(
                stream,
                buffers,
                !tls,
                self.waiter.clone(),
                self.on_stop,
                blocking,
            )?;
            match proxy {
                Some(proxy) if tls => transport.tunnel(details.uri, proxy, deadline)?,
                Some(proxy) => transport.absolute = Some(AbsoluteForm::new(details.uri, proxy)),
                None => {}
            }
            return Ok(Some(Either::B(transport)));
        }
        Err(last_error.unwrap_or(ureq::Error::HostNotFound))
    }
}

/// The least time one address of several is given to connect, as Go's dialer gives it.
const SANE_MINIMUM: Duration = Duration::from_secs(2);

/// Go's `partialDeadline`: the time left shared among the `remaining` addresses, each given at
/// least [`SANE_MINIMUM`] (taken from the last ones) but never past `deadline`. So an address
/// that silently drops connections does not take all of an attempt's time from the next one.
fn partial_deadline(now: Instant, deadline: Instant, remaining: usize) -> Instant {
    let left = deadline.saturating_duration_since(now);
    let share = left / u32::try_from(remaining.max(1)).unwrap_or(u32::MAX);
    now + share.max(SANE_MINIMUM.min(left))
}

/// One TCP connection: output is gathered until input is awaited, then written at once.
pub struct TcpTransport {
    stream: TcpStream,
    buffers: Buffers,
    pending: Vec<u8>,
    waiter: Arc<Waiter>,
    on_stop: OnStop,
    /// Reads block in the kernel under a timeout; else the socket is non-blocking.
    blocking: bool,
    /// The socket's read timeout as last set (blocking only).
    read_timeout: Option<Duration>,
    /// A request has just gone out: its answer cannot be there yet, so wait before reading.
    awaiting: bool,
    /// Input arrived since the last probe: the peer was alive a moment ago.
    answered: bool,
    /// Response heads are read through this on a plain connection; `None` under TLS, where the
    /// bytes here are ciphertext and the TLS transport reads the heads.
    head: Option<HeadReader>,
    /// Requests go to an http proxy, which wants them in absolute form.
    absolute: Option<AbsoluteForm>,
}

impl fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpTransport")
            .field("peer", &self.stream.peer_addr().ok())
            .finish()
    }
}

/// The socket side of a transport, apart from its buffers and head reader, so that both can be
/// borrowed at once.
struct Socket<'a> {
    stream: &'a TcpStream,
    waiter: &'a Waiter,
    on_stop: OnStop,
    blocking: bool,
    read_timeout: &'a mut Option<Duration>,
    awaiting: &'a mut bool,
}

impl Socket<'_> {
    /// Reads what has arrived, waiting for it until `deadline`.
    fn read(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            if self.blocking {
                bound_read(self.stream, self.read_timeout, left)?;
            } else if std::mem::take(self.awaiting) {
                self.wait(Interest::Read, deadline)?;
            }
            match (&*self.stream).read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Blocking, the read timed out (the socket timeout was the time left).
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && self.blocking => {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.wait(Interest::Read, deadline)?;
                }
                result => return result,
            }
        }
    }

    /// Writes all of `bytes` by `deadline`.
    fn write_all(&mut self, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
        while !bytes.is_empty() {
            match (&*self.stream).write(bytes) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !self.blocking => {
                    self.wait(Interest::Write, deadline)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn wait(&mut self, interest: Interest, deadline: Instant) -> io::Result<()> {
        let mut watched = [Watched::new(self.stream.as_raw_fd(), interest)];
        Ok(self
            .waiter
            .wait_for(&mut watched, deadline, self.on_stop, Purpose::Other)?)
    }
}

impl TcpTransport {
    fn new(
        stream: TcpStream,
        buffers: Buffers,
        plain: bool,
        waiter: Arc<Waiter>,
        on_stop: OnStop,
        blocking: bool,
    ) -> io::Result<Self> {
        if blocking {
            stream.set_nonblocking(false)?;
        }
        Ok(TcpTransport {
            stream,
            buffers,
            pending: Vec::with_capacity(PENDING_START),
            waiter,
            on_stop,
            blocking,
            read_timeout: None,
            awaiting: false,
            answered: false,
            head: plain.then(HeadReader::default),
            absolute: None,
        })
    }

    fn socket(&mut self) -> (Socket<'_>, &mut Buffers, Option<&mut HeadReader>) {
        (
            Socket {
                stream: &self.stream,
                waiter: &self.waiter,
                on_stop: self.on_stop,
                blocking: self.blocking,
                read_timeout: &mut self.read_timeout,
                awaiting: &mut self.awaiting,
            },
            &mut self.buffers,
            self.head.as_mut(),
        )
    }

    /// Opens a `CONNECT` tunnel to `uri` through `proxy` by `deadline`. TLS to the sink then runs
    /// inside it, checked against the sink's name; what the proxy sent after its answer is the
    /// tunnel's first input.
    fn tunnel(&mut self, uri: &Uri, proxy: &Proxy, deadline: Instant) -> Result<(), ureq::Error> {
        let (mut socket, buffers, _) = self.socket();
        socket.write_all(&tunnel::connect_request(uri, proxy), deadline)?;
        let mut head = Vec::with_capacity(512);
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(len) = tunnel::connect_answer(&head, proxy)? {
                let start = &head[len..];
                let input = buffers.input_append_buf();
                let n = start.len().min(input.len());
                input[..n].copy_from_slice(&start[..n]);
                buffers.input_appended(n);
                return Ok(());
            }
            match socket.read(&mut chunk, deadline) {
                Ok(0) => {
                    return Err(tunnel::proxy_failed(
                        proxy,
                        "closed the connection during CONNECT",
                    ));
                }
                Ok(n) => head.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(tunnel::proxy_failed(
                        proxy,
                        "did not answer CONNECT in time",
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Sets `stream`'s read timeout to `left` unless the one `set` is within 1/64 of it.
fn bound_read(stream: &TcpStream, set: &mut Option<Duration>, left: Duration) -> io::Result<()> {
    let close = set.is_some_and(|set| set.abs_diff(left) <= left / 64);
    if !close {
        stream.set_read_timeout(Some(left))?;
        *set = Some(left);
    }
    Ok(())
}

fn timed_out(error: io::Error, reason: Timeout) -> ureq::Error {
    match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ureq::Error::Timeout(reason),
        _ => error.into(),
    }
}

impl Transport for TcpTransport {
    fn buffers(&mut self) -> &mut dyn UreqBuffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, _: NextTimeout) -> Result<(), ureq::Error> {
        let output = &self.buffers.output()[..amount];
        match &mut self.absolute {
            Some(absolute) => absolute.write(output, &mut self.pending),
            None => self.pending.extend_from_slice(output),
        }
        if let Some(head) = &mut self.head {
            head.expect_head();
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        let left = *timeout.after;
        if left.is_zero() {
            return Err(ureq::Error::Timeout(timeout.reason));
        }
        // A head may take several reads; together they stay within the attempt's timeout.
        let deadline = deadline_in(left);
        let pending = std::mem::take(&mut self.pending);
        let (mut socket, buffers, head) = self.socket();
        if !pending.is_empty() {
            socket
                .write_all(&pending, deadline)
                .map_err(|e| timed_out(e, timeout.reason))?;
            *socket.awaiting = true;
        }
        let input = buffers.input_append_buf();
        let amount = match head {
            Some(head) => head.read(input, |buf| socket.read(buf, deadline)),
            None => socket.read(input, deadline),
        }
        .map_err(|e| timed_out(e, timeout.reason))?;
        self.buffers.input_appended(amount);
        self.pending = pending;
        self.pending.clear();
        if self.pending.capacity() > PENDING_KEPT {
            // A large body went out: its memory is given back.
            self.pending = Vec::with_capacity(PENDING_START);
        }
        self.answered = amount > 0;
        if let Some(absolute) = &mut self.absolute {
            // Whatever is written next starts the next request.
            absolute.next_request();
        }
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        // ureq asks when a connection goes back to the pool and again before reusing it; the
        // first time, it has just answered, so only the second look costs system calls.
        if std::mem::take(&mut self.answered) {
            return true;
        }
        crate::sys::is_quiet(self.stream.as_fd()).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::super::resolve::testing::FakeDns;
    use super::*;
    use std::net::TcpListener;
    use ureq::unversioned::transport::NextTimeout;

    /// A transport on a fresh connection, blocking or not, with the peer's end.
    fn connected(blocking: bool) -> (TcpTransport, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        stream.set_nonblocking(!blocking).unwrap();
        let (peer, _) = listener.accept().unwrap();
        let waiter = Arc::new(Waiter::new().unwrap());
        let buffers = Buffers::new(LineRoom::new(4096), 4096);
        let transport =
            TcpTransport::new(stream, buffers, true, waiter, OnStop::Defer, blocking).unwrap();
        (transport, peer)
    }

    fn timeout(after: Duration) -> NextTimeout {
        NextTimeout {
            after: after.into(),
            ..NextTimeout::default()
        }
    }

    /// Reads one request (head, then a `content-length` body) from `conn`.
    fn read_request(conn: &mut TcpStream) {
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !seen.ends_with(b"\r\n\r\n") {
            assert_eq!(conn.read(&mut byte).unwrap(), 1, "request cut short");
            seen.push(byte[0]);
        }
        let head = String::from_utf8(seen).unwrap().to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |n| n.parse().unwrap());
        conn.read_exact(&mut vec![0u8; length]).unwrap();
    }

    #[test]
    fn a_name_is_looked_up_when_a_connection_opens_not_for_every_request() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (closed, was_closed) = std::sync::mpsc::channel();
        // Three requests on the first connection, then it is closed; one on the second.
        let sink = std::thread::spawn(move || {
            for requests in [3, 1] {
                let (mut conn, _) = listener.accept().unwrap();
                for _ in 0..requests {
                    read_request(&mut conn);
                    conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .unwrap();
                }
                drop(conn);
                closed.send(()).unwrap();
            }
        });
        // `sink.test` is 127.0.0.1, and each question is counted (an A and an AAAA a lookup).
        let dns = FakeDns::start([127, 0, 0, 1]);
        let tcp = TcpConnector {
            proxies: Vec::new(),
            resolver: dns.resolver(),
            waiter: Arc::new(Waiter::new().unwrap()),
            on_stop: OnStop::Defer,
            room: LineRoom::new(1024),
            max_head: 4096,
        };
        let agent = ureq::Agent::with_parts(
            ureq::Agent::config_builder().build(),
            ().chain(tcp),
            ConnectorResolves,
        );
        let url = format!("http://sink.test:{port}/");
        let post = || {
            let mut response = agent.post(&url).send("beat").unwrap();
            response.body_mut().read_to_vec().unwrap();
        };
        for _ in 0..3 {
            post();
            assert_eq!(dns.asked(), 2);
        }
        was_closed.recv().unwrap();
        // The pooled connection is found closed: a new one, and a new lookup for it.
        post();
        assert_eq!(dns.asked(), 4);
        sink.join().unwrap();
    }

    #[test]
    fn the_time_to_connect_is_shared_among_the_addresses_as_go_shares_it() {
        let now = Instant::now();
        let secs = Duration::from_secs;
        // 10 s for 2 addresses: 5 s each.
        assert_eq!(partial_deadline(now, now + secs(10), 2), now + secs(5));
        // 3 s for 2: at least 2 s for the first, what is left for the second.
        assert_eq!(partial_deadline(now, now + secs(3), 2), now + secs(2));
        assert_eq!(partial_deadline(now, now + secs(1), 1), now + secs(1));
        // Less than 2 s in all: all of it.
        assert_eq!(partial_deadline(now, now + secs(1), 3), now + secs(1));
    }

    #[test]
    fn a_read_timeout_within_a_64th_of_the_one_set_is_not_set_again() {
        let (transport, _peer) = connected(true);
        let stream = &transport.stream;
        let mut set = None;
        bound_read(stream, &mut set, Duration::from_millis(6400)).unwrap();
        assert_eq!(
            stream.read_timeout().unwrap(),
            Some(Duration::from_millis(6400))
        );
        // 100 ms less is more than 6,300/64 (98.4 ms) away: set again.
        bound_read(stream, &mut set, Duration::from_millis(6300)).unwrap();
        assert_eq!(
            stream.read_timeout().unwrap(),
            Some(Duration::from_millis(6300))
        );
        // 90 ms less is within 6,210/64 (97 ms): the 6,300 ms already set stays, no call.
        bound_read(stream, &mut set, Duration::from_millis(6210)).unwrap();
        assert_eq!(
            stream.read_timeout().unwrap(),
            Some(Duration::from_millis(6300))
        );
        assert_eq!(set, Some(Duration::from_millis(6300)));
    }

    #[test]
    fn a_request_is_written_only_when_its_answer_is_awaited_in_one_write() {
        let (mut transport, mut peer) = connected(false);
        for part in [&b"POST / HTTP/1.1\r\n"[..], b"content-length: 0\r\n\r\n"] {
            transport.buffers().output()[..part.len()].copy_from_slice(part);
            transport
                .transmit_output(part.len(), timeout(Duration::from_secs(5)))
                .unwrap();
        }
        peer.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 256];
        let nothing = peer.read(&mut buf).unwrap_err();
        assert_eq!(
            nothing.kind(),
            io::ErrorKind::WouldBlock,
            "written before awaited"
        );
        peer.set_nonblocking(false).unwrap();
        peer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
        assert!(
            transport
                .await_input(timeout(Duration::from_secs(5)))
                .unwrap()
        );
        let n = peer.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
    }

    #[test]
    fn the_open_check_right_after_an_answer_is_skipped_and_the_next_one_looks() {
        let (mut transport, peer) = connected(true);
        drop(peer);
        // Just answered: ureq asks as it pools the connection; no system call, and yes.
        transport.answered = true;
        assert!(transport.is_open());
        // Before reuse it asks again, and the peer's close is seen.
        let mut closed = false;
        for _ in 0..1000 {
            if !transport.is_open() {
                closed = true;
                break;
            }
            std::thread::yield_now();
        }
        assert!(closed, "the peer's close was never seen");
    }
}

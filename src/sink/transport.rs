//! How bytes reach the sink: host names looked up on this thread and only when a connection is
//! opened, and a TCP transport for ureq that spends as few system calls per beat as it can.
//! ureq's own TCP transport writes headers and body separately, resets both socket timeouts on
//! every call and probes a pooled connection twice (three calls each); here a request goes out
//! in one `write` when the response is awaited, the read timeout is only reset when it is off by
//! more than 1/64, the probe on returning a connection that just answered is skipped, and the
//! probe before reuse is one `recv(MSG_PEEK | MSG_DONTWAIT)`.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ureq::Timeout;

use super::head::HeadReader;
use super::tunnel::{self, AbsoluteForm};
use crate::config::proxy::Proxy;
use crate::config::url::host_port;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
};

/// Leaves names to [`TcpConnector`]. ureq asks its resolver before every request, even one a
/// pooled connection will carry, and a lookup is `/etc/hosts`, `resolv.conf` and, in a cluster,
/// DNS queries for each search domain: once per beat. Go's transport looks a name up only when
/// it dials, and so does the connector, through this resolver's empty answer.
#[derive(Debug)]
pub struct ConnectorResolves;

impl Resolver for ConnectorResolves {
    fn resolve(
        &self,
        _: &Uri,
        _: &ureq::config::Config,
        _: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        Ok(self.empty())
    }
}

/// How a host name and port become addresses to try in order.
pub type Lookup = fn(&str, u16) -> io::Result<Vec<SocketAddr>>;

/// IP literals as they are; names by the system resolver, on this thread (ureq's own resolver
/// starts a thread per lookup when a timeout applies), so a lookup is bounded by resolv.conf's
/// timeouts, not by `--timeout`. At most 16 addresses, as ureq keeps.
pub fn system_lookup(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    Ok((host, port).to_socket_addrs()?.take(16).collect())
}

/// Opens a TCP connection when the pool has none: looks the host up (the proxy's, when the sink
/// is reached through one) and tries its addresses in order, all within the attempt's timeout.
#[derive(Debug)]
pub struct TcpConnector {
    pub proxy: Option<Arc<Proxy>>,
    pub lookup: Lookup,
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
        let budget = *details.timeout.after;
        let started = std::time::Instant::now();
        let proxy = self.proxy.as_deref().filter(|p| p.serves(details.uri));
        let (host, port) = match proxy {
            Some(proxy) => (proxy.host.as_str(), proxy.port),
            None => host_port(details.uri),
        };
        let addrs = (self.lookup)(host, port)?;
        let mut last_error = None;
        for addr in &addrs {
            let left = budget.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(ureq::Error::Timeout(Timeout::Connect));
            }
            match TcpStream::connect_timeout(addr, left) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    // Writes are a few hundred bytes into an empty socket buffer; this only
                    // bounds a peer that stopped reading altogether.
                    stream.set_write_timeout(Some(budget))?;
                    let config = details.config;
                    let buffers =
                        LazyBuffers::new(config.input_buffer_size(), config.output_buffer_size());
                    let tls = details.needs_tls();
                    let mut transport = TcpTransport::new(stream, buffers, !tls);
                    match proxy {
                        Some(proxy) if tls => {
                            let deadline = started + budget;
                            let start =
                                tunnel::connect(&transport.stream, details.uri, proxy, deadline)?;
                            transport.prefill(&start);
                        }
                        Some(proxy) => {
                            transport.absolute = Some(AbsoluteForm::new(details.uri, proxy));
                        }
                        None => {}
                    }
                    return Ok(Some(Either::B(transport)));
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    last_error = Some(ureq::Error::Timeout(Timeout::Connect));
                }
                Err(e) => last_error = Some(e.into()),
            }
        }
        Err(last_error.unwrap_or(if addrs.is_empty() {
            ureq::Error::HostNotFound
        } else {
            ureq::Error::ConnectionFailed
        }))
    }
}

/// One TCP connection: output is gathered until input is awaited, then written at once.
pub struct TcpTransport {
    stream: TcpStream,
    buffers: LazyBuffers,
    pending: Vec<u8>,
    /// The socket's read timeout as last set.
    read_timeout: Option<Duration>,
    /// Input arrived since the last probe: the peer was alive a moment ago.
    answered: bool,
    /// Response heads are read through this on a plain connection; under TLS the bytes here
    /// are ciphertext and the TLS transport reads the heads.
    head: HeadReader,
    plain: bool,
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

impl TcpTransport {
    fn new(stream: TcpStream, buffers: LazyBuffers, plain: bool) -> Self {
        TcpTransport {
            stream,
            buffers,
            pending: Vec::with_capacity(1024),
            read_timeout: None,
            answered: false,
            head: HeadReader::default(),
            plain,
            absolute: None,
        }
    }

    /// Bytes that arrived before the transport was handed over (after a proxy's `CONNECT`
    /// answer) become its first input.
    fn prefill(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let input = self.buffers.input_append_buf();
        let n = bytes.len().min(input.len());
        input[..n].copy_from_slice(&bytes[..n]);
        self.buffers.input_appended(n);
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
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, _: NextTimeout) -> Result<(), ureq::Error> {
        let output = &self.buffers.output()[..amount];
        match &mut self.absolute {
            Some(absolute) => absolute.write(output, &mut self.pending),
            None => self.pending.extend_from_slice(output),
        }
        if self.plain {
            self.head.expect_head();
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        if !self.pending.is_empty() {
            let written = (&self.stream).write_all(&self.pending);
            self.pending.clear();
            written.map_err(|e| timed_out(e, timeout.reason))?;
        }
        let timeout = timeout.for_read();
        let left = *timeout.after;
        if left.is_zero() {
            return Err(ureq::Error::Timeout(timeout.reason));
        }
        // A head may take several reads; together they stay within the attempt's timeout.
        let deadline = Instant::now().checked_add(left);
        let (stream, set) = (&self.stream, &mut self.read_timeout);
        let input = self.buffers.input_append_buf();
        let amount = self
            .head
            .read(input, |buf| {
                loop {
                    let left =
                        deadline.map_or(left, |d| d.saturating_duration_since(Instant::now()));
                    if left.is_zero() {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                    bound_read(stream, set, left)?;
                    match (&*stream).read(buf) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        result => return result,
                    }
                }
            })
            .map_err(|e| timed_out(e, timeout.reason))?;
        self.buffers.input_appended(amount);
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
    use super::*;
    use std::net::TcpListener;
    use ureq::unversioned::transport::{LazyBuffers, NextTimeout};

    /// A transport on a fresh connection, with the peer's end.
    fn connected() -> (TcpTransport, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (peer, _) = listener.accept().unwrap();
        (
            TcpTransport::new(stream, LazyBuffers::new(4096, 4096), true),
            peer,
        )
    }

    fn timeout(after: Duration) -> NextTimeout {
        NextTimeout {
            after: after.into(),
            ..NextTimeout::default()
        }
    }

    static LOOKUPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    /// `sink.test` is 127.0.0.1, and each lookup is counted.
    fn counted_lookup(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        assert_eq!(host, "sink.test");
        LOOKUPS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
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
        let tcp = TcpConnector {
            proxy: None,
            lookup: counted_lookup,
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
            assert_eq!(LOOKUPS.load(std::sync::atomic::Ordering::SeqCst), 1);
        }
        was_closed.recv().unwrap();
        // The pooled connection is found closed: a new one, and a new lookup for it.
        post();
        assert_eq!(LOOKUPS.load(std::sync::atomic::Ordering::SeqCst), 2);
        sink.join().unwrap();
    }

    #[test]
    fn a_read_timeout_within_a_64th_of_the_one_set_is_not_set_again() {
        let (transport, _peer) = connected();
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
        let (mut transport, mut peer) = connected();
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
        let (mut transport, peer) = connected();
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

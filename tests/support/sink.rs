//! The fake sink: a server on 127.0.0.1 (plain or TLS) that records each raw request (method,
//! path, headers in order, body, arrival time, connection) and answers from a script of
//! statuses, hangs, drops and trickles. Shared by the tests, the demo and the benchmark.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How the sink answers one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// This status with these extra headers, and an empty body.
    Status(u16, Vec<(&'static str, String)>),
    /// Never answer; hold the connection open for a minute.
    Hang,
    /// Close the connection without answering.
    Drop,
    /// Answer 200, one byte every `Duration`.
    Trickle(Duration),
    /// Answer this status, then close the connection.
    StatusThenClose(u16),
    /// Answer 200 as keep-alive, then close the idle connection after `Duration`, unannounced.
    OkThenIdleClose(Duration),
    /// Send the first bytes of a response's status line, then close mid-way.
    Truncate,
    /// Send this status line alone, then close.
    StatusLineThenClose(u16),
    /// Send these bytes as the answer, written in pieces of at most the given size (so a head
    /// can arrive split anywhere), and keep the connection.
    Raw(Vec<u8>, usize),
    /// Send these bytes as the answer at once, then close the connection.
    RawThenClose(Vec<u8>),
    /// This status with this body (and its `content-length`), keeping the connection.
    Body(u16, Vec<u8>),
    /// This status with a chunked body of these chunks, keeping the connection.
    Chunked(u16, Vec<Vec<u8>>),
}

pub fn status(code: u16) -> Reply {
    Reply::Status(code, Vec::new())
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header lines in the order received, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When the last byte arrived.
    pub at: Instant,
    /// Which connection (in accept order, from 0) carried it.
    pub connection: usize,
    /// What was wrong with it, read strictly (see `read_request`); empty for a good request.
    pub problems: Vec<String>,
}

impl Request {
    /// The only value of header `name` (case-insensitive); panics when absent or repeated.
    pub fn header(&self, name: &str) -> &str {
        let values: Vec<_> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .collect();
        assert_eq!(values.len(), 1, "header {name} in {:?}", self.headers);
        &values[0].1
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }
}

/// A server on 127.0.0.1 with a script of replies (200 when the script runs out).
pub struct Sink {
    pub port: u16,
    requests: Receiver<Request>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    pub connections: Arc<AtomicUsize>,
}

/// TLS for a sink: the server's certificate chain and key.
pub type ServerTls = Arc<rustls::ServerConfig>;

impl Sink {
    pub fn start(script: Vec<Reply>) -> Sink {
        Self::start_with(script, None)
    }

    pub fn start_with(script: Vec<Reply>, tls: Option<ServerTls>) -> Sink {
        Self::start_on(0, script, tls)
    }

    /// A sink on a given port (0: any free one).
    pub fn start_on(port: u16, script: Vec<Reply>, tls: Option<ServerTls>) -> Sink {
        Self::start_at("127.0.0.1", port, script, tls)
    }

    /// A plain sink on ::1 only, for names with IPv6 addresses (its `url` is still 127.0.0.1's).
    pub fn start_v6(script: Vec<Reply>) -> Sink {
        Self::start_at("::1", 0, script, None)
    }

    fn start_at(ip: &str, port: u16, script: Vec<Reply>, tls: Option<ServerTls>) -> Sink {
        let listener = TcpListener::bind((ip, port)).expect("bind a loopback address");
        let port = listener.local_addr().unwrap().port();
        let (tx, requests) = mpsc::channel();
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let connections = Arc::new(AtomicUsize::new(0));
        let (s, c) = (script.clone(), connections.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                // Small writes go out at once, as a real server's would: without this, Nagle
                // and the client's delayed ACK stall the TLS handshake by 40 ms.
                let _ = stream.set_nodelay(true);
                // A client that stops sending mid-request does not keep its thread for ever.
                let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
                let id = c.fetch_add(1, Ordering::SeqCst);
                let (tx, script, tls) = (tx.clone(), s.clone(), tls.clone());
                thread::spawn(move || match tls {
                    None => serve(stream, id, &tx, &script),
                    Some(config) => {
                        let Ok(conn) = rustls::ServerConnection::new(config) else {
                            return;
                        };
                        serve(rustls::StreamOwned::new(conn, stream), id, &tx, &script)
                    }
                });
            }
        });
        Sink {
            port,
            requests,
            script,
            connections,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The next request, waiting at most `timeout`; it must have been well-formed.
    pub fn next(&self, timeout: Duration) -> Option<Request> {
        let request = self.requests.recv_timeout(timeout).ok()?;
        assert!(
            request.problems.is_empty(),
            "a malformed request: {:?}",
            request.problems
        );
        Some(request)
    }

    /// The next request, which must come within 10 s.
    pub fn expect(&self) -> Request {
        self.next(Duration::from_secs(10))
            .expect("a request at the sink within 10 s")
    }

    /// Every request received so far, without waiting; each must have been well-formed.
    pub fn drain(&self) -> Vec<Request> {
        let requests: Vec<Request> = self.requests.try_iter().collect();
        for request in &requests {
            assert!(request.problems.is_empty(), "{:?}", request.problems);
        }
        requests
    }

    pub fn push(&self, reply: Reply) {
        self.script.lock().unwrap().push_back(reply);
    }
}

fn serve<S: Read + Write>(
    stream: S,
    id: usize,
    tx: &Sender<Request>,
    script: &Mutex<VecDeque<Reply>>,
) {
    let mut reader = BufReader::new(stream);
    loop {
        let Some(request) = read_request(&mut reader, id) else {
            return;
        };
        if !request.problems.is_empty() {
            // Reported to the test; the connection is not answered.
            let _ = tx.send(request);
            return;
        }
        let reply = script.lock().unwrap().pop_front().unwrap_or(status(200));
        let _ = tx.send(request);
        let stream = reader.get_mut();
        match reply {
            Reply::Status(code, headers) => {
                let extra: String = headers
                    .iter()
                    .map(|(n, v)| format!("{n}: {v}\r\n"))
                    .collect();
                let head = format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\n{extra}\r\n");
                if stream
                    .write_all(head.as_bytes())
                    .and_then(|_| stream.flush())
                    .is_err()
                {
                    return;
                }
            }
            Reply::StatusThenClose(code) => {
                let head =
                    format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.flush();
                return;
            }
            Reply::OkThenIdleClose(after) => {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                let _ = stream.flush();
                thread::sleep(after);
                return;
            }
            Reply::StatusLineThenClose(code) => {
                let _ = stream.write_all(format!("HTTP/1.1 {code} OK\r\n").as_bytes());
                let _ = stream.flush();
                return;
            }
            Reply::Truncate => {
                let _ = stream.write_all(b"HTTP/1.1 2");
                let _ = stream.flush();
                return;
            }
            Reply::Hang => {
                thread::sleep(Duration::from_secs(60));
                return;
            }
            Reply::Drop => return,
            Reply::RawThenClose(bytes) => {
                let _ = stream.write_all(&bytes).and_then(|_| stream.flush());
                return;
            }
            Reply::Raw(bytes, piece) => {
                for chunk in bytes.chunks(piece.max(1)) {
                    if stream
                        .write_all(chunk)
                        .and_then(|_| stream.flush())
                        .is_err()
                    {
                        return;
                    }
                }
            }
            Reply::Body(code, body) => {
                let head = format!(
                    "HTTP/1.1 {code} X\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                let answer = [head.as_bytes(), &body].concat();
                if stream
                    .write_all(&answer)
                    .and_then(|_| stream.flush())
                    .is_err()
                {
                    return;
                }
            }
            Reply::Chunked(code, chunks) => {
                let mut answer =
                    format!("HTTP/1.1 {code} X\r\ntransfer-encoding: chunked\r\n\r\n").into_bytes();
                for chunk in chunks.iter().filter(|c| !c.is_empty()) {
                    answer.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    answer.extend_from_slice(chunk);
                    answer.extend_from_slice(b"\r\n");
                }
                answer.extend_from_slice(b"0\r\n\r\n");
                if stream
                    .write_all(&answer)
                    .and_then(|_| stream.flush())
                    .is_err()
                {
                    return;
                }
            }
            Reply::Trickle(every) => {
                for byte in b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n" {
                    if stream
                        .write_all(&[*byte])
                        .and_then(|_| stream.flush())
                        .is_err()
                    {
                        return;
                    }
                    thread::sleep(every);
                }
            }
        }
    }
}

/// The largest request head read: far above anything the sender writes (a 16 KiB token, a
/// 12 KiB encoded source).
const MAX_REQUEST_HEAD: usize = 256 * 1024;

/// Reads one request, strictly: every line ends in CRLF; the head is what httparse takes
/// without its leniencies; each header is `name: value` with one space and the value as sent
/// (nothing trimmed); one `content-length` and no `transfer-encoding` (the sender never
/// streams). What breaks a rule is kept in the request's `problems`, which `Sink::next` and
/// `Sink::expect` refuse: nothing malformed passes a test. `None` at the end of the connection.
fn read_request<R: BufRead>(reader: &mut R, connection: usize) -> Option<Request> {
    let mut head = Vec::new();
    // The empty line ends the head, however it is (mis)written; the checks below tell.
    while !head.ends_with(b"\n\r\n") && !head.ends_with(b"\n\n") {
        let before = head.len();
        reader.read_until(b'\n', &mut head).ok()?;
        if head.len() == before {
            return None;
        }
        if head.len() > MAX_REQUEST_HEAD {
            let problems = vec![format!("a head over {MAX_REQUEST_HEAD} bytes")];
            return Some(malformed(problems, connection));
        }
    }
    let mut problems = Vec::new();
    let bare_lf = head
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'));
    if bare_lf {
        problems.push("a line ended by a bare LF".to_owned());
    }
    let mut parsed = [httparse::EMPTY_HEADER; 256];
    let mut request = httparse::Request::new(&mut parsed);
    match request.parse(&head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        other => problems.push(format!("httparse refused the head: {other:?}")),
    }
    let method = request.method.unwrap_or_default().to_owned();
    let path = request.path.unwrap_or_default().to_owned();
    if request.version != Some(1) {
        problems.push(format!("not HTTP/1.1: {:?}", request.version));
    }
    let text = String::from_utf8_lossy(&head);
    let mut headers = Vec::new();
    for line in text.split("\r\n").skip(1).take_while(|l| !l.is_empty()) {
        match line.split_once(": ") {
            Some((name, value)) if !name.is_empty() && !name.contains(' ') => {
                headers.push((name.to_owned(), value.to_owned()));
            }
            _ => problems.push(format!("not `name: value`: {line:?}")),
        }
    }
    let named = |name: &str| {
        headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    if !named("transfer-encoding").is_empty() {
        problems.push("a transfer-encoding".to_owned());
    }
    let length = match named("content-length")[..] {
        [] => 0,
        [one] => one.parse().unwrap_or_else(|_| {
            problems.push(format!("content-length {one:?}"));
            0
        }),
        ref many => {
            problems.push(format!("content-length {many:?}"));
            0
        }
    };
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
        at: Instant::now(),
        connection,
        problems,
    })
}

/// A request that could not be read, with what was wrong.
fn malformed(problems: Vec<String>, connection: usize) -> Request {
    Request {
        method: String::new(),
        path: String::new(),
        headers: Vec::new(),
        body: Vec::new(),
        at: Instant::now(),
        connection,
        problems,
    }
}

/// A CA and a server certificate for `127.0.0.1` signed by it: (CA PEM, server TLS config).
pub fn tls_pair(server_name: &str) -> (String, ServerTls) {
    tls_pair_with(server_name, rustls::DEFAULT_VERSIONS)
}

/// As [`tls_pair`], with a server that speaks only `versions`.
pub fn tls_pair_with(
    server_name: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> (String, ServerTls) {
    tls_pair_with_provider(
        server_name,
        versions,
        rustls::crypto::ring::default_provider(),
    )
}

/// As [`tls_pair_with`], the server limited to what `provider` offers (suites, groups).
pub fn tls_pair_with_provider(
    server_name: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
    provider: rustls::crypto::CryptoProvider,
) -> (String, ServerTls) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_params = CertificateParams::new(vec![server_name.to_owned()]).unwrap();
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(server_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![server_cert.der().clone()], key)
        .unwrap();
    (ca_cert.pem(), Arc::new(config))
}

/// Closes the write side of a socket; for tests that talk raw TCP.
pub fn half_close(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
}

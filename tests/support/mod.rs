//! The one copy of the test helpers: a fake sink on 127.0.0.1 (plain or TLS) that records every
//! raw request and answers from a script, and a builder for the real `heartbeats` binary with a
//! cleared environment.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
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
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let (tx, requests) = mpsc::channel();
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let connections = Arc::new(AtomicUsize::new(0));
        let (s, c) = (script.clone(), connections.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
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

    /// The next request, waiting at most `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<Request> {
        self.requests.recv_timeout(timeout).ok()
    }

    /// The next request, which must come within 10 s.
    pub fn expect(&self) -> Request {
        self.next(Duration::from_secs(10))
            .expect("a request at the sink within 10 s")
    }

    /// Every request received so far, without waiting.
    pub fn drain(&self) -> Vec<Request> {
        self.requests.try_iter().collect()
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
            Reply::Hang => {
                thread::sleep(Duration::from_secs(60));
                return;
            }
            Reply::Drop => return,
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

fn read_request<R: BufRead>(reader: &mut R, connection: usize) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut raw = Vec::new();
        reader.read_until(b'\n', &mut raw).ok()?;
        let text = String::from_utf8_lossy(&raw)
            .trim_end_matches(['\r', '\n'])
            .to_owned();
        if text.is_empty() {
            break;
        }
        let (name, value) = text.split_once(':')?;
        headers.push((name.to_owned(), value.trim_start().to_owned()));
    }
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap_or(0));
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
        at: Instant::now(),
        connection,
    })
}

/// The real binary with a cleared environment: only POD_NAME/POD_NAMESPACE, and a token path
/// that does not exist (so the machine's own `/oidc/token`, if any, cannot leak in).
pub fn heartbeats() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_heartbeats"));
    command
        .env_clear()
        .env("POD_NAME", "example-pod")
        .env("POD_NAMESPACE", "event-test")
        .arg("--oidc-token-file=/nonexistent/heartbeats/token")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A started binary whose end is reported on a channel.
pub struct Running {
    pub pid: i32,
    done: Receiver<(ExitStatus, String, String)>,
}

/// What a finished run left.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl Running {
    pub fn start(command: &mut Command) -> Running {
        let child: Child = command.spawn().expect("spawn heartbeats");
        let pid = child.id() as i32;
        let (tx, done) = mpsc::channel();
        thread::spawn(move || {
            let out = child.wait_with_output().expect("wait for heartbeats");
            let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
            let _ = tx.send((out.status, text(out.stdout), text(out.stderr)));
        });
        Running { pid, done }
    }

    /// Waits at most `timeout` for the end; `None` if it is still running.
    pub fn wait(&self, timeout: Duration) -> Option<Finished> {
        let (status, stdout, stderr) = self.done.recv_timeout(timeout).ok()?;
        Some(Finished {
            status,
            stdout,
            stderr,
        })
    }

    /// Waits for the end, which must come within `timeout`.
    pub fn finish(&self, timeout: Duration) -> Finished {
        self.wait(timeout)
            .unwrap_or_else(|| panic!("heartbeats still running after {timeout:?}"))
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
        let result = unsafe { libc::kill(self.pid, signal) };
        assert_eq!(result, 0, "kill {}", self.pid);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.done.try_recv().is_err() {
            // SAFETY: as in `signal`; a failure (already gone) is harmless here.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }
}

/// Runs to the end (within 30 s).
pub fn run(command: &mut Command) -> Finished {
    Running::start(command).finish(Duration::from_secs(30))
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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
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

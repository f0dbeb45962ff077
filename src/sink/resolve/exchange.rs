//! One exchange with one name server for one question, as Go's `exchange`: over UDP from a
//! fresh socket connected to the server (so only its datagrams arrive), then over TCP (RFC 1035
//! §4.2.2: each message after its two-byte length) when the UDP answer came truncated, or from
//! the start with `use-vc`. Nothing here waits: the question's owner waits on [`Exchange::
//! watched`] through the waiter, then calls [`Exchange::progress`].

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Instant;

use super::LookupError;
use super::message::{self, Answer, MAX_UDP_ANSWER};
use crate::wait::{Interest, Watched};

/// What an exchange came to, after its socket was ready.
pub enum Progress {
    /// Nothing yet (or a datagram that does not answer the question: ignored, as Go ignores it).
    Waiting,
    /// This server's word: the addresses, or why there are none (the name does not exist, or
    /// the answer could not be read).
    Answered(Result<Vec<IpAddr>, LookupError>),
    /// This server could not answer: ask the next one.
    Failed(LookupError),
}

/// An exchange under way.
pub struct Exchange {
    server: SocketAddr,
    until: Instant,
    /// The query as sent over UDP; over TCP, after its length.
    query: Vec<u8>,
    state: State,
}

enum State {
    Udp(UdpSocket),
    Tcp {
        stream: TcpStream,
        phase: Phase,
        /// What was written, or what was read so far.
        done: usize,
        answer: Vec<u8>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Writing,
    Reading,
}

impl Exchange {
    /// Sends `query` to `server` (over TCP when `tcp`), to be answered by `until`.
    pub fn begin(
        server: SocketAddr,
        query: &[u8],
        tcp: bool,
        until: Instant,
    ) -> Result<Exchange, LookupError> {
        let state = if tcp {
            tcp_state(server)?
        } else {
            State::Udp(udp_socket(server, query).map_err(|e| failed(server, &e))?)
        };
        Ok(Exchange {
            server,
            until,
            query: query.to_vec(),
            state,
        })
    }

    pub fn server(&self) -> SocketAddr {
        self.server
    }

    pub fn until(&self) -> Instant {
        self.until
    }

    /// The socket to wait on, for what.
    pub fn watched(&self) -> Watched {
        match &self.state {
            State::Udp(socket) => Watched::new(socket.as_raw_fd(), Interest::Read),
            State::Tcp { stream, phase, .. } => {
                let interest = match phase {
                    Phase::Connecting | Phase::Writing => Interest::Write,
                    Phase::Reading => Interest::Read,
                };
                Watched::new(stream.as_raw_fd(), interest)
            }
        }
    }

    /// What the socket's readiness brought, for the question `fqdn` of `qtype` with `id`.
    pub fn progress(&mut self, id: u16, fqdn: &str, qtype: u16) -> Progress {
        match &mut self.state {
            State::Udp(socket) => {
                let mut buffer = [0u8; MAX_UDP_ANSWER + 256];
                loop {
                    let n = match socket.recv(&mut buffer) {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            return Progress::Waiting;
                        }
                        // Nothing listens there (an ICMP port unreachable), or worse.
                        Err(e) => return Progress::Failed(failed(self.server, &e)),
                    };
                    match message::answer(&buffer[..n], id, fqdn, qtype, false) {
                        None => {}
                        Some(Answer::Truncated) => {
                            // Asked again over TCP (RFC 7766), with a time of its own, as Go.
                            return match tcp_state(self.server) {
                                Ok(state) => {
                                    self.state = state;
                                    Progress::Waiting
                                }
                                Err(error) => Progress::Failed(error),
                            };
                        }
                        Some(answer) => return self.word(answer),
                    }
                }
            }
            State::Tcp { .. } => self.progress_tcp(id, fqdn, qtype),
        }
    }

    fn progress_tcp(&mut self, id: u16, fqdn: &str, qtype: u16) -> Progress {
        let server = self.server;
        let State::Tcp {
            stream,
            phase,
            done,
            answer,
        } = &mut self.state
        else {
            return Progress::Waiting;
        };
        if *phase == Phase::Connecting {
            match stream.take_error() {
                Ok(None) => *phase = Phase::Writing,
                Ok(Some(e)) | Err(e) => return Progress::Failed(failed(server, &e)),
            }
        }
        if *phase == Phase::Writing {
            let length = u16::try_from(self.query.len()).unwrap_or(0).to_be_bytes();
            let out = [&length[..], &self.query].concat();
            while *done < out.len() {
                match stream.write(&out[*done..]) {
                    Ok(n) => *done += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Waiting,
                    Err(e) => return Progress::Failed(failed(server, &e)),
                }
            }
            (*phase, *done) = (Phase::Reading, 0);
        }
        let mut chunk = [0u8; 4096];
        loop {
            let wanted = match answer.get(..2) {
                Some(length) => 2 + usize::from(u16::from_be_bytes([length[0], length[1]])),
                None => 2,
            };
            if answer.len() >= wanted && wanted > 2 {
                let reply = message::answer(&answer[2..wanted], id, fqdn, qtype, true);
                return match reply {
                    Some(reply) => self.word(reply),
                    // Over TCP the server asked answers or fails; it does not forge.
                    None => Progress::Failed(LookupError::Failed(format!(
                        "name server {server}: invalid DNS response"
                    ))),
                };
            }
            match stream.read(&mut chunk) {
                Ok(0) => {
                    return Progress::Failed(LookupError::Failed(format!(
                        "name server {server} closed the connection"
                    )));
                }
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Waiting,
                Err(e) => return Progress::Failed(failed(server, &e)),
            }
        }
    }

    /// What an answer from this server means for its question.
    fn word(&self, answer: Answer) -> Progress {
        match answer {
            Answer::Records { addresses, .. } if !addresses.is_empty() => {
                Progress::Answered(Ok(addresses))
            }
            Answer::Records { .. } => Progress::Answered(Err(LookupError::Failed(format!(
                "name server {}: cannot unmarshal DNS message",
                self.server
            )))),
            Answer::NoSuchHost => Progress::Answered(Err(LookupError::NoSuchHost)),
            Answer::TryAnother(why) => Progress::Failed(LookupError::Failed(format!(
                "name server {}: {why}",
                self.server
            ))),
            // Over TCP a truncated answer is read as it is (`answer` is told so): not here.
            Answer::Truncated => Progress::Failed(LookupError::Failed(format!(
                "name server {}: truncated",
                self.server
            ))),
        }
    }
}

/// A TCP connection to `server` begun, not waited for.
fn tcp_state(server: SocketAddr) -> Result<State, LookupError> {
    let stream = crate::sys::connect_started(&server).map_err(|e| failed(server, &e))?;
    Ok(State::Tcp {
        stream,
        phase: Phase::Connecting,
        done: 0,
        answer: Vec::new(),
    })
}

/// A fresh UDP socket (the kernel picks a random port) connected to `server`, so that only its
/// datagrams arrive, with `query` sent.
fn udp_socket(server: SocketAddr, query: &[u8]) -> io::Result<UdpSocket> {
    let any: IpAddr = match server {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = UdpSocket::bind((any, 0))?;
    socket.connect(server)?;
    socket.set_nonblocking(true)?;
    socket.send(query)?;
    Ok(socket)
}

fn failed(server: SocketAddr, error: &io::Error) -> LookupError {
    LookupError::Failed(format!("name server {server}: {}", error.kind()))
}

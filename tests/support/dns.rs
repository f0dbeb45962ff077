//! A fake name server on 127.0.0.1 (UDP and TCP on one port) for the real binary: it answers
//! the names it was given (A records; no AAAA), says NXDOMAIN for every other name, and can
//! misbehave as a test asks: truncate over UDP, send an answer with a wrong id first, or never
//! answer at all. Each question it receives is reported. The binary is pointed at it with a
//! resolv.conf of the test's own (`HEARTBEATS_RESOLV_CONF`, `HEARTBEATS_HOSTS`,
//! `HEARTBEATS_DNS_PORT`).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::process::Command;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::Duration;

use super::TempDir;

/// How the server behaves.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// Names (absolute, `sink.test.`) and their address; every other name does not exist.
    pub names: Vec<(String, Ipv4Addr)>,
    /// Over UDP, answer with the truncated flag and no records; the answer comes over TCP.
    pub truncate: bool,
    /// Send an answer with another id (and a wrong address) before the right one.
    pub wrong_id_first: bool,
    /// Never answer.
    pub silent: bool,
}

impl Behaviour {
    /// `name` (without the final dot) is `address`.
    pub fn answering(name: &str, address: [u8; 4]) -> Behaviour {
        Behaviour {
            names: vec![(format!("{name}."), Ipv4Addr::from(address))],
            ..Behaviour::default()
        }
    }
}

/// A question as received: the name, the type (1 A, 28 AAAA), and whether it came over TCP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    pub name: String,
    pub qtype: u16,
    pub tcp: bool,
}

pub struct FakeDns {
    pub port: u16,
    asked: Receiver<Question>,
    dir: TempDir,
}

impl FakeDns {
    pub fn start(behaviour: Behaviour) -> FakeDns {
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
            let port = udp.local_addr().unwrap().port();
            if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)) {
                break (udp, tcp);
            }
        };
        let port = udp.local_addr().unwrap().port();
        let (tx, asked) = mpsc::channel();
        let (b, t) = (behaviour.clone(), tx.clone());
        thread::spawn(move || serve_udp(udp, &b, &t));
        thread::spawn(move || serve_tcp(tcp, &behaviour, &tx));
        let dir = TempDir::new("dns");
        std::fs::write(dir.join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
        std::fs::write(dir.join("hosts"), "").unwrap();
        FakeDns { port, asked, dir }
    }

    /// Points `command` at this server, with `options` added to its resolv.conf.
    pub fn configure(&self, command: &mut Command, options: &str) {
        let conf = self.dir.join("resolv.conf");
        std::fs::write(&conf, format!("nameserver 127.0.0.1\n{options}\n")).unwrap();
        command
            .env("HEARTBEATS_RESOLV_CONF", &conf)
            .env("HEARTBEATS_HOSTS", self.dir.join("hosts"))
            .env("HEARTBEATS_DNS_PORT", self.port.to_string());
    }

    /// The next question, which must come within `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<Question> {
        self.asked.recv_timeout(timeout).ok()
    }

    /// Every question received so far.
    pub fn drain(&self) -> Vec<Question> {
        self.asked.try_iter().collect()
    }
}

/// The name of the question in `query`, with the type, and where the question ends.
fn question(query: &[u8]) -> Option<(String, u16, usize)> {
    let mut name = String::new();
    let mut at = 12;
    loop {
        let length = usize::from(*query.get(at)?);
        if length == 0 {
            break;
        }
        name.push_str(std::str::from_utf8(query.get(at + 1..at + 1 + length)?).ok()?);
        name.push('.');
        at += 1 + length;
    }
    let qtype = u16::from_be_bytes([*query.get(at + 1)?, *query.get(at + 2)?]);
    Some((name, qtype, at + 5))
}

/// The answer to `query`: its question, and the A record when `name` is known and `qtype` is A.
fn answer(query: &[u8], behaviour: &Behaviour, truncated: bool) -> Option<Vec<u8>> {
    let (name, qtype, end) = question(query)?;
    let known = behaviour
        .names
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(&name))
        .map(|(_, a)| *a);
    let mut reply = query[..end].to_vec();
    // A response, recursion desired and available; NXDOMAIN for an unknown name.
    let rcode = if known.is_some() { 0 } else { 3 };
    let truncated_flag = if truncated { 0x02 } else { 0 };
    reply[2..4].copy_from_slice(&[0x81 | truncated_flag, 0x80 | rcode]);
    reply[10..12].copy_from_slice(&[0, 0]);
    match known {
        Some(address) if qtype == 1 && !truncated => {
            reply[6..8].copy_from_slice(&[0, 1]);
            reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            reply.extend_from_slice(&address.octets());
        }
        _ => reply[6..8].copy_from_slice(&[0, 0]),
    }
    Some(reply)
}

fn serve_udp(socket: UdpSocket, behaviour: &Behaviour, tx: &Sender<Question>) {
    let mut buffer = [0u8; 1500];
    while let Ok((n, from)) = socket.recv_from(&mut buffer) {
        let query = &buffer[..n];
        let Some((name, qtype, _)) = question(query) else {
            continue;
        };
        let _ = tx.send(Question {
            name,
            qtype,
            tcp: false,
        });
        if behaviour.silent {
            continue;
        }
        let Some(reply) = answer(query, behaviour, behaviour.truncate) else {
            continue;
        };
        if behaviour.wrong_id_first {
            let mut wrong = reply.clone();
            wrong[0] ^= 0xff;
            if let Some(last) = wrong.last_mut() {
                *last ^= 0xff;
            }
            let _ = socket.send_to(&wrong, from);
        }
        let _ = socket.send_to(&reply, from);
    }
}

fn serve_tcp(listener: TcpListener, behaviour: &Behaviour, tx: &Sender<Question>) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        // A client that never sends its question does not keep this server for ever.
        let _ = stream.set_read_timeout(Some(super::IO_LIMIT));
        let mut length = [0u8; 2];
        if stream.read_exact(&mut length).is_err() {
            continue;
        }
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(length))];
        if stream.read_exact(&mut query).is_err() {
            continue;
        }
        let Some((name, qtype, _)) = question(&query) else {
            continue;
        };
        let _ = tx.send(Question {
            name,
            qtype,
            tcp: true,
        });
        if behaviour.silent {
            continue;
        }
        if let Some(reply) = answer(&query, behaviour, false) {
            let mut out = (reply.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(&reply);
            let _ = stream.write_all(&out);
        }
    }
}

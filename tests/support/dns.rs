//! Fake name servers on loopback addresses (UDP and TCP, one port for all of them) for the real
//! binary, and for Go's resolver when `just vectors` asks it the same questions
//! (`examples/fake_dns.rs` runs this module alone). What a server says to a question is a
//! script, one entry a time it is asked (the last one repeats); a name it has no script for does
//! not exist. Each question received is reported. The binary is pointed at them with a
//! resolv.conf of the test's own (`HEARTBEATS_RESOLV_CONF`, `HEARTBEATS_HOSTS`,
//! `HEARTBEATS_DNS_PORT`).
//!
//! A script entry, for a question of name N and type T (A or AAAA):
//! `answer IP...` records of T owned by N; `cname C IP...` a CNAME to C, then records owned by C;
//! `nodata` no record; `nxdomain`; `servfail`, `refused`, `notimp`; `lame` (no answer, no
//! recursion, nothing more: a referral); `drop` (no reply at all); `truncate` (over UDP: an empty
//! answer with TC set; over TCP the entry after it answers); `forged IP` (an answer with another
//! id, then the entry after it); `garbage` (bytes that are not a message); `pointer-loop` (the
//! first record's owner name points at itself); `short IP...` (one more record counted than
//! sent); `long-label` (the first record's owner has a 64-byte label); `badvers` (an OPT record
//! with an extended RCODE); `two-questions` (QDCOUNT 2); `delay MS ENTRY` (ENTRY, MS later).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, UdpSocket};
use std::process::Command;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde::Deserialize;

use super::TempDir;

/// One server of a scenario: its address (an IPv6 one may carry a zone, which is dropped here)
/// and its scripts.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Server {
    pub address: String,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// What a server says to the questions of one name and type.
#[derive(Clone, Debug, Deserialize)]
pub struct Rule {
    /// Absolute, `sink.test.`; compared without case.
    pub name: String,
    /// `A` or `AAAA`.
    #[serde(rename = "type")]
    pub qtype: String,
    /// One entry each time it is asked; the last repeats.
    pub say: Vec<String>,
}

/// How the single server of the older tests behaves: a shorthand for its scripts.
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

    /// The server on 127.0.0.1 this behaviour describes; A questions for its names are
    /// answered, AAAA ones have no record.
    fn server(&self) -> Server {
        let mut rules = Vec::new();
        for (name, address) in &self.names {
            let answer = if self.silent {
                "drop".to_owned()
            } else if self.wrong_id_first {
                "forged 10.66.66.66".to_owned()
            } else {
                format!("answer {address}")
            };
            let mut say = Vec::new();
            if self.truncate {
                say.push("truncate".to_owned());
            }
            if self.wrong_id_first {
                say.push(answer);
                say.push(format!("answer {address}"));
            } else {
                say.push(answer);
            }
            rules.push(Rule {
                name: name.clone(),
                qtype: "A".into(),
                say,
            });
            let none = if self.silent { "drop" } else { "nodata" };
            rules.push(Rule {
                name: name.clone(),
                qtype: "AAAA".into(),
                say: vec![none.to_owned()],
            });
        }
        if self.silent {
            rules.push(Rule {
                name: "*".into(),
                qtype: "*".into(),
                say: vec!["drop".into()],
            });
        }
        Server {
            address: "127.0.0.1".into(),
            rules,
        }
    }
}

/// A question as received: the name, the type (1 A, 28 AAAA), and whether it came over TCP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    pub name: String,
    pub qtype: u16,
    pub tcp: bool,
    /// The server it was asked of.
    pub server: IpAddr,
}

pub struct FakeDns {
    pub port: u16,
    asked: Receiver<Question>,
    dir: TempDir,
    /// The first server's address, for the resolv.conf `configure` writes.
    first: String,
}

/// The scripts of one server, and how far each has gone.
struct Scripts {
    rules: Vec<Rule>,
    asked: HashMap<(String, String), usize>,
}

impl Scripts {
    /// The entry for this question now, and the one after it (for `truncate` and `forged`).
    fn next(&mut self, name: &str, qtype: &str) -> (String, Option<String>) {
        let rule = self.rules.iter().find(|r| {
            (r.name == "*" || r.name.eq_ignore_ascii_case(name))
                && (r.qtype == "*" || r.qtype == qtype)
        });
        let Some(rule) = rule else {
            return ("nxdomain".into(), None);
        };
        let count = self
            .asked
            .entry((name.to_ascii_lowercase(), qtype.into()))
            .or_insert(0);
        let at = (*count).min(rule.say.len() - 1);
        *count += 1;
        let after = rule.say.get(at + 1).or(rule.say.last()).cloned();
        (rule.say[at].clone(), after)
    }
}

impl FakeDns {
    /// The single server of `behaviour` on 127.0.0.1.
    pub fn start(behaviour: Behaviour) -> FakeDns {
        FakeDns::servers(&[behaviour.server()])
    }

    /// `servers`, each on its own loopback address, all on one port.
    pub fn servers(servers: &[Server]) -> FakeDns {
        let addresses: Vec<IpAddr> = servers
            .iter()
            .map(|s| {
                s.address
                    .split('%')
                    .next()
                    .unwrap()
                    .parse()
                    .expect("an IP address")
            })
            .collect();
        let (tx, asked) = mpsc::channel();
        let port = 'port: loop {
            let first = UdpSocket::bind((addresses[0], 0)).expect("bind UDP");
            let port = first.local_addr().unwrap().port();
            let mut sockets = vec![first];
            let mut listeners = Vec::new();
            for (index, address) in addresses.iter().enumerate() {
                if index > 0 {
                    match UdpSocket::bind((*address, port)) {
                        Ok(socket) => sockets.push(socket),
                        Err(_) => continue 'port,
                    }
                }
                match TcpListener::bind((*address, port)) {
                    Ok(listener) => listeners.push(listener),
                    Err(_) => continue 'port,
                }
            }
            for ((server, udp), tcp) in servers.iter().zip(sockets).zip(listeners) {
                let scripts = Arc::new(Mutex::new(Scripts {
                    rules: server.rules.clone(),
                    asked: HashMap::new(),
                }));
                let (s, t) = (scripts.clone(), tx.clone());
                thread::spawn(move || serve_udp(udp, &s, &t));
                let t = tx.clone();
                thread::spawn(move || serve_tcp(tcp, &scripts, &t));
            }
            break port;
        };
        let dir = TempDir::new("dns");
        let first = servers[0].address.clone();
        std::fs::write(dir.join("resolv.conf"), format!("nameserver {first}\n")).unwrap();
        std::fs::write(dir.join("hosts"), "").unwrap();
        FakeDns {
            port,
            asked,
            dir,
            first,
        }
    }

    /// Points `command` at this server, with `options` added to its resolv.conf.
    pub fn configure(&self, command: &mut Command, options: &str) {
        self.configure_with(
            command,
            &format!("nameserver {}\n{options}\n", self.first),
            "",
        );
    }

    /// Points `command` at these servers with this resolv.conf and hosts file.
    pub fn configure_with(&self, command: &mut Command, resolv_conf: &str, hosts: &str) {
        let conf = self.dir.join("resolv.conf");
        std::fs::write(&conf, resolv_conf).unwrap();
        std::fs::write(self.dir.join("hosts"), hosts).unwrap();
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
    if name.is_empty() {
        name.push('.');
    }
    let qtype = u16::from_be_bytes([*query.get(at + 1)?, *query.get(at + 2)?]);
    Some((name, qtype, at + 5))
}

fn type_name(qtype: u16) -> &'static str {
    match qtype {
        1 => "A",
        28 => "AAAA",
        _ => "OTHER",
    }
}

/// A name in wire form.
fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// A record of `qtype` for `ip` (or none when it is of the other family), owned by `owner`.
fn record(owner: &[u8], qtype: u16, ip: &str) -> Option<Vec<u8>> {
    let ip: IpAddr = ip.parse().expect("an IP address in a script");
    let data = match (qtype, ip) {
        (1, IpAddr::V4(v4)) => v4.octets().to_vec(),
        (28, IpAddr::V6(v6)) => v6.octets().to_vec(),
        _ => return None,
    };
    let mut out = owner.to_vec();
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(&data);
    Some(out)
}

/// What is sent for one script entry.
enum Reply {
    /// Nothing.
    Drop,
    /// These messages, in turn, after this long.
    Messages(Vec<Vec<u8>>, Duration),
}

/// The reply to `query` that `entry` scripts (`after` is the entry that follows it); `tcp`
/// when it came over TCP.
fn reply(query: &[u8], entry: &str, after: Option<&str>, tcp: bool) -> Reply {
    let Some((_, qtype, end)) = question(query) else {
        return Reply::Drop;
    };
    let mut words = entry.split_whitespace();
    let verb = words.next().unwrap_or("nxdomain");
    let rest: Vec<&str> = words.collect();
    // The question, flagged a response with recursion available; no records counted yet.
    let mut head = query[..end].to_vec();
    head[2] = 0x81;
    head[3] = 0x80;
    head[6..12].copy_from_slice(&[0, 0, 0, 0, 0, 0]);
    let with = |head: &mut Vec<u8>, records: Vec<Vec<u8>>, counted: usize| {
        head[6..8].copy_from_slice(&(counted as u16).to_be_bytes());
        for r in records {
            head.extend_from_slice(&r);
        }
    };
    let pointer = [0xc0, 12];
    let rcode = |code: u8| {
        let mut m = head.clone();
        m[3] = 0x80 | code;
        Reply::Messages(vec![m], Duration::ZERO)
    };
    match verb {
        "drop" => Reply::Drop,
        "nxdomain" => rcode(3),
        "servfail" => rcode(2),
        "notimp" => rcode(4),
        "refused" => rcode(5),
        "nodata" => Reply::Messages(vec![head], Duration::ZERO),
        "lame" => {
            head[2] = 0x81;
            head[3] = 0x00;
            Reply::Messages(vec![head], Duration::ZERO)
        }
        "answer" | "short" => {
            let records: Vec<Vec<u8>> = rest
                .iter()
                .filter_map(|ip| record(&pointer, qtype, ip))
                .collect();
            let counted = records.len() + usize::from(verb == "short");
            with(&mut head, records, counted);
            Reply::Messages(vec![head], Duration::ZERO)
        }
        "cname" => {
            let target = wire_name(rest[0]);
            let mut cname = pointer.to_vec();
            cname.extend_from_slice(&[0, 5, 0, 1, 0, 0, 0, 60]);
            cname.extend_from_slice(&(target.len() as u16).to_be_bytes());
            cname.extend_from_slice(&target);
            let mut records = vec![cname];
            records.extend(rest[1..].iter().filter_map(|ip| record(&target, qtype, ip)));
            let counted = records.len();
            with(&mut head, records, counted);
            Reply::Messages(vec![head], Duration::ZERO)
        }
        "truncate" if !tcp => {
            head[2] |= 0x02;
            Reply::Messages(vec![head], Duration::ZERO)
        }
        "truncate" => reply(query, after.unwrap_or("nxdomain"), None, tcp),
        "forged" => {
            let mut forged = head.clone();
            forged[0] ^= 0xff;
            let records: Vec<Vec<u8>> = rest
                .iter()
                .filter_map(|ip| record(&pointer, qtype, ip))
                .collect();
            let counted = records.len();
            with(&mut forged, records, counted);
            match reply(query, after.unwrap_or("nxdomain"), None, tcp) {
                Reply::Messages(mut messages, delay) => {
                    messages.insert(0, forged);
                    Reply::Messages(messages, delay)
                }
                Reply::Drop => Reply::Messages(vec![forged], Duration::ZERO),
            }
        }
        "garbage" => {
            let mut m = query[..2].to_vec();
            m.extend_from_slice(b"\x81\x80\xff\xff\xff\xff garbage");
            Reply::Messages(vec![m], Duration::ZERO)
        }
        "pointer-loop" => {
            // The record's owner name is a pointer to itself.
            let at = (head.len()) as u16 | 0xc000;
            let mut r = at.to_be_bytes().to_vec();
            r.extend_from_slice(&qtype.to_be_bytes());
            r.extend_from_slice(&[0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
            with(&mut head, vec![r], 1);
            Reply::Messages(vec![head], Duration::ZERO)
        }
        "long-label" => {
            let mut r = vec![64];
            r.extend_from_slice(&[b'a'; 64]);
            r.push(0);
            r.extend_from_slice(&qtype.to_be_bytes());
            r.extend_from_slice(&[0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
            with(&mut head, vec![r], 1);
            Reply::Messages(vec![head], Duration::ZERO)
        }
        "badvers" => {
            let records: Vec<Vec<u8>> = ["10.0.0.1", "::1"]
                .iter()
                .filter_map(|ip| record(&pointer, qtype, ip))
                .collect();
            let counted = records.len();
            with(&mut head, records, counted);
            head[10..12].copy_from_slice(&[0, 1]);
            head.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 1, 0, 0, 0, 0, 0]);
            Reply::Messages(vec![head], Duration::ZERO)
        }
        "two-questions" => {
            let question = query[12..end].to_vec();
            head.extend_from_slice(&question);
            head[4..6].copy_from_slice(&[0, 2]);
            let records: Vec<Vec<u8>> = rest
                .iter()
                .filter_map(|ip| record(&pointer, qtype, ip))
                .collect();
            let counted = records.len();
            with(&mut head, records, counted);
            Reply::Messages(vec![head], Duration::ZERO)
        }
        "delay" => {
            let ms: u64 = rest[0].parse().expect("delay MS ENTRY");
            match reply(query, &rest[1..].join(" "), after, tcp) {
                Reply::Messages(messages, _) => {
                    Reply::Messages(messages, Duration::from_millis(ms))
                }
                Reply::Drop => Reply::Drop,
            }
        }
        other => panic!("an unknown script entry: {other}"),
    }
}

fn serve_udp(socket: UdpSocket, scripts: &Mutex<Scripts>, tx: &Sender<Question>) {
    let server = socket.local_addr().unwrap().ip();
    let socket = Arc::new(socket);
    let mut buffer = [0u8; 1500];
    while let Ok((n, from)) = socket.recv_from(&mut buffer) {
        let query = buffer[..n].to_vec();
        let Some((name, qtype, _)) = question(&query) else {
            continue;
        };
        let _ = tx.send(Question {
            name: name.clone(),
            qtype,
            tcp: false,
            server,
        });
        let (entry, after) = scripts.lock().unwrap().next(&name, type_name(qtype));
        if let Reply::Messages(messages, delay) = reply(&query, &entry, after.as_deref(), false) {
            let socket = socket.clone();
            let send = move || {
                thread::sleep(delay);
                for message in messages {
                    let _ = socket.send_to(&message, from);
                }
            };
            if delay.is_zero() {
                send();
            } else {
                thread::spawn(send);
            }
        }
    }
}

fn serve_tcp(listener: TcpListener, scripts: &Arc<Mutex<Scripts>>, tx: &Sender<Question>) {
    let server = listener.local_addr().unwrap().ip();
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        // A client that never sends its question does not keep this server for ever.
        let _ = stream.set_read_timeout(Some(super::IO_LIMIT));
        let (scripts, tx) = (scripts.clone(), tx.clone());
        thread::spawn(move || {
            let mut length = [0u8; 2];
            if stream.read_exact(&mut length).is_err() {
                return;
            }
            let mut query = vec![0u8; usize::from(u16::from_be_bytes(length))];
            if stream.read_exact(&mut query).is_err() {
                return;
            }
            let Some((name, qtype, _)) = question(&query) else {
                return;
            };
            let _ = tx.send(Question {
                name: name.clone(),
                qtype,
                tcp: true,
                server,
            });
            let (entry, after) = scripts.lock().unwrap().next(&name, type_name(qtype));
            if let Reply::Messages(messages, delay) = reply(&query, &entry, after.as_deref(), true)
            {
                thread::sleep(delay);
                if let Some(message) = messages.last() {
                    let mut out = (message.len() as u16).to_be_bytes().to_vec();
                    out.extend_from_slice(message);
                    let _ = stream.write_all(&out);
                }
            } else {
                // Silent: hold the connection, as a server that never answers does.
                thread::sleep(super::IO_LIMIT);
            }
        });
    }
}

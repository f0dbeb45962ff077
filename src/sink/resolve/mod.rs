//! Host names to addresses, as Go's pure resolver does it on Linux, on the one thread and inside
//! its one wait: `/etc/hosts` first, then the name servers of `/etc/resolv.conf` (search
//! domains, `ndots`, `timeout`, `attempts`, `rotate`, `single-request`, `use-vc`), A and AAAA
//! asked at once over UDP from a fresh socket (a random port) with a random id, over TCP when an
//! answer comes truncated. An answer is taken only from the server asked, and only when it
//! answers the question asked. The whole lookup ends by the caller's deadline, or at once when a
//! stop signal arrives. The C library's resolver would ignore both.

mod conf;
mod message;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Instant;

use crate::config::NameService;
use crate::files;
use crate::wait::{Interest, OnStop, Purpose, Stop, Unready, Waiter, Watched};
use conf::{ResolvConf, hosts_lookup, parse_resolv_conf};
use message::{Answer, TYPE_A, TYPE_AAAA};

/// The most of `/etc/hosts` or `/etc/resolv.conf` read.
const MAX_CONF_FILE: usize = 256 * 1024;
/// Where the host's own name is, for the default search domain.
const HOSTNAME_FILE: &str = "/proc/sys/kernel/hostname";

/// Why a name has no addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The name servers say it does not exist (or has no address).
    NoSuchHost,
    /// No answer came in time; the last server asked.
    TimedOut(Option<SocketAddr>),
    /// A stop signal ended the lookup.
    Stopped(Stop),
    /// The servers could not answer (the last one's reason).
    Failed(String),
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::NoSuchHost => f.write_str("no such host"),
            LookupError::TimedOut(Some(server)) => {
                write!(f, "no answer from the name server {server} in time")
            }
            LookupError::TimedOut(None) => f.write_str("no answer from a name server in time"),
            LookupError::Stopped(stop) => write!(f, "stopped by {}", stop.name()),
            LookupError::Failed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for LookupError {}

/// Looks names up as [`NameService`] says where.
#[derive(Debug, Clone)]
pub struct Resolver {
    settings: NameService,
}

/// One question (a name and a type) on its way through the servers.
struct Question {
    qtype: u16,
    id: u16,
    query: Vec<u8>,
    /// Answered for good: addresses, or none (the name does not exist).
    answer: Option<Vec<IpAddr>>,
}

impl Resolver {
    pub fn new(settings: NameService) -> Resolver {
        Resolver { settings }
    }

    /// The addresses of `name` (not an IP literal), by `deadline`, waiting through `waiter`.
    pub fn lookup(
        &self,
        waiter: &Waiter,
        name: &str,
        deadline: Instant,
    ) -> Result<Vec<IpAddr>, LookupError> {
        if let Ok(hosts) = files::read_text(&self.settings.hosts, MAX_CONF_FILE) {
            let found = hosts_lookup(&hosts, name);
            if !found.is_empty() {
                return Ok(found);
            }
        }
        let text = files::read_text(&self.settings.resolv_conf, MAX_CONF_FILE).unwrap_or_default();
        let hostname = files::read_text(HOSTNAME_FILE.as_ref(), 256).unwrap_or_default();
        let conf = parse_resolv_conf(&text, self.settings.port, &hostname);
        let offset = if conf.rotate {
            usize::from(random_u16())
        } else {
            0
        };
        let mut last = LookupError::NoSuchHost;
        for fqdn in conf.names(name) {
            match ask(waiter, &conf, &fqdn, offset, deadline) {
                Ok(addresses) if !addresses.is_empty() => return Ok(addresses),
                Ok(_) => {}
                Err(error @ LookupError::Stopped(_)) => return Err(error),
                Err(error) => last = error,
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        Err(last)
    }
}

/// Asks the servers of `conf` for the A and AAAA records of `fqdn`, `attempts` rounds each
/// starting at server `offset`. `Ok` with no addresses: the name does not exist.
fn ask(
    waiter: &Waiter,
    conf: &ResolvConf,
    fqdn: &str,
    offset: usize,
    deadline: Instant,
) -> Result<Vec<IpAddr>, LookupError> {
    let mut questions = Vec::with_capacity(2);
    for qtype in [TYPE_A, TYPE_AAAA] {
        let id = random_u16();
        let Some(query) = message::query(id, fqdn, qtype) else {
            // Not a name DNS can carry: it cannot exist.
            return Ok(Vec::new());
        };
        questions.push(Question {
            qtype,
            id,
            query,
            answer: None,
        });
    }
    let mut last = LookupError::TimedOut(None);
    let servers = &conf.servers;
    for _ in 0..conf.attempts {
        for j in 0..servers.len() {
            let server = servers[(offset + j) % servers.len()];
            let now = Instant::now();
            if now >= deadline {
                return Err(last);
            }
            let until = (now + conf.timeout).min(deadline);
            let result = if conf.single_request {
                questions.iter_mut().try_for_each(|q| {
                    exchange(waiter, conf, server, fqdn, std::slice::from_mut(q), until)
                })
            } else {
                exchange(waiter, conf, server, fqdn, &mut questions, until)
            };
            match result {
                Err(error @ LookupError::Stopped(_)) => return Err(error),
                Err(error) => last = error,
                Ok(()) => {}
            }
            if questions.iter().all(|q| q.answer.is_some()) {
                return Ok(questions
                    .into_iter()
                    .flat_map(|q| q.answer.unwrap_or_default())
                    .collect());
            }
        }
    }
    Err(last)
}

/// Sends the unanswered `questions` for `fqdn` to `server` and takes its answers until `until`.
/// `Err` says why this server left some unanswered.
fn exchange(
    waiter: &Waiter,
    conf: &ResolvConf,
    server: SocketAddr,
    fqdn: &str,
    questions: &mut [Question],
    until: Instant,
) -> Result<(), LookupError> {
    if conf.use_tcp {
        for question in questions.iter_mut().filter(|q| q.answer.is_none()) {
            let answer = over_tcp(waiter, server, question, fqdn, until)?;
            settle(question, answer)?;
        }
        return Ok(());
    }
    over_udp(waiter, server, fqdn, questions, until)
}

/// [`exchange`] over UDP: every unanswered question on a socket of its own at once, a truncated
/// answer asked again over TCP.
fn over_udp(
    waiter: &Waiter,
    server: SocketAddr,
    fqdn: &str,
    questions: &mut [Question],
    until: Instant,
) -> Result<(), LookupError> {
    let mut sockets = Vec::with_capacity(questions.len());
    for (index, question) in questions.iter().enumerate() {
        if question.answer.is_none() {
            sockets.push((index, udp_socket(server, &question.query).map_err(failed)?));
        }
    }
    let mut buffer = [0u8; message::MAX_UDP_ANSWER + 256];
    let mut problem = None;
    while !sockets.is_empty() {
        let mut watched: Vec<Watched> = sockets
            .iter()
            .map(|(_, s)| Watched::new(s.as_raw_fd(), Interest::Read))
            .collect();
        match waiter.wait_for(&mut watched, until, OnStop::End, Purpose::Lookup) {
            Ok(()) => {}
            Err(Unready::Stopped(stop)) => return Err(LookupError::Stopped(stop)),
            Err(Unready::TimedOut) => {
                return Err(problem.unwrap_or(LookupError::TimedOut(Some(server))));
            }
            Err(Unready::Failed(error)) => return Err(failed(error)),
        }
        let mut done = Vec::new();
        for ((index, socket), w) in sockets.iter().zip(&watched) {
            if !w.ready {
                continue;
            }
            let question = &mut questions[*index];
            let answer = match receive(socket, &mut buffer, question, fqdn, server) {
                // Not (yet) the answer to this question: wait on.
                Received::Nothing => continue,
                Received::Answer(Answer::Truncated) => {
                    over_tcp(waiter, server, question, fqdn, until)?
                }
                Received::Answer(answer) => answer,
                Received::Unreachable(error) => {
                    problem = Some(error);
                    done.push(*index);
                    continue;
                }
            };
            if let Err(error) = settle(question, answer) {
                problem = Some(error);
            }
            done.push(*index);
        }
        sockets.retain(|(index, _)| !done.contains(index));
    }
    problem.map_or(Ok(()), Err)
}

/// What a ready UDP socket gave for its question.
enum Received {
    /// Nothing, or a datagram that does not answer the question.
    Nothing,
    Answer(Answer),
    /// Nothing listens there (an ICMP port unreachable): this server is done.
    Unreachable(LookupError),
}

/// Takes one datagram from `socket` and reads it as the answer to `question`.
fn receive(
    socket: &UdpSocket,
    buffer: &mut [u8],
    question: &Question,
    fqdn: &str,
    server: SocketAddr,
) -> Received {
    match socket.recv(buffer) {
        Ok(n) => message::answer(&buffer[..n], question.id, fqdn, question.qtype)
            .map_or(Received::Nothing, Received::Answer),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Received::Nothing,
        Err(e) => Received::Unreachable(LookupError::Failed(format!(
            "name server {server}: {}",
            e.kind()
        ))),
    }
}

/// Records `answer` as `question`'s for good, or says why this server did not give one.
fn settle(question: &mut Question, answer: Answer) -> Result<(), LookupError> {
    match answer {
        Answer::Addresses(addresses) => question.answer = Some(addresses),
        Answer::NoSuchHost => question.answer = Some(Vec::new()),
        Answer::TryAnother(why) => return Err(LookupError::Failed(why.to_owned())),
        Answer::Truncated => return Err(LookupError::Failed("truncated over TCP".to_owned())),
    }
    Ok(())
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

/// `question` asked over TCP (RFC 1035 §4.2.2: each message after its two-byte length).
fn over_tcp(
    waiter: &Waiter,
    server: SocketAddr,
    question: &Question,
    fqdn: &str,
    until: Instant,
) -> Result<Answer, LookupError> {
    let mut stream = crate::sys::connect_started(&server).map_err(failed)?;
    wait(waiter, &stream, Interest::Write, until)?;
    if let Some(error) = stream.take_error().map_err(failed)? {
        return Err(failed(error));
    }
    let mut out = u16::try_from(question.query.len())
        .unwrap_or(0)
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(&question.query);
    let mut written = 0;
    while written < out.len() {
        match stream.write(&out[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait(waiter, &stream, Interest::Write, until)?;
            }
            Err(e) => return Err(failed(e)),
        }
    }
    let mut length = [0u8; 2];
    read_exact(waiter, &mut stream, &mut length, until)?;
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(length))];
    read_exact(waiter, &mut stream, &mut answer, until)?;
    message::answer(&answer, question.id, fqdn, question.qtype).ok_or_else(|| {
        LookupError::Failed(format!("name server {server} answered another question"))
    })
}

fn read_exact(
    waiter: &Waiter,
    stream: &mut TcpStream,
    buffer: &mut [u8],
    until: Instant,
) -> Result<(), LookupError> {
    let mut filled = 0;
    while filled < buffer.len() {
        match stream.read(&mut buffer[filled..]) {
            Ok(0) => {
                return Err(LookupError::Failed(
                    "the name server closed the connection".into(),
                ));
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait(waiter, stream, Interest::Read, until)?;
            }
            Err(e) => return Err(failed(e)),
        }
    }
    Ok(())
}

fn wait(
    waiter: &Waiter,
    stream: &TcpStream,
    interest: Interest,
    until: Instant,
) -> Result<(), LookupError> {
    let mut watched = [Watched::new(stream.as_raw_fd(), interest)];
    waiter
        .wait_for(&mut watched, until, OnStop::End, Purpose::Lookup)
        .map_err(|unready| match unready {
            Unready::TimedOut => LookupError::TimedOut(stream.peer_addr().ok()),
            Unready::Stopped(stop) => LookupError::Stopped(stop),
            Unready::Failed(error) => failed(error),
        })
}

fn failed(error: io::Error) -> LookupError {
    LookupError::Failed(error.kind().to_string())
}

/// A random 16-bit number (a query id, a server to start at); 0 without randomness.
fn random_u16() -> u16 {
    let mut bytes = [0u8; 2];
    let _ = getrandom::getrandom(&mut bytes);
    u16::from_ne_bytes(bytes)
}

#[cfg(test)]
pub(crate) mod testing {
    //! A name server on 127.0.0.1 for unit tests: every name is `address` (A), with no AAAA.

    use super::*;
    pub use crate::files::testing::TempDir;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The name server's port, how many questions it was asked, and the directory of the
    /// resolver's files.
    pub struct FakeDns {
        pub port: u16,
        pub asked: Arc<AtomicUsize>,
        pub dir: TempDir,
    }

    impl FakeDns {
        pub fn start(address: [u8; 4]) -> FakeDns {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let port = socket.local_addr().unwrap().port();
            let asked = Arc::new(AtomicUsize::new(0));
            let counter = asked.clone();
            std::thread::spawn(move || {
                let mut buffer = [0u8; 512];
                while let Ok((n, from)) = socket.recv_from(&mut buffer) {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let query = &buffer[..n];
                    // The question ends 4 bytes after the name's final zero; the OPT follows.
                    let name_end = 12 + query[12..].iter().position(|&b| b == 0).unwrap();
                    let question_end = name_end + 5;
                    let is_a = query[name_end + 1..name_end + 3] == [0, 1];
                    let mut reply = query[..question_end].to_vec();
                    reply[2..4].copy_from_slice(&[0x81, 0x80]);
                    reply[6..8].copy_from_slice(&[0, u8::from(is_a)]);
                    reply[10..12].copy_from_slice(&[0, 0]);
                    if is_a {
                        reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                        reply.extend_from_slice(&address);
                    }
                    let _ = socket.send_to(&reply, from);
                }
            });
            let dir = TempDir::new("dns");
            std::fs::write(dir.join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
            std::fs::write(dir.join("hosts"), "").unwrap();
            FakeDns { port, asked, dir }
        }

        /// A resolver that asks this server (and an empty hosts file).
        pub fn resolver(&self) -> Resolver {
            Resolver::new(NameService {
                resolv_conf: self.dir.join("resolv.conf"),
                hosts: self.dir.join("hosts"),
                port: self.port,
            })
        }

        pub fn asked(&self) -> usize {
            self.asked.load(Ordering::SeqCst)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{FakeDns, TempDir};
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_name_is_asked_for_a_and_aaaa_and_the_hosts_file_comes_first() {
        let dns = FakeDns::start([10, 1, 2, 3]);
        let waiter = Waiter::new().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let found = dns
            .resolver()
            .lookup(&waiter, "sink.test", deadline)
            .unwrap();
        assert_eq!(found, [IpAddr::from([10, 1, 2, 3])]);
        assert_eq!(dns.asked(), 2, "one A and one AAAA question");
        std::fs::write(dns.dir.join("hosts"), "10.9.9.9 sink.test\n").unwrap();
        let found = dns
            .resolver()
            .lookup(&waiter, "sink.test", deadline)
            .unwrap();
        assert_eq!(found, [IpAddr::from([10, 9, 9, 9])]);
        assert_eq!(
            dns.asked(),
            2,
            "no question when the hosts file knows the name"
        );
    }

    #[test]
    fn a_silent_name_server_is_given_up_at_the_deadline() {
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let dir = TempDir::new("silent");
        std::fs::write(
            dir.join("resolv.conf"),
            "nameserver 127.0.0.1\noptions timeout:30\n",
        )
        .unwrap();
        let resolver = Resolver::new(NameService {
            resolv_conf: dir.join("resolv.conf"),
            hosts: dir.join("none"),
            port: silent.local_addr().unwrap().port(),
        });
        let waiter = Waiter::new().unwrap();
        let started = Instant::now();
        let error = resolver
            .lookup(&waiter, "sink.test", started + Duration::from_millis(200))
            .unwrap_err();
        let took = started.elapsed();
        assert!(matches!(error, LookupError::TimedOut(Some(_))), "{error:?}");
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }
}

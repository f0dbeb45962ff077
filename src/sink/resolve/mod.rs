//! Host names to addresses, as Go's pure resolver does it on Linux, on the one thread and inside
//! its one wait: `/etc/hosts` first, then the name servers of `/etc/resolv.conf` (search
//! domains, `ndots`, `timeout`, `attempts`, `rotate`, `single-request`, `use-vc`), A and AAAA
//! asked at once, each going through the servers on its own: over UDP from a fresh socket (a
//! random port) with a random id, over TCP when an answer comes truncated ([`exchange`]). An
//! answer is taken only from the server asked, and only when it answers the question asked
//! ([`message`]). Whichever family answered is kept, the other's failure notwithstanding (Go's
//! default, not its `StrictErrors`), and the addresses are ordered as RFC 6724 says ([`order`]).
//! The whole lookup ends by the caller's deadline, or at once when a stop signal arrives. The C
//! library's resolver would ignore both.

mod conf;
mod exchange;
mod message;
mod order;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use crate::config::NameService;
use crate::files;
use crate::wait::{OnStop, Purpose, Stop, Unready, Waiter, Watched};
use conf::{ResolvConf, hosts_lookup, parse_resolv_conf};
use exchange::{Exchange, Progress};
use message::{TYPE_A, TYPE_AAAA};

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

/// Where `rotate` starts the next question: one more each question, as Go's `serverOffset`.
static ROTATION: AtomicU32 = AtomicU32::new(0);

impl Resolver {
    pub fn new(settings: NameService) -> Resolver {
        Resolver { settings }
    }

    /// The addresses of `name` (not an IP literal), by `deadline`, waiting through `waiter`;
    /// their ports are 0, an IPv6 one's scope is its zone's.
    pub fn lookup(
        &self,
        waiter: &Waiter,
        name: &str,
        deadline: Instant,
    ) -> Result<Vec<SocketAddr>, LookupError> {
        if let Ok(hosts) = files::read_text(&self.settings.hosts, MAX_CONF_FILE) {
            let found = hosts_lookup(&hosts, name);
            if !found.is_empty() {
                return Ok(order::by_rfc6724(found));
            }
        }
        if !is_domain_name(name) {
            // Nothing DNS could answer, as Go says without asking.
            return Err(LookupError::NoSuchHost);
        }
        let text = files::read_text(&self.settings.resolv_conf, MAX_CONF_FILE).unwrap_or_default();
        let hostname = files::read_text(HOSTNAME_FILE.as_ref(), 256).unwrap_or_default();
        let conf = parse_resolv_conf(&text, self.settings.port, &hostname);
        let original = format!("{}.", name.trim_end_matches('.'));
        let mut last: Option<LookupError> = None;
        for fqdn in conf.names(name) {
            let mut addresses = Vec::new();
            for result in ask(waiter, &conf, &fqdn, deadline) {
                match result {
                    Ok(found) => {
                        addresses.extend(found.into_iter().map(|ip| SocketAddr::new(ip, 0)))
                    }
                    Err(error @ LookupError::Stopped(_)) => return Err(error),
                    // As Go: the error for the name as given is the one said.
                    Err(error) if last.is_none() || fqdn == original => last = Some(error),
                    Err(_) => {}
                }
            }
            if !addresses.is_empty() {
                return Ok(order::by_rfc6724(addresses));
            }
        }
        Err(last.unwrap_or(LookupError::NoSuchHost))
    }
}

/// Go's `isDomainName`: letters, digits, `-` and `_` in labels of 1 to 63 bytes, not all
/// digits, at most 253 bytes (254 with the final dot); `.` alone is the root.
fn is_domain_name(name: &str) -> bool {
    if name == "." {
        return true;
    }
    let bytes = name.as_bytes();
    let length = bytes.len();
    if length == 0 || length > 254 || length == 254 && !name.ends_with('.') {
        return false;
    }
    let (mut last, mut non_numeric, mut label) = (b'.', false, 0);
    for &c in bytes {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                non_numeric = true;
                label += 1;
            }
            b'0'..=b'9' => label += 1,
            b'-' if last != b'.' => {
                non_numeric = true;
                label += 1;
            }
            b'.' if last != b'.' && last != b'-' && (1..=63).contains(&label) => label = 0,
            _ => return false,
        }
        last = c;
    }
    last != b'-' && label <= 63 && non_numeric
}

/// One question (a name and a type) on its way through the servers, as Go's `tryOneName`: each
/// server in turn (from its rotation), `attempts` rounds, until one gives its word.
struct Question {
    qtype: u16,
    id: u16,
    query: Vec<u8>,
    /// The servers in the order this question asks them, every round.
    servers: Vec<SocketAddr>,
    /// How many exchanges were begun.
    begun: usize,
    /// The exchange under way.
    current: Option<Exchange>,
    /// Why the last server did not answer.
    last: LookupError,
    /// This question's outcome, once it has one.
    outcome: Option<Result<Vec<IpAddr>, LookupError>>,
}

impl Question {
    fn new(conf: &ResolvConf, fqdn: &str, qtype: u16) -> Option<Question> {
        let id = random_u16();
        let query = message::query(id, fqdn, qtype)?;
        let offset = if conf.rotate {
            ROTATION.fetch_add(1, Ordering::Relaxed) as usize
        } else {
            0
        };
        let count = conf.servers.len();
        let servers = (0..count)
            .map(|j| conf.servers[(offset + j) % count])
            .collect();
        Some(Question {
            qtype,
            id,
            query,
            servers,
            begun: 0,
            current: None,
            last: LookupError::TimedOut(None),
            outcome: None,
        })
    }

    /// Begins the next exchange, or ends the question when every server was asked in every
    /// round, or the deadline passed.
    fn next(&mut self, conf: &ResolvConf, deadline: Instant) {
        while self.outcome.is_none() {
            let now = Instant::now();
            if self.begun >= conf.attempts * self.servers.len() || now >= deadline {
                self.outcome = Some(Err(self.last.clone()));
                return;
            }
            let server = self.servers[self.begun % self.servers.len()];
            self.begun += 1;
            let until = now
                .checked_add(conf.timeout)
                .map_or(deadline, |t| t.min(deadline));
            match Exchange::begin(server, &self.query, conf.use_tcp, until) {
                Ok(exchange) => {
                    self.current = Some(exchange);
                    return;
                }
                Err(error) => self.last = error,
            }
        }
    }

    /// Takes what the exchange under way made of the readiness of its socket.
    fn progress(&mut self, conf: &ResolvConf, fqdn: &str, deadline: Instant) {
        let Some(exchange) = &mut self.current else {
            return;
        };
        match exchange.progress(self.id, fqdn, self.qtype) {
            Progress::Waiting => {}
            Progress::Answered(Ok(addresses)) => {
                self.current = None;
                self.outcome = Some(Ok(addresses));
            }
            Progress::Answered(Err(error)) => {
                self.current = None;
                self.outcome = Some(Err(error));
            }
            Progress::Failed(error) => {
                self.current = None;
                self.last = error;
                self.next(conf, deadline);
            }
        }
    }
}

/// Asks the servers of `conf` for the A and AAAA records of `fqdn`, each question on its own (or
/// one after the other with `single-request`); their outcomes, in that order.
fn ask(
    waiter: &Waiter,
    conf: &ResolvConf,
    fqdn: &str,
    deadline: Instant,
) -> Vec<Result<Vec<IpAddr>, LookupError>> {
    // Each question takes its turn of `rotate` as Go's do: one after the other with
    // `single-request`, otherwise AAAA's goroutine (started last, run first) before A's.
    let turns = if conf.single_request {
        [TYPE_A, TYPE_AAAA]
    } else {
        [TYPE_AAAA, TYPE_A]
    };
    let mut questions: Vec<Question> = turns
        .into_iter()
        .filter_map(|qtype| Question::new(conf, fqdn, qtype))
        .collect();
    questions.sort_by_key(|q| q.qtype);
    if questions.is_empty() {
        // Not a name DNS can carry: it cannot exist.
        return vec![Err(LookupError::NoSuchHost)];
    }
    let at_once = if conf.single_request {
        1
    } else {
        questions.len()
    };
    for chunk in questions.chunks_mut(at_once) {
        if let Err(stop) = settle(waiter, conf, fqdn, chunk, deadline) {
            return vec![Err(LookupError::Stopped(stop))];
        }
    }
    questions
        .into_iter()
        .map(|q| q.outcome.unwrap_or(Err(LookupError::TimedOut(None))))
        .collect()
}

/// Runs `questions` side by side until each has an outcome.
fn settle(
    waiter: &Waiter,
    conf: &ResolvConf,
    fqdn: &str,
    questions: &mut [Question],
    deadline: Instant,
) -> Result<(), Stop> {
    for question in questions.iter_mut() {
        question.next(conf, deadline);
    }
    loop {
        let pending: Vec<usize> = (0..questions.len())
            .filter(|&i| questions[i].outcome.is_none())
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        let mut watched: Vec<Watched> = pending
            .iter()
            .filter_map(|&i| questions[i].current.as_ref().map(Exchange::watched))
            .collect();
        let until = pending
            .iter()
            .filter_map(|&i| questions[i].current.as_ref().map(Exchange::until))
            .min()
            .unwrap_or(deadline);
        match waiter.wait_for(&mut watched, until, OnStop::End, Purpose::Lookup) {
            Ok(()) | Err(Unready::TimedOut) => {}
            Err(Unready::Stopped(stop)) => return Err(stop),
            Err(Unready::Failed(error)) => {
                for &i in &pending {
                    questions[i].outcome = Some(Err(LookupError::Failed(error.kind().to_string())));
                }
                return Ok(());
            }
        }
        for (slot, &i) in pending.iter().enumerate() {
            let ready = watched.get(slot).is_some_and(|w| w.ready);
            let question = &mut questions[i];
            let timed_out = question
                .current
                .as_ref()
                .is_some_and(|e| e.until() <= Instant::now());
            if ready {
                question.progress(conf, fqdn, deadline);
            } else if timed_out {
                let server = question.current.take().map(|e| e.server());
                question.last = LookupError::TimedOut(server);
                question.next(conf, deadline);
            }
        }
    }
}

/// A random 16-bit number (a query id); 0 without randomness.
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
    use std::net::UdpSocket;
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
    use std::net::UdpSocket;
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
        assert_eq!(found, [SocketAddr::from(([10, 1, 2, 3], 0))]);
        assert_eq!(dns.asked(), 2, "one A and one AAAA question");
        std::fs::write(dns.dir.join("hosts"), "10.9.9.9 sink.test\n").unwrap();
        let found = dns
            .resolver()
            .lookup(&waiter, "sink.test", deadline)
            .unwrap();
        assert_eq!(found, [SocketAddr::from(([10, 9, 9, 9], 0))]);
        assert_eq!(
            dns.asked(),
            2,
            "no question when the hosts file knows the name"
        );
    }

    #[test]
    fn domain_names_are_what_go_takes_for_one() {
        for good in ["sink.test", "a_b.test.", "x", "1a", ".", &"a".repeat(63)] {
            assert!(is_domain_name(good), "{good}");
        }
        for bad in [
            "",
            "a..b",
            "-a",
            "a-",
            "a.-b",
            "123",
            "a b",
            "bü.test",
            &"a".repeat(64),
        ] {
            assert!(!is_domain_name(bad), "{bad}");
        }
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

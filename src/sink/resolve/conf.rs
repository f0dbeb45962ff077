//! The resolver's configuration files, read as Go's pure resolver reads them on Linux:
//! `/etc/resolv.conf` (name servers, search domains, options) and `/etc/hosts`.

use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::time::Duration;

/// What `/etc/resolv.conf` says, with Go's defaults for what it does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    /// At most three, as libresolv and Go take.
    pub servers: Vec<SocketAddr>,
    /// Domains appended to a name with fewer than `ndots` dots, absolute (`ns.svc.`).
    pub search: Vec<String>,
    pub ndots: usize,
    /// How long one server is given for one query.
    pub timeout: Duration,
    /// How many times each server is asked.
    pub attempts: usize,
    /// Start with a different server each lookup.
    pub rotate: bool,
    /// Ask for A and AAAA one after the other, not at once.
    pub single_request: bool,
    /// Ask over TCP only.
    pub use_tcp: bool,
}

/// `text` of a resolv.conf, name servers on `port` (53, but for tests); `hostname` gives the
/// default search domain when the file names none, as Go does.
pub fn parse_resolv_conf(text: &str, port: u16, hostname: &str) -> ResolvConf {
    let mut conf = ResolvConf {
        servers: Vec::new(),
        search: Vec::new(),
        ndots: 1,
        timeout: Duration::from_secs(5),
        attempts: 2,
        rotate: false,
        single_request: false,
        use_tcp: false,
    };
    let mut searched = false;
    for line in text.lines() {
        if line.starts_with(['#', ';']) {
            continue;
        }
        let mut fields = line.split_ascii_whitespace();
        match fields.next() {
            Some("nameserver") => {
                let server = fields.next().and_then(|f| address(f, port));
                if let (Some(server), true) = (server, conf.servers.len() < 3) {
                    conf.servers.push(server);
                }
            }
            Some("domain") => {
                if let Some(domain) = fields.next() {
                    conf.search = vec![rooted(domain)];
                    searched = true;
                }
            }
            Some("search") => {
                conf.search = fields.map(rooted).filter(|s| s != ".").collect();
                searched = true;
            }
            Some("options") => {
                for option in fields {
                    apply_option(&mut conf, option);
                }
            }
            _ => {}
        }
    }
    if conf.servers.is_empty() {
        conf.servers = vec![
            SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port),
            SocketAddr::new("::1".parse().unwrap_or(IpAddr::from([127, 0, 0, 1])), port),
        ];
    }
    if !searched {
        if let Some((_, domain)) = hostname.trim().split_once('.') {
            if !domain.is_empty() {
                conf.search = vec![rooted(domain)];
            }
        }
    }
    conf
}

fn apply_option(conf: &mut ResolvConf, option: &str) {
    if let Some(n) = option.strip_prefix("ndots:") {
        conf.ndots = dtoi(n).min(15);
    } else if let Some(n) = option.strip_prefix("timeout:") {
        conf.timeout = Duration::from_secs(dtoi(n).max(1) as u64);
    } else if let Some(n) = option.strip_prefix("attempts:") {
        conf.attempts = dtoi(n).max(1);
    } else {
        match option {
            "rotate" => conf.rotate = true,
            "single-request" | "single-request-reopen" => conf.single_request = true,
            "use-vc" | "usevc" | "tcp" => conf.use_tcp = true,
            _ => {}
        }
    }
}

/// The most a number of resolv.conf may be: Go's `dtoi` stops there (0xFFFFFF; a timeout of
/// about 194 days, which the caller's deadline bounds anyway).
const BIG: usize = 0xFF_FFFF;

/// Go's `dtoi`: the decimal digits `text` starts with (none: 0), at most [`BIG`].
fn dtoi(text: &str) -> usize {
    let mut n = 0usize;
    for digit in text.bytes().take_while(u8::is_ascii_digit) {
        n = n * 10 + usize::from(digit - b'0');
        if n >= BIG {
            return BIG;
        }
    }
    n
}

/// `text`, an IP address perhaps with a zone (`fe80::1%eth0`, `fe80::1%2`), on `port`: the zone
/// becomes the scope id, as Go's dialer takes it (an interface by name or number). `None` when
/// it is not an address, or names an interface this host does not have.
pub fn address(text: &str, port: u16) -> Option<SocketAddr> {
    let (ip, zone) = match text.split_once('%') {
        Some((ip, zone)) if !zone.is_empty() => (ip, Some(zone)),
        Some(_) => return None,
        None => (text, None),
    };
    let ip: IpAddr = ip.parse().ok()?;
    match (ip, zone) {
        (IpAddr::V6(v6), Some(zone)) => {
            let scope = zone
                .parse()
                .ok()
                .or_else(|| crate::sys::interface_index(zone))?;
            Some(SocketAddr::V6(SocketAddrV6::new(v6, port, 0, scope)))
        }
        (IpAddr::V4(_), Some(_)) => None,
        (ip, None) => Some(SocketAddr::new(ip, port)),
    }
}

fn rooted(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

impl ResolvConf {
    /// The names to ask for, in order, as Go builds them (`nameList`): a name ending in `.` as
    /// it is; one with at least `ndots` dots first as it is, then with each search domain; one
    /// with fewer dots with each search domain first. Names too long for DNS are left out, and
    /// so is every `.onion` name (RFC 7686: never asked of DNS).
    pub fn names(&self, name: &str) -> Vec<String> {
        let rooted = name.ends_with('.');
        if name.len() > 254 || name.len() == 254 && !rooted {
            return Vec::new();
        }
        if rooted {
            return [name.to_owned()]
                .into_iter()
                .filter(|n| !onion(n))
                .collect();
        }
        let as_is = format!("{name}.");
        let enough_dots = name.matches('.').count() >= self.ndots;
        let mut names = Vec::with_capacity(self.search.len() + 1);
        if enough_dots {
            names.push(as_is.clone());
        }
        for suffix in &self.search {
            let full = format!("{name}.{suffix}");
            if full.len() <= 254 {
                names.push(full);
            }
        }
        if !enough_dots {
            names.push(as_is);
        }
        names.retain(|n| !onion(n));
        names
    }
}

/// Go's `avoidDNS`: a name under `.onion`, in any case.
fn onion(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    name.len() >= 6 && name[name.len() - 6..].eq_ignore_ascii_case(".onion")
}

/// The addresses `/etc/hosts` (`text`) gives `name`, compared without case and a final dot, as
/// Go reads the file: every line of an address and its names, in order, a name given twice kept
/// twice, an IPv6 address's zone kept as its scope id (the port is 0).
pub fn hosts_lookup(text: &str, name: &str) -> Vec<SocketAddr> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_ascii_whitespace();
        let Some(address) = fields.next().and_then(|a| self::address(a, 0)) else {
            continue;
        };
        let names = fields.map(|f| f.strip_suffix('.').unwrap_or(f));
        if names.into_iter().any(|n| n.eq_ignore_ascii_case(name)) {
            found.push(address);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_server_with_a_zone_keeps_it_as_its_scope() {
        let conf = parse_resolv_conf("nameserver ::1%lo\nnameserver fe80::1%3\n", 53, "");
        let lo = crate::sys::interface_index("lo").unwrap();
        let scopes: Vec<u32> = conf
            .servers
            .iter()
            .map(|s| match s {
                SocketAddr::V6(v6) => v6.scope_id(),
                SocketAddr::V4(_) => panic!("{s}"),
            })
            .collect();
        assert_eq!(scopes, [lo, 3]);
    }

    #[test]
    fn a_kubernetes_resolv_conf_is_read_as_go_reads_it() {
        let text = "nameserver 10.96.0.10\n\
            search team.svc.cluster.local svc.cluster.local cluster.local\n\
            options ndots:5 timeout:2 attempts:3 rotate\n";
        let conf = parse_resolv_conf(text, 53, "pod-7d9f");
        assert_eq!(conf.servers, ["10.96.0.10:53".parse().unwrap()]);
        assert_eq!(
            conf.search,
            [
                "team.svc.cluster.local.",
                "svc.cluster.local.",
                "cluster.local."
            ]
        );
        assert_eq!((conf.ndots, conf.attempts, conf.rotate), (5, 3, true));
        assert_eq!(conf.timeout, Duration::from_secs(2));
        // Fewer than five dots: the search domains first, the name as given last.
        assert_eq!(
            conf.names("otel-collector.observability"),
            [
                "otel-collector.observability.team.svc.cluster.local.",
                "otel-collector.observability.svc.cluster.local.",
                "otel-collector.observability.cluster.local.",
                "otel-collector.observability.",
            ]
        );
        assert_eq!(
            conf.names("sink.team.svc.cluster.local."),
            ["sink.team.svc.cluster.local."]
        );
    }

    #[test]
    fn defaults_limits_and_comments_follow_go() {
        let text = "# comment\nnameserver 127.0.0.2 ; trailing\nnameserver ::2\nnameserver 10.0.0.3\n\
            nameserver 10.0.0.4\nnameserver not-an-ip\noptions ndots:99 timeout:0 attempts:0 \
            single-request use-vc\ndomain example.com\n";
        let conf = parse_resolv_conf(text, 5353, "host");
        let servers: Vec<String> = conf.servers.iter().map(ToString::to_string).collect();
        assert_eq!(servers, ["127.0.0.2:5353", "[::2]:5353", "10.0.0.3:5353"]);
        assert_eq!((conf.ndots, conf.attempts), (15, 1));
        // Go's dtoi: the digits a number starts with, at most 0xFFFFFF; nothing overflows.
        let huge = parse_resolv_conf(
            "options timeout:18446744073709551615 attempts:5x ndots:-2",
            53,
            "",
        );
        assert_eq!(huge.timeout, Duration::from_secs(0xFF_FFFF));
        assert_eq!((huge.attempts, huge.ndots), (5, 0));
        assert_eq!(conf.timeout, Duration::from_secs(1));
        assert!(conf.single_request && conf.use_tcp && !conf.rotate);
        assert_eq!(conf.search, ["example.com."]);
        // Nothing at all: localhost on both families, one dot, 5 s, two attempts, and the
        // search domain of the host's own name.
        let empty = parse_resolv_conf("", 53, "pod.example.org");
        assert_eq!(empty.servers.len(), 2);
        assert_eq!((empty.ndots, empty.attempts), (1, 2));
        assert_eq!(empty.timeout, Duration::from_secs(5));
        assert_eq!(empty.search, ["example.org."]);
        // One dot is enough by default: the name first.
        assert_eq!(
            empty.names("sink.test"),
            ["sink.test.", "sink.test.example.org."]
        );
    }

    #[test]
    fn hosts_entries_match_without_case_or_a_final_dot() {
        let hosts = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n\
            10.0.0.5 Sink.Test sink # the sink\nfe80::1%1 link.test\nbad line\n\
            10.0.0.5 sink.test\nfe80::2%nosuchif link.test\n";
        let at = |text: &str| text.parse::<SocketAddr>().unwrap();
        assert_eq!(
            hosts_lookup(hosts, "LOCALHOST."),
            [at("127.0.0.1:0"), at("[::1]:0")]
        );
        // Twice in the file, twice in the answer, as Go's.
        assert_eq!(
            hosts_lookup(hosts, "sink.test"),
            [at("10.0.0.5:0"), at("10.0.0.5:0")]
        );
        // A zone is the scope id; one naming no interface of this host is passed over.
        assert_eq!(hosts_lookup(hosts, "link.test"), [at("[fe80::1%1]:0")]);
        assert!(hosts_lookup(hosts, "the").is_empty());
    }
}

//! The test suite's fake name servers (tests/support/dns.rs) as a program of their own, for
//! `just vectors`: Go's resolver is asked the same questions of the same servers as ours is, so
//! that the vectors in tests/vectors/resolver.jsonl are Go's answers to exactly what the tests
//! replay. Not a tool for users.
//!
//! `cargo run --example fake_dns -- SERVERS.json` starts the servers the file describes (a JSON
//! array of `{"address": ..., "rules": [...]}`, the module's script language), prints the one
//! port they listen on, and serves until its standard input closes.

#[path = "../tests/support/dns.rs"]
mod dns;

use std::io::Read;
use std::time::Duration;

/// How long a client that never sends its question keeps a connection (as in the tests).
const IO_LIMIT: Duration = Duration::from_secs(10);

/// The temporary directory the servers' own resolv.conf goes in (unused here, but the module
/// writes one), removed at the end.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("heartbeats-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&path).expect("a temporary directory");
        TempDir(path)
    }

    fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() {
    let path = std::env::args().nth(1).expect("a file of servers");
    let text = std::fs::read_to_string(path).expect("the file of servers");
    let servers: Vec<dns::Server> = serde_json::from_str(&text).expect("servers as JSON");
    let fake = dns::FakeDns::servers(&servers);
    println!("{}", fake.port);
    // Serve until whoever started this closes its standard input.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

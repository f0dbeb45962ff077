//! A fake forward proxy on 127.0.0.1. An absolute-form request (`POST http://host:port/path`) is
//! forwarded to the sink it names in origin form; `CONNECT host:port` is answered 200 and
//! tunnelled byte for byte. Names map to local ports through a table the test gives, so a sink
//! can be named by a host that does not resolve: the client must leave the lookup to the proxy.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::Duration;

/// What the proxy was asked, per connection.
#[derive(Debug, Clone)]
pub struct Asked {
    /// The request line, as sent.
    pub line: String,
    /// The `Proxy-Authorization` header, if any.
    pub authorization: Option<String>,
}

pub struct FakeProxy {
    pub port: u16,
    asked: Receiver<Asked>,
    /// Connections accepted, counted as they are accepted (before anything is read).
    accepted: Arc<AtomicUsize>,
}

impl FakeProxy {
    /// A proxy that reaches `host:port` (as the client names it) at 127.0.0.1:`local port`.
    pub fn start(names: Vec<(String, u16)>) -> FakeProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let (tx, asked) = mpsc::channel();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                counter.fetch_add(1, Ordering::SeqCst);
                let (tx, names) = (tx.clone(), names.clone());
                thread::spawn(move || serve(client, &names, &tx));
            }
        });
        FakeProxy {
            port,
            asked,
            accepted,
        }
    }

    /// A proxy that answers every request head with `answer` as it is, then closes the
    /// connection when `close`, or holds it open.
    pub fn answering(answer: Vec<u8>, close: bool) -> FakeProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let (tx, asked) = mpsc::channel();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = client.set_read_timeout(Some(super::IO_LIMIT));
                let (tx, answer) = (tx.clone(), answer.clone());
                thread::spawn(move || {
                    let mut reader = BufReader::new(client.try_clone().unwrap());
                    let mut line = String::new();
                    let _ = reader.read_line(&mut line);
                    let _ = tx.send(Asked {
                        line: line.trim_end().to_owned(),
                        authorization: None,
                    });
                    let _ = client.write_all(&answer);
                    if !close {
                        thread::sleep(Duration::from_secs(30));
                    }
                });
            }
        });
        FakeProxy {
            port,
            asked,
            accepted,
        }
    }

    /// `http://127.0.0.1:port`, with `userinfo@` when given.
    pub fn url(&self, userinfo: &str) -> String {
        format!("http://{userinfo}127.0.0.1:{}", self.port)
    }

    /// How many connections it has accepted.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// What the next connection asked, waiting at most `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<Asked> {
        self.asked.recv_timeout(timeout).ok()
    }
}

fn serve(client: TcpStream, names: &[(String, u16)], tx: &Sender<Asked>) {
    // A client that never sends its request head does not keep this thread for ever.
    let _ = client.set_read_timeout(Some(super::IO_LIMIT));
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            break;
        }
        head.push(line);
    }
    let first = head[0].clone();
    let authorization = head[1..].iter().find_map(|h| {
        let (name, value) = h.split_once(':')?;
        name.eq_ignore_ascii_case("proxy-authorization")
            .then(|| value.trim().to_owned())
    });
    let _ = tx.send(Asked {
        line: first.clone(),
        authorization,
    });
    let mut parts = first.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let authority = match target.strip_prefix("http://") {
        Some(rest) => rest.split('/').next().unwrap_or(""),
        None => target,
    };
    let Some((_, port)) = names.iter().find(|(name, _)| name == authority) else {
        let _ = (&client).write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n");
        return;
    };
    let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", *port)) else {
        return;
    };
    if method == "CONNECT" {
        let _ = (&client).write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
    } else {
        let path = &target["http://".len() + authority.len()..];
        let mut forwarded = format!("{method} {path} HTTP/1.1\r\n");
        for header in &head[1..] {
            if !header
                .to_ascii_lowercase()
                .starts_with("proxy-authorization:")
            {
                forwarded.push_str(header);
                forwarded.push_str("\r\n");
            }
        }
        forwarded.push_str("\r\n");
        let _ = upstream.write_all(forwarded.as_bytes());
        let _ = upstream.write_all(reader.buffer());
    }
    let mut back = upstream.try_clone().unwrap();
    let mut to_client = client.try_clone().unwrap();
    thread::spawn(move || {
        let _ = std::io::copy(&mut back, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Write);
    });
    let mut from_client = client;
    // What the reader holds was forwarded above (plain) or is nothing yet (CONNECT).
    let _ = std::io::copy(&mut from_client, &mut upstream);
    let _ = upstream.shutdown(Shutdown::Write);
}

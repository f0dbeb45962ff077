//! How the crate's two servers (the scrape server and the receiver) close a connection after its
//! last answer, as Go's `net/http` does: the write side is shut, then what the client still
//! sends is read and dropped, at most [`MAX_BYTES`] or for [`TIME`]. Closing with unread bytes
//! would make the kernel send a reset, and the client could lose the answer to it.

use std::io::{self, Read};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// How long a closing connection is read for (Go's `rstAvoidanceDelay`).
const TIME: Duration = Duration::from_millis(500);

/// How much a closing connection may still send before it is dropped (Go's
/// `maxPostHandlerReadBytes`).
const MAX_BYTES: usize = 256 * 1024;

/// A connection answered and closing: what it still sends is dropped.
pub struct Linger {
    dropped: usize,
    until: Instant,
}

impl Linger {
    /// Shuts `stream`'s write side; an error means the connection is gone.
    pub fn start(stream: &TcpStream, now: Instant) -> io::Result<Linger> {
        stream.shutdown(Shutdown::Write)?;
        Ok(Linger {
            dropped: 0,
            until: now + TIME,
        })
    }

    /// When the connection is given up.
    pub fn until(&self) -> Instant {
        self.until
    }

    /// Reads and drops what `stream` has; false when the connection is done with (the client
    /// closed, sent too much, or the connection failed).
    pub fn read(&mut self, stream: &mut TcpStream) -> bool {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => {
                    self.dropped += n;
                    if self.dropped >= MAX_BYTES {
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return e.kind() == io::ErrorKind::WouldBlock,
            }
        }
    }
}

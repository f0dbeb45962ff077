//! The system calls std does not wrap, as safe functions; the only module with `unsafe`.
//!
//! SIGTERM and SIGINT are events the thread waits for, not asynchronous interruptions: both are
//! blocked at start-up and read from a [`SignalFd`], which [`poll`] watches beside sockets. This
//! works as PID 1 in a container, where the kernel drops signals that have no handler, and needs
//! no handler and no second thread. Go ignores the first SIGTERM in its loop; we stop.
//! Besides signals: `ppoll`, a TCP connect that does not block, `O_NONBLOCK` on a descriptor
//! (the log's stderr), and the process facts that `/proc` does not give (clock ticks, page size,
//! the open-files limit).
#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// The signals that end the program.
const STOP_SIGNALS: [libc::c_int; 2] = [libc::SIGTERM, libc::SIGINT];

/// A stop signal that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Term,
    Int,
}

impl Stop {
    fn from_signal(signal: libc::c_int) -> Option<Stop> {
        match signal {
            libc::SIGTERM => Some(Stop::Term),
            libc::SIGINT => Some(Stop::Int),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Stop::Term => "SIGTERM",
            Stop::Int => "SIGINT",
        }
    }
}

/// A set holding [`STOP_SIGNALS`].
fn stop_set() -> io::Result<libc::sigset_t> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set it is given a valid pointer to.
    check(unsafe { libc::sigemptyset(set.as_mut_ptr()) })?;
    // SAFETY: sigemptyset succeeded, so the set is initialised.
    let mut set = unsafe { set.assume_init() };
    for signal in STOP_SIGNALS {
        // SAFETY: `set` is an initialised sigset_t and `signal` a valid signal number.
        check(unsafe { libc::sigaddset(&raw mut set, signal) })?;
    }
    Ok(set)
}

fn check(result: libc::c_int) -> io::Result<libc::c_int> {
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// Blocks SIGTERM and SIGINT for this (only) thread, so they stay pending until waited for.
/// Call first thing in `main`.
pub fn block_stop_signals() -> io::Result<()> {
    let set = stop_set()?;
    // SAFETY: `set` is initialised; the old mask is not wanted, so a null pointer is allowed.
    let result =
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut()) };
    match result {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

fn timespec(left: Duration) -> libc::timespec {
    libc::timespec {
        // Capped at 68 years, which fits every time_t; the callers wait again if need be.
        tv_sec: left.as_secs().min(i32::MAX as u64) as _,
        // Below 10^9, which fits a 32-bit `long` too.
        tv_nsec: left.subsec_nanos() as _,
    }
}

/// The stop signals as a readable descriptor, for [`poll`]: they must be blocked
/// ([`block_stop_signals`]), and stay pending until read here.
pub struct SignalFd(OwnedFd);

impl SignalFd {
    pub fn new() -> io::Result<SignalFd> {
        let set = stop_set()?;
        // SAFETY: `set` is initialised; -1 asks for a new descriptor; the flags are valid.
        let fd = check(unsafe {
            libc::signalfd(-1, &raw const set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC)
        })?;
        // SAFETY: signalfd returned a new descriptor that nothing else owns.
        Ok(SignalFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// The stop signal waiting to be read, if any, without waiting.
    pub fn take(&self) -> io::Result<Option<Stop>> {
        let mut info = MaybeUninit::<libc::signalfd_siginfo>::uninit();
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: `info` is a writable buffer of `size` bytes for the call's duration.
        let read = unsafe { libc::read(self.0.as_raw_fd(), info.as_mut_ptr().cast(), size) };
        if read < 0 {
            let error = io::Error::last_os_error();
            return match error.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(error),
            };
        }
        if read as usize != size {
            return Ok(None);
        }
        // SAFETY: the kernel filled the whole struct (checked just above).
        let info = unsafe { info.assume_init() };
        Ok(Stop::from_signal(info.ssi_signo as libc::c_int))
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// What a descriptor is watched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    Read,
    Write,
}

/// One descriptor to watch and, after [`poll`], whether it became ready.
#[derive(Debug, Clone, Copy)]
pub struct Watched {
    pub fd: RawFd,
    pub interest: Interest,
    /// Readable or writable as asked, or closed or failed (the next read or write says which).
    pub ready: bool,
}

impl Watched {
    pub fn new(fd: RawFd, interest: Interest) -> Watched {
        Watched {
            fd,
            interest,
            ready: false,
        }
    }
}

/// The most descriptors one [`poll`] watches.
pub const MAX_WATCHED: usize = 80;

/// Waits until one of `watched` is ready or `deadline` passes (forever when `None`): one
/// `ppoll`, with the signal mask as it is. Sets each one's `ready`; returns whether any is
/// ready (false when the deadline passed or a signal interrupted the wait).
pub fn poll(watched: &mut [Watched], deadline: Option<Instant>) -> io::Result<bool> {
    let mut polled = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; MAX_WATCHED];
    let count = watched.len().min(MAX_WATCHED);
    for (slot, w) in polled.iter_mut().zip(watched.iter()) {
        slot.fd = w.fd;
        slot.events = match w.interest {
            Interest::Read => libc::POLLIN,
            Interest::Write => libc::POLLOUT,
        };
    }
    let timeout = deadline.map(|d| timespec(d.saturating_duration_since(Instant::now())));
    let timeout_ptr = timeout
        .as_ref()
        .map_or(std::ptr::null(), std::ptr::from_ref);
    // SAFETY: `polled` holds `count` initialised entries (a descriptor that is not open comes
    // back as POLLNVAL, never as undefined behaviour); `timeout_ptr` is null or points to a
    // timespec that outlives the call; a null signal mask keeps the current one.
    let result = unsafe {
        libc::ppoll(
            polled.as_mut_ptr(),
            count as libc::nfds_t,
            timeout_ptr,
            std::ptr::null(),
        )
    };
    if result < 0 {
        let error = io::Error::last_os_error();
        return match error.kind() {
            io::ErrorKind::Interrupted => Ok(false),
            _ => Err(error),
        };
    }
    for (w, slot) in watched.iter_mut().zip(polled.iter()) {
        w.ready = slot.revents != 0;
    }
    Ok(result > 0)
}

/// A non-blocking TCP socket whose connection to `addr` has begun: it becomes writable when
/// connected or failed (`TcpStream::take_error` says which). std only connects blocking.
pub fn connect_started(addr: &SocketAddr) -> io::Result<TcpStream> {
    let domain = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let kind = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: socket takes no pointers; a new descriptor or -1 comes back.
    let fd = check(unsafe { libc::socket(domain, kind, 0) })?;
    // SAFETY: socket returned a new descriptor that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let (storage, length) = socket_address(addr);
    // SAFETY: `storage` holds a sockaddr of `length` bytes for the family of `addr`, alive for
    // the call; the descriptor is open (owned above).
    let result = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            (&raw const storage).cast::<libc::sockaddr>(),
            length,
        )
    };
    if result == -1 {
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(error);
        }
    }
    Ok(TcpStream::from(socket))
}

/// Makes closing `stream` reset the connection (`SO_LINGER` of zero): the peer sees that the
/// answer was dropped, not a clean end after part of it.
pub fn reset_on_close(stream: &TcpStream) -> io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` is a valid struct of the size given, alive for the call; the descriptor
    // is open for the borrow's lifetime.
    check(unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// `addr` as the C socket address the kernel takes, and its length.
fn socket_address(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data, for which all zeroes is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let length = match addr {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for every sockaddr type.
            unsafe { (&raw mut storage).cast::<libc::sockaddr_in>().write(sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: as above.
            unsafe { (&raw mut storage).cast::<libc::sockaddr_in6>().write(sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, length as libc::socklen_t)
}

/// The index of the network interface called `name` (an IPv6 zone's scope id), if there is one.
pub fn interface_index(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: `name` is a NUL-terminated string alive for the call; if_nametoindex only reads it.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

/// Clock ticks per second, the unit of CPU times in `/proc/self/stat`.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf takes no pointers.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// The memory page size, the unit of `/proc/self/statm`.
pub fn page_size() -> u64 {
    // SAFETY: sysconf takes no pointers.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

/// The soft limit on open descriptors (`RLIMIT_NOFILE`), `None` when unlimited or unknown.
pub fn max_open_files() -> Option<u64> {
    let mut limit = MaybeUninit::<libc::rlimit>::uninit();
    // SAFETY: getrlimit fills the struct it is given a valid pointer to.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, limit.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: getrlimit succeeded, so the struct is filled.
    let soft = unsafe { limit.assume_init() }.rlim_cur;
    (soft != libc::RLIM_INFINITY).then_some(soft)
}

/// Sets `O_NONBLOCK` on `fd`'s open file description: writes that would wait fail instead.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_GETFL on a descriptor that is open for the borrow's lifetime; no pointers.
    let flags = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above; F_SETFL takes the flags as an int.
        check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    }
    Ok(())
}

/// Whether a connected socket is still open, without waiting: one `recv` with `MSG_PEEK` and
/// `MSG_DONTWAIT` (std's `peek` needs the socket made non-blocking and back, three calls).
/// `Ok(true)`: nothing to read, the peer has not closed; `Ok(false)`: the peer closed or sent
/// something unasked; `Err`: the socket failed.
pub fn is_quiet(socket: BorrowedFd<'_>) -> io::Result<bool> {
    let mut byte = 0u8;
    // SAFETY: `byte` is a valid one-byte buffer for the call's duration; the descriptor is open
    // for the borrow's lifetime; MSG_PEEK leaves any data in the socket.
    let result = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            (&raw mut byte).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if result >= 0 {
        return Ok(false);
    }
    let error = io::Error::last_os_error();
    match error.kind() {
        io::ErrorKind::WouldBlock => Ok(true),
        io::ErrorKind::Interrupted => is_quiet(socket),
        _ => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;

    #[test]
    fn a_socket_is_quiet_until_the_peer_writes_or_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        assert!(is_quiet(client.as_fd()).unwrap());
        server.write_all(b"x").unwrap();
        // The peek must not consume: the byte stays readable.
        let mut seen = false;
        for _ in 0..1000 {
            if !is_quiet(client.as_fd()).unwrap() {
                seen = true;
                break;
            }
            std::thread::yield_now();
        }
        assert!(seen, "the byte never arrived");
        let mut byte = [0u8; 1];
        assert_eq!(client.peek(&mut byte).unwrap(), 1);
        let other = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        drop(listener.accept().unwrap());
        let mut closed = false;
        for _ in 0..1000 {
            if !is_quiet(other.as_fd()).unwrap_or(false) {
                closed = true;
                break;
            }
            std::thread::yield_now();
        }
        assert!(closed, "the close was never seen");
    }
}

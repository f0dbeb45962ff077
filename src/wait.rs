//! The one place the thread waits. Sleeping to the next beat, backing off before a retry, and
//! waiting on a socket all come here, to one `ppoll` over the stop signals (a signalfd), the
//! descriptor waited on, and whatever telemetry asked to have watched.
//!
//! Telemetry never owns a wait; it hands the waiter two things through the traits below: a
//! [`Service`] (the scrape server), served during every wait, and [`Idle`] work (exports), run
//! only while the thread sleeps and only until the sleeper's own deadline. A stop signal ends a
//! sleep at once; it ends a socket wait at once when that wait is stoppable ([`OnStop::End`]),
//! and is otherwise kept (an attempt exchanging bytes with the sink may finish) and ends the
//! next wait. The waiter also keeps account of where the thread's time went (name lookups,
//! exports, scrapes), so that a late beat can say what held it.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sys::{self, SignalFd};
pub use crate::sys::{Interest, Stop, Watched};

/// What is answered during every wait (the scrape server): its descriptors, its next deadline,
/// and the work their readiness allows, done without waiting.
pub trait Service: Send {
    /// Appends the descriptors to watch.
    fn watch(&self, watched: &mut Vec<Watched>);
    /// When it must run even if nothing is ready (a connection's deadline).
    fn due(&self) -> Option<Instant>;
    /// Does what `ready` (its own descriptors, as appended) and the time allow, without waiting.
    fn serve(&mut self, ready: &[Watched], now: Instant);
}

/// Work done while the thread is idle (exports): never while an event is being sent, and never
/// past the deadline of the sleep it runs in, so it cannot make a beat late.
pub trait Idle: Send {
    /// When it next has work.
    fn due(&self) -> Option<Instant>;
    /// Does the work that is due, finished by `until`.
    fn run(&mut self, until: Instant);
    /// Does all pending work, finished by `until` (at exit).
    fn flush(&mut self, until: Instant);
}

/// How a socket wait treats a stop signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStop {
    /// End the wait at once (a lookup, a connect, an export).
    End,
    /// Keep the signal for the next wait (an attempt exchanging bytes with the sink).
    Defer,
}

/// A socket wait that ended without a descriptor becoming ready.
#[derive(Debug)]
pub enum Unready {
    /// The deadline passed.
    TimedOut,
    /// A stop signal arrived (see [`OnStop::End`]).
    Stopped(Stop),
    Failed(io::Error),
}

impl From<Unready> for io::Error {
    fn from(unready: Unready) -> io::Error {
        match unready {
            Unready::TimedOut => io::ErrorKind::TimedOut.into(),
            Unready::Stopped(stop) => io::Error::new(io::ErrorKind::Interrupted, Stopped(stop)),
            Unready::Failed(error) => error,
        }
    }
}

/// The error inside an [`io::Error`] of a wait that a stop signal ended.
#[derive(Debug, Clone, Copy)]
pub struct Stopped(pub Stop);

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stopped by {}", self.0.name())
    }
}

impl std::error::Error for Stopped {}

/// What a socket wait is for, so that its time can be told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Looking a host name up.
    Lookup,
    /// Anything else: connecting, sending, reading an answer.
    Other,
}

/// Where the thread's time went since it was last asked, besides sleeping and sending.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    /// Waiting for name servers (within a send or an export).
    pub lookups: Duration,
    /// Exports, lookups for them included.
    pub exports: Duration,
    /// Answering scrapes.
    pub scrapes: Duration,
}

/// See the module documentation. Shared by the loop, the sender and every transport; the
/// thread is one, so the lock is never contended (transports must be `Sync` for ureq).
pub struct Waiter {
    signals: SignalFd,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// A stop signal that arrived, kept until the program ends.
    stopped: Option<Stop>,
    /// The program is ending: a stop no longer ends waits (the exit flush has its own bound).
    draining: bool,
    service: Option<Box<dyn Service>>,
    idle: Option<Box<dyn Idle>>,
    /// Reused for every wait.
    watched: Vec<Watched>,
    spent: Spent,
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Waiter")
    }
}

impl Waiter {
    /// A waiter on the stop signals, which must already be blocked
    /// ([`sys::block_stop_signals`]).
    pub fn new() -> io::Result<Waiter> {
        Ok(Waiter {
            signals: SignalFd::new()?,
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic aborts the process (panic = "abort"), so the lock is never poisoned in the
        // binary; in tests, carry on with what is there.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn set_service(&self, service: Box<dyn Service>) {
        self.state().service = Some(service);
    }

    pub fn set_idle(&self, idle: Box<dyn Idle>) {
        self.state().idle = Some(idle);
    }

    /// Whether a socket wait watches more than its socket (a service is set), so that a read
    /// must not block in the kernel.
    pub fn serves_while_waiting(&self) -> bool {
        self.state().service.is_some()
    }

    /// The stop signal that arrived, if one did.
    pub fn stopped(&self) -> Option<Stop> {
        self.state().stopped
    }

    /// Where the time went since the last call.
    pub fn take_spent(&self) -> Spent {
        std::mem::take(&mut self.state().spent)
    }

    /// The program is ending: from now on waits end only at their deadlines.
    pub fn drain(&self) {
        self.state().draining = true;
    }

    /// Sleeps until `deadline` (forever when `None`), serving the service and running idle work
    /// meanwhile, unless a stop signal arrives first or already did.
    pub fn sleep_until(&self, deadline: Option<Instant>) -> Result<(), Stop> {
        loop {
            let now = Instant::now();
            let mut state = self.state();
            if let (Some(stop), false) = (state.stopped, state.draining) {
                return Err(stop);
            }
            if deadline.is_some_and(|d| d <= now) {
                return Ok(());
            }
            let idle_due = state.idle.as_ref().and_then(|idle| idle.due());
            if let (Some(due), Some(until)) = (idle_due, deadline.or(Some(now + IDLE_ALONE))) {
                if due <= now {
                    // Run without the lock: the work waits on sockets through this waiter.
                    let mut idle = state.idle.take();
                    drop(state);
                    if let Some(idle) = &mut idle {
                        idle.run(until);
                    }
                    let mut state = self.state();
                    state.idle = idle;
                    state.spent.exports += now.elapsed();
                    continue;
                }
            }
            let wake = earliest(deadline, idle_due);
            if let Err(error) = self.poll(&mut state, &mut [], wake) {
                crate::log::line(format_args!("cannot wait: {error}"));
                // Never spin: sleep what is left without watching anything else.
                drop(state);
                sleep_plainly(wake);
            }
        }
    }

    /// Waits until one of `sockets` is ready (each one's `ready` says which), serving the
    /// service meanwhile, or until `deadline`; a stop signal ends the wait or is kept, as
    /// `on_stop` says.
    pub fn wait_for(
        &self,
        sockets: &mut [Watched],
        deadline: Instant,
        on_stop: OnStop,
        purpose: Purpose,
    ) -> Result<(), Unready> {
        let started = Instant::now();
        let result = self.wait_until_ready(sockets, deadline, on_stop);
        if purpose == Purpose::Lookup {
            self.state().spent.lookups += started.elapsed();
        }
        result
    }

    fn wait_until_ready(
        &self,
        sockets: &mut [Watched],
        deadline: Instant,
        on_stop: OnStop,
    ) -> Result<(), Unready> {
        loop {
            let mut state = self.state();
            if let (Some(stop), false, OnStop::End) = (state.stopped, state.draining, on_stop) {
                return Err(Unready::Stopped(stop));
            }
            if deadline <= Instant::now() {
                return Err(Unready::TimedOut);
            }
            match self.poll(&mut state, sockets, Some(deadline)) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(error) => return Err(Unready::Failed(error)),
            }
        }
    }

    /// One `ppoll` over the signals, `sockets` and the service's descriptors, until `wake` or
    /// the service's own due time; then reads a stop signal and serves. Returns whether one of
    /// `sockets` became ready (each one's `ready` says which).
    fn poll(
        &self,
        state: &mut State,
        sockets: &mut [Watched],
        wake: Option<Instant>,
    ) -> io::Result<bool> {
        let mut watched = std::mem::take(&mut state.watched);
        watched.clear();
        let signals = self.signals.as_fd().as_raw_fd();
        watched.push(Watched::new(signals, Interest::Read));
        watched.extend_from_slice(sockets);
        let own = watched.len();
        let mut wake = wake;
        if let Some(service) = &state.service {
            service.watch(&mut watched);
            wake = earliest(wake, service.due());
        }
        let result = sys::poll(&mut watched, wake);
        if result.is_ok() {
            if watched[0].ready {
                if let Some(stop) = self.signals.take()? {
                    state.stopped.get_or_insert(stop);
                }
            }
            if let Some(service) = &mut state.service {
                let now = Instant::now();
                let ready = watched[own..].iter().any(|w| w.ready);
                if ready || service.due().is_some_and(|due| due <= now) {
                    service.serve(&watched[own..], now);
                    state.spent.scrapes += now.elapsed();
                }
            }
        }
        let mut any = false;
        for (socket, polled) in sockets.iter_mut().zip(&watched[1..own]) {
            socket.ready = polled.ready;
            any |= polled.ready;
        }
        state.watched = watched;
        result.map(|_| any)
    }

    /// Runs the idle work to its end, finished by `until` (at exit; see [`Waiter::drain`]).
    pub fn flush_idle(&self, until: Instant) {
        let idle = self.state().idle.take();
        if let Some(mut idle) = idle {
            idle.flush(until);
        }
    }
}

/// How long idle work may take in a sleep without a deadline (waiting only for a stop).
const IDLE_ALONE: Duration = Duration::from_secs(60);

/// The longest wait [`deadline_in`] gives: a year.
const A_YEAR: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The instant `after` from now; a wait with no bound (ureq's "not happening") ends in a year.
pub fn deadline_in(after: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(after.min(A_YEAR)).unwrap_or(now)
}

/// The earlier of two optional times (`None` is never).
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Sleeps to `until` without watching anything: only when `ppoll` itself failed.
fn sleep_plainly(until: Option<Instant>) {
    let left = until.map_or(IDLE_ALONE, |u| u.saturating_duration_since(Instant::now()));
    std::thread::sleep(left.min(IDLE_ALONE));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_wait_without_bound_ends_in_a_year() {
        let left = deadline_in(Duration::MAX) - Instant::now();
        assert!(
            left > A_YEAR - Duration::from_secs(60) && left <= A_YEAR,
            "{left:?}"
        );
        let left = deadline_in(Duration::from_secs(10)) - Instant::now();
        assert!(left <= Duration::from_secs(10), "{left:?}");
    }

    #[test]
    fn the_earlier_of_two_times_and_none_is_never() {
        let now = Instant::now();
        let later = now + Duration::from_secs(1);
        assert_eq!(earliest(Some(now), Some(later)), Some(now));
        assert_eq!(earliest(None, Some(later)), Some(later));
        assert_eq!(earliest(Some(now), None), Some(now));
        assert_eq!(earliest(None, None), None);
    }

    #[test]
    fn a_sleep_ends_at_its_deadline_and_a_socket_wait_when_a_socket_is_ready() {
        let waiter = Waiter::new().unwrap();
        let start = Instant::now();
        waiter
            .sleep_until(Some(start + Duration::from_millis(20)))
            .unwrap();
        assert!(start.elapsed() >= Duration::from_millis(20));
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (c, _d) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut sockets = [
            Watched::new(c.as_raw_fd(), Interest::Read),
            Watched::new(a.as_raw_fd(), Interest::Read),
        ];
        let soon = Instant::now() + Duration::from_millis(20);
        let timed_out = waiter.wait_for(&mut sockets, soon, OnStop::End, Purpose::Lookup);
        assert!(matches!(timed_out, Err(Unready::TimedOut)), "{timed_out:?}");
        assert!(waiter.take_spent().lookups >= Duration::from_millis(20));
        std::io::Write::write_all(&mut b, b"x").unwrap();
        let later = Instant::now() + Duration::from_secs(5);
        waiter
            .wait_for(&mut sockets, later, OnStop::End, Purpose::Other)
            .unwrap();
        assert_eq!((sockets[0].ready, sockets[1].ready), (false, true));
        assert_eq!(waiter.take_spent(), Spent::default());
    }
}

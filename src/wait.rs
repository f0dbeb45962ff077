//! The one place the thread waits. Sleeping to the next beat, backing off before a retry, and
//! waiting on a socket all come here, to one `ppoll` over the stop signals (a signalfd), the
//! descriptor waited on, and whatever telemetry asked to have watched.
//!
//! Telemetry never owns a wait; it hands the waiter two things through the traits below: a
//! [`Service`] (the scrape server), served during every wait, and [`Idle`] work (exports), run
//! only while the thread sleeps and only until the sleeper's own deadline. A stop signal ends a
//! sleep at once; it ends a socket wait at once when that wait is stoppable, and is otherwise
//! kept (an attempt exchanging bytes with the sink may finish) and ends the next wait.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Mutex;
use std::time::Instant;

use crate::sys::{self, SignalFd, Watched};
pub use crate::sys::{Interest, Stop};

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
                    self.state().idle = idle;
                    continue;
                }
            }
            let wake = earliest(deadline, idle_due);
            if let Err(error) = self.poll(&mut state, None, wake) {
                crate::log::line(format_args!("cannot wait: {error}"));
                // Never spin: sleep what is left without watching anything else.
                drop(state);
                sleep_plainly(wake);
            }
        }
    }

    /// One `ppoll` over the signals, `extra` and the service's descriptors, until `wake` or the
    /// service's own due time; then reads a stop signal and serves. Returns whether `extra`
    /// became ready.
    fn poll(
        &self,
        state: &mut State,
        extra: Option<Watched>,
        wake: Option<Instant>,
    ) -> io::Result<bool> {
        let mut watched = std::mem::take(&mut state.watched);
        watched.clear();
        watched.push(Watched::new(
            self.signals.as_fd().as_raw_fd(),
            Interest::Read,
        ));
        watched.extend(extra);
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
                }
            }
        }
        let extra_ready = own > 1 && watched[1].ready;
        state.watched = watched;
        result.map(|_| extra_ready)
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
const IDLE_ALONE: std::time::Duration = std::time::Duration::from_secs(60);

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
    fn the_earlier_of_two_times_and_none_is_never() {
        let now = Instant::now();
        let later = now + Duration::from_secs(1);
        assert_eq!(earliest(Some(now), Some(later)), Some(now));
        assert_eq!(earliest(None, Some(later)), Some(later));
        assert_eq!(earliest(Some(now), None), Some(now));
        assert_eq!(earliest(None, None), None);
    }

    #[test]
    fn a_sleep_ends_at_its_deadline() {
        let waiter = Waiter::new().unwrap();
        let start = Instant::now();
        waiter
            .sleep_until(Some(start + Duration::from_millis(20)))
            .unwrap();
        assert!(start.elapsed() >= Duration::from_millis(20));
    }
}

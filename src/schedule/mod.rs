//! When beats are due. With `--period`, at a fixed rate from the start (beat n at start +
//! n·period, so there is no drift); with `--schedule`, at a cron schedule's fire times in a zone
//! ([`cron`] reads it, [`next`] finds fire times, [`zone`] knows the zones). Either way a beat
//! whose time passed while an earlier send was still running is skipped rather than sent late in
//! a burst. Pure arithmetic on instants; the waiting is elsewhere.

pub mod cron;
mod next;
pub mod zone;
mod zones;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cron::Fields;
use zone::Zone;

/// When beats are due, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timing {
    /// `--period`: the first beat at start, then one every period.
    Period(Duration),
    /// `--schedule "@every D"`: one every D, the first one D after start (as cron has it).
    Every(Duration),
    /// `--schedule` with fields: at their fire times in the zone.
    Cron(Fields),
    /// `--period` with `--align`: at the multiples of the period since the Unix epoch, on the
    /// wall clock, the same instants in every replica.
    Aligned(Duration),
}

impl Timing {
    /// Whether every fire has a time of its own on the wall clock (a schedule, an aligned
    /// period), the same in any process: what a scheduled time and an id of the fire need.
    pub fn has_fire_times(&self) -> bool {
        matches!(self, Timing::Cron(_) | Timing::Aligned(_))
    }
}

/// The next fire time, from the clock it is reckoned on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// A rate from the start, on the monotonic clock; `None` is never.
    Monotonic(Option<Instant>),
    /// A cron fire time, on the wall clock; `None` is never.
    Wall(Option<SystemTime>),
}

/// A beat claimed: when it is due, how many due times were skipped to get to it, and the time
/// between the beat before those and the first of them (a period, for a rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub due: Due,
    pub skipped: u64,
    pub interval: Duration,
}

impl Claim {
    /// When the claimed beat is due on the wall clock, `now` and `wall` being the same moment.
    pub fn wall_time(&self, now: Instant, wall: SystemTime) -> Option<SystemTime> {
        match self.due {
            Due::Wall(at) => at,
            Due::Monotonic(at) => wall.checked_add(at?.saturating_duration_since(now)),
        }
    }

    /// The fire time of the claimed beat, when fires have times of their own (see
    /// [`Timing::has_fire_times`]).
    pub fn fire_time(&self) -> Option<SystemTime> {
        match self.due {
            Due::Wall(at) => at,
            Due::Monotonic(_) => None,
        }
    }
}

/// The beats of a run, claimed one after another.
#[derive(Debug, Clone)]
pub enum Schedule {
    Rate(Rate),
    Cron(Crontab),
}

impl Schedule {
    /// The schedule of a run that starts now (`now` and `wall` are the same moment), or at
    /// `start` when that is later: nothing is due before it.
    pub fn new(
        timing: &Timing,
        zone: &Zone,
        now: Instant,
        wall: SystemTime,
        start: Option<SystemTime>,
    ) -> Self {
        let wait = start.map_or(Duration::ZERO, |s| {
            s.duration_since(wall).unwrap_or_default()
        });
        let begin = now + wait;
        let wall = |fires| {
            Schedule::Cron(Crontab {
                fires,
                zone: zone.clone(),
                last: None,
                // The first fire at or after the start, the start itself included.
                first_after: (!wait.is_zero()).then(|| wall + wait - Duration::from_nanos(1)),
            })
        };
        match timing {
            Timing::Period(period) => Schedule::Rate(Rate::new(begin, *period)),
            Timing::Every(period) => Schedule::Rate(Rate::new(begin + *period, *period)),
            Timing::Cron(fields) => wall(Fires::Cron(*fields)),
            Timing::Aligned(period) => wall(Fires::Aligned(*period)),
        }
    }

    /// Claims the next beat to send, once `now` (and `wall`, the same moment on the wall clock)
    /// has been reached.
    pub fn claim(&mut self, now: Instant, wall: SystemTime) -> Claim {
        match self {
            Schedule::Rate(rate) => {
                let (due, skipped) = rate.claim(now);
                Claim {
                    due: Due::Monotonic(due),
                    skipped,
                    interval: rate.period,
                }
            }
            Schedule::Cron(crontab) => crontab.claim(wall),
        }
    }

    /// When the beat after the last claimed one is due: the end of the last one's retries.
    pub fn next_due(&self, now: Instant, wall: SystemTime) -> Option<Instant> {
        match self {
            Schedule::Rate(rate) => rate.next_due(),
            Schedule::Cron(crontab) => {
                let next = crontab.fire_after(crontab.last?)?;
                Some(now + next.duration_since(wall).unwrap_or_default())
            }
        }
    }
}

/// The first `n` beats of a run that starts at `from`, for `--next`: none before `start`, none
/// after `end`.
pub fn preview_within(
    timing: &Timing,
    zone: &Zone,
    from: SystemTime,
    n: usize,
    (start, end): (Option<SystemTime>, Option<SystemTime>),
) -> Vec<SystemTime> {
    let from = match start {
        // A period's first beat is at the start; a fire time at the start itself is taken.
        Some(start) if start > from && matches!(timing, Timing::Period(_) | Timing::Every(_)) => {
            start
        }
        Some(start) if start > from => start - Duration::from_nanos(1),
        _ => from,
    };
    let mut beats = preview(timing, zone, from, n);
    if let Some(end) = end {
        beats.retain(|&t| t <= end);
    }
    beats
}

/// The first `n` beats of a run that starts at `from`.
pub fn preview(timing: &Timing, zone: &Zone, from: SystemTime, n: usize) -> Vec<SystemTime> {
    let rate = |first: SystemTime, period: Duration| {
        (0..n)
            .map_while(|k| first.checked_add(period.checked_mul(u32::try_from(k).ok()?)?))
            .collect()
    };
    let wall = |fires| {
        let crontab = Crontab::new(fires, zone);
        std::iter::successors(crontab.fire_after(from), |&t| crontab.fire_after(t))
            .take(n)
            .collect()
    };
    match timing {
        Timing::Period(period) => rate(from, *period),
        Timing::Every(period) => from
            .checked_add(*period)
            .map_or(vec![], |f| rate(f, *period)),
        Timing::Cron(fields) => wall(Fires::Cron(*fields)),
        Timing::Aligned(period) => wall(Fires::Aligned(*period)),
    }
}

/// The fire times of `timing` after `after` and up to `until` (both on the wall clock), oldest
/// first, at most the `max` latest of them: the fires a stopped process missed. Empty for a
/// timing without fire times of its own (a plain period).
pub fn missed(
    timing: &Timing,
    zone: &Zone,
    after: SystemTime,
    until: SystemTime,
    max: usize,
) -> Vec<SystemTime> {
    let fires = match timing {
        Timing::Cron(fields) => Fires::Cron(*fields),
        Timing::Aligned(period) => Fires::Aligned(*period),
        Timing::Period(_) | Timing::Every(_) => return Vec::new(),
    };
    let crontab = Crontab::new(fires, zone);
    let mut missed = std::collections::VecDeque::with_capacity(max.min(1024));
    let mut at = crontab.fire_after(after);
    // Counted one by one up to a bound, as a claim counts skipped fires; past it, only the
    // latest `max` can be wanted, and the walk jumps to them.
    let mut walked = 0u64;
    while let Some(fire) = at.filter(|&f| f <= until) {
        missed.push_back(fire);
        if missed.len() > max {
            missed.pop_front();
        }
        walked += 1;
        at = crontab.fire_after(fire);
        if walked == MAX_COUNTED {
            // Resume a little before the end, far enough to find the last `max` again.
            missed.clear();
            at = latest_before(&crontab, until, max);
        }
    }
    missed.into()
}

/// The fire time that has `max` fire times after it up to `until`, found backwards in steps;
/// where the walk of [`missed`] starts again after counting too many.
fn latest_before(crontab: &Crontab, until: SystemTime, max: usize) -> Option<SystemTime> {
    let mut back = Duration::from_secs(60);
    loop {
        let from = until.checked_sub(back).unwrap_or(UNIX_EPOCH);
        let count = std::iter::successors(crontab.fire_after(from), |&t| crontab.fire_after(t))
            .take_while(|&t| t <= until)
            .take(max + 1)
            .count();
        if count > max || from == UNIX_EPOCH {
            return crontab.fire_after(from);
        }
        back = back.saturating_mul(4);
    }
}

/// What a wall-clock schedule fires at.
#[derive(Debug, Clone, Copy)]
enum Fires {
    /// A cron schedule's fields, in the schedule's zone.
    Cron(Fields),
    /// The multiples of a period since the Unix epoch.
    Aligned(Duration),
}

/// Fire times on the wall clock, of cron fields in a zone or of an aligned period; `last` is
/// the fire time last claimed.
#[derive(Debug, Clone)]
pub struct Crontab {
    fires: Fires,
    zone: Zone,
    last: Option<SystemTime>,
    /// The first claim takes the first fire after this (the start, when it was later than the
    /// run's own), else after the time of the claim.
    first_after: Option<SystemTime>,
}

/// How many passed fire times a claim counts one by one before it jumps to the present (so a
/// process stopped for a year on a per-second schedule does not count for minutes).
const MAX_COUNTED: u64 = 100_000;

impl Crontab {
    fn new(fires: Fires, zone: &Zone) -> Crontab {
        Crontab {
            fires,
            zone: zone.clone(),
            last: None,
            first_after: None,
        }
    }

    /// The first fire time after `t` (strictly).
    fn fire_after(&self, t: SystemTime) -> Option<SystemTime> {
        let fields = match self.fires {
            Fires::Cron(fields) => fields,
            Fires::Aligned(period) => return aligned_after(t, period),
        };
        let secs = match t.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_secs()).ok()?,
            Err(before) => {
                let before = before.duration();
                -i64::try_from(before.as_secs()).ok()? - i64::from(before.subsec_nanos() > 0)
            }
        };
        let fire = next::first_fire(&fields, &self.zone, secs.checked_add(1)?)?;
        let fire = u64::try_from(fire).ok()?;
        UNIX_EPOCH.checked_add(Duration::from_secs(fire))
    }

    /// The first fire time not earlier than `wall`, except that the first claim takes the first
    /// after it; fire times passed since the last claim are counted as skipped.
    fn claim(&mut self, wall: SystemTime) -> Claim {
        let mut claim = Claim {
            due: Due::Wall(None),
            skipped: 0,
            interval: Duration::ZERO,
        };
        let Some(last) = self.last else {
            let first = self.fire_after(self.first_after.unwrap_or(wall).max(wall));
            self.last = first;
            claim.due = Due::Wall(first);
            return claim;
        };
        let mut next = self.fire_after(last);
        claim.interval = next
            .and_then(|n| n.duration_since(last).ok())
            .unwrap_or_default();
        while let Some(passed) = next.filter(|&n| n < wall) {
            claim.skipped += 1;
            next = self.fire_after(if claim.skipped < MAX_COUNTED {
                passed
            } else {
                wall
            });
        }
        self.last = next;
        claim.due = Due::Wall(next);
        claim
    }
}

/// The first multiple of `period` since the Unix epoch after `t` (strictly).
fn aligned_after(t: SystemTime, period: Duration) -> Option<SystemTime> {
    let since = t.duration_since(UNIX_EPOCH).ok()?.as_nanos();
    let period = period.as_nanos();
    let next = (since / period).checked_add(1)?.checked_mul(period)?;
    let secs = u64::try_from(next / 1_000_000_000).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, (next % 1_000_000_000) as u32))
}

/// A fixed rate from a start: beat n at start + n·period.
#[derive(Debug, Clone)]
pub struct Rate {
    start: Instant,
    period: Duration,
    /// Index of the next beat to send; beat 0 is due at `start`.
    next: u64,
}

impl Rate {
    pub fn new(start: Instant, period: Duration) -> Self {
        Rate {
            start,
            period,
            next: 0,
        }
    }

    /// When beat `n` is due; `None` if that is past what an `Instant` can hold (never, in effect).
    pub fn due(&self, n: u64) -> Option<Instant> {
        let nanos = self.period.as_nanos().checked_mul(u128::from(n))?;
        let offset = Duration::new(
            u64::try_from(nanos / 1_000_000_000).ok()?,
            (nanos % 1_000_000_000) as u32,
        );
        self.start.checked_add(offset)
    }

    /// Claims the next beat to send once `now` has been reached: its due time is the first one
    /// not earlier than `now`, except that the very first beat is sent whenever it is asked for.
    /// Returns the due time and how many due times were skipped to get there.
    pub fn claim(&mut self, now: Instant) -> (Option<Instant>, u64) {
        let first = self.next;
        if self.next > 0 {
            let elapsed = now.saturating_duration_since(self.start).as_nanos();
            let period = self.period.as_nanos();
            // Smallest n with start + n·period >= now.
            let at_or_after = u64::try_from(elapsed.div_ceil(period)).unwrap_or(u64::MAX);
            self.next = self.next.max(at_or_after);
        }
        let claimed = self.next;
        self.next = self.next.saturating_add(1);
        (self.due(claimed), claimed - first)
    }

    /// When the beat after the last claimed one is due: the end of the last one's retries.
    pub fn next_due(&self) -> Option<Instant> {
        self.due(self.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn beats_are_due_at_whole_multiples_of_the_period() {
        let start = Instant::now();
        let mut s = Rate::new(start, 200 * MS);
        assert_eq!(s.claim(start), (Some(start), 0));
        assert_eq!(s.next_due(), Some(start + 200 * MS));
        // A send that ends early still waits for its slot.
        assert_eq!(s.claim(start + 5 * MS), (Some(start + 200 * MS), 0));
        // The send of that beat ends at 230 ms: the next is due at 400 ms, not 430 ms.
        assert_eq!(s.claim(start + 230 * MS), (Some(start + 400 * MS), 0));
        // That one overran to 601 ms: the beat due at 600 ms is gone, 800 ms is next.
        assert_eq!(s.claim(start + 601 * MS), (Some(start + 800 * MS), 1));
    }

    #[test]
    fn beats_whose_time_passed_during_a_send_are_skipped() {
        let start = Instant::now();
        let mut s = Rate::new(start, 100 * MS);
        s.claim(start);
        // The first send ran until 350 ms: beats due at 100, 200 and 300 ms are skipped.
        assert_eq!(s.claim(start + 350 * MS), (Some(start + 400 * MS), 3));
        assert_eq!(s.claim(start + 400 * MS), (Some(start + 500 * MS), 0));
    }

    #[test]
    fn a_beat_exactly_on_time_is_not_skipped() {
        let start = Instant::now();
        let mut s = Rate::new(start, 100 * MS);
        s.claim(start);
        assert_eq!(s.claim(start + 100 * MS), (Some(start + 100 * MS), 0));
    }

    #[test]
    fn huge_periods_never_overflow() {
        let start = Instant::now();
        let mut s = Rate::new(start, Duration::from_nanos(i64::MAX as u64));
        s.claim(start);
        assert!(s.next_due().is_some());
        assert_eq!(s.due(u64::MAX), None);
    }
}

//! When beats are due: fixed rate from the start (beat n at start + n·period, so there is no
//! drift), and a beat whose due time passed while an earlier send was still running is skipped
//! rather than sent late in a burst. Pure arithmetic on instants; the waiting is elsewhere.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Schedule {
    start: Instant,
    period: Duration,
    /// Index of the next beat to send; beat 0 is due at `start`.
    next: u64,
}

impl Schedule {
    pub fn new(start: Instant, period: Duration) -> Self {
        Schedule {
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
        let mut s = Schedule::new(start, 200 * MS);
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
        let mut s = Schedule::new(start, 100 * MS);
        s.claim(start);
        // The first send ran until 350 ms: beats due at 100, 200 and 300 ms are skipped.
        assert_eq!(s.claim(start + 350 * MS), (Some(start + 400 * MS), 3));
        assert_eq!(s.claim(start + 400 * MS), (Some(start + 500 * MS), 0));
    }

    #[test]
    fn a_beat_exactly_on_time_is_not_skipped() {
        let start = Instant::now();
        let mut s = Schedule::new(start, 100 * MS);
        s.claim(start);
        assert_eq!(s.claim(start + 100 * MS), (Some(start + 100 * MS), 0));
    }

    #[test]
    fn huge_periods_never_overflow() {
        let start = Instant::now();
        let mut s = Schedule::new(start, Duration::from_nanos(i64::MAX as u64));
        s.claim(start);
        let _ = s.next_due();
        assert_eq!(s.due(u64::MAX), None);
    }
}

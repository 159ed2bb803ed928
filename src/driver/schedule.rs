//! When to try again: exponential backoff capped at the poll interval, clamped to the
//! deadline. Pure arithmetic on elapsed time, shared by the async and the sync driver (each
//! measures time with its own clock: Tokio's, which tests can pause, or std's).
//!
//! The async driver is also woken early by [`crate::wake`]; then this schedule is the
//! fallback that catches releases which send no wake-up. Defaults: first sleep 1 ms,
//! doubling, capped at the poll interval (50 ms, Python filelock's): a lock held briefly
//! is retried within a few ms even without a wake-up, and a long wait costs about 20
//! attempts a second (well under 0.5% of a core, `BENCHMARKS.md`).

use std::time::Duration;

/// The first sleep after a failed attempt; each later sleep doubles, up to the cap.
///
/// 1 ms is the resolution of Tokio's timer: a shorter sleep would cost the same. Starting
/// small keeps the hand-off fast when a lock is held briefly; doubling keeps a long wait
/// cheap (at the default 50 ms cap a waiter makes about 20 attempts a second).
pub(crate) const FIRST_SLEEP: Duration = Duration::from_millis(1);

/// The smallest poll interval honoured: a zero interval would spin.
pub(crate) const MIN_POLL_INTERVAL: Duration = Duration::from_millis(1);

/// The largest poll interval honoured: deadlines computed from a sleep must not overflow
/// (`Duration::MAX` is a valid setting, read as "poll as rarely as allowed").
pub(crate) const MAX_POLL_INTERVAL: Duration = Duration::from_secs(3600);

/// How long an acquire may wait for the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Exactly one attempt.
    Once,
    /// Attempts until this much time has passed since the first; one final attempt is made
    /// at the deadline.
    For(Duration),
    /// Until the lock is won.
    Forever,
}

impl Wait {
    /// `blocking == false` wins over any timeout; a zero timeout is one attempt.
    pub(crate) fn new(timeout: Option<Duration>, blocking: bool) -> Self {
        match (blocking, timeout) {
            (false, _) => Wait::Once,
            (true, Some(t)) if t.is_zero() => Wait::Once,
            (true, Some(t)) => Wait::For(t),
            (true, None) => Wait::Forever,
        }
    }
}

/// The sleeps between attempts of one acquire.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    wait: Wait,
    next: Duration,
    cap: Duration,
}

impl Schedule {
    pub(crate) fn new(wait: Wait, poll_interval: Duration) -> Self {
        let cap = poll_interval.clamp(MIN_POLL_INTERVAL, MAX_POLL_INTERVAL);
        Schedule {
            wait,
            next: FIRST_SLEEP.min(cap),
            cap,
        }
    }

    /// After a failed attempt, `elapsed` after the first one began: how long to sleep before
    /// the next attempt, or `None` to give up. The last sleep ends exactly at the deadline,
    /// so the final attempt is made there and the wait overshoots by at most one attempt.
    pub(crate) fn next_sleep(&mut self, elapsed: Duration) -> Option<Duration> {
        let backoff = self.next;
        self.next = self.next.saturating_mul(2).min(self.cap);
        match self.wait {
            Wait::Once => None,
            Wait::Forever => Some(backoff),
            Wait::For(timeout) => timeout
                .checked_sub(elapsed)
                .filter(|left| !left.is_zero())
                .map(|left| backoff.min(left)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut s = Schedule::new(Wait::Forever, 50 * MS);
        let sleeps: Vec<_> = (0..9)
            .map(|_| s.next_sleep(Duration::ZERO).unwrap())
            .collect();
        let ms = |n: u64| Duration::from_millis(n);
        assert_eq!(
            sleeps,
            [
                ms(1),
                ms(2),
                ms(4),
                ms(8),
                ms(16),
                ms(32),
                ms(50),
                ms(50),
                ms(50)
            ]
        );
    }

    #[test]
    fn once_never_sleeps() {
        assert_eq!(
            Schedule::new(Wait::Once, 50 * MS).next_sleep(Duration::ZERO),
            None
        );
        assert_eq!(Wait::new(Some(Duration::ZERO), true), Wait::Once);
        assert_eq!(Wait::new(Some(Duration::from_secs(9)), false), Wait::Once);
        assert_eq!(Wait::new(None, false), Wait::Once);
        assert_eq!(Wait::new(None, true), Wait::Forever);
    }

    #[test]
    fn last_sleep_is_clamped_to_the_deadline() {
        let mut s = Schedule::new(Wait::For(10 * MS), 50 * MS);
        // Elapsed 9 ms: the backoff (1 ms) fits.
        assert_eq!(s.next_sleep(9 * MS), Some(MS));
        // Elapsed 9.5 ms: backoff 2 ms is clamped to the 0.5 ms left.
        assert_eq!(s.next_sleep(9 * MS + MS / 2), Some(MS / 2));
        // At or past the deadline: give up.
        assert_eq!(s.next_sleep(10 * MS), None);
        assert_eq!(s.next_sleep(11 * MS), None);
    }

    #[test]
    fn a_huge_poll_interval_is_capped() {
        let mut s = Schedule::new(Wait::Forever, Duration::MAX);
        let mut last = Duration::ZERO;
        for _ in 0..80 {
            last = s.next_sleep(Duration::ZERO).unwrap();
        }
        assert_eq!(last, MAX_POLL_INTERVAL);
    }

    #[test]
    fn a_zero_poll_interval_does_not_spin() {
        let mut s = Schedule::new(Wait::Forever, Duration::ZERO);
        assert_eq!(s.next_sleep(Duration::ZERO), Some(MIN_POLL_INTERVAL));
        assert_eq!(s.next_sleep(Duration::ZERO), Some(MIN_POLL_INTERVAL));
    }
}

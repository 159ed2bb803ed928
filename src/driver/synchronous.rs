//! The sync driver: the same attempts and schedule on the calling thread; no runtime needed.

use std::time::Instant;

use super::{Acquisition, Step};
use crate::attempt::Attempt;
use crate::{Error, LockGuard};

/// Acquires on the calling thread, sleeping between attempts.
pub(crate) fn acquire(
    mut acquisition: Acquisition,
    mut attempt: Attempt,
) -> Result<LockGuard, Error> {
    if let Some(guard) = acquisition.reenter()? {
        return Ok(guard);
    }
    let start = Instant::now();
    loop {
        acquisition.attempting();
        let outcome = attempt.run()?;
        let sleep;
        let step = acquisition.after(outcome, start.elapsed());
        (attempt, sleep) = match acquisition.describe(step).here()? {
            Step::Acquired(guard) => return Ok(guard),
            Step::Retry(attempt, sleep) => (attempt, sleep),
        };
        crate::file_lock::forbid_waiting_on_runtime_thread(acquisition.state.path());
        let sleep_started = Instant::now();
        if acquisition.is_final_sleep(start.elapsed(), sleep)
            && let Some(prefetch) = acquisition.holder_prefetch()
        {
            // Find the holder now, within the final sleep, not after the deadline.
            acquisition.prefetched(prefetch.run());
        }
        std::thread::sleep(sleep.saturating_sub(sleep_started.elapsed()));
        // Another thread may have won it for this owner (per-handle reentrancy).
        if let Some(guard) = acquisition.reenter()? {
            return Ok(guard);
        }
    }
}

//! The sync driver: the same attempts and schedule on the calling thread; no runtime needed.
//! Between attempts the thread parks, and the wake-up engine ([`crate::wake`]) unparks it
//! when the lock may be free (a release in this process, the watcher's file watch).

use std::path::Path;
use std::time::{Duration, Instant};

use super::{Acquisition, Step};
use crate::attempt::{Attempt, Outcome};
use crate::state::Locality;
use crate::wake::{Waiter, Woke};
use crate::{Error, LockGuard};

/// Acquires on the calling thread, parked between attempts.
pub(crate) fn acquire(
    mut acquisition: Acquisition,
    mut attempt: Attempt,
) -> Result<LockGuard, Error> {
    let span = acquisition.span().clone();
    let _entered = span.enter();
    if let Some(guard) = acquisition.reenter()? {
        return Ok(guard);
    }
    if acquisition.state.locality() == Locality::Unknown {
        // Once per handle: whether its lock file may be kept open between holds.
        super::learn_locality(&acquisition.state, &attempt);
        attempt = super::keep_files(&acquisition.state, attempt);
    }
    let start = Instant::now();
    let mut waiter = acquisition.waiter();
    loop {
        acquisition.attempting("caller");
        waiter.attempt_started();
        // Armed before the attempt: a release after its lock call is seen by the watch.
        if let Some(path) = waiter.wants_watch() {
            waiter.arm_here(&path, attempt.is_soft());
        }
        let mut fair = waiter.take_fair();
        let outcome = super::attempt_here(attempt, fair.as_mut(), acquisition.on_acquired.as_ref());
        waiter.put_fair(fair);
        let outcome = outcome?;
        let busy_file = match &outcome {
            Outcome::Busy { id, .. } => *id,
            Outcome::Won(_) => None,
        };
        let sleep;
        let step = acquisition.after(outcome, start.elapsed());
        (attempt, sleep) = match acquisition.describe(step).here()? {
            Step::Acquired(guard) => return Ok(guard),
            Step::Retry(attempt, sleep) => (attempt, sleep),
        };
        waiter.busy(busy_file);
        forbid_waiting_on_runtime_thread(acquisition.state.path());
        let sleep_started = Instant::now();
        if acquisition.is_final_sleep(start.elapsed(), sleep)
            && let Some(prefetch) = acquisition.holder_prefetch()
        {
            // Find the holder now, within the final sleep, not after the deadline.
            acquisition.prefetched(prefetch.run());
        }
        wait_turn(
            &mut waiter,
            &mut acquisition,
            start,
            sleep.saturating_sub(sleep_started.elapsed()),
        )?;
        // Another thread may have won it for this owner (per-handle reentrancy).
        if let Some(guard) = acquisition.reenter()? {
            return Ok(guard);
        }
    }
}

/// Parks until a wake-up or the timer before the next attempt; a timed attempt that another
/// waiter of this process has just made for this one is skipped (as in the async driver),
/// never the final one at the deadline.
fn wait_turn(
    waiter: &mut Waiter,
    acquisition: &mut Acquisition,
    start: Instant,
    mut sleep: Duration,
) -> Result<(), Error> {
    loop {
        let ends_at_deadline = acquisition.is_final_sleep(start.elapsed(), sleep);
        let woke = waiter.wait_blocking(sleep, !ends_at_deadline);
        if woke == Woke::Cancelled {
            return Err(acquisition.cancelled(start.elapsed()));
        }
        if woke == Woke::Signal || !waiter.may_skip() {
            return Ok(());
        }
        acquisition.check_deadlock(waiter.file())?;
        match acquisition.schedule.next_sleep(start.elapsed()) {
            Some(next) => sleep = next,
            None => return Ok(()),
        }
    }
}

/// In debug builds, panics when a `blocking_*` acquire is about to wait (sleep before its
/// next attempt) on a thread that drives a Tokio runtime (a worker, or a thread inside
/// `block_on`, so a `#[tokio::main]` body): the wait would stall every task of that thread,
/// as tokio's own `blocking_lock` refuses to. An acquire that succeeds, re-enters or fails
/// at once never waits and is left alone. Threads of the blocking pool (`spawn_blocking`),
/// threads inside `block_in_place` and threads that merely entered a runtime's context are
/// fine.
///
/// Tokio tells these apart with an internal flag that it does not export
/// (`Handle::try_current` succeeds on blocking-pool threads too). Its public proxy is
/// `Handle::block_on`, which refuses exactly where that flag is set: so a ready future is
/// handed to it, and its refusal turns into this panic.
pub(crate) fn forbid_waiting_on_runtime_thread(path: &Path) {
    if !cfg!(debug_assertions) {
        return;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let probe = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        handle.block_on(std::future::ready(()))
    }));
    if probe.is_err() {
        panic!(
            "tokio-filelock: a blocking_* acquire of the lock file '{}' has to wait on a \
             thread that drives a Tokio runtime: it would stall every task of that thread. \
             Use the async `acquire*` methods, or call it in `tokio::task::spawn_blocking`.",
            path.display()
        );
    }
}

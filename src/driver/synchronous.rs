//! The sync driver: the same attempts and schedule on the calling thread; no runtime needed.

use std::path::Path;
use std::time::Instant;

use super::{Acquisition, Step};
use crate::attempt::Attempt;
use crate::{Error, LockGuard};

/// Acquires on the calling thread, sleeping between attempts.
pub(crate) fn acquire(
    mut acquisition: Acquisition,
    mut attempt: Attempt,
) -> Result<LockGuard, Error> {
    let span = acquisition.span().clone();
    let _entered = span.enter();
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
        forbid_waiting_on_runtime_thread(acquisition.state.path());
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

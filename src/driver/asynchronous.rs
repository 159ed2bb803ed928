//! The async driver: attempts on Tokio's blocking pool, sleeps on the crate's timer (see
//! `wake::timer`; Tokio's under paused time), woken
//! early by the wake-ups of [`crate::wake`].

use std::io;
use std::time::Duration;

use tokio::time::Instant;

use super::schedule::Wait;
use super::{Acquisition, Described, Step};
use crate::attempt::{Attempt, Outcome};
use crate::state::deadlock;
use crate::wake::{self, Waiter, Woke};
use crate::{Error, LockGuard, Op};

/// Acquires under Tokio.
///
/// Cancel-safe: dropping the future at a wait drops the attempt (closing the file it keeps
/// open) and the waiter (leaving the in-process queue, closing the watch); dropping it while
/// an attempt runs on the blocking pool leaves that attempt to release whatever it wins
/// (and close any watch it armed) as soon as it finishes. The hold is counted only in the
/// step that returns the guard, with no await after it.
pub(crate) async fn acquire(
    mut acquisition: Acquisition,
    mut attempt: Attempt,
) -> Result<LockGuard, Error> {
    require_runtime(acquisition.path())?;
    if let Some(guard) = acquisition.reenter()? {
        return Ok(guard);
    }
    let start = Instant::now();
    let mut waiter = acquisition.waiter();
    // Other waiters of this process on the same path: line up behind them first, unless
    // this owner holds the file through another handle (its own attempt then reports the
    // deadlock).
    let mut sleep = None;
    if acquisition.wait != Wait::Once
        && let Some(file) = waiter.follow()
    {
        if deadlock::blocks_itself(file, acquisition.owner, acquisition.mode) {
            waiter.unfollow();
        } else {
            sleep = acquisition.schedule.next_sleep(Duration::ZERO);
            // Going to wait: the waiting hook runs now (where attempts run), not only if
            // this acquire's own first attempt finds the lock held.
            if let Some(announce) = acquisition.following(&attempt, file) {
                let span = acquisition.span().clone();
                tokio::task::spawn_blocking(move || span.in_scope(|| drop(announce.run())))
                    .await
                    .map_err(|join| joined(acquisition.path(), join))?;
            }
        }
    }
    loop {
        if let Some(mut sleep) = sleep.take() {
            if acquisition.is_final_sleep(start.elapsed(), sleep)
                && let Some(lookup) = acquisition.holder_prefetch()
            {
                // Name the holder now, within the final sleep, not after the deadline. Not
                // alongside the final attempt: reading /proc/locks holds up every flock
                // call, ours included, until an RCU grace period ends.
                let looked = Instant::now();
                let span = acquisition.span().clone();
                if let Ok(found) =
                    tokio::task::spawn_blocking(move || span.in_scope(|| lookup.run())).await
                {
                    acquisition.prefetched(found);
                }
                sleep = sleep.saturating_sub(looked.elapsed());
            }
            wait_turn(&mut waiter, &mut acquisition, start, sleep).await?;
            // The owner may have won the lock meanwhile through another future of its task.
            if let Some(guard) = acquisition.reenter()? {
                return Ok(guard);
            }
        }
        acquisition.attempting();
        waiter.attempt_started();
        // Armed before the attempt, in the same job: a release after the attempt's lock
        // call is seen by the watch.
        let arm = waiter.wants_watch();
        let span = acquisition.span().clone();
        let mut fair = waiter.take_fair();
        let on_acquired = acquisition.on_acquired();
        let (watch, fair, outcome) = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let watch = arm.map(|path| wake::arm(&path, attempt.is_soft()));
            let outcome = super::attempt_in_line(attempt, fair.as_mut(), on_acquired.as_ref());
            (watch, fair, outcome)
        })
        .await
        .map_err(|join| joined(acquisition.path(), join))?;
        waiter.armed(watch);
        waiter.put_fair(fair);
        let outcome = outcome?;
        let busy_file = match &outcome {
            Outcome::Busy { id, .. } => *id,
            Outcome::Won(_) => None,
        };
        let step = acquisition.after(outcome, start.elapsed());
        let step = match acquisition.describe(step) {
            Described::Ready(step) => step,
            Described::Lookup(lookup) => {
                let span = acquisition.span().clone();
                tokio::task::spawn_blocking(move || span.in_scope(|| lookup.run()))
                    .await
                    .map_err(|join| joined(acquisition.path(), join))?
            }
        };
        match step? {
            Step::Acquired(guard) => return Ok(guard),
            Step::Retry(next, next_sleep) => {
                attempt = next;
                sleep = Some(next_sleep);
            }
        }
        waiter.busy(busy_file);
    }
}

/// Waits for a wake-up or the timer before the next attempt. A timed attempt that another
/// waiter of this process has just made for this one is skipped (and the next sleep of the
/// schedule taken), but never the final one at the deadline.
async fn wait_turn(
    waiter: &mut Waiter,
    acquisition: &mut Acquisition,
    start: Instant,
    mut sleep: Duration,
) -> Result<(), Error> {
    loop {
        let ends_at_deadline = acquisition.is_final_sleep(start.elapsed(), sleep);
        let woke = waiter
            .wait(sleep, !ends_at_deadline)
            .await
            .map_err(|e| Error::io(acquisition.path(), Op::Spawn, e))?;
        if woke == Woke::Signal || !waiter.may_skip() {
            return Ok(());
        }
        // The skipped attempt would have checked this: meanwhile this owner may have come
        // to hold the file through another handle.
        acquisition.check_deadlock(waiter.file())?;
        match acquisition.schedule.next_sleep(start.elapsed()) {
            Some(next) => sleep = next,
            None => return Ok(()),
        }
    }
}

/// An error instead of Tokio's panic when an async method is polled outside a runtime.
pub(crate) fn require_runtime(path: &std::path::Path) -> Result<(), Error> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => Ok(()),
        Err(_) => Err(Error::io(
            path,
            Op::Spawn,
            io::Error::other("no Tokio runtime here; outside one, use the blocking_* methods"),
        )),
    }
}

/// A blocking-pool job that did not finish: a panic in it (a bug, or a panicking waiting
/// hook) goes on as a panic, as in the sync facade; a job cancelled by a runtime shutting
/// down is an error.
pub(crate) fn joined(path: &std::path::Path, join: tokio::task::JoinError) -> Error {
    match join.try_into_panic() {
        Ok(panic) => std::panic::resume_unwind(panic),
        Err(join) => Error::io(path, Op::Spawn, io::Error::other(join)),
    }
}

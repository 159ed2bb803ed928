//! The async driver: attempts on Tokio's blocking pool, sleeps on the crate's timer (see
//! `wake::timer`; Tokio's under paused time), woken
//! early by the wake-ups of [`crate::wake`].

use std::io;
use std::time::Duration;

use tokio::time::Instant;

use super::schedule::Wait;
use super::{Acquisition, Described, Step};
use crate::attempt::{Attempt, Inline, Outcome};
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
        // Inline, on this worker, when nothing in it can wait: a file system known to be
        // local (DESIGN semantics 4), where arming the watch is a path lookup as the
        // attempt's own are. Else, or for what the inline attempt cannot do (create the
        // file), the hop to the blocking pool.
        let inline = !attempt.is_soft() && acquisition.may_run_inline();
        acquisition.attempting(if inline { "worker" } else { "blocking pool" });
        waiter.attempt_started();
        let mut fair = waiter.take_fair();
        // Armed before the attempt, in the same job: a release after the attempt's lock
        // call is seen by the watch. Its gate only when there is one to arm (not on the
        // uncontended path).
        let mut arm = waiter
            .wants_watch()
            .map(|path| (path, waiter.gate(fair.as_ref())));
        if inline && let Some((path, gate)) = arm.take() {
            waiter.armed(Some(wake::arm(&path, false, Some(gate))));
        }
        // `Ok`: made inline (its outcome); `Err`: the attempt, for the blocking pool.
        let inline = if inline {
            match super::attempt_inline(attempt, fair.as_mut()) {
                Ok(Inline::Done(outcome)) => Ok(Ok(outcome)),
                Err(error) => Ok(Err(error)),
                Ok(Inline::Hop(back)) => {
                    tracing::debug!(
                        target: "tokio_filelock",
                        "the attempt needs the blocking pool (to create the lock file, or to \
                         see whether a lock that a stuck writer waits for is free)"
                    );
                    Err(back)
                }
            }
        } else {
            Err(attempt)
        };
        let outcome = match inline {
            Ok(outcome) => {
                waiter.put_fair(fair);
                outcome
            }
            Err(attempt) => {
                let span = acquisition.span().clone();
                let state = acquisition.state.clone();
                let on_acquired = acquisition.on_acquired();
                let (watch, fair, outcome) = tokio::task::spawn_blocking(move || {
                    let _entered = span.enter();
                    super::learn_locality(&state, &attempt);
                    let attempt = super::keep_files(&state, attempt);
                    let watch =
                        arm.map(|(path, gate)| wake::arm(&path, attempt.is_soft(), Some(gate)));
                    let outcome = super::attempt_here(attempt, fair.as_mut(), on_acquired.as_ref());
                    (watch, fair, outcome)
                })
                .await
                .map_err(|join| joined(acquisition.path(), join))?;
                waiter.armed(watch);
                waiter.put_fair(fair);
                outcome
            }
        };
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
        waiter.retry_on(attempt.waiting_file());
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
        if woke == Woke::Cancelled {
            return Err(acquisition.cancelled(start.elapsed()));
        }
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

/// Where attempts run. Where the file system can be known local and a waiter arms a file
/// watch (Linux, macOS, FreeBSD; Windows never runs attempts inline).
#[cfg(all(
    test,
    any(target_os = "linux", target_os = "macos", target_os = "freebsd")
))]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context, SubscriberExt};

    use crate::state::Locality;

    /// Records where each `attempt` event says its attempt ran (the `on` field).
    #[derive(Clone, Default)]
    struct Where(Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Where {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            struct On(Option<String>);
            impl Visit for On {
                fn record_str(&mut self, field: &Field, value: &str) {
                    if field.name() == "on" {
                        self.0 = Some(value.to_owned());
                    }
                }
                fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                    if field.name() == "message"
                        && format!("{value:?}").starts_with("the attempt needs the blocking pool")
                    {
                        self.0 = Some("then blocking pool".to_owned());
                    }
                }
            }
            let mut on = On(None);
            event.record(&mut on);
            if let Some(on) = on.0 {
                self.0.lock().unwrap().push(on);
            }
        }
    }

    /// Runs `f` with `seen` recording this thread's events. Tracing caches each callsite's
    /// interest process-wide, computed (while one dispatcher is registered) from the
    /// default of whichever thread reaches it first: a sibling test's thread, with no
    /// subscriber, would make it "never" and hide the event from `seen`. A second
    /// dispatcher, alive meanwhile and interested in everything, makes the interest the
    /// union of both.
    fn recorded<T>(seen: &Where, f: impl FnOnce() -> T) -> T {
        let _anchor = tracing::Dispatch::new(tracing_subscriber::registry());
        let subscriber = tracing_subscriber::registry().with(seen.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::callsite::rebuild_interest_cache();
            f()
        })
    }

    /// A waiter's retries after a wake-up run inline too, and so does the attempt that
    /// arms the file watch: on a local file system a contended acquire never hops.
    #[test]
    fn a_waiter_retries_inline_and_wins_inline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contended.lock");
        let lock = crate::FileLock::new(&path);
        lock.state().set_locality(Some(true));
        let seen = Where::default();
        let (held, is_held) = std::sync::mpsc::channel();
        let releaser = {
            let seen = seen.clone();
            // The holder is another thread: the same owner waiting forever on its own hold
            // would be `WouldDeadlock`.
            std::thread::spawn(move || {
                let holder = crate::FileLock::new(&path).blocking_acquire().unwrap();
                held.send(()).unwrap();
                // Once the waiter is past its first attempts (its watch armed), let go.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
                while seen.0.lock().unwrap().len() < 3 && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                drop(holder);
            })
        };
        is_held.recv().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        recorded(&seen, || {
            rt.block_on(async { drop(lock.acquire().await.unwrap()) })
        });
        releaser.join().unwrap();
        let seen = seen.0.lock().unwrap().clone();
        // Arming the watch too is inline on a local file system: no hop at all.
        assert!(seen.len() >= 2, "{seen:?}");
        assert!(seen.iter().all(|on| on == "worker"), "{seen:?}");
    }

    /// Three acquire + release cycles of one handle, on a current-thread runtime; returns
    /// where each attempt ran.
    fn cycles(lock: &crate::FileLock) -> Vec<String> {
        let seen = Where::default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        recorded(&seen, || {
            rt.block_on(async {
                for _ in 0..3 {
                    drop(lock.acquire().await.unwrap());
                }
            })
        });
        seen.0.lock().unwrap().clone()
    }

    /// DESIGN semantics 4: on a local file system, once the handle knows it (asked on the
    /// blocking pool, by its first attempt), attempts run inline on the worker.
    #[test]
    fn attempts_run_inline_once_the_file_system_is_known_local() {
        let dir = tempfile::tempdir().unwrap();
        let lock = crate::FileLock::new(dir.path().join("local.lock"));
        assert_eq!(
            cycles(&lock),
            ["blocking pool", "worker", "worker"],
            "the temporary directory is local (see sys::local_fs's tests)"
        );
        assert_eq!(lock.state().locality(), Locality::Local);
    }

    /// Network, FUSE and unknown file systems keep the hop for every attempt.
    #[test]
    fn attempts_on_a_file_system_not_known_local_take_the_hop() {
        let dir = tempfile::tempdir().unwrap();
        let lock = crate::FileLock::new(dir.path().join("remote.lock"));
        // As `learn_locality` records an NFS, FUSE or unknown file system.
        lock.state().set_locality(Some(false));
        assert_eq!(
            cycles(&lock),
            ["blocking pool", "blocking pool", "blocking pool"]
        );
    }

    /// The soft protocol creates its marker on every acquire: never inline, on any file
    /// system.
    #[test]
    fn soft_lock_attempts_take_the_hop_on_a_local_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let lock = crate::SoftFileLock::new(dir.path().join("soft.lock"));
        lock.file_lock().state().set_locality(Some(true));
        assert_eq!(
            cycles(lock.file_lock()),
            ["blocking pool", "blocking pool", "blocking pool"]
        );
    }

    /// A lock file deleted after the handle learnt its file system is local: the inline
    /// attempt does not create it (nor a directory) on the worker, it hands the attempt to
    /// the blocking pool.
    #[test]
    fn a_missing_lock_file_is_created_on_the_blocking_pool() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("gone.lock");
        let lock = crate::FileLock::new(&path);
        lock.state().set_locality(Some(true));
        assert_eq!(
            cycles(&lock),
            ["worker", "then blocking pool", "worker", "worker"]
        );
        assert!(path.exists());
    }
}

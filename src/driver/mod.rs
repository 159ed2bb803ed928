//! Drivers: run attempts on a schedule until the lock is won, the wait runs out, or a
//! permanent error comes. The async driver runs each attempt on Tokio's blocking pool and
//! sleeps on the crate's timer (Tokio's under paused time); the sync driver runs them on the calling thread and sleeps with
//! `std::thread::sleep`. Everything they share is here: [`Acquisition`] decides, the drivers
//! only run attempts and sleep.

pub(crate) mod asynchronous;
mod config;
pub(crate) mod heartbeat;
pub(crate) mod holder_lookup;
#[cfg(all(test, target_os = "linux"))]
mod kept_tests;
pub(crate) mod schedule;
pub(crate) mod soft_rw;
pub(crate) mod synchronous;

pub(crate) use config::{Config, WaitHook};
pub(crate) use holder_lookup::{Described, Request};

use std::sync::Arc;
use std::time::Duration;

use crate::acquired::AcquiredHook;
use crate::attempt::Probe;
use crate::attempt::{Attempt, Inline, Outcome, Protocol};
use crate::state::deadlock;
use crate::state::owner::Owner;
use crate::state::{Key, Locality, State};
use crate::sys::FileId;
use crate::wake::Turn;
use crate::{Error, LockGuard, LockMode, Reentrancy};
use schedule::{Schedule, Wait};

/// What a driver does next.
pub(crate) enum Step {
    Acquired(LockGuard),
    /// Sleep this long, then check [`Acquisition::reenter`] and run this attempt.
    Retry(Attempt, Duration),
}

/// One attempt, in its place in the cross-process line (`wake::Fair`), where file system
/// calls may wait (the blocking pool, the sync facade's thread).
///
/// A won hold is handed to the `on_acquired` hook, if any, here, in the same job: a hook
/// that fails releases it (dropping it) and its error is returned.
pub(crate) fn attempt_here(
    attempt: Attempt,
    fair: Option<&mut crate::wake::Fair>,
    on_acquired: Option<&OnWon>,
) -> Result<Outcome, Error> {
    let outcome = match in_line(attempt, fair, Run::Here)? {
        Inline::Done(outcome) => outcome,
        Inline::Hop(attempt) => attempt.run()?, // never given back here
    };
    if let (Outcome::Won(held), Some(on_won)) = (&outcome, on_acquired) {
        on_won
            .hook
            .run(held.path(), on_won.mode, held.lock_file())?;
    }
    Ok(outcome)
}

/// One attempt, in its place in the cross-process line, on a Tokio worker with the lock
/// file on a local file system: as far as [`Attempt::run_inline`] goes, giving the attempt
/// back (`Inline::Hop`) for what may wait. Never for an acquire with an `on_acquired` hook
/// (user code may wait: see [`Acquisition::may_run_inline`]).
pub(crate) fn attempt_inline(
    attempt: Attempt,
    fair: Option<&mut crate::wake::Fair>,
) -> Result<Inline, Error> {
    in_line(attempt, fair, Run::Inline)
}

/// Where [`in_line`] runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Run {
    Here,
    Inline,
}

/// The attempt as its turn in the line says (`Fair::turn`): none when a live earlier
/// waiter goes first, one only if the lock is free, or one.
fn in_line(
    mut attempt: Attempt,
    fair: Option<&mut crate::wake::Fair>,
    run: Run,
) -> Result<Inline, Error> {
    let go = |attempt: Attempt| match run {
        Run::Here => attempt.run().map(Inline::Done),
        Run::Inline => attempt.run_inline(),
    };
    let Some(fair) = fair else {
        return go(attempt);
    };
    // Nobody marked the file as waited for: nobody to let go first, and no file to look at.
    // (A waiter in line looks at the line: one call either way.)
    let turn = if !fair.in_line() && attempt.nobody_else_waits() {
        Turn::Go
    } else {
        fair.turn(attempt.is_soft())
    };
    let outcome = match turn {
        Turn::Go => go(attempt)?,
        Turn::Wait => Inline::Done(attempt.deferred()?),
        Turn::GoIfFree => match run {
            Run::Here => Inline::Done(attempt.run_if_free()?),
            Run::Inline => Inline::Hop(attempt),
        },
    };
    match &outcome {
        Inline::Done(Outcome::Won(_)) => fair.won(),
        Inline::Done(Outcome::Busy { attempt, .. }) => fair.busy(attempt.is_soft()),
        Inline::Hop(_) => {}
    }
    Ok(outcome)
}

/// Where waiting is allowed, before an attempt: finds out whether the lock file's file
/// system is local, if the handle (`state`) does not know yet.
pub(crate) fn learn_locality(state: &State, attempt: &Attempt) {
    if state.locality() == Locality::Unknown {
        state.set_locality(attempt.file_system_is_local());
    }
}

/// `attempt`, with the handle's lock file kept open between holds once its file system is
/// known to be local (see `Attempt::with_kept`); call again once the locality is learnt.
pub(crate) fn keep_files(state: &State, attempt: Attempt) -> Attempt {
    let local = state.locality() == Locality::Local;
    attempt.with_kept(local.then(|| state.kept().clone()))
}

/// An acquire's `on_acquired` hook, with the mode it asks for.
#[derive(Clone)]
pub(crate) struct OnWon {
    hook: AcquiredHook,
    mode: LockMode,
}

/// One acquire in progress: who asks, for what, and how long it may wait.
pub(crate) struct Acquisition {
    state: Arc<State>,
    owner: Owner,
    key: Key,
    reentrancy: Reentrancy,
    mode: LockMode,
    wait: Wait,
    schedule: Schedule,
    attempts: u32,
    on_wait: Option<WaitHook>,
    /// The waiting hook has been called (or is on its way): once per acquire.
    announced: bool,
    /// A failure names the holder (not for `try_*`).
    name_holder: bool,
    /// How to find the holder, from the last contended attempt.
    probe: Option<Probe>,
    /// The holder found during the final sleep, for the timeout (see `lookup.rs`).
    prefetched: Option<crate::attempt::Found>,
    /// This acquire's `tracing` span (lock id, path, mode): the drivers enter it around
    /// every step, blocking-pool jobs included, so every event of the acquire, from any
    /// layer, carries the lock id.
    span: tracing::Span,
    /// Waiters take turns across processes (`wake::Fair`).
    fair: bool,
    /// The mode of a file this acquire creates (before the umask).
    create_mode: u32,
    /// An OS lock whose attempts may fall back to the soft protocol: a fallback is
    /// remembered in the state.
    may_fall_back: bool,
    /// Ends this acquire's waits when cancelled.
    cancel: Option<crate::wake::Cancel>,
    /// Called with each hold this acquire wins (not on re-entry).
    on_acquired: Option<OnWon>,
}

impl Acquisition {
    /// Starts an acquire by the current owner, with its first attempt. Checks the path;
    /// touches no file.
    pub(crate) fn new(
        state: &Arc<State>,
        config: &Config,
        mode: LockMode,
        request: Request,
    ) -> Result<(Self, Attempt), Error> {
        let Request { wait, name_holder } = request;
        let owner = Owner::current();
        let key = Key::of(config.reentrancy, owner);
        // An OS lock that fell back to the soft protocol once speaks it from the start.
        let may_fall_back = config.protocol
            == Protocol::Os {
                fallback_to_soft: true,
            }
            && mode == LockMode::Exclusive
            && config.on_acquired.is_none();
        let protocol = if may_fall_back && state.fell_back_to_soft() {
            Protocol::Soft
        } else {
            config.protocol
        };
        let span = tracing::debug_span!(
            target: "tokio_filelock",
            "acquire",
            lock = state.id(),
            path = %state.path().display(),
            mode = ?mode
        );
        let attempt = span.in_scope(|| {
            Attempt::new(
                state.path().clone(),
                mode,
                config.permissions,
                config.preserve_lock_file,
                crate::wake::released,
            )?
            .with_protocol(protocol)
            .map(|attempt| {
                attempt
                    .with_lifetime(config.lifetime)
                    .with_hook(config.on_acquired.is_some())
            })
        })?;
        let acquisition = Acquisition {
            state: state.clone(),
            owner,
            key,
            reentrancy: config.reentrancy,
            mode,
            wait,
            schedule: Schedule::new(wait, config.poll_interval),
            attempts: 0,
            on_wait: config.on_wait.clone(),
            announced: false,
            name_holder,
            probe: None,
            prefetched: None,
            span,
            fair: config.fair,
            create_mode: config.permissions.unwrap_or(0o666),
            may_fall_back,
            cancel: config.cancel.clone(),
            on_acquired: config.on_acquired.clone().map(|hook| OnWon { hook, mode }),
        };
        let attempt = keep_files(state, attempt.with_waiting(wait != Wait::Once));
        Ok((acquisition, attempt))
    }

    /// `true` when a sleep of `sleep`, starting `elapsed` after the first attempt, ends at
    /// the deadline: the attempt after it is the final one.
    pub(crate) fn is_final_sleep(&self, elapsed: Duration, sleep: Duration) -> bool {
        match self.wait {
            Wait::For(timeout) => elapsed + sleep >= timeout,
            Wait::Once | Wait::Forever => false,
        }
    }

    /// `Error::WouldDeadlock` when this acquire waits forever for `file` (busy) while its
    /// owner holds `file` through another handle in a conflicting mode: the wait would
    /// never end.
    pub(crate) fn check_deadlock(&self, file: Option<FileId>) -> Result<(), Error> {
        if self.wait == Wait::Forever
            && file.is_some_and(|file| deadlock::blocks_itself(file, self.owner, self.mode))
        {
            return Err(Error::WouldDeadlock {
                path: self.state.path().to_path_buf(),
            });
        }
        Ok(())
    }

    /// If this owner holds the lock already, one more hold: no file is touched.
    pub(crate) fn reenter(&self) -> Result<Option<LockGuard>, Error> {
        Ok(self
            .state
            .reenter(self.key, self.owner, self.mode)?
            .map(|mode| {
                tracing::debug!(
                    target: "tokio_filelock",
                    count = self.state.count(self.reentrancy, self.owner),
                    "reentered"
                );
                LockGuard::new(self.state.clone(), self.key, self.owner, mode)
            }))
    }

    /// The `on_acquired` hook, for the job that runs the attempts.
    pub(crate) fn on_acquired(&self) -> Option<OnWon> {
        self.on_acquired.clone()
    }

    /// This acquire's span, for the drivers to enter (see the field).
    pub(crate) fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// The wake-up state of this acquire, in the cross-process line if it may wait and the
    /// handle is fair.
    pub(crate) fn waiter(&self) -> crate::wake::Waiter {
        let path = self.state.path().clone();
        let fair = crate::wake::Fair::new(
            path.clone(),
            self.mode,
            self.create_mode,
            self.fair && self.wait != Wait::Once,
        );
        crate::wake::Waiter::new(path, self.mode)
            .with_fair(fair)
            .with_cancel(self.cancel.as_ref())
    }

    /// The error of a wait ended by the cancel token, `waited` after the first attempt.
    pub(crate) fn cancelled(&self, waited: Duration) -> Error {
        tracing::debug!(target: "tokio_filelock", waited = ?waited, "cancelled");
        Error::Cancelled {
            path: self.state.path().to_path_buf(),
            waited,
        }
    }

    /// Whether attempts of this acquire may run inline on a Tokio worker: its lock file is
    /// on a file system known to be local (asked once per handle, on the blocking pool).
    pub(crate) fn may_run_inline(&self) -> bool {
        // An `on_acquired` hook is user code, which may wait: it runs on the blocking pool.
        self.state.locality() == Locality::Local && self.on_acquired.is_none()
    }

    /// The lock file.
    pub(crate) fn path(&self) -> &std::path::Path {
        self.state.path()
    }

    /// Counts and logs an attempt about to run, and where: `"worker"` (inline on a Tokio
    /// worker), `"blocking pool"`, or `"caller"` (the sync facade's thread).
    pub(crate) fn attempting(&mut self, on: &'static str) {
        self.attempts = self.attempts.saturating_add(1);
        tracing::debug!(
            target: "tokio_filelock",
            attempt = self.attempts,
            mode = ?self.mode,
            on,
            "attempt"
        );
    }

    /// Decides what follows an attempt that returned `outcome`, `elapsed` after the first
    /// attempt began.
    pub(crate) fn after(&mut self, outcome: Outcome, elapsed: Duration) -> Result<Step, Error> {
        let fell_back = match &outcome {
            Outcome::Won(held) => held.is_soft(),
            Outcome::Busy { attempt, .. } => attempt.is_soft(),
        };
        if self.may_fall_back && fell_back {
            self.state.remember_fallback_to_soft();
        }
        let (attempt, id) = match outcome {
            Outcome::Won(held) => {
                let mode = self.state.insert(self.key, self.owner, self.mode, held);
                tracing::debug!(
                    target: "tokio_filelock",
                    attempts = self.attempts,
                    waited = ?elapsed,
                    "acquired"
                );
                return Ok(Step::Acquired(LockGuard::new(
                    self.state.clone(),
                    self.key,
                    self.owner,
                    mode,
                )));
            }
            Outcome::Busy { attempt, id } => (attempt, id),
        };
        self.probe = attempt.probe(id);
        self.check_deadlock(id)?;
        match self.schedule.next_sleep(elapsed) {
            Some(sleep) => {
                if self.attempts == 1 {
                    tracing::debug!(
                        target: "tokio_filelock",
                        "waiting"
                    );
                }
                Ok(Step::Retry(attempt, sleep))
            }
            None => {
                // A single attempt does not wait, however long the attempt took.
                let waited = if self.wait == Wait::Once {
                    Duration::ZERO
                } else {
                    elapsed
                };
                tracing::debug!(
                    target: "tokio_filelock",
                    attempts = self.attempts,
                    waited = ?waited,
                    "timeout"
                );
                Err(Error::Timeout {
                    path: self.state.path().to_path_buf(),
                    waited,
                    holder: None, // named by `describe`
                    empty_marker: false,
                })
            }
        }
    }
}

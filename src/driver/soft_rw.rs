//! Acquiring a [`SoftReadWriteLock`](crate::SoftReadWriteLock): a participant of the
//! read-write protocol advanced on a schedule until granted (async: each step on Tokio's
//! blocking pool; sync: on the calling thread), then held under a heartbeat.
//!
//! An acquire that gives up (timeout, error, cancellation) drops its participant, which
//! withdraws from the log: a queued writer must not keep shutting out readers.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::attempt::soft::LeaseTerms;
use crate::attempt::soft::lease::Refresh;
use crate::attempt::soft::rw::{self, Beat, Files, Participant};
use crate::driver::WaitHook;
use crate::driver::heartbeat::{self, Claim, CompromiseHook, Refresher, Release};
use crate::driver::schedule::{Schedule, Wait};
use crate::state::State;
use crate::state::owner::Owner;
use crate::state::rw_holds;
use crate::{Error, Holder, LockGuard, LockMode, Op, WaitEvent};

/// What every acquire of one lock shares.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) state: Arc<State>,
    pub(crate) poll_interval: Duration,
    /// `duration` is the stale threshold.
    pub(crate) terms: LeaseTerms,
    pub(crate) hook: Option<CompromiseHook>,
    pub(crate) on_wait: Option<WaitHook>,
    /// Called with each hold right after it is granted.
    pub(crate) on_acquired: Option<crate::acquired::AcquiredHook>,
    /// Ends the waits of this lock's acquires when cancelled.
    pub(crate) cancel: Option<crate::wake::Cancel>,
}

impl Settings {
    /// The settings of a lock on `path`, made absolute with its parent directory resolved
    /// (Python's `canonical`, so both find the same `<path>.rw/`).
    pub(crate) fn new(
        path: std::path::PathBuf,
        poll_interval: Duration,
        terms: LeaseTerms,
        hook: Option<CompromiseHook>,
        on_wait: Option<WaitHook>,
    ) -> Self {
        Settings {
            state: Arc::new(State::new(Arc::from(crate::sys::rw_records::canonical(
                path,
            )))),
            poll_interval,
            terms,
            hook,
            on_wait,
            on_acquired: None,
            cancel: None,
        }
    }

    /// The lock path.
    pub(crate) fn path(&self) -> &Path {
        self.state.path()
    }

    fn participant(&self, mode: LockMode) -> Participant {
        Participant::new(Files::new(self.state.path()), mode, self.terms.duration)
    }

    /// The first failed attempt of an acquire that will wait: logs it, calls `on_wait`.
    fn waiting(&self, mode: LockMode) {
        tracing::debug!(target: "tokio_filelock", "waiting");
        if let Some(hook) = &self.on_wait {
            hook.call(&WaitEvent::new(self.path(), mode, None));
        }
    }

    /// After a failed attempt: [`Error::WouldDeadlock`] when this acquire waits forever and
    /// `owner` holds this path already (whatever blocks it waits for that hold).
    fn check_deadlock(&self, wait: Wait, owner: Owner) -> Result<(), Error> {
        if wait == Wait::Forever && rw_holds::holds(self.path(), owner) {
            return Err(Error::WouldDeadlock {
                path: self.path().to_path_buf(),
            });
        }
        Ok(())
    }

    /// The timeout of a wait of `waited`, naming the holder when the log does (blocking).
    fn cancelled(&self, waited: Duration) -> Error {
        tracing::debug!(target: "tokio_filelock", waited = ?waited, "cancelled");
        Error::Cancelled {
            path: self.state.path().to_path_buf(),
            waited,
        }
    }

    fn timeout(&self, waited: Duration) -> Error {
        tracing::debug!(target: "tokio_filelock", waited = ?waited, "timeout");
        Error::Timeout {
            path: self.state.path().to_path_buf(),
            waited,
            holder: rw::holder(self.path()).ok().flatten().map(Box::new),
            empty_marker: false,
        }
    }
}

fn span(settings: &Settings, mode: LockMode) -> tracing::Span {
    tracing::debug_span!(
        target: "tokio_filelock",
        "acquire",
        lock = settings.state.id(),
        path = %settings.state.path().display(),
        mode = ?mode
    )
}

/// Runs `step` on the blocking pool with the participant; an error drops it there.
async fn on_pool<T: Send + 'static>(
    path: &Path,
    span: &tracing::Span,
    mut participant: Participant,
    step: impl FnOnce(&mut Participant) -> Result<T, Error> + Send + 'static,
) -> Result<(Participant, T), Error> {
    let span = span.clone();
    let done = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        step(&mut participant).map(|value| (participant, value))
    })
    .await;
    done.map_err(|e| Error::io(path, Op::Spawn, std::io::Error::other(e)))?
}

/// Acquires in `mode`, waiting as `wait` says: `Ok(None)` when the wait ran out and
/// `give_up_quietly` (the `try_*` forms), else [`Error::Timeout`].
pub(crate) async fn acquire_async(
    settings: Settings,
    mode: LockMode,
    wait: Wait,
    give_up_quietly: bool,
) -> Result<Option<LockGuard>, Error> {
    let span = span(&settings, mode);
    let path = settings.state.path().clone();
    let owner = Owner::current();
    let start = Instant::now();
    let mut schedule = Schedule::new(wait, settings.poll_interval);
    let (mut participant, ()) = on_pool(
        &path,
        &span,
        settings.participant(mode),
        Participant::publish,
    )
    .await?;
    let cancel = settings.cancel.as_ref().map(crate::wake::Cancel::register);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        span.in_scope(|| tracing::debug!(target: "tokio_filelock", attempt = attempts, "attempt"));
        let (advanced, granted) = on_pool(&path, &span, participant, Participant::advance).await?;
        participant = advanced;
        if granted {
            if let Some(hook) = settings.on_acquired.clone() {
                // User code, which may wait: on the blocking pool. Its error drops the
                // participant there, which withdraws it from the log.
                let at = path.clone();
                (participant, ()) = on_pool(&path, &span, participant, move |_| {
                    hook.run(&at, mode, None)
                })
                .await?;
            }
            span.in_scope(|| tracing::debug!(target: "tokio_filelock", attempts, waited = ?start.elapsed(), "acquired"));
            return hold(&settings, mode, participant, owner, true).map(Some);
        }
        if let Err(e) = settings.check_deadlock(wait, owner) {
            on_pool(&path, &span, participant, Participant::leave).await?;
            return Err(e);
        }
        let elapsed = start.elapsed();
        let Some(sleep) = schedule.next_sleep(elapsed) else {
            let waited = if wait == Wait::Once {
                Duration::ZERO
            } else {
                elapsed
            };
            let timeout = settings.clone();
            let (_, timeout) = on_pool(&path, &span, participant, move |p| {
                p.leave()?;
                Ok((!give_up_quietly).then(|| timeout.timeout(waited)))
            })
            .await?;
            return match timeout {
                Some(timeout) => Err(timeout),
                None => Ok(None),
            };
        };
        if attempts == 1 {
            span.in_scope(|| settings.waiting(mode));
        }
        let mut sleeping: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> =
            match crate::wake::sleep(sleep) {
                Ok(sleeping) => Box::pin(sleeping),
                Err(_) => Box::pin(tokio::time::sleep(sleep)),
            };
        let cancelled = std::future::poll_fn(|cx| {
            if cancel.as_ref().is_some_and(|c| c.poll(cx).is_ready()) {
                return std::task::Poll::Ready(true);
            }
            sleeping.as_mut().poll(cx).map(|()| false)
        })
        .await;
        if cancelled {
            on_pool(&path, &span, participant, Participant::leave).await?;
            return Err(settings.cancelled(start.elapsed()));
        }
    }
}

/// The sync facade of [`acquire_async`]: on the calling thread.
pub(crate) fn acquire_blocking(
    settings: &Settings,
    mode: LockMode,
    wait: Wait,
    give_up_quietly: bool,
) -> Result<Option<LockGuard>, Error> {
    let span = span(settings, mode);
    let _entered = span.enter();
    let start = std::time::Instant::now();
    let mut schedule = Schedule::new(wait, settings.poll_interval);
    let mut participant = settings.participant(mode);
    participant.publish()?;
    let cancel = settings.cancel.as_ref().map(crate::wake::Cancel::register);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        tracing::debug!(target: "tokio_filelock", attempt = attempts, "attempt");
        if participant.advance()? {
            if let Some(hook) = &settings.on_acquired {
                // An error drops the participant, which withdraws it from the log.
                hook.run(settings.state.path(), mode, None)?;
            }
            tracing::debug!(target: "tokio_filelock", attempts, waited = ?start.elapsed(), "acquired");
            return hold(settings, mode, participant, Owner::current(), false).map(Some);
        }
        if let Err(e) = settings.check_deadlock(wait, Owner::current()) {
            participant.leave()?;
            return Err(e);
        }
        let elapsed = start.elapsed();
        let Some(sleep) = schedule.next_sleep(elapsed) else {
            let waited = if wait == Wait::Once {
                Duration::ZERO
            } else {
                elapsed
            };
            participant.leave()?;
            return match give_up_quietly {
                true => Ok(None),
                false => Err(settings.timeout(waited)),
            };
        };
        if attempts == 1 {
            settings.waiting(mode);
        }
        match &cancel {
            Some(cancel) if cancel.sleep_blocking(sleep) => {
                participant.leave()?;
                return Err(settings.cancelled(start.elapsed()));
            }
            Some(_) => {}
            None => std::thread::sleep(sleep),
        }
    }
}

/// A granted participant, refreshed by a heartbeat.
struct Granted(Arc<Mutex<Participant>>);

impl Refresher for Granted {
    fn refresh(&self) -> Refresh {
        match crate::sync::lock(&self.0).heartbeat() {
            Beat::Ok => Refresh::Refreshed,
            Beat::Lost => Refresh::Evicted,
            Beat::Transient(e) => Refresh::Failed(e),
        }
    }
}

/// The guard of a granted participant, with its heartbeat (a task of the current runtime
/// when `in_async`, else the crate's heartbeat thread).
fn hold(
    settings: &Settings,
    mode: LockMode,
    participant: Participant,
    owner: Owner,
    in_async: bool,
) -> Result<LockGuard, Error> {
    let generation = participant.generation();
    let token = participant.token().to_owned();
    let lock = participant.lock().to_path_buf();
    let shared = Arc::new(Mutex::new(participant));
    let claim = Arc::new(Claim::new(
        &lock,
        token,
        settings.terms,
        Box::new(Granted(shared.clone())),
        settings.hook.clone(),
    ));
    let task = if in_async {
        Some(heartbeat::beat_async(claim.clone()))
    } else {
        heartbeat::beat_blocking(&claim)?;
        None
    };
    let ticket = rw_holds::add(settings.state.path(), owner);
    let release: Release = Box::new(move || {
        let left = crate::sync::lock(&shared).leave();
        drop(ticket);
        left
    });
    let remote = heartbeat::watched(claim, release, task, generation);
    Ok(LockGuard::remote(settings.state.clone(), mode, remote))
}

/// Who holds the lock on `path` now, as its log says (blocking: a few reads).
pub(crate) fn holder(path: &Path) -> Result<Option<Holder>, Error> {
    rw::holder(path)
}

/// [`holder`] on the blocking pool.
pub(crate) async fn holder_async(path: std::path::PathBuf) -> Result<Option<Holder>, Error> {
    let at = path.clone();
    tokio::task::spawn_blocking(move || holder(&at))
        .await
        .map_err(|e| Error::io(&path, Op::Spawn, std::io::Error::other(e)))?
}

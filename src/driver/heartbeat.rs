//! The heartbeat of held leases ([`SoftFileLease`](crate::SoftFileLease)) and read-write
//! holds ([`SoftReadWriteLock`](crate::SoftReadWriteLock)): refreshes each hold's record
//! every heartbeat interval (through its [`Refresher`]), and reports a lost claim to its
//! guard ([`LockGuard::lost`](crate::LockGuard::lost)) and to the lock's `on_compromise`
//! hook.
//!
//! No thread per lease: an async hold is refreshed by a Tokio task (sleeping on the crate's
//! timer, Tokio's under paused time; each refresh on the blocking pool), a sync hold by
//! one thread of the crate's own that serves every sync hold of the process. Either stops
//! when the guard is released or dropped.
//!
//! A tick follows Python filelock's `_RefreshLoop`: a refresh that finds the marker missing
//! or replaced is forgiven once (a racing breaker may exchange a marker aside for an
//! instant and put it back) and reported the second time in a row; a failing refresh is
//! tolerated while the last good one is less than `duration - interval` old. A read-write
//! hold found evicted is reported at once (Python's `Hold.refresh`).

use std::fs::File;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::task::{Context, Poll, Waker};

use tokio::time::Instant;

use crate::attempt::soft::LeaseTerms;
use crate::attempt::soft::lease::{self, Refresh};
use crate::lost::{CompromiseReason, Lost, LostFuture, Remote};
use crate::{Error, LockGuard};

/// What a lease calls when its claim is lost.
pub(crate) type CompromiseHook = Arc<dyn Fn(&Lost) + Send + Sync>;

/// One refresh of a held claim (blocking: runs on the blocking pool or the heartbeat
/// thread).
pub(crate) trait Refresher: Send + Sync {
    fn refresh(&self) -> Refresh;

    /// At release: a loss the heartbeat may not have seen yet (Python's
    /// `_record_unreported_loss`), `None` if none (or none can be told).
    fn loss_at_release(&self) -> Option<Refresh> {
        None
    }
}

/// How a guard lets go of a hold that a heartbeat watches over.
pub(crate) type Release = Box<dyn FnOnce() -> Result<(), Error> + Send + Sync>;

/// A lease's marker, opened to refresh its times.
struct Marker {
    path: PathBuf,
    /// `None` if it was already gone when the hold began (then the claim is lost from the
    /// start).
    file: Option<File>,
}

impl Refresher for Marker {
    fn refresh(&self) -> Refresh {
        match &self.file {
            Some(file) => lease::refresh(&self.path, file),
            None => Refresh::MarkerMissing,
        }
    }

    fn loss_at_release(&self) -> Option<Refresh> {
        lease::loss_at_release(&self.path, self.file.as_ref()?)
    }
}

/// One held lease, shared by its guard and its heartbeat.
pub(crate) struct Claim {
    path: PathBuf,
    token: String,
    terms: LeaseTerms,
    refresher: Box<dyn Refresher>,
    hook: Option<CompromiseHook>,
    state: Mutex<ClaimState>,
}

struct ClaimState {
    /// Released (or lost): no more refreshes, no more reports.
    stopped: bool,
    lost: Option<Lost>,
    wakers: Vec<Waker>,
    /// The last refresh found the marker missing or replaced.
    missed: bool,
    last_refreshed: Instant,
}

impl Claim {
    /// The claim of the hold `guard` has just won on `path`: opens its marker (blocking: one
    /// open and `fstat`).
    fn open(
        guard: &LockGuard,
        path: &Path,
        terms: LeaseTerms,
        hook: Option<CompromiseHook>,
    ) -> Result<Claim, Error> {
        let opened = match guard.held_id() {
            Some(id) => {
                lease::open_own(path, id).map_err(|e| Error::io(path, crate::Op::Inspect, e))?
            }
            None => None,
        };
        let (file, token) = match opened {
            Some((file, token)) => (Some(file), token.unwrap_or_default()),
            None => (None, String::new()),
        };
        let marker = Marker {
            path: path.to_path_buf(),
            file,
        };
        Ok(Claim::new(path, token, terms, Box::new(marker), hook))
    }

    /// The claim `token` on `path`, refreshed by `refresher` under `terms`.
    pub(crate) fn new(
        path: &Path,
        token: String,
        terms: LeaseTerms,
        refresher: Box<dyn Refresher>,
        hook: Option<CompromiseHook>,
    ) -> Claim {
        Claim {
            path: path.to_path_buf(),
            token,
            terms,
            refresher,
            hook,
            state: Mutex::new(ClaimState {
                stopped: false,
                lost: None,
                wakers: Vec::new(),
                missed: false,
                last_refreshed: Instant::now(),
            }),
        }
    }

    fn is_stopped(&self) -> bool {
        crate::sync::lock(&self.state).stopped
    }

    /// Stops refreshing: the hold is being released.
    fn stop(&self) {
        crate::sync::lock(&self.state).stopped = true;
    }

    fn lost(&self) -> Option<Lost> {
        crate::sync::lock(&self.state).lost.clone()
    }

    /// One refresh (blocking). `false` when the heartbeat is to stop.
    fn tick(&self) -> bool {
        if self.is_stopped() {
            return false;
        }
        let outcome = self.refresher.refresh();
        tracing::debug!(
            target: "tokio_filelock",
            path = %self.path.display(),
            outcome = ?outcome,
            "lease heartbeat"
        );
        let now = Instant::now();
        let (reason, error) = {
            let mut state = crate::sync::lock(&self.state);
            if state.stopped {
                return false;
            }
            match outcome {
                Refresh::Refreshed => {
                    state.last_refreshed = now;
                    state.missed = false;
                    return true;
                }
                Refresh::MarkerMissing | Refresh::OwnerChanged if !state.missed => {
                    state.missed = true;
                    return true;
                }
                Refresh::MarkerMissing => (CompromiseReason::MarkerMissing, None),
                Refresh::Evicted => (CompromiseReason::Evicted, None),
                Refresh::OwnerChanged => (CompromiseReason::OwnerChanged, None),
                Refresh::Failed(e) => {
                    let grace = self.terms.duration.saturating_sub(self.terms.heartbeat);
                    if now.saturating_duration_since(state.last_refreshed) < grace {
                        return true;
                    }
                    (CompromiseReason::RefreshFailed, Some(e.to_string()))
                }
            }
        };
        self.report(reason, error);
        false
    }

    /// At release: records a loss the heartbeat has not reported yet (Python's
    /// `_record_unreported_loss`), so that a pending [`LockGuard::lost`] resolves with it.
    /// The hook is not called (in Python only the heartbeat calls `on_compromise`).
    fn record_unreported_loss(&self) {
        if crate::sync::lock(&self.state).lost.is_some() {
            return;
        }
        let reason = match self.refresher.loss_at_release() {
            Some(Refresh::MarkerMissing) => CompromiseReason::MarkerMissing,
            Some(Refresh::OwnerChanged) => CompromiseReason::OwnerChanged,
            _ => return,
        };
        tracing::debug!(
            target: "tokio_filelock",
            path = %self.path.display(),
            %reason,
            "releasing a lease whose claim was lost"
        );
        let lost = Lost::LeaseCompromised {
            path: self.path.clone(),
            token: self.token.clone(),
            reason,
            error: None,
        };
        let wakers = {
            let mut state = crate::sync::lock(&self.state);
            if state.lost.is_some() {
                return;
            }
            state.lost = Some(lost);
            std::mem::take(&mut state.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Records the loss, calls the hook and then wakes `lost()` futures (once): the hook has
    /// run by the time `lost()` resolves or `is_lost()` says so.
    fn report(&self, reason: CompromiseReason, error: Option<String>) {
        let lost = Lost::LeaseCompromised {
            path: self.path.clone(),
            token: self.token.clone(),
            reason,
            error,
        };
        {
            let mut state = crate::sync::lock(&self.state);
            if state.stopped {
                return;
            }
            state.stopped = true;
        }
        tracing::warn!(
            target: "tokio_filelock",
            path = %self.path.display(),
            %reason,
            "the lease was lost"
        );
        if let Some(hook) = &self.hook {
            // A panicking hook must not end the heartbeat thread that serves other leases.
            let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(&lost)));
            if called.is_err() {
                tracing::warn!(target: "tokio_filelock", path = %self.path.display(), "the lease's on_compromise hook panicked");
            }
        }
        let wakers = {
            let mut state = crate::sync::lock(&self.state);
            state.lost = Some(lost);
            std::mem::take(&mut state.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// Resolves once the claim is lost.
struct ClaimLost(Arc<Claim>);

impl Future for ClaimLost {
    type Output = Lost;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Lost> {
        let mut state = crate::sync::lock(&self.0.state);
        if let Some(lost) = &state.lost {
            return Poll::Ready(lost.clone());
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// A held lease, as its guard keeps it: the hold (how to release it) and its heartbeat.
struct LeaseHold {
    release: Option<Release>,
    claim: Arc<Claim>,
    task: Option<tokio::task::AbortHandle>,
    fencing_token: Option<u64>,
}

impl LeaseHold {
    fn stop(&mut self) {
        self.claim.stop();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for LeaseHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseHold")
            .field("path", &self.claim.path)
            .field("token", &self.claim.token)
            .finish_non_exhaustive()
    }
}

impl Remote for LeaseHold {
    fn release(&mut self) -> Result<(), Error> {
        self.stop();
        if self.release.is_some() {
            self.claim.record_unreported_loss();
        }
        match self.release.take() {
            Some(release) => release(),
            None => Ok(()),
        }
    }

    fn lost(&self) -> LostFuture {
        Box::pin(ClaimLost(self.claim.clone()))
    }

    fn is_lost(&self) -> Option<Lost> {
        self.claim.lost()
    }

    fn fencing_token(&self) -> Option<u64> {
        self.fencing_token
    }
}

impl Drop for LeaseHold {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Turns the guard of a just-won lease into one whose heartbeat runs on the calling
/// Tokio runtime (a task; each refresh on the blocking pool).
pub(crate) async fn hold_async(
    guard: LockGuard,
    terms: LeaseTerms,
    hook: Option<CompromiseHook>,
) -> Result<LockGuard, Error> {
    let path = guard.path().to_path_buf();
    let claim = {
        let at = path.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let claim = Claim::open(&guard, &at, terms, hook);
            (guard, claim)
        })
        .await;
        match opened {
            Ok((guard, claim)) => (guard, Arc::new(claim?)),
            Err(e) => return Err(Error::io(&path, crate::Op::Spawn, io::Error::other(e))),
        }
    };
    let (guard, claim) = claim;
    let task = beat_async(claim.clone());
    Ok(wrap(guard, claim, Some(task)))
}

/// Starts the heartbeat of `claim` as a task of the calling Tokio runtime (each refresh on
/// the blocking pool); the first refresh is due one interval from now.
pub(crate) fn beat_async(claim: Arc<Claim>) -> tokio::task::AbortHandle {
    let terms = claim.terms;
    let beating = claim;
    // The first refresh is due one interval after the win, wherever the task first runs.
    let mut due = Instant::now() + terms.heartbeat;
    let task = tokio::spawn(async move {
        loop {
            let wait = due.saturating_duration_since(Instant::now());
            match crate::wake::sleep(wait) {
                Ok(sleep) => sleep.await,
                Err(_) => tokio::time::sleep(wait).await,
            }
            let ticking = beating.clone();
            // The next one is due an interval after this one began (its blocking-pool hop
            // and the refresh itself do not delay the schedule).
            let began = Instant::now();
            match tokio::task::spawn_blocking(move || ticking.tick()).await {
                Ok(true) => due = began + terms.heartbeat,
                _ => break,
            }
        }
    });
    task.abort_handle()
}

/// Turns the guard of a just-won lease into one refreshed by the crate's heartbeat thread.
pub(crate) fn hold_blocking(
    guard: LockGuard,
    terms: LeaseTerms,
    hook: Option<CompromiseHook>,
) -> Result<LockGuard, Error> {
    let path = guard.path().to_path_buf();
    let claim = Arc::new(Claim::open(&guard, &path, terms, hook)?);
    beat_blocking(&claim)?;
    Ok(wrap(guard, claim, None))
}

/// Has the crate's heartbeat thread refresh `claim`, first one interval from now.
pub(crate) fn beat_blocking(claim: &Arc<Claim>) -> Result<(), Error> {
    let engine = engine().map_err(|e| Error::io(&claim.path, crate::Op::Spawn, e))?;
    {
        let mut queue = crate::sync::lock(&engine.queue);
        queue.push((
            std::time::Instant::now() + claim.terms.heartbeat,
            Arc::downgrade(claim),
        ));
    }
    engine.changed.notify_one();
    Ok(())
}

fn wrap(guard: LockGuard, claim: Arc<Claim>, task: Option<tokio::task::AbortHandle>) -> LockGuard {
    guard.wrapped(|guard| {
        Box::new(LeaseHold {
            release: Some(Box::new(move || guard.release())),
            claim,
            task,
            fencing_token: None,
        })
    })
}

/// The hold of a watched claim, for a guard: `release` lets go of it, `task` is its async
/// heartbeat (`None`: the heartbeat thread's).
pub(crate) fn watched(
    claim: Arc<Claim>,
    release: Release,
    task: Option<tokio::task::AbortHandle>,
    fencing_token: Option<u64>,
) -> Box<dyn Remote> {
    Box::new(LeaseHold {
        release: Some(release),
        claim,
        task,
        fencing_token,
    })
}

/// The heartbeat thread of sync holds: their next refresh times.
struct Engine {
    /// Few: one per sync lease held right now. A vector beats a heap here.
    queue: Mutex<Vec<(std::time::Instant, Weak<Claim>)>>,
    changed: Condvar,
}

static ENGINE: OnceLock<Engine> = OnceLock::new();

/// Serializes starting the thread (a failed start is retried by the next hold).
static STARTING: Mutex<bool> = Mutex::new(false);

fn engine() -> io::Result<&'static Engine> {
    let engine = ENGINE.get_or_init(|| Engine {
        queue: Mutex::new(Vec::new()),
        changed: Condvar::new(),
    });
    let mut started = crate::sync::lock(&STARTING);
    if !*started {
        std::thread::Builder::new()
            .name("tokio-filelock-lease".into())
            .spawn(move || run(engine))?;
        *started = true;
    }
    Ok(engine)
}

fn run(engine: &'static Engine) {
    let mut queue = crate::sync::lock(&engine.queue);
    loop {
        queue.retain(|(_, claim)| claim.upgrade().is_some_and(|c| !c.is_stopped()));
        let now = std::time::Instant::now();
        let next = queue
            .iter()
            .enumerate()
            .min_by_key(|(_, (due, _))| *due)
            .map(|(i, (due, _))| (i, *due));
        match next {
            None => queue = crate::sync::wait(&engine.changed, queue),
            Some((_, due)) if due > now => {
                queue = crate::sync::wait_timeout(&engine.changed, queue, due - now);
            }
            Some((i, _)) => {
                let (_, weak) = queue.swap_remove(i);
                drop(queue);
                let again = weak.upgrade().filter(|claim| claim.tick());
                queue = crate::sync::lock(&engine.queue);
                if let Some(claim) = again {
                    let due = std::time::Instant::now() + claim.terms.heartbeat;
                    queue.push((due, Arc::downgrade(&claim)));
                }
            }
        }
    }
}

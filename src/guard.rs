//! The guard returned by every acquire: owned, `Send + 'static`, releases on drop.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::attempt::Gone;
use crate::lost::{FILE_CHECK_INTERVAL, Lost, LostFuture, Remote};
use crate::state::owner::Owner;
use crate::state::{Key, State};
use crate::{Error, LockMode};

/// Proof that the lock is held. Dropping it releases its hold (with
/// [`Reentrancy::Owner`](crate::Reentrancy::Owner) or
/// [`Reentrancy::Handle`](crate::Reentrancy::Handle), one count of it: the OS lock is
/// released when the last goes).
///
/// The guard owns what it needs (`Send + 'static`): it can be moved into a spawned task, or
/// dropped on another thread than the one that acquired it. With the default reentrancy
/// (every acquire a hold of its own) moving it is always safe: nobody gets in while it
/// lives, its acquirer included. With [`Reentrancy::Owner`](crate::Reentrancy::Owner) it
/// still counts as its acquirer's hold after a move, so the acquirer would re-enter while
/// the guard's new keeper works: keep guards with their acquirer there.
///
/// Drop logs a release error (at WARN, target `tokio_filelock`); call
/// [`release`](LockGuard::release) to get it instead.
///
/// Releasing runs on the thread that drops the guard, also a runtime worker: unlock and
/// close for the OS lock (plus, on Windows, a best-effort delete of the lock file), an
/// identity-checked unlink of the marker for a soft lock. None of these waits for another
/// process. It is done at once, not later on the blocking pool, so that a dropped guard
/// means a free lock for the very next line of code.
///
/// ```
/// # fn main() -> Result<(), tokio_filelock::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// let lock = tokio_filelock::FileLock::new(dir.path().join("job.lock"));
/// let guard = lock.blocking_acquire()?;
/// assert!(lock.is_locked());
/// guard.release()?;
/// assert!(!lock.is_locked());
/// # Ok(())
/// # }
/// ```
#[must_use = "if unused the lock will immediately unlock"]
#[clippy::has_significant_drop]
pub struct LockGuard {
    state: Arc<State>,
    key: Key,
    /// Who acquired it: the hold it releases, wherever it is dropped.
    owner: Owner,
    mode: LockMode,
    released: bool,
    /// A hold on a lock server ([`PgLock`](crate::postgres::PgLock)), released with the
    /// guard; `None` for file locks.
    remote: Option<Box<dyn Remote>>,
}

impl LockGuard {
    pub(crate) fn new(state: Arc<State>, key: Key, owner: Owner, mode: LockMode) -> Self {
        LockGuard {
            state,
            key,
            owner,
            mode,
            released: false,
            remote: None,
        }
    }

    /// This guard, kept inside a hold that watches over it (a lease and its heartbeat):
    /// the new guard names the same lock and releases through `wrap`'s hold.
    pub(crate) fn wrapped(self, wrap: impl FnOnce(LockGuard) -> Box<dyn Remote>) -> LockGuard {
        let (state, mode) = (self.state.clone(), self.mode);
        LockGuard::remote(state, mode, wrap(self))
    }

    /// The identity of the file (marker) this guard's hold won, while held.
    pub(crate) fn held_id(&self) -> Option<crate::sys::FileId> {
        self.state.held_id(self.key)
    }

    /// A guard of a hold kept by a lock server; `state` only names the lock.
    pub(crate) fn remote(state: Arc<State>, mode: LockMode, remote: Box<dyn Remote>) -> Self {
        LockGuard {
            state,
            key: Key::Handle,
            owner: Owner::current(),
            mode,
            released: false,
            remote: Some(remote),
        }
    }

    /// Resolves, with the reason, once this hold can no longer be trusted: someone else may
    /// hold the lock now. It never resolves while the hold is intact.
    ///
    /// - [`FileLock`](crate::FileLock) and [`SoftFileLock`](crate::SoftFileLock): the lock
    ///   file (marker) was unlinked, renamed away or replaced under the holder. Checked by
    ///   one `lstat` every 500 ms while the future is polled (on Tokio's blocking pool), so
    ///   it costs nothing when nobody waits for it. On Windows, where a released lock file
    ///   is deleted, it also resolves after the guard is released.
    /// - [`StrictSoftFileLock`](crate::StrictSoftFileLock): one of the hold's claims was
    ///   removed (by hand, with `force_break`): [`Lost::ClaimRemoved`], checked as above.
    /// - [`SoftFileLease`](crate::SoftFileLease) and
    ///   [`SoftReadWriteLock`](crate::SoftReadWriteLock): the heartbeat found the hold taken
    ///   over or evicted, or its refresh kept failing ([`Lost::LeaseCompromised`]).
    /// - [`PgLock`](crate::postgres::PgLock): the server session ended or broke
    ///   (terminated, connection cut, server restarted): at once when the client sees the
    ///   connection end, within about 2 s (TCP keepalives) when the network goes silent.
    ///
    /// The future owns what it needs (`Send + 'static`): select on it beside the work the
    /// lock protects. Needs a Tokio runtime with time enabled.
    ///
    /// Loss can be noticed after someone else has already acquired the lock: a resource
    /// that must never see two writers should check the
    /// [`fencing_token`](Self::fencing_token) too.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tokio_filelock::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("job.lock");
    /// let guard = tokio_filelock::FileLock::new(&path).acquire().await?;
    /// # #[cfg(unix)] { // a held lock file cannot be deleted on Windows
    /// std::fs::remove_file(&path).unwrap(); // someone deletes the lock file
    /// let lost = guard.lost().await;
    /// assert!(matches!(lost, tokio_filelock::Lost::FileReplaced { .. }));
    /// # }
    /// # Ok(())
    /// # }
    /// ```
    pub fn lost(&self) -> impl Future<Output = Lost> + Send + 'static + use<> {
        let future: LostFuture = match &self.remote {
            Some(remote) => remote.lost(),
            None => {
                let state = self.state.clone();
                let key = self.key;
                Box::pin(async move {
                    loop {
                        let check = state.clone();
                        let gone =
                            tokio::task::spawn_blocking(move || file_lost(&check, key)).await;
                        if let Ok(Some(lost)) = gone {
                            return lost;
                        }
                        tokio::time::sleep(FILE_CHECK_INTERVAL).await;
                    }
                })
            }
        };
        future
    }

    /// `true` when the hold is known to be lost now (see [`lost`](Self::lost)). For a file
    /// lock this is one `lstat` of the lock path on the calling thread.
    pub fn is_lost(&self) -> bool {
        match &self.remote {
            Some(remote) => remote.is_lost().is_some(),
            None => file_lost(&self.state, self.key).is_some(),
        }
    }

    /// A number that strictly increases with every exclusive acquisition of this lock
    /// across all clients, for a resource to refuse writes from a holder that lost the lock
    /// without knowing it (compare it with the highest token the resource has seen).
    ///
    /// `Some` for an exclusive [`PgLock`](crate::postgres::PgLock) hold (unless fencing is
    /// turned off), and for every [`SoftReadWriteLock`](crate::SoftReadWriteLock) hold, read
    /// or write: the generation that granted it (Python's `generation`; it restarts at 1 if
    /// the `<path>.rw/` directory is deleted). `None` for other file locks and shared
    /// holds, which have none.
    pub fn fencing_token(&self) -> Option<u64> {
        self.remote.as_ref().and_then(|r| r.fencing_token())
    }

    /// Releases this hold now and reports an error from the operating system, if any.
    ///
    /// When other holds of the same owner remain (reentrant acquires), this only counts
    /// down; the OS lock is released with the last one.
    pub fn release(mut self) -> Result<(), Error> {
        self.released = true;
        match &mut self.remote {
            Some(remote) => remote.release(),
            None => self.state.release(self.key, self.owner),
        }
    }

    /// The lock file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.state.path()
    }

    /// The descriptor through which this guard's OS lock is held; `None` for a soft lock
    /// (its lock is the marker file's existence, not a descriptor).
    ///
    /// For handing the lock to a child process, as `flock(1)` does: a copy of the
    /// descriptor inherited across `fork`/`exec` shares the lock (it is one open file
    /// description), which then lasts until every copy is closed, or until any copy
    /// unlocks it. Releasing or dropping this guard unlocks it for every copy, so a
    /// program that means the child to keep the lock lets the descriptor be closed by its
    /// own exit instead. The descriptor is close-on-exec; clear that flag in the child only
    /// (a `pre_exec` hook), and never close it: the guard owns it.
    ///
    /// ```
    /// # #[cfg(unix)]
    /// # fn main() -> Result<(), tokio_filelock::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = tokio_filelock::FileLock::new(dir.path().join("job.lock"));
    /// let guard = lock.blocking_acquire()?;
    /// assert!(guard.raw_fd().is_some());
    /// # Ok(())
    /// # }
    /// # #[cfg(not(unix))]
    /// # fn main() {}
    /// ```
    #[cfg(unix)]
    pub fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        self.state.raw_fd(self.key)
    }

    /// The mode of the lock this guard holds. A shared acquire by an owner that already
    /// holds the lock exclusively holds it exclusively.
    #[must_use]
    pub fn mode(&self) -> LockMode {
        self.mode
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let released = match &mut self.remote {
            Some(remote) => remote.release(),
            None => self.state.release(self.key, self.owner),
        };
        if let Err(error) = released {
            tracing::warn!(
                target: "tokio_filelock",
                lock = self.state.id(),
                path = %self.state.path().display(),
                %error,
                "releasing the lock failed"
            );
        }
    }
}

/// `Some` when the file `key` holds is no longer at the lock path (or, for a strict lock,
/// one of its claims is gone). An I/O error other than "not found" proves nothing: not
/// lost.
fn file_lost(state: &State, key: Key) -> Option<Lost> {
    let path = state.path().to_path_buf();
    Some(match state.held_watch(key)?.gone()? {
        Gone::File => Lost::FileReplaced { path },
        Gone::Claim(claim) => Lost::ClaimRemoved { path, claim },
    })
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("path", &self.state.path())
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

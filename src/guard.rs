//! The guard returned by every acquire: owned, `Send + 'static`, releases on drop.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::owner::Owner;
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
}

impl LockGuard {
    pub(crate) fn new(state: Arc<State>, key: Key, owner: Owner, mode: LockMode) -> Self {
        LockGuard {
            state,
            key,
            owner,
            mode,
            released: false,
        }
    }

    /// Releases this hold now and reports an error from the operating system, if any.
    ///
    /// When other holds of the same owner remain (reentrant acquires), this only counts
    /// down; the OS lock is released with the last one.
    pub fn release(mut self) -> Result<(), Error> {
        self.released = true;
        self.state.release(self.key, self.owner)
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        self.state.path()
    }

    /// The mode of the lock this guard holds. A shared acquire by an owner that already
    /// holds the lock exclusively holds it exclusively.
    pub fn mode(&self) -> LockMode {
        self.mode
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Err(error) = self.state.release(self.key, self.owner) {
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

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("path", &self.state.path())
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

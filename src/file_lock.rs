//! The public handle: `FileLock`.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::driver::{self, Acquisition, Request};
use crate::owner::Owner;
use crate::state::{Key, State};
use crate::{Error, FileLockBuilder, LockGuard, LockMode};

/// A cross-process lock on a file, held with the operating system's whole-file lock
/// (`flock(2)` on Unix, `LockFileEx` on Windows), the same lock that `std::fs::File::lock`,
/// cargo, uv, Python `filelock` and `flock(1)` take.
///
/// # Which lock should you use?
///
/// - To exclude **tasks or threads of one process** only, use `tokio::sync::Mutex` or
///   `std::sync::Mutex`: they are far cheaper. A `FileLock` is for excluding *processes*
///   (and it excludes tasks and threads as well).
/// - `FileLock` is right on local file systems: the OS drops the lock when its holder dies,
///   so a crash never leaves it stuck.
/// - On file systems where `flock` does not work (some NFS and FUSE mounts), use a marker
///   file protocol instead: [`SoftFileLock`](crate::SoftFileLock). A `FileLock` switches to
///   it by itself where `flock` reports it is unsupported
///   ([`FileLockBuilder::fallback_to_soft`]).
/// - **Don't lock the file you write to.** Lock a separate file next to it
///   (`data.json.lock` for `data.json`): on Windows a locked file cannot be written through
///   another handle, and replacing the data file (write-then-rename) would swap the lock
///   out from under its holders.
///
/// # Owners and reentrancy
///
/// A hold belongs to its owner: the current Tokio task, or the current thread outside any
/// task (including the future driven by `block_on`, so `#[tokio::main]` bodies). The same
/// owner acquiring again counts up without touching the file; the OS lock is released when
/// its last guard goes. Another owner, even on the same handle, waits like another process
/// would: two tasks sharing one `FileLock` exclude each other. Futures joined inside one
/// task share its owner. [`Reentrancy::Handle`](crate::Reentrancy::Handle) makes holds belong to the handle instead.
///
/// An owner that holds the file through one handle and waits without a timeout for it
/// through another gets [`Error::WouldDeadlock`] at once instead of hanging.
///
/// Clones share everything: they are the same handle.
///
/// # Shared locks
///
/// [`acquire_shared`](Self::acquire_shared) and its variants take a shared (read) lock: any
/// number of shared holders coexist, across processes, threads and tasks, and an exclusive
/// holder excludes them all, as they exclude it. Re-entry by the owner that holds the lock:
///
/// | the owner holds | and asks for | result |
/// |---|---|---|
/// | shared | shared | re-enters (counts up); the guard says [`LockMode::Shared`] |
/// | exclusive | exclusive or shared | re-enters (counts up); the guard says [`LockMode::Exclusive`], and the lock stays exclusive until the owner's last guard goes |
/// | shared | exclusive | [`Error::UpgradeNotSupported`] at once, whatever the timeout; the shared hold is unchanged. Release it, then acquire exclusively |
///
/// A shared lock is never upgraded in place: the owner would wait for its own shared lock,
/// and two owners upgrading at once would wait for each other. Through two handles of one
/// file, an owner that waits without a timeout in a mode its own hold conflicts with gets
/// [`Error::WouldDeadlock`].
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tokio_filelock::FileLock;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tokio_filelock::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// let lock = FileLock::new(dir.path().join("high_ground.txt.lock"));
/// let guard = lock.acquire().await?; // waits as long as it takes
/// // ... use the shared resource ...
/// drop(guard);
///
/// let guard = lock.acquire_timeout(Duration::from_secs(1)).await?;
/// guard.release()?; // like drop, but reports an error
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct FileLock {
    state: Arc<State>,
    config: Config,
}

impl FileLock {
    /// A lock on `path` with the default settings: exclusive, waits forever, polls at most
    /// every 50 ms. Touches no file. A relative `path` is made absolute now, against the
    /// current working directory (see [`path`](Self::path)).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileLock::builder(path).build()
    }

    /// A builder for a lock with other settings.
    pub fn builder(path: impl Into<PathBuf>) -> FileLockBuilder {
        FileLockBuilder::new(path.into())
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn from_parts(state: Arc<State>, config: Config) -> Self {
        FileLock { state, config }
    }

    /// The lock file's path: the one given, made absolute against the working directory
    /// when the handle was made (lexically: symlinks are not resolved), so that a later
    /// change of directory does not move the lock.
    pub fn path(&self) -> &Path {
        self.state.path()
    }

    /// `true` when the current owner (task or thread; the handle with
    /// [`Reentrancy::Handle`](crate::Reentrancy::Handle)) holds this lock.
    pub fn is_locked(&self) -> bool {
        self.lock_counter() > 0
    }

    /// How many holds the current owner (task or thread; the handle with
    /// [`Reentrancy::Handle`](crate::Reentrancy::Handle)) has on this lock: 0 when it holds none.
    pub fn lock_counter(&self) -> usize {
        self.state
            .count(Key::of(self.config.reentrancy, Owner::current()))
    }

    /// Acquires the exclusive lock, waiting as configured (default: forever).
    ///
    /// Every attempt runs on Tokio's blocking pool; the waits between attempts are Tokio
    /// sleeps. Requires a Tokio runtime with time enabled.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when the wait runs out, [`Error::WouldDeadlock`] when this owner
    /// holds the file through another handle and would wait forever,
    /// [`Error::UpgradeNotSupported`] at once when this owner holds this lock shared (an
    /// exclusive acquire only), and the permanent errors of [`Error`] at once.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe. Dropping the future at any point (`select!`, `timeout`, `abort`,
    /// runtime shutdown) leaves no lock held, no count changed and no lock file open: an
    /// attempt still running on the blocking pool releases whatever it wins when it ends.
    /// The waiter's place in this process's queue goes with it (the next waiter takes its
    /// turn), and so does its file watch: its inotify instance returns to a small pool that
    /// is closed, on the blocking pool, when the process's last waiter leaves.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tokio_filelock::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = tokio_filelock::FileLock::new(dir.path().join("job.lock"));
    /// let (shutdown_tx, shutdown) = tokio::sync::oneshot::channel::<()>();
    /// # drop(shutdown_tx);
    /// tokio::select! {
    ///     guard = lock.acquire() => { let _guard = guard?; /* run the job */ }
    ///     _ = shutdown => { /* gave up waiting; nothing is held */ }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn acquire(
        &self,
    ) -> impl Future<Output = Result<LockGuard, Error>> + Send + 'static + use<> {
        self.acquire_async(LockMode::Exclusive, self.config.wait())
    }

    /// Acquires the exclusive lock, waiting at most `timeout` (`Duration::ZERO`: one
    /// attempt). A handle built with `blocking(false)` still makes one attempt only.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`acquire`](Self::acquire).
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = Result<LockGuard, Error>> + Send + 'static + use<> {
        self.acquire_async(LockMode::Exclusive, self.config.wait_for(timeout))
    }

    /// Makes exactly one attempt at the exclusive lock: `Ok(None)` if it is held elsewhere.
    ///
    /// # Errors
    ///
    /// [`Error::UpgradeNotSupported`] when this owner holds this lock shared, and the
    /// permanent errors of [`Error`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`acquire`](Self::acquire).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tokio_filelock::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("once.lock");
    /// let lock = tokio_filelock::FileLock::new(&path);
    /// let other = tokio_filelock::FileLock::new(&path);
    /// let guard = lock.try_acquire().await?.expect("nobody holds it yet");
    /// assert!(other.try_acquire().await?.is_none());
    /// # drop(guard);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_acquire(
        &self,
    ) -> impl Future<Output = Result<Option<LockGuard>, Error>> + Send + 'static + use<> {
        let acquire = self.acquire_async(LockMode::Exclusive, Request::TRY);
        async move { none_if_held(acquire.await) }
    }

    /// Acquires a shared (read) lock, waiting as configured. Any number of shared holders
    /// coexist, across processes, threads and tasks; an exclusive holder excludes them all.
    /// An owner holding the lock shared re-enters; an owner holding it exclusively re-enters
    /// too, and its guard says [`LockMode::Exclusive`]; an owner holding it shared that asks
    /// for exclusive gets [`Error::UpgradeNotSupported`] (see
    /// [Shared locks](Self#shared-locks)).
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire); [`Error::Unsupported`] at once for a soft lock
    /// ([`SoftFileLock`](crate::SoftFileLock), or a fallback to it), which is exclusive only.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`acquire`](Self::acquire).
    pub fn acquire_shared(
        &self,
    ) -> impl Future<Output = Result<LockGuard, Error>> + Send + 'static + use<> {
        self.acquire_async(LockMode::Shared, self.config.wait())
    }

    /// Acquires a shared lock, waiting at most `timeout`. Re-entry as
    /// [`acquire_shared`](Self::acquire_shared).
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`acquire`](Self::acquire).
    pub fn acquire_shared_timeout(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = Result<LockGuard, Error>> + Send + 'static + use<> {
        self.acquire_async(LockMode::Shared, self.config.wait_for(timeout))
    }

    /// Makes exactly one attempt at a shared lock: `Ok(None)` if it is held exclusively
    /// elsewhere. An owner that holds the lock re-enters without an attempt, as with
    /// [`acquire_shared`](Self::acquire_shared).
    ///
    /// # Errors
    ///
    /// The permanent errors of [`Error`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`acquire`](Self::acquire).
    pub fn try_acquire_shared(
        &self,
    ) -> impl Future<Output = Result<Option<LockGuard>, Error>> + Send + 'static + use<> {
        let acquire = self.acquire_async(LockMode::Shared, Request::TRY);
        async move { none_if_held(acquire.await) }
    }

    /// Runs `future` while holding the exclusive lock (acquired as by
    /// [`acquire`](Self::acquire)), then releases it: the scoped form of a guard, for
    /// what Python does with a decorator.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire); `future` does not run then.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future releases the lock, whether `future` had started or not.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tokio_filelock::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = tokio_filelock::FileLock::new(dir.path().join("report.lock"));
    /// let answer = lock.with_lock(async { 6 * 7 }).await?;
    /// assert_eq!(answer, 42);
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_lock<F: Future>(
        &self,
        future: F,
    ) -> impl Future<Output = Result<F::Output, Error>> + use<F> {
        let acquire = self.acquire();
        async move {
            let _guard = acquire.await?;
            Ok(future.await)
        }
    }

    /// Sync facade of [`acquire`](Self::acquire): the same attempts and schedule on the
    /// calling thread, sleeping between attempts. Needs no runtime; inside one it blocks
    /// the thread, so in async code use [`acquire`](Self::acquire).
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// ```
    /// # fn main() -> Result<(), tokio_filelock::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = tokio_filelock::FileLock::new(dir.path().join("sync.lock"));
    /// let guard = lock.blocking_acquire()?;
    /// let again = lock.blocking_acquire()?; // same thread: re-enters
    /// assert_eq!(lock.lock_counter(), 2);
    /// # drop((guard, again));
    /// # Ok(())
    /// # }
    /// ```
    pub fn blocking_acquire(&self) -> Result<LockGuard, Error> {
        self.acquire_blocking(LockMode::Exclusive, self.config.wait())
    }

    /// Sync facade of [`acquire_timeout`](Self::acquire_timeout).
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    pub fn blocking_acquire_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
        self.acquire_blocking(LockMode::Exclusive, self.config.wait_for(timeout))
    }

    /// Sync facade of [`try_acquire`](Self::try_acquire).
    ///
    /// # Errors
    ///
    /// The permanent errors of [`Error`].
    pub fn blocking_try_acquire(&self) -> Result<Option<LockGuard>, Error> {
        none_if_held(self.acquire_blocking(LockMode::Exclusive, Request::TRY))
    }

    /// Sync facade of [`acquire_shared`](Self::acquire_shared), with the same re-entry
    /// rules: the owner is the calling thread (or the task, if called inside one).
    ///
    /// ```
    /// # fn main() -> Result<(), tokio_filelock::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use tokio_filelock::{Error, FileLock, LockMode};
    /// let path = dir.path().join("data.lock");
    /// let lock = FileLock::new(&path);
    /// let reader = lock.blocking_acquire_shared()?;
    /// let again = lock.blocking_acquire_shared()?; // same owner: re-enters
    /// assert_eq!((again.mode(), lock.lock_counter()), (LockMode::Shared, 2));
    /// // No upgrade in place: release the shared guards first.
    /// let err = lock.blocking_acquire().unwrap_err();
    /// assert!(matches!(err, Error::UpgradeNotSupported { .. }));
    /// // Another handle (another process alike) shares it, but cannot take it exclusively.
    /// let other = FileLock::new(&path);
    /// assert!(other.blocking_try_acquire()?.is_none());
    /// assert!(other.blocking_try_acquire_shared()?.is_some());
    /// # drop((reader, again));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    pub fn blocking_acquire_shared(&self) -> Result<LockGuard, Error> {
        self.acquire_blocking(LockMode::Shared, self.config.wait())
    }

    /// Sync facade of [`acquire_shared_timeout`](Self::acquire_shared_timeout).
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    pub fn blocking_acquire_shared_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
        self.acquire_blocking(LockMode::Shared, self.config.wait_for(timeout))
    }

    /// Sync facade of [`try_acquire_shared`](Self::try_acquire_shared).
    ///
    /// # Errors
    ///
    /// The permanent errors of [`Error`].
    pub fn blocking_try_acquire_shared(&self) -> Result<Option<LockGuard>, Error> {
        none_if_held(self.acquire_blocking(LockMode::Shared, Request::TRY))
    }

    /// Sync facade of [`with_lock`](Self::with_lock): runs `f` while holding the exclusive
    /// lock.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire); `f` does not run then.
    pub fn blocking_with_lock<R>(&self, f: impl FnOnce() -> R) -> Result<R, Error> {
        let _guard = self.blocking_acquire()?;
        Ok(f())
    }

    fn acquire_async<R: Into<Request>>(
        &self,
        mode: LockMode,
        request: R,
    ) -> impl Future<Output = Result<LockGuard, Error>> + Send + 'static + use<R> {
        let request = request.into();
        let state = self.state.clone();
        let config = self.config.clone();
        // The owner is read when the future is first polled: the task that polls it owns it.
        async move {
            let (acquisition, attempt) = Acquisition::new(&state, &config, mode, request)?;
            driver::asynchronous::acquire(acquisition, attempt).await
        }
    }

    fn acquire_blocking(
        &self,
        mode: LockMode,
        request: impl Into<Request>,
    ) -> Result<LockGuard, Error> {
        let (acquisition, attempt) =
            Acquisition::new(&self.state, &self.config, mode, request.into())?;
        driver::synchronous::acquire(acquisition, attempt)
    }
}

/// `try_*`: a lock held elsewhere is `None`, not an error.
fn none_if_held(result: Result<LockGuard, Error>) -> Result<Option<LockGuard>, Error> {
    match result {
        Ok(guard) => Ok(Some(guard)),
        Err(Error::Timeout { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

impl fmt::Debug for FileLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileLock")
            .field("path", &self.state.path())
            .field("id", &self.state.id())
            .field("timeout", &self.config.timeout)
            .field("blocking", &self.config.blocking)
            .field("poll_interval", &self.config.poll_interval)
            .field("reentrancy", &self.config.reentrancy)
            .finish_non_exhaustive()
    }
}

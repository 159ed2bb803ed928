//! The public handle: `FileLock`.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::driver::Config;
use crate::driver::{self, Acquisition, Request, asynchronous, holder_lookup};
use crate::state::State;
use crate::state::owner::Owner;
use crate::{Error, FileLockBuilder, Holder, LockGuard, LockMode};
use tracing::Instrument;

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
/// # Reentrancy
///
/// By default every acquire is a hold of its own, as with `tokio::sync::Mutex` and
/// `std::sync::Mutex`: a second acquire waits for the first hold to go, whoever makes it
/// and through whichever handle, so two tasks sharing one `FileLock` exclude each other,
/// and a guard may be moved to any task or thread without letting anyone in behind its
/// back. Python filelock's recursive locks are one builder call away:
/// [`Reentrancy::Owner`](crate::Reentrancy::Owner) (the same task, or thread outside a
/// task, acquiring again counts up without touching the file; mind its caveat about moved
/// guards) or [`Reentrancy::Handle`](crate::Reentrancy::Handle) (everyone using the handle
/// shares the hold).
///
/// The task or thread that took a hold and then waits for the file without a timeout,
/// through this handle or another, gets [`Error::WouldDeadlock`] at once instead of hanging.
/// A guard moved away still counts as its acquirer's (Rust cannot see a move): to wait for
/// it, acquire with a timeout.
///
/// Clones share everything: they are the same handle.
///
/// # Shared locks
///
/// [`acquire_shared`](Self::acquire_shared) and its variants take a shared (read) lock: any
/// number of shared holders coexist, across processes, threads and tasks, and an exclusive
/// holder excludes them all, as they exclude it. By default a shared acquire is a shared
/// hold of its own, like any other. Re-entry by the owner that holds the lock, with
/// [`Reentrancy::Owner`](crate::Reentrancy::Owner) or
/// [`Reentrancy::Handle`](crate::Reentrancy::Handle):
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

    #[cfg(all(
        test,
        any(target_os = "linux", target_os = "macos", target_os = "freebsd")
    ))]
    pub(crate) fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// The lock file's path: the one given, made absolute against the working directory
    /// when the handle was made (lexically: symlinks are not resolved), so that a later
    /// change of directory does not move the lock.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.state.path()
    }

    /// `true` when the current task or thread holds this lock through this handle (holds
    /// it acquired, wherever their guards went; with
    /// [`Reentrancy::Handle`](crate::Reentrancy::Handle), when anyone holds it through the
    /// handle).
    #[must_use]
    pub fn is_locked(&self) -> bool {
        self.lock_counter() > 0
    }

    /// How many holds the current task or thread has on this lock through this handle: 0
    /// when it holds none. By default, the holds it acquired (each acquire is one, wherever
    /// its guard went); with [`Reentrancy::Owner`](crate::Reentrancy::Owner), its re-entry
    /// count; with [`Reentrancy::Handle`](crate::Reentrancy::Handle), the handle's.
    #[must_use]
    pub fn lock_counter(&self) -> usize {
        self.state.count(self.config.reentrancy, Owner::current())
    }

    /// Acquires the exclusive lock, waiting as configured (default: forever).
    ///
    /// Every attempt runs on Tokio's blocking pool; the waits between attempts are timed by
    /// the crate's own timer thread, so any Tokio runtime will do, with or without the time
    /// driver (`enable_time`). Under Tokio's paused time (`test-util`) they are Tokio sleeps,
    /// which the paused clock advances.
    ///
    /// # Panics
    ///
    /// Never on a runtime without the time driver (a contended acquire waits on the crate's
    /// timer there, the same on every call). Only where Tokio's clock is paused on a runtime
    /// without the time driver (`tokio::time::pause` on such a runtime) would Tokio's timer
    /// panic, as any Tokio sleep there does.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] with [`Op::Spawn`](crate::Op::Spawn) when the crate's timer thread
    /// cannot be started (the process's thread limit), or outside a Tokio runtime.
    /// [`Error::Timeout`] when the wait runs out, [`Error::WouldDeadlock`] when this task or
    /// thread holds the file (through this handle or another) and would wait forever,
    /// [`Error::UpgradeNotSupported`] at once when this owner holds this lock shared (an
    /// exclusive acquire only), and the permanent errors of [`Error`] at once.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe. Dropping the future at any point (`select!`, `timeout`, `abort`,
    /// runtime shutdown) leaves no lock held, no count changed and no lock file open by
    /// the acquire (the handle may keep one, unlocked, between holds: see the crate docs):
    /// an attempt still running on the blocking pool releases whatever it wins when it
    /// ends. The waiter's place in this process's queue and in the cross-process line goes
    /// with it (the next waiter takes its turn), and so does its subscription to the file
    /// watch (the watch itself may stay, idle, until the file's next event or the next
    /// waiter on that file).
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
    /// As [`acquire`](Self::acquire); `future` does not run then. When `future` completes
    /// but releasing the lock fails (a soft lock's marker removed or replaced by someone
    /// else meanwhile, an unlock error), that error is returned and `future`'s output is
    /// dropped, as Python filelock raises it: the hold may not have excluded everyone.
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
            let guard = acquire.await?;
            let output = future.await;
            guard.release()?;
            Ok(output)
        }
    }

    /// Sync facade of [`acquire`](Self::acquire): the same attempts and schedule on the
    /// calling thread, sleeping between attempts. Needs no runtime.
    ///
    /// Blocks the calling thread while it waits: not for a Tokio worker or a `block_on`
    /// body (so not in `#[tokio::main]` code). In async code use the async form, or call
    /// this in `tokio::task::spawn_blocking`.
    ///
    /// # Panics
    ///
    /// In debug builds, when it has to wait on a thread that drives a Tokio runtime (as
    /// tokio's `Mutex::blocking_lock`): the wait would stall every task of that thread. An
    /// acquire that wins, re-enters or fails at once does not wait and does not panic.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// ```
    /// # fn main() -> Result<(), tokio_filelock::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// use tokio_filelock::{FileLock, Reentrancy};
    /// let lock = FileLock::new(dir.path().join("sync.lock"));
    /// let guard = lock.blocking_acquire()?;
    /// // Every acquire is a hold of its own: a second one waits for the first.
    /// assert!(lock.blocking_acquire_timeout(Duration::from_millis(10)).is_err());
    /// drop(guard);
    ///
    /// // Python's recursive locks: the same thread re-enters.
    /// let lock = FileLock::builder(dir.path().join("recursive.lock"))
    ///     .reentrancy(Reentrancy::Owner)
    ///     .build();
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
    /// Blocks the calling thread while it waits: not for a Tokio worker or a `block_on`
    /// body (so not in `#[tokio::main]` code). In async code use the async form, or call
    /// this in `tokio::task::spawn_blocking`.
    ///
    /// # Panics
    ///
    /// In debug builds, when it has to wait on a thread that drives a Tokio runtime (as
    /// tokio's `Mutex::blocking_lock`): the wait would stall every task of that thread. An
    /// acquire that wins, re-enters or fails at once does not wait and does not panic.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    pub fn blocking_acquire_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
        self.acquire_blocking(LockMode::Exclusive, self.config.wait_for(timeout))
    }

    /// Sync facade of [`try_acquire`](Self::try_acquire).
    ///
    /// One non-blocking attempt that never waits for another holder, so it may be called
    /// anywhere, a runtime's thread included (though the open itself may be slow on a
    /// network file system).
    ///
    /// # Errors
    ///
    /// The permanent errors of [`Error`].
    pub fn blocking_try_acquire(&self) -> Result<Option<LockGuard>, Error> {
        none_if_held(self.acquire_blocking(LockMode::Exclusive, Request::TRY))
    }

    /// Sync facade of [`acquire_shared`](Self::acquire_shared), with the same re-entry
    /// rules: the owner is the calling thread (or the task, if called inside one). With
    /// [`Reentrancy::Owner`](crate::Reentrancy::Owner):
    ///
    /// ```
    /// # fn main() -> Result<(), tokio_filelock::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use tokio_filelock::{Error, FileLock, LockMode, Reentrancy};
    /// let path = dir.path().join("data.lock");
    /// let lock = FileLock::builder(&path).reentrancy(Reentrancy::Owner).build();
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
    /// Blocks the calling thread while it waits: not for a Tokio worker or a `block_on`
    /// body (so not in `#[tokio::main]` code). In async code use the async form, or call
    /// this in `tokio::task::spawn_blocking`.
    ///
    /// # Panics
    ///
    /// In debug builds, when it has to wait on a thread that drives a Tokio runtime (as
    /// tokio's `Mutex::blocking_lock`): the wait would stall every task of that thread. An
    /// acquire that wins, re-enters or fails at once does not wait and does not panic.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    pub fn blocking_acquire_shared(&self) -> Result<LockGuard, Error> {
        self.acquire_blocking(LockMode::Shared, self.config.wait())
    }

    /// Sync facade of [`acquire_shared_timeout`](Self::acquire_shared_timeout).
    ///
    /// Blocks the calling thread while it waits: not for a Tokio worker or a `block_on`
    /// body (so not in `#[tokio::main]` code). In async code use the async form, or call
    /// this in `tokio::task::spawn_blocking`.
    ///
    /// # Panics
    ///
    /// In debug builds, when it has to wait on a thread that drives a Tokio runtime (as
    /// tokio's `Mutex::blocking_lock`): the wait would stall every task of that thread. An
    /// acquire that wins, re-enters or fails at once does not wait and does not panic.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    pub fn blocking_acquire_shared_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
        self.acquire_blocking(LockMode::Shared, self.config.wait_for(timeout))
    }

    /// Sync facade of [`try_acquire_shared`](Self::try_acquire_shared).
    ///
    /// One non-blocking attempt that never waits for another holder, so it may be called
    /// anywhere, a runtime's thread included (though the open itself may be slow on a
    /// network file system).
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
    /// Blocks the calling thread while it waits: not for a Tokio worker or a `block_on`
    /// body (so not in `#[tokio::main]` code). In async code use the async form, or call
    /// this in `tokio::task::spawn_blocking`.
    ///
    /// # Panics
    ///
    /// In debug builds, when it has to wait on a thread that drives a Tokio runtime (as
    /// tokio's `Mutex::blocking_lock`): the wait would stall every task of that thread. An
    /// acquire that wins, re-enters or fails at once does not wait and does not panic.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire); `f` does not run then. When `f` returns but releasing
    /// the lock fails, that error is returned and `f`'s result is dropped, as with
    /// [`with_lock`](Self::with_lock).
    pub fn blocking_with_lock<R>(&self, f: impl FnOnce() -> R) -> Result<R, Error> {
        let guard = self.blocking_acquire()?;
        let output = f();
        guard.release()?;
        Ok(output)
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
            // Entered at every poll: every step of the acquire runs in its span.
            let span = acquisition.span().clone();
            driver::asynchronous::acquire(acquisition, attempt)
                .instrument(span)
                .await
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

/// Asking who holds a lock file, without taking it.
impl FileLock {
    /// Who holds this lock now (any process, this one included), without taking the lock
    /// and without creating the file: `Ok(None)` when nobody holds it or the file does not
    /// exist. A snapshot: the answer may be stale as soon as it returns.
    ///
    /// The OS lock: reads `/proc/locks`, on Linux only; when several processes hold it
    /// shared, one of them is named. A [`SoftFileLock`](crate::SoftFileLock): reads the
    /// marker (pid and host), on Unix and Windows.
    ///
    /// # Errors
    ///
    /// [`Error::NotAFile`] when something other than a regular file is at the path,
    /// [`Error::Io`] when it cannot be inspected, or, for the OS lock on platforms other
    /// than Linux, with [`std::io::ErrorKind::Unsupported`].
    ///
    /// ```
    /// # #[cfg(target_os = "linux")]
    /// # fn main() -> Result<(), tokio_filelock::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = tokio_filelock::FileLock::new(dir.path().join("who.lock"));
    /// assert!(lock.blocking_holder()?.is_none());
    /// let _guard = lock.blocking_acquire()?;
    /// let holder = lock.blocking_holder()?.expect("this process holds it");
    /// assert_eq!(holder.pid, std::process::id());
    /// # Ok(())
    /// # }
    /// # #[cfg(not(target_os = "linux"))]
    /// # fn main() {}
    /// ```
    pub fn blocking_holder(&self) -> Result<Option<Holder>, Error> {
        holder_lookup::path_holder(self.path(), self.config().protocol)
    }

    /// Async form of [`blocking_holder`](Self::blocking_holder): the lookup runs on Tokio's
    /// blocking pool.
    ///
    /// # Errors
    ///
    /// As [`blocking_holder`](Self::blocking_holder).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads; a dropped lookup finishes on the blocking pool unseen.
    pub async fn holder(&self) -> Result<Option<Holder>, Error> {
        asynchronous::require_runtime(self.path())?;
        let path = self.path().to_path_buf();
        let protocol = self.config().protocol;
        tokio::task::spawn_blocking(move || holder_lookup::path_holder(&path, protocol))
            .await
            .map_err(|join| asynchronous::joined(self.path(), join))?
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

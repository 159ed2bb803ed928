//! Building a handle with non-default settings.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::attempt::Protocol;
use crate::driver::{Config, WaitHook};
use crate::state::{State, singletons};
use crate::{FileLock, Reentrancy, WaitEvent};

/// Settings for a [`FileLock`]; from [`FileLock::builder`].
///
/// ```
/// use std::time::Duration;
/// use tokio_filelock::FileLock;
/// # let dir = tempfile::tempdir().unwrap();
/// let lock = FileLock::builder(dir.path().join("cache.lock"))
///     .timeout(Duration::from_secs(10)) // default: wait forever
///     .poll_interval(Duration::from_millis(20)) // default: 50 ms
///     .mode(0o644) // default: 0o666 reduced by the umask
///     .build();
/// # drop(lock);
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct FileLockBuilder {
    path: PathBuf,
    config: Config,
    singleton: bool,
}

/// `path` made absolute against the working directory of the moment, once, when the handle
/// is made: a later `chdir` (by this thread or any other) cannot move the lock, nor make a
/// soft lock's release look for its marker elsewhere. Lexical, as `std::path::absolute`: no
/// symlink is resolved and nothing is read. A path that cannot be made absolute (empty, or
/// the working directory is gone) is kept as given; acquires report what is wrong with it.
fn absolute(path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        return path;
    }
    std::path::absolute(&path).unwrap_or(path)
}

impl FileLockBuilder {
    pub(crate) fn new(path: PathBuf) -> Self {
        FileLockBuilder {
            path: absolute(path),
            config: Config::default(),
            singleton: false,
        }
    }

    /// How long [`acquire`](FileLock::acquire) and
    /// [`blocking_acquire`](FileLock::blocking_acquire) wait. Default: forever.
    /// `Duration::ZERO` makes exactly one attempt. A wait ends with one final attempt at
    /// the deadline, so it overshoots by at most one attempt's duration.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = Some(timeout);
        self
    }

    /// `false`: every acquire makes exactly one attempt and fails with
    /// [`Error::Timeout`](crate::Error::Timeout) if the lock is held, whatever timeout is
    /// given (this wins over [`timeout`](Self::timeout) and `acquire_timeout`).
    /// Default: `true`.
    pub fn blocking(mut self, blocking: bool) -> Self {
        self.config.blocking = blocking;
        self
    }

    /// The longest sleep between two attempts (the cap of the backoff, which starts at
    /// 1 ms and doubles). Default: 50 ms, as Python filelock. Values under 1 ms count as
    /// 1 ms: nothing spins. Async waiters are woken early by releases (see the crate's
    /// "Wake-ups"), so the interval mostly bounds how late a release that sends no wake-up
    /// is noticed, and what a long wait costs (about 20 attempts a second at 50 ms).
    pub fn poll_interval(mut self, poll_interval: Duration) -> Self {
        self.config.poll_interval = poll_interval;
        self
    }

    /// Permission bits of the lock file when this handle creates it: set exactly (after
    /// the lock is won, so the umask does not reduce them). A file that exists already is
    /// left as it is. Default: `0o666` reduced by the umask, no change afterwards.
    /// Ignored on Windows.
    pub fn mode(mut self, mode: u32) -> Self {
        self.config.permissions = Some(mode & 0o7777);
        self
    }

    /// Who re-enters a held lock. Default: [`Reentrancy::Off`], every acquire a hold of its own.
    pub fn reentrancy(mut self, reentrancy: Reentrancy) -> Self {
        self.config.reentrancy = reentrancy;
        self
    }

    /// Windows: keep the lock file when releasing (by default it is deleted, best
    /// effort). On Unix the file is never deleted anyway (deleting a lock file lets two
    /// holders exist at once); there `true` refuses the
    /// [fallback to the soft lock](Self::fallback_to_soft), which deletes its marker on
    /// release: an unsupported `flock` gives [`Error::Unsupported`](crate::Error::Unsupported),
    /// as in Python filelock.
    pub fn preserve_lock_file(mut self, preserve: bool) -> Self {
        self.config.preserve_lock_file = preserve;
        self
    }

    /// `true`: every singleton handle of this path in this process shares one lock state
    /// (holders and counts), so with [`Reentrancy::Owner`] or [`Reentrancy::Handle`]
    /// acquiring through one and re-acquiring through another re-enters instead of
    /// deadlocking (Python's `is_singleton`). Each handle keeps its own
    /// timeout and other settings. Paths are compared by their parent directory resolved
    /// once, here (symlinks, `.` and `..`), plus the file name, as Python does: `link/a`
    /// through a symlinked directory and `sub/../a` are one lock. Each lock kind has its
    /// own singletons: a [`FileLock`] and a [`SoftFileLock`](crate::SoftFileLock) of one
    /// path are different locks. Default: `false` (cloning a [`FileLock`] shares state too).
    pub fn singleton(mut self, singleton: bool) -> Self {
        self.singleton = singleton;
        self
    }

    /// Calls `hook` once for every acquire that is going to wait (not for one-attempt
    /// acquires): one whose first attempt finds the lock held, and one that lines up behind
    /// other waiters of this process without an attempt of its own. It gets the lock path
    /// and, when it can be found, who holds it: the place for cargo's "Blocking: waiting for file lock". The
    /// holder is looked up only when a hook is set.
    ///
    /// The hook runs where attempts run (on Tokio's blocking pool for async acquires, on the
    /// calling thread for `blocking_*`), so it may print or log; the wait goes on after it
    /// returns. It may run after an async acquire was cancelled during its first wait.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = tokio_filelock::FileLock::builder(dir.path().join("build.lock"))
    ///     .on_wait(|event| {
    ///         let holder = event.holder().map(|h| format!(" (held by {h})"));
    ///         eprintln!(
    ///             "Blocking: waiting for file lock on {}{}",
    ///             event.path().display(),
    ///             holder.unwrap_or_default()
    ///         );
    ///     })
    ///     .build();
    /// # drop(lock);
    /// ```
    pub fn on_wait(mut self, hook: impl Fn(&WaitEvent<'_>) + Send + Sync + 'static) -> Self {
        self.config.on_wait = Some(WaitHook::new(hook));
        self
    }

    /// Lets `token` stop this handle's waiting acquires, async and sync alike, from any
    /// thread or task: a cancelled wait ends at once with
    /// [`Error::Cancelled`](crate::Error::Cancelled) (Python filelock's `cancel_check`).
    /// See [`CancelToken`](crate::CancelToken).
    pub fn cancel_token(mut self, token: &crate::CancelToken) -> Self {
        self.config.cancel = Some(token.inner().clone());
        self
    }

    /// Where `flock` reports that the file system does not support it (`ENOSYS`,
    /// `EOPNOTSUPP`: some NFS, FUSE and Lustre mounts), take the lock with the soft (marker
    /// file) protocol of [`SoftFileLock`](crate::SoftFileLock) instead, as Python filelock's
    /// option of the same name does. Default: `true`. With `false` such a file system gives
    /// [`Error::Unsupported`](crate::Error::Unsupported). After one fallback, later
    /// acquires of the handle (and its clones) go straight to the soft protocol, without
    /// trying `flock` again. [`preserve_lock_file`](Self::preserve_lock_file) refuses the
    /// fallback.
    ///
    /// The soft protocol is exclusive only: a shared acquire that meets an unsupported
    /// `flock` gives [`Error::Unsupported`](crate::Error::Unsupported) either way.
    pub fn fallback_to_soft(mut self, fallback: bool) -> Self {
        if let Protocol::Os { fallback_to_soft } = &mut self.config.protocol {
            *fallback_to_soft = fallback;
        }
        self
    }

    /// Whether this crate's waiters take turns across processes. Default: `true` (Linux):
    /// a waiter lines up in `<lock file>.queue` beside the lock file (created on first
    /// contention, never deleted), and a process that releases and re-acquires at once lets
    /// those already waiting go first (those that have waited 5 ms: before that it may take
    /// a free lock, as with raw `flock`, which keeps short holds fast); a shared acquire
    /// lets an earlier exclusive one go first. Exclusion never depends on it (the OS lock
    /// decides; Python filelock and `flock(1)` bypass the line), and a waiter that does not
    /// take a free lock within a short grace period is passed. `false`: every acquire
    /// tries the lock whenever it can (raw `flock` behaviour: a releasing process may take
    /// it straight back). `BENCHMARKS.md` measures both. No effect on other platforms yet.
    pub fn fair(mut self, fair: bool) -> Self {
        self.config.fair = fair;
        self
    }

    /// Calls `hook` right after each hold is won, before the acquire returns its guard:
    /// once per hold, never on re-entry (Python filelock's `on_acquired`). It gets the
    /// lock file, open and locked ([`Acquired::file`](crate::Acquired::file)), for
    /// example to write who holds it or to clear what an earlier holder left.
    ///
    /// If it returns an error, the hold is released at once and the acquire fails with
    /// [`Error::OnAcquired`](crate::Error::OnAcquired), the hook's error as its source;
    /// nothing is left held. It runs where attempts run (on Tokio's blocking pool for
    /// async acquires, on the calling thread for `blocking_*`), so it may do blocking I/O;
    /// an async acquire cancelled while it runs releases the hold after it returns. A panic
    /// in it releases the hold and goes on as a panic of the acquire.
    ///
    /// With a hook set, a file system without `flock` gives
    /// [`Error::Unsupported`](crate::Error::Unsupported) instead of the
    /// [fallback to the soft lock](Self::fallback_to_soft), as in Python filelock: the
    /// hook would have no locked file to be given.
    pub fn on_acquired(
        mut self,
        hook: impl Fn(&crate::Acquired<'_>) -> Result<(), crate::HookError> + Send + Sync + 'static,
    ) -> Self {
        self.config.on_acquired = Some(crate::acquired::AcquiredHook::new(hook));
        self
    }

    /// Soft protocol: a marker older than `lifetime` by its mtime is expired and broken
    /// (the soft lock's builder sets it).
    pub(crate) fn lifetime(mut self, lifetime: Duration) -> Self {
        self.config.lifetime = Some(lifetime);
        self
    }

    /// Makes the handle speak `protocol` (the soft lock's builder sets it).
    pub(crate) fn protocol(mut self, protocol: Protocol) -> Self {
        self.config.protocol = protocol;
        self
    }

    /// The handle. Touches no file: the lock file is opened by the first attempt. (A
    /// singleton resolves its parent directory here, reading the file system.)
    pub fn build(self) -> FileLock {
        let state = if self.singleton {
            singletons::singleton(&self.path, self.config.protocol)
        } else {
            Arc::new(State::new(Arc::from(self.path)))
        };
        FileLock::from_parts(state, self.config)
    }
}

//! Building a handle with non-default settings: the builder, [`Reentrancy`], and the
//! settings a handle keeps (`Config`, `WaitHook`).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::attempt::Protocol;
use crate::driver::schedule::Wait;
use crate::state::{State, singletons};
use crate::{FileLock, WaitEvent};

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

    /// Windows only: keep the lock file when releasing (by default it is deleted, best
    /// effort). On Unix the file is never deleted: deleting a lock file lets two holders
    /// exist at once.
    pub fn preserve_lock_file(mut self, preserve: bool) -> Self {
        self.config.preserve_lock_file = preserve;
        self
    }

    /// `true`: every singleton handle of this path in this process shares one lock state
    /// (holders and counts), so with [`Reentrancy::Owner`] or [`Reentrancy::Handle`]
    /// acquiring through one and re-acquiring through another re-enters instead of
    /// deadlocking (Python's `is_singleton`). Each handle keeps its own
    /// timeout and other settings. Paths are compared after making them absolute, without
    /// resolving symlinks. Default: `false` (cloning a [`FileLock`] shares state too).
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

    /// Where `flock` reports that the file system does not support it (`ENOSYS`,
    /// `EOPNOTSUPP`: some NFS, FUSE and Lustre mounts), take the lock with the soft (marker
    /// file) protocol of [`SoftFileLock`](crate::SoftFileLock) instead, as Python filelock's
    /// option of the same name does. Default: `true`. With `false` such a file system gives
    /// [`Error::Unsupported`](crate::Error::Unsupported).
    ///
    /// The soft protocol is exclusive only: a shared acquire that meets an unsupported
    /// `flock` gives [`Error::Unsupported`](crate::Error::Unsupported) either way.
    pub fn fallback_to_soft(mut self, fallback: bool) -> Self {
        if let Protocol::Os { fallback_to_soft } = &mut self.config.protocol {
            *fallback_to_soft = fallback;
        }
        self
    }

    /// Makes the handle speak `protocol` (the soft lock's builder sets it).
    pub(crate) fn protocol(mut self, protocol: Protocol) -> Self {
        self.config.protocol = protocol;
        self
    }

    /// The handle. Touches no file: the lock file is opened by the first attempt.
    pub fn build(self) -> FileLock {
        let state = if self.singleton {
            singletons::singleton(&self.path)
        } else {
            Arc::new(State::new(Arc::from(self.path)))
        };
        FileLock::from_parts(state, self.config)
    }
}

/// Who may re-enter a lock it already holds, without touching the file again.
///
/// By default ([`Reentrancy::Off`]) nobody does: every acquire is a hold of its own, as
/// with `tokio::sync::Mutex` and `std::sync::Mutex`, so a guard may be moved to any task or
/// thread and nothing can get in behind its back. Python filelock's recursive locks are one
/// builder call away ([`Reentrancy::Owner`], or [`Reentrancy::Handle`] for its
/// `thread_local=False`).
///
/// ```
/// use tokio_filelock::{FileLock, Reentrancy};
/// # let dir = tempfile::tempdir().unwrap();
/// let lock = FileLock::builder(dir.path().join("a.lock"))
///     .reentrancy(Reentrancy::Handle)
///     .build();
/// let first = lock.blocking_acquire().unwrap();
/// // Another thread re-enters the same handle instead of waiting (Python's
/// // `thread_local=False`).
/// std::thread::scope(|s| {
///     s.spawn(|| assert_eq!(lock.blocking_acquire().map(|_| lock.lock_counter()).unwrap(), 2));
/// });
/// drop(first);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Reentrancy {
    /// The default. Every acquire is a hold of its own: a second acquire, by the same task
    /// or thread, through the same handle or another, waits for the first hold to go like
    /// any other process would. Moving a guard to another task or thread is always safe.
    ///
    /// An acquire that could only wait forever for a hold its own task or thread took
    /// (no timeout) fails at once with [`Error::WouldDeadlock`](crate::Error::WouldDeadlock)
    /// instead of hanging. After a guard was moved away the crate cannot tell that the hold
    /// is someone else's now: acquire with a timeout then.
    #[default]
    Off,
    /// Python filelock's recursive locks: holds belong to the current Tokio task, or to the
    /// current thread outside any task (including the future driven by `block_on`, so
    /// `#[tokio::main]` bodies). The same owner acquiring again counts up without touching
    /// the file; another owner, even on the same handle, waits like any other process.
    /// Futures joined inside one task (`join!`, `select!`) share that task, so they
    /// re-enter rather than exclude each other.
    ///
    /// **Caveat: a moved guard.** Rust cannot see a guard move. A guard moved to another
    /// task or thread still counts as its acquirer's hold, so the acquirer re-enters at
    /// once while the other task works under the guard: two of them in the critical
    /// section. With this setting, keep guards with the task or thread that acquired them.
    Owner,
    /// Holds belong to the handle (and its clones): whoever acquires through it while it is
    /// held counts up. Python filelock's `thread_local=False`.
    Handle,
}

/// Default cap of the wait between attempts (Python filelock's `poll_interval`).
pub(crate) const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) timeout: Option<Duration>,
    pub(crate) blocking: bool,
    pub(crate) poll_interval: Duration,
    pub(crate) permissions: Option<u32>,
    pub(crate) reentrancy: Reentrancy,
    pub(crate) preserve_lock_file: bool,
    pub(crate) on_wait: Option<WaitHook>,
    pub(crate) protocol: Protocol,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeout: None,
            blocking: true,
            poll_interval: DEFAULT_POLL_INTERVAL,
            permissions: None,
            reentrancy: Reentrancy::Off,
            preserve_lock_file: false,
            on_wait: None,
            protocol: Protocol::Os {
                fallback_to_soft: true,
            },
        }
    }
}

impl Config {
    /// The wait of a plain `acquire`.
    pub(crate) fn wait(&self) -> Wait {
        Wait::new(self.timeout, self.blocking)
    }

    /// The wait of an `acquire_timeout(timeout)`: `blocking(false)` still wins.
    pub(crate) fn wait_for(&self, timeout: Duration) -> Wait {
        Wait::new(Some(timeout), self.blocking)
    }
}

/// A waiting hook as the configuration keeps it.
#[derive(Clone)]
pub(crate) struct WaitHook(Arc<dyn Fn(&WaitEvent<'_>) + Send + Sync + 'static>);

impl WaitHook {
    pub(crate) fn new(hook: impl Fn(&WaitEvent<'_>) + Send + Sync + 'static) -> Self {
        WaitHook(Arc::new(hook))
    }

    pub(crate) fn call(&self, event: &WaitEvent<'_>) {
        (self.0)(event)
    }
}

impl fmt::Debug for WaitHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WaitHook(..)")
    }
}

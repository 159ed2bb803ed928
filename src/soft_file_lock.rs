//! The public soft lock: `SoftFileLock` and its builder.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::attempt::{Protocol, soft};
use crate::driver::asynchronous;
use crate::{Error, FileLock, FileLockBuilder, Reentrancy, WaitEvent};

/// A cross-process lock held with a **marker file** instead of the OS lock: the lock is
/// held while the file at the path exists. The marker records its holder,
/// `<pid>\n<host>\n<start token>\n`, exactly as Python `filelock`'s `SoftFileLock` writes
/// it, so the two exclude each other and each breaks the other's stale markers.
///
/// # When to pick it
///
/// - Pick [`FileLock`] whenever you can: the OS drops its lock when the holder dies, at
///   once and always. A [`FileLock`] already switches to this protocol by itself where
///   `flock` is unsupported (see [`FileLockBuilder::fallback_to_soft`]).
/// - Pick `SoftFileLock` for file systems where `flock` is missing or not trusted (some
///   NFS, FUSE and Lustre mounts), or to share a lock with Python's `SoftFileLock`.
///
/// # Limits
///
/// - **Exclusive only**: it has no shared acquires (through the [`Lock`](crate::Lock)
///   trait they return [`Error::Unsupported`]).
/// - **A crashed holder's marker stays** until a waiter proves it stale: same host (and PID
///   namespace), and its PID is gone or now belongs to a process that started at another
///   time (start token: boot id and start time on Linux, creation time on Windows, start
///   time on macOS). A
///   marker written on **another host
///   is never broken**; remove it by hand if its host is gone for good. A malformed marker
///   (or a symlink, FIFO, socket or device at the path) is broken once this process has
///   seen it unchanged for 2 s. An **empty marker is never broken** (as in Python
///   `filelock`): its writer may be about to write it, and nothing tells that writer from
///   one killed between creating and writing, which leaves the lock stuck until the file is
///   removed by hand. A timeout on an empty marker says so
///   ([`Error::Timeout`](crate::Error::Timeout)'s `empty_marker`).
/// - Breaking needs an atomic exchange of names (`renameat2(RENAME_EXCHANGE)` on Linux,
///   `renamex_np(RENAME_SWAP)` on macOS). Where the file system cannot (NFS, FreeBSD),
///   stale markers are not broken, as in Python `filelock`. On Windows the stale marker is
///   moved aside and ours created after, as Python `filelock` does there: a third process
///   may win the lock in between (it is still exclusive). A breaker that finds a racing
///   breaker won first puts back the live marker it exchanged aside, exchanging until its
///   own marker is aside (Python's `_exchange_until_aside`; given up after 2 s if another
///   breaker is paused or killed mid-way), so out-of-order breakers never leave a
///   non-holder's marker at the path. The temporary name, `<name>.break.<pid>.<32 hex>`,
///   is cut to fit 255 bytes when the lock file's name is long.
/// - Without a start token (platforms other than Linux, Android, macOS and Windows, or inside PID
///   or time namespaces that hide it), a recycled PID keeps a stale marker alive.
/// - Waiting is as for [`FileLock`]: async waiters of one process are woken in turn by a
///   release in that process, and on Linux, macOS and FreeBSD the first of them watches
///   the marker (inotify, kqueue) for its removal; the poll stays underneath.
/// - Unix and Windows only: elsewhere every acquire returns
///   [`Error::Unsupported`](crate::Error::Unsupported).
///
/// # API
///
/// [`FileLock`]'s exclusive side: the same acquire methods with the same timeouts,
/// reentrancy, cancellation and errors (see [`FileLock`] for each), and no shared ones
/// (a marker is exclusive only). Release
/// unlinks the marker only if it is still this lock's (same inode); a marker removed or
/// replaced while held is left alone and reported as
/// [`Error::MarkerReplaced`](crate::Error::MarkerReplaced).
///
/// ```
/// use std::time::Duration;
/// use tokio_filelock::SoftFileLock;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tokio_filelock::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("nfs-share.lock");
/// let lock = SoftFileLock::new(&path);
/// let guard = lock.acquire_timeout(Duration::from_secs(10)).await?;
/// let record = std::fs::read_to_string(&path).unwrap();
/// assert!(record.starts_with(&format!("{}\n", std::process::id())));
/// guard.release()?; // unlinks the marker
/// assert!(!path.exists());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SoftFileLock {
    inner: FileLock,
}

impl SoftFileLock {
    /// A soft lock on `path` with the default settings: waits forever, polls at most every
    /// 50 ms. Touches no file. A relative `path` is made absolute now, against the current
    /// working directory, so a later change of directory cannot make the release miss the
    /// marker.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SoftFileLock::builder(path).build()
    }

    /// A builder for a soft lock with other settings.
    pub fn builder(path: impl Into<PathBuf>) -> SoftFileLockBuilder {
        SoftFileLockBuilder {
            inner: FileLock::builder(path).protocol(Protocol::Soft),
        }
    }

    /// The handle this soft lock runs on: a [`FileLock`] speaking the soft protocol. For
    /// the crate only (the `Lock` trait's shared methods, which fail for a soft lock).
    pub(crate) fn file_lock(&self) -> &FileLock {
        &self.inner
    }

    /// The marker file's path, made absolute when the handle was made.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    crate::acquire_family::forward_acquire_family! {
        acquire {
            /// Acquires the lock, waiting as configured (default: forever): creates the
            /// marker, and breaks a stale one on proof that its holder is gone.
        }
        errors {
            /// As [`FileLock::acquire`]; [`Error::Unsupported`] on platforms other than Unix
            /// and Windows.
        }
        cancelled {
            /// Cancel-safe, as [`FileLock::acquire`]: a marker created by an attempt that
            /// ends after the future is gone is removed at once.
        }
        holder {
            /// Who holds this lock now, as its marker names it (pid, host, start token),
            /// without taking the lock: `Ok(None)` when there is no marker. A snapshot.
        }
    }

    /// The PID the marker records, as Python's `SoftFileLock.pid`: `None` when there is
    /// no marker, or it is empty, malformed, unreadable or of another kind than
    /// `SoftFileLock`'s own (a lease's protocol 2 record, a strict lock's sentinel;
    /// [`holder`](Self::holder) names a lease's holder). A snapshot; blocking (one read).
    #[must_use]
    pub fn blocking_pid(&self) -> Option<u32> {
        soft::recorded_pid(self.path())
    }

    /// Async form of [`blocking_pid`](Self::blocking_pid): the read runs on Tokio's
    /// blocking pool.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when there is no Tokio runtime (or it is shutting down).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    pub async fn pid(&self) -> Result<Option<u32>, Error> {
        self.off_worker(soft::recorded_pid).await
    }

    /// Whether the marker names this process, by PID, host and (when it records one) start
    /// token, as Python's `SoftFileLock.is_lock_held_by_us`: `true` while any handle of
    /// this process holds the lock, unlike [`is_locked`](Self::is_locked), which asks about
    /// this handle and the current task. `false` without a well-formed marker. A snapshot;
    /// blocking (one read).
    #[must_use]
    pub fn blocking_is_held_by_us(&self) -> bool {
        soft::names_us(self.path())
    }

    /// Async form of [`blocking_is_held_by_us`](Self::blocking_is_held_by_us).
    ///
    /// # Errors
    ///
    /// As [`pid`](Self::pid).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    pub async fn is_held_by_us(&self) -> Result<bool, Error> {
        self.off_worker(soft::names_us).await
    }

    /// Removes the marker, whoever holds the lock, as Python's `SoftFileLock.break_lock`:
    /// for an operator who knows the holder is gone (a marker from a host that is gone for
    /// good, an empty marker of a writer killed before writing). Returns `Ok(true)` when a
    /// marker (or whatever node: a symlink is removed, not followed) was removed,
    /// `Ok(false)` when there was none. A live holder is not told: its release finds the
    /// marker gone ([`Error::MarkerReplaced`]), and meanwhile someone else may take the
    /// lock. Blocking: one `unlink`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] (operation [`Op::BreakLock`](crate::Op::BreakLock)) when the node
    /// cannot be removed (no permission, a directory at the path, a read-only file
    /// system); Python ignores those, this says so.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = tokio_filelock::SoftFileLock::new(dir.path().join("stuck.lock"));
    /// std::fs::write(lock.path(), "4242\nhost-gone-for-good\n").unwrap();
    /// assert_eq!(lock.blocking_pid(), Some(4242));
    /// assert!(lock.blocking_break_lock()?);
    /// assert!(!lock.blocking_break_lock()?, "nothing left to remove");
    /// # Ok::<(), tokio_filelock::Error>(())
    /// ```
    pub fn blocking_break_lock(&self) -> Result<bool, Error> {
        soft::break_marker(self.path())
    }

    /// Async form of [`blocking_break_lock`](Self::blocking_break_lock): the `unlink` runs
    /// on Tokio's blocking pool.
    ///
    /// # Errors
    ///
    /// As [`blocking_break_lock`](Self::blocking_break_lock), and as [`pid`](Self::pid).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future after the job started may still remove the marker.
    pub async fn break_lock(&self) -> Result<bool, Error> {
        self.off_worker(soft::break_marker).await?
    }

    /// Runs `job` on the marker's path on Tokio's blocking pool.
    async fn off_worker<T: Send + 'static>(&self, job: fn(&Path) -> T) -> Result<T, Error> {
        asynchronous::require_runtime(self.path())?;
        let path = self.path().to_path_buf();
        tokio::task::spawn_blocking(move || job(&path))
            .await
            .map_err(|join| asynchronous::joined(self.path(), join))
    }
}

impl fmt::Debug for SoftFileLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SoftFileLock").field(&self.inner).finish()
    }
}

/// Settings for a [`SoftFileLock`]; from [`SoftFileLock::builder`]. The options are
/// [`FileLockBuilder`]'s that apply to a marker file.
///
/// ```
/// use std::time::Duration;
/// use tokio_filelock::SoftFileLock;
/// # let dir = tempfile::tempdir().unwrap();
/// let lock = SoftFileLock::builder(dir.path().join("cache.lock"))
///     .timeout(Duration::from_secs(10))
///     .mode(0o600)
///     .build();
/// # drop(lock);
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct SoftFileLockBuilder {
    inner: FileLockBuilder,
}

/// Forwards builder options to [`FileLockBuilder`], with a doc line pointing there.
macro_rules! forward {
    ($($(#[$doc:meta])* $name:ident($ty:ty);)*) => {$(
        $(#[$doc])*
        #[doc = concat!("\n\nAs [`FileLockBuilder::", stringify!($name), "`].")]
        pub fn $name(self, value: $ty) -> Self {
            SoftFileLockBuilder { inner: self.inner.$name(value) }
        }
    )*};
}

impl SoftFileLockBuilder {
    /// A hook called once per acquire that starts to wait, with the path and the holder
    /// named by the marker.
    ///
    /// As [`FileLockBuilder::on_wait`].
    pub fn on_wait(self, hook: impl Fn(&WaitEvent<'_>) + Send + Sync + 'static) -> Self {
        SoftFileLockBuilder {
            inner: self.inner.on_wait(hook),
        }
    }

    /// Calls `hook` right after each hold is won, once per hold (not on re-entry), as
    /// [`FileLockBuilder::on_acquired`]; here [`Acquired::file`](crate::Acquired::file)
    /// is `None`: the marker file is the ownership record, not the hook's to write
    /// (Python filelock has no `on_acquired` on its soft locks at all for that reason).
    /// An error from it releases the hold (removes the marker) and fails the acquire with
    /// [`Error::OnAcquired`](crate::Error::OnAcquired).
    pub fn on_acquired(
        self,
        hook: impl Fn(&crate::Acquired<'_>) -> Result<(), crate::HookError> + Send + Sync + 'static,
    ) -> Self {
        SoftFileLockBuilder {
            inner: self.inner.on_acquired(hook),
        }
    }

    /// A marker older than `lifetime`, by its modification time against this host's
    /// wall clock, is **expired**: broken like a stale one (through the same atomic
    /// exchange), whoever wrote it, even a live holder on this or another host, as
    /// Python's `SoftFileLock(lifetime=...)`. Default: none, markers never expire.
    ///
    /// A `SoftFileLock` holder never refreshes its marker's mtime, so a hold longer than
    /// `lifetime` can be broken while it lasts, and two processes then hold the lock (its
    /// release reports [`Error::MarkerReplaced`](crate::Error::MarkerReplaced)). The
    /// host clocks (and the file server's, for a network file system) must agree to well
    /// within `lifetime`. Python warns of both; a [`SoftFileLease`](crate::SoftFileLease)
    /// expires by its holder's silence instead, on each contender's own clock.
    pub fn lifetime(self, lifetime: Duration) -> Self {
        SoftFileLockBuilder {
            inner: self.inner.lifetime(lifetime),
        }
    }

    forward! {
        /// How long `acquire` and `blocking_acquire` wait. Default: forever.
        timeout(Duration);
        /// `false`: every acquire makes exactly one attempt. Default: `true`.
        blocking(bool);
        /// Lets the token stop this handle's waiting acquires ([`crate::CancelToken`]).
        cancel_token(&crate::CancelToken);
        /// The longest sleep between two attempts. Default: 50 ms.
        poll_interval(Duration);
        /// Permission bits of the marker; group and other write bits are always dropped
        /// (as Python filelock does). Default: `0o666` reduced by the umask and by `0o022`.
        mode(u32);
        /// Who re-enters a held lock. Default: [`Reentrancy::Off`], every acquire a hold of its own.
        reentrancy(Reentrancy);
        /// `true`: singleton handles of one path share one lock state.
        singleton(bool);
    }

    /// The handle. Touches no file: the marker is created by the first attempt.
    pub fn build(self) -> SoftFileLock {
        SoftFileLock {
            inner: self.inner.build(),
        }
    }
}

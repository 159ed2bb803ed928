//! The public read-write lock for shared file systems: `SoftReadWriteLock` and its builder.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::attempt::soft::LeaseTerms;
use crate::driver::WaitHook;
use crate::driver::heartbeat::CompromiseHook;
use crate::driver::schedule::Wait;
use crate::driver::soft_rw::{self, Settings};
use crate::{Error, Holder, LockGuard, LockMode, Lost, WaitEvent};

/// Python filelock's default heartbeat interval.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);
/// Python filelock's default poll interval.
const DEFAULT_POLL: Duration = Duration::from_millis(250);

/// A reader-writer lock for shared and network file systems (NFS, Lustre, SMB with hard
/// links), on disk Python `filelock` 4.3.1's `SoftReadWriteLock`, byte for byte: Rust and
/// Python readers and writers exclude each other and recover each other's dead holders.
///
/// Write is the exclusive acquire family ([`acquire`](Self::acquire),
/// [`try_acquire`](Self::try_acquire), [`blocking_acquire`](Self::blocking_acquire), ...);
/// read is the shared family ([`acquire_shared`](Self::acquire_shared), ...). Any number of
/// readers hold at once; a writer excludes everyone.
///
/// # How it works
///
/// Everything lives under `<path>.rw/` (the lock path itself is never created): a
/// **generation log** `gen/` of immutable snapshots (who writes, who reads), each new
/// generation published by a no-replace hard link, and one **holder record** per
/// participant in `holders/`, rewritten with a fresh nonce every heartbeat interval.
///
/// - **Writers are preferred**: a writer first queues (one commit), which shuts out
///   readers that arrive after it, and is granted once the readers present have left.
/// - **Dead holders are recovered** without a shared clock: a contender that has seen a
///   member's record unchanged for the stale threshold, on its own monotonic clock, evicts
///   it. No PID probe, no mtime: it works across hosts.
/// - **A paused holder** (SIGSTOP, a suspended VM, a stalled file server) is evicted the
///   same way while it still runs; its heartbeat notices at the next tick:
///   [`LockGuard::lost`] resolves with [`Lost::LeaseCompromised`] (reason
///   [`Evicted`](crate::CompromiseReason::Evicted)) and the
///   [`on_compromise`](SoftReadWriteLockBuilder::on_compromise) hook is called. Select on
///   `lost()` beside the work, and pass [`LockGuard::fencing_token`] (Python's
///   `generation`, strictly increasing per log) to a resource that can reject an older
///   holder.
/// - Every acquire is a hold of its own (no reentrancy): a second read by the same task is
///   a second reader. A task or thread that holds the lock (read or write) and waits without
///   a timeout for another hold of it that does not come at once gets
///   [`Error::WouldDeadlock`](crate::Error::WouldDeadlock): it could only be waiting for
///   itself (a write behind its own read, a read behind its own write, or a read behind a
///   writer queued after its own read). Python re-enters the hold, or raises
///   `RuntimeError` for an upgrade.
/// - The file system must support hard links; one that does not fails with
///   [`Error::Unsupported`] at once. A malformed log fails closed with
///   [`Error::Protocol`].
///
/// # Which lock for which file system
///
/// | file system | pick |
/// |---|---|
/// | local (ext4, xfs, apfs, NTFS, tmpfs) | [`FileLock`](crate::FileLock) (shared mode: [`FileLock::acquire_shared`](crate::FileLock::acquire_shared)) |
/// | NFS v4, one host or many, exclusive | [`FileLock`](crate::FileLock) where `flock` reaches the server; else [`SoftFileLease`](crate::SoftFileLease) |
/// | shared or network file system, readers and writers, holders on several hosts | `SoftReadWriteLock` |
/// | no working `flock`, exclusive, holders on one host | [`SoftFileLock`](crate::SoftFileLock) |
///
/// ```
/// use std::time::Duration;
/// use tokio_filelock::SoftReadWriteLock;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tokio_filelock::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// let lock = SoftReadWriteLock::builder(dir.path().join("dataset.lock"))
///     .heartbeat_interval(Duration::from_secs(10)) // stale after 30 s unchanged
///     .build();
/// let a = lock.acquire_shared().await?;
/// let b = lock.acquire_shared().await?; // readers share
/// assert!(lock.try_acquire().await?.is_none()); // a writer waits for both
/// drop((a, b));
/// let writer = lock.acquire().await?;
/// assert!(writer.fencing_token().is_some());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SoftReadWriteLock {
    settings: Settings,
    wait: Wait,
    /// Why every acquire fails, for settings that can never work.
    invalid: Option<&'static str>,
}

impl SoftReadWriteLock {
    /// A lock on `path` with Python's defaults: heartbeat every 30 s, stale after 90 s,
    /// polls at most every 250 ms, waits forever. A relative `path` is made absolute now
    /// and its parent directory resolved (symlinks), as Python does, so both find the same
    /// `<path>.rw/`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SoftReadWriteLock::builder(path).build()
    }

    /// A builder for a lock with other settings.
    pub fn builder(path: impl Into<PathBuf>) -> SoftReadWriteLockBuilder {
        SoftReadWriteLockBuilder {
            path: path.into(),
            timeout: None,
            blocking: true,
            poll_interval: None,
            heartbeat: DEFAULT_HEARTBEAT,
            stale_threshold: None,
            on_compromise: None,
            on_wait: None,
            on_acquired: None,
            cancel: None,
        }
    }

    /// A builder from a spec `softrw:PATH`, optionally followed by `?heartbeat=SECONDS`
    /// and `&stale=SECONDS` (Python's `heartbeat_interval` and `stale_threshold`), as
    /// [`open`](crate::open) and the CLI read it. The query starts at the last `?`.
    ///
    /// ```
    /// let lock = tokio_filelock::SoftReadWriteLock::builder_from_spec("softrw:/tmp/x.lock?heartbeat=2")?
    ///     .build();
    /// assert_eq!(lock.stale_threshold(), std::time::Duration::from_secs(6));
    /// # Ok::<(), tokio_filelock::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSpec`] when the spec does not start with `softrw:`, names no path,
    /// or has an unknown parameter or a value that is not a positive number of seconds.
    pub fn builder_from_spec(spec: &str) -> Result<SoftReadWriteLockBuilder, Error> {
        let (path, pairs) = crate::spec::seconds_spec(spec, "softrw", &["heartbeat", "stale"])?;
        let mut builder = SoftReadWriteLock::builder(path);
        for (key, seconds) in pairs {
            builder = match key {
                "heartbeat" => builder.heartbeat_interval(seconds),
                _ => builder.stale_threshold(seconds),
            };
        }
        Ok(builder)
    }

    /// The lock path (made absolute, its parent resolved). The protocol's files are under
    /// `<path>.rw/`.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.settings.path()
    }

    /// How often a holder refreshes its record.
    #[must_use]
    pub fn heartbeat_interval(&self) -> Duration {
        self.settings.terms.heartbeat
    }

    /// How long a contender must see a record unchanged before evicting its holder.
    #[must_use]
    pub fn stale_threshold(&self) -> Duration {
        self.settings.terms.duration
    }

    fn check(&self) -> Result<(), Error> {
        if self.path().as_os_str().is_empty() {
            return Err(Error::InvalidPath {
                path: PathBuf::new(),
                reason: "the path is empty",
            });
        }
        match self.invalid {
            Some(reason) => Err(Error::InvalidSetting {
                path: self.path().to_path_buf(),
                reason,
            }),
            None => Ok(()),
        }
    }

    fn run(
        &self,
        mode: LockMode,
        wait: Wait,
        quietly: bool,
    ) -> impl Future<Output = Result<Option<LockGuard>, Error>> + Send + 'static + use<> {
        let checked = self.check();
        let settings = self.settings.clone();
        async move {
            checked?;
            soft_rw::acquire_async(settings, mode, wait, quietly).await
        }
    }

    fn run_blocking(
        &self,
        mode: LockMode,
        wait: Wait,
        quietly: bool,
    ) -> Result<Option<LockGuard>, Error> {
        self.check()?;
        soft_rw::acquire_blocking(&self.settings, mode, wait, quietly)
    }
}

/// The async acquire family, one macro per mode so that both read alike.
macro_rules! acquire_family {
    ($mode:expr, $what:literal, $acquire:ident, $timeout:ident, $try:ident,
     $b_acquire:ident, $b_timeout:ident, $b_try:ident) => {
        impl SoftReadWriteLock {
            #[doc = concat!("Acquires the ", $what, " lock, waiting as configured.")]
            ///
            /// # Errors
            ///
            /// [`Error::Timeout`] when the wait runs out; [`Error::InvalidSetting`] or
            /// [`Error::InvalidPath`] at once for settings or a path that can never work;
            /// [`Error::Io`], [`Error::Unsupported`] (no hard links) or
            /// [`Error::Protocol`] (malformed log) at once.
            ///
            /// # Cancel safety
            ///
            /// Cancel-safe: dropping the future withdraws this participant from the log
            /// (a queued writer stops shutting out readers) and leaves nothing held.
            pub fn $acquire(
                &self,
            ) -> impl Future<Output = Result<LockGuard, Error>> + Send + 'static + use<> {
                let run = self.run($mode, self.wait, false);
                async move { run.await.map(expect_held) }
            }

            #[doc = concat!("Acquires the ", $what, " lock, waiting at most `timeout` (`Duration::ZERO`: one attempt).")]
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`", stringify!($acquire), "`](Self::", stringify!($acquire), ").")]
            ///
            /// # Cancel safety
            ///
            #[doc = concat!("Cancel-safe, as [`", stringify!($acquire), "`](Self::", stringify!($acquire), ").")]
            pub fn $timeout(
                &self,
                timeout: Duration,
            ) -> impl Future<Output = Result<LockGuard, Error>> + Send + 'static + use<> {
                let run = self.run($mode, Wait::new(Some(timeout), true), false);
                async move { run.await.map(expect_held) }
            }

            #[doc = concat!("Makes exactly one attempt at the ", $what, " lock: `Ok(None)` if it is held elsewhere.")]
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`", stringify!($acquire), "`](Self::", stringify!($acquire), "), never [`Error::Timeout`].")]
            ///
            /// # Cancel safety
            ///
            #[doc = concat!("Cancel-safe, as [`", stringify!($acquire), "`](Self::", stringify!($acquire), ").")]
            pub fn $try(
                &self,
            ) -> impl Future<Output = Result<Option<LockGuard>, Error>> + Send + 'static + use<> {
                self.run($mode, Wait::Once, true)
            }

            #[doc = concat!("Sync facade of [`", stringify!($acquire), "`](Self::", stringify!($acquire), "): needs no runtime.")]
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`", stringify!($acquire), "`](Self::", stringify!($acquire), ").")]
            pub fn $b_acquire(&self) -> Result<LockGuard, Error> {
                self.run_blocking($mode, self.wait, false).map(expect_held)
            }

            #[doc = concat!("Sync facade of [`", stringify!($timeout), "`](Self::", stringify!($timeout), ").")]
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`", stringify!($acquire), "`](Self::", stringify!($acquire), ").")]
            pub fn $b_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
                self.run_blocking($mode, Wait::new(Some(timeout), true), false)
                    .map(expect_held)
            }

            #[doc = concat!("Sync facade of [`", stringify!($try), "`](Self::", stringify!($try), ").")]
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`", stringify!($try), "`](Self::", stringify!($try), ").")]
            pub fn $b_try(&self) -> Result<Option<LockGuard>, Error> {
                self.run_blocking($mode, Wait::Once, true)
            }
        }
    };
}

acquire_family!(
    LockMode::Exclusive,
    "write (exclusive)",
    acquire,
    acquire_timeout,
    try_acquire,
    blocking_acquire,
    blocking_acquire_timeout,
    blocking_try_acquire
);
acquire_family!(
    LockMode::Shared,
    "read (shared)",
    acquire_shared,
    acquire_shared_timeout,
    try_acquire_shared,
    blocking_acquire_shared,
    blocking_acquire_shared_timeout,
    blocking_try_acquire_shared
);

/// A waiting acquire returns a guard or an error, never `None` (only `try_*` give up
/// quietly).
fn expect_held(guard: Option<LockGuard>) -> LockGuard {
    match guard {
        Some(guard) => guard,
        None => unreachable!("only try_* acquires give up quietly"),
    }
}

impl SoftReadWriteLock {
    /// Who holds the lock now, as the newest generation and the holder's record say (a
    /// snapshot): the writer (granted or queued), else a reader, with the PID and host its
    /// record names. `Ok(None)` when nobody does, or before the lock was ever used.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] or [`Error::Protocol`] when the log cannot be read.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads (on the blocking pool).
    pub async fn holder(&self) -> Result<Option<Holder>, Error> {
        soft_rw::holder_async(self.path().to_path_buf()).await
    }

    /// Sync facade of [`holder`](Self::holder).
    ///
    /// # Errors
    ///
    /// As [`holder`](Self::holder).
    pub fn blocking_holder(&self) -> Result<Option<Holder>, Error> {
        soft_rw::holder(self.path())
    }
}

impl fmt::Debug for SoftReadWriteLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftReadWriteLock")
            .field("path", &self.path())
            .field("heartbeat_interval", &self.heartbeat_interval())
            .field("stale_threshold", &self.stale_threshold())
            .finish_non_exhaustive()
    }
}

/// Settings for a [`SoftReadWriteLock`]; from [`SoftReadWriteLock::builder`].
///
/// ```
/// use std::time::Duration;
/// use tokio_filelock::SoftReadWriteLock;
/// # let dir = tempfile::tempdir().unwrap();
/// let lock = SoftReadWriteLock::builder(dir.path().join("jobs.lock"))
///     .heartbeat_interval(Duration::from_secs(5))
///     .stale_threshold(Duration::from_secs(20))
///     .on_compromise(|lost| eprintln!("{lost}"))
///     .timeout(Duration::from_secs(120))
///     .build();
/// # drop(lock);
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct SoftReadWriteLockBuilder {
    path: PathBuf,
    timeout: Option<Duration>,
    blocking: bool,
    poll_interval: Option<Duration>,
    heartbeat: Duration,
    stale_threshold: Option<Duration>,
    on_compromise: Option<CompromiseHook>,
    on_wait: Option<WaitHook>,
    on_acquired: Option<crate::acquired::AcquiredHook>,
    cancel: Option<crate::wake::Cancel>,
}

impl SoftReadWriteLockBuilder {
    /// A hook called once per acquire that starts to wait (its first attempt failed), with
    /// the path and the mode asked for. The holder is not named
    /// ([`WaitEvent::holder`] is `None`).
    pub fn on_wait(mut self, hook: impl Fn(&WaitEvent<'_>) + Send + Sync + 'static) -> Self {
        self.on_wait = Some(WaitHook::new(hook));
        self
    }

    /// Calls `hook` right after each hold is granted, before its heartbeat starts and the
    /// acquire returns, as [`FileLockBuilder::on_acquired`](crate::FileLockBuilder::on_acquired);
    /// here [`Acquired::file`](crate::Acquired::file) is `None` (the protocol's files are
    /// not the hook's to write). An error from it withdraws the hold from the log and fails
    /// the acquire with [`Error::OnAcquired`].
    pub fn on_acquired(
        mut self,
        hook: impl Fn(&crate::Acquired<'_>) -> Result<(), crate::HookError> + Send + Sync + 'static,
    ) -> Self {
        self.on_acquired = Some(crate::acquired::AcquiredHook::new(hook));
        self
    }

    /// How long `acquire` and `blocking_acquire` (and the shared forms) wait. Default:
    /// forever. `Duration::ZERO`: exactly one attempt.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Lets `token` stop this lock's waiting acquires (read and write, async and sync) at
    /// once, with [`Error::Cancelled`], as
    /// [`FileLockBuilder::cancel_token`](crate::FileLockBuilder::cancel_token).
    pub fn cancel_token(mut self, token: &crate::CancelToken) -> Self {
        self.cancel = Some(token.inner().clone());
        self
    }

    /// `false`: `acquire` makes one attempt, whatever the timeout. Default `true`.
    pub fn blocking(mut self, blocking: bool) -> Self {
        self.blocking = blocking;
        self
    }

    /// The cap of the wait schedule (attempts back off from 1 ms up to it). Each attempt
    /// of a waiter also refreshes its record, so it must be below the stale threshold.
    /// Default: 250 ms (Python's), or half the stale threshold if that is shorter.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = Some(interval);
        self
    }

    /// How often a holder rewrites its record. Default: 30 s (Python's). Must be above
    /// zero, else every acquire fails with [`Error::InvalidSetting`].
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat = interval;
        self
    }

    /// How long a contender must see a holder's record unchanged, on its own clock, before
    /// evicting it. Default: three heartbeat intervals. Must be above the heartbeat
    /// interval, else every acquire fails with [`Error::InvalidSetting`]. Written into the
    /// record as `lease=`: a peer with a shorter threshold waits this long too.
    pub fn stale_threshold(mut self, threshold: Duration) -> Self {
        self.stale_threshold = Some(threshold);
        self
    }

    /// Called once, from the heartbeat (a Tokio task or the crate's heartbeat thread), when
    /// a hold is evicted or its refresh kept failing, with the value that
    /// [`LockGuard::lost`] resolves with. Keep it short; it must not block. A panic in it
    /// is caught and logged.
    pub fn on_compromise(mut self, hook: impl Fn(&Lost) + Send + Sync + 'static) -> Self {
        self.on_compromise = Some(Arc::new(hook));
        self
    }

    /// The lock.
    #[must_use]
    pub fn build(self) -> SoftReadWriteLock {
        let heartbeat = self.heartbeat;
        let threshold = self.stale_threshold.unwrap_or(heartbeat.saturating_mul(3));
        let poll = self
            .poll_interval
            .unwrap_or_else(|| DEFAULT_POLL.min(threshold / 2));
        let invalid = if heartbeat.is_zero() {
            Some("the heartbeat interval must be above zero")
        } else if threshold <= heartbeat {
            Some("the stale threshold must exceed the heartbeat interval")
        } else if poll.is_zero() {
            Some("the poll interval must be above zero")
        } else if poll >= threshold {
            Some(
                "the poll interval must be below the stale threshold (a waiter refreshes its record once per poll)",
            )
        } else {
            None
        };
        let terms = LeaseTerms {
            duration: threshold,
            heartbeat,
        };
        let mut settings = Settings::new(self.path, poll, terms, self.on_compromise, self.on_wait);
        settings.on_acquired = self.on_acquired;
        settings.cancel = self.cancel;
        SoftReadWriteLock {
            settings,
            wait: Wait::new(self.timeout, self.blocking),
            invalid,
        }
    }
}

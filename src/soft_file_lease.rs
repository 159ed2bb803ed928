//! The public lease: `SoftFileLease` and its builder.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::attempt::Protocol;
use crate::attempt::soft::LeaseTerms;
use crate::driver::heartbeat::{self as lease_heartbeat, CompromiseHook};
use crate::{Error, FileLock, FileLockBuilder, Holder, LockGuard, Lost, WaitEvent};

/// Python filelock's default lease duration.
const DEFAULT_DURATION: Duration = Duration::from_secs(30);

/// A marker-file lock held as a **lease**: the holder refreshes its marker every heartbeat
/// interval, and a contender takes it over once it has itself seen the marker unchanged for
/// the lease duration, on its own monotonic clock. On disk it is Python `filelock` 4.x's
/// `SoftFileLease`, byte for byte (`filelock/2`, `pid=`, `host=`, `mode=lease`, `token=`,
/// `duration=`, `start=`), so the two exclude each other and each takes over the other's
/// expired leases.
///
/// # When to pick it
///
/// For a shared file system (NFS, Lustre, a FUSE mount) where a crashed holder must not
/// block everyone until someone removes its marker by hand, also from another host: a
/// [`SoftFileLock`](crate::SoftFileLock)'s marker is broken only on proof that its holder is
/// gone, which only the holder's own host can give. A lease expires by itself instead.
///
/// The price: **a holder that is paused longer than the lease duration** (SIGSTOP, a
/// suspended VM, a stalled NFS server) **is taken over while it still runs**, and learns it
/// only at its next heartbeat: [`LockGuard::lost`] resolves with
/// [`Lost::LeaseCompromised`] (`owner-changed`), and the
/// [`on_compromise`](SoftFileLeaseBuilder::on_compromise) hook is called. Work that must
/// never overlap needs [`LockGuard::lost`] in a `select!` beside it, and a resource that
/// rejects stale writers.
///
/// - Every contender for a path must use the same lease duration: one that meets another
///   gets [`Error::LeaseMismatch`] at once (as Python's `LeaseSettingsMismatch`).
/// - Hosts need no shared clock: a marker's mtime is never compared with any clock.
/// - A marker whose holder is provably gone (same host, PID dead or recycled) is taken
///   over at once, as for [`SoftFileLock`](crate::SoftFileLock); legacy and malformed
///   markers follow the [`SoftFileLock`](crate::SoftFileLock) rules.
/// - The heartbeat of an async hold is a Tokio task of the runtime that acquired it (each
///   refresh on the blocking pool): it stops if that runtime shuts down while the guard
///   lives. A `blocking_*` hold is refreshed by one thread of the crate's own that serves
///   every such hold of the process. Either stops when the guard is released or dropped.
/// - Release unlinks the marker only if it is still this hold's; a marker that a contender
///   replaced is left alone and reported as [`Error::MarkerReplaced`].
/// - Exclusive only; no reentrancy (every acquire is a hold of its own).
///
/// ```
/// use std::time::Duration;
/// use tokio_filelock::SoftFileLease;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tokio_filelock::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// let lease = SoftFileLease::builder(dir.path().join("cache.lock"))
///     .lease_duration(Duration::from_secs(30)) // the default; refreshed every 10 s
///     .build();
/// let guard = lease.acquire_timeout(Duration::from_secs(10)).await?;
/// tokio::select! {
///     _ = async { /* the work */ } => {}
///     lost = guard.lost() => eprintln!("{lost}"), // taken over: stop at once
/// }
/// guard.release()?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SoftFileLease {
    inner: FileLock,
    terms: LeaseTerms,
    on_compromise: Option<CompromiseHook>,
    /// Why every acquire fails, for settings that can never work.
    invalid: Option<&'static str>,
}

impl SoftFileLease {
    /// A lease on `path` with the default settings: a 30 s lease refreshed every 10 s;
    /// waits forever, polls at most every 50 ms. Touches no file.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SoftFileLease::builder(path).build()
    }

    /// A builder for a lease with other settings.
    pub fn builder(path: impl Into<PathBuf>) -> SoftFileLeaseBuilder {
        SoftFileLeaseBuilder {
            inner: FileLock::builder(path),
            duration: DEFAULT_DURATION,
            heartbeat: None,
            on_compromise: None,
        }
    }

    /// A builder from a spec `lease:PATH`, optionally followed by `?duration=SECONDS` and
    /// `&heartbeat=SECONDS` (decimal seconds, as Python's `lease_duration` and
    /// `heartbeat_interval`), as [`open`](crate::open) and the CLI read it. The query
    /// starts at the last `?`.
    ///
    /// ```
    /// let lease = tokio_filelock::SoftFileLease::builder_from_spec("lease:/tmp/x.lock?duration=60")?
    ///     .build();
    /// assert_eq!(lease.lease_duration(), std::time::Duration::from_secs(60));
    /// assert_eq!(lease.heartbeat_interval(), std::time::Duration::from_secs(20));
    /// # Ok::<(), tokio_filelock::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSpec`] when the spec does not start with `lease:`, names no path, or
    /// has an unknown parameter or a value that is not a positive number of seconds.
    pub fn builder_from_spec(spec: &str) -> Result<SoftFileLeaseBuilder, Error> {
        let (path, pairs) = crate::spec::seconds_spec(spec, "lease", &["duration", "heartbeat"])?;
        let mut builder = SoftFileLease::builder(path);
        for (key, seconds) in pairs {
            builder = match key {
                "duration" => builder.lease_duration(seconds),
                _ => builder.heartbeat_interval(seconds),
            };
        }
        Ok(builder)
    }

    /// The lock file (the marker's path), made absolute.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    /// How long a contender must see the marker unchanged before taking it over.
    #[must_use]
    pub fn lease_duration(&self) -> Duration {
        self.terms.duration
    }

    /// How often the holder refreshes its marker.
    #[must_use]
    pub fn heartbeat_interval(&self) -> Duration {
        self.terms.heartbeat
    }

    /// `true` while a hold taken through this handle (or a clone) lives.
    #[must_use]
    pub fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }

    fn check(&self) -> Result<(), Error> {
        match self.invalid {
            Some(reason) => Err(Error::InvalidSetting {
                path: self.path().to_path_buf(),
                reason,
            }),
            None => Ok(()),
        }
    }

    fn held_async<F>(
        &self,
        acquire: F,
    ) -> impl Future<Output = Result<LockGuard, Error>> + Send + 'static + use<F>
    where
        F: Future<Output = Result<LockGuard, Error>> + Send + 'static,
    {
        let checked = self.check();
        let (terms, hook) = (self.terms, self.on_compromise.clone());
        async move {
            checked?;
            lease_heartbeat::hold_async(acquire.await?, terms, hook).await
        }
    }

    /// Acquires the lease, waiting as configured.
    ///
    /// # Errors
    ///
    /// As [`FileLock::acquire`], and [`Error::LeaseMismatch`] or [`Error::InvalidSetting`]
    /// at once.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future leaves nothing held (a marker won by an attempt
    /// still running on the blocking pool is removed when it finishes).
    pub fn acquire(
        &self,
    ) -> impl Future<Output = Result<LockGuard, Error>> + Send + 'static + use<> {
        self.held_async(self.inner.acquire())
    }

    /// Acquires the lease, waiting at most `timeout` (`Duration::ZERO`: one attempt).
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
        self.held_async(self.inner.acquire_timeout(timeout))
    }

    /// Makes exactly one attempt at the lease: `Ok(None)` if it is held elsewhere (and not
    /// yet expired on this process's clock).
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`acquire`](Self::acquire).
    pub fn try_acquire(
        &self,
    ) -> impl Future<Output = Result<Option<LockGuard>, Error>> + Send + 'static + use<> {
        let checked = self.check();
        let attempt = self.inner.try_acquire();
        let (terms, hook) = (self.terms, self.on_compromise.clone());
        async move {
            checked?;
            match attempt.await? {
                Some(guard) => lease_heartbeat::hold_async(guard, terms, hook)
                    .await
                    .map(Some),
                None => Ok(None),
            }
        }
    }

    /// Sync facade of [`acquire`](Self::acquire): needs no runtime.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    pub fn blocking_acquire(&self) -> Result<LockGuard, Error> {
        self.check()?;
        let guard = self.inner.blocking_acquire()?;
        lease_heartbeat::hold_blocking(guard, self.terms, self.on_compromise.clone())
    }

    /// Sync facade of [`acquire_timeout`](Self::acquire_timeout).
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    pub fn blocking_acquire_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
        self.check()?;
        let guard = self.inner.blocking_acquire_timeout(timeout)?;
        lease_heartbeat::hold_blocking(guard, self.terms, self.on_compromise.clone())
    }

    /// Sync facade of [`try_acquire`](Self::try_acquire).
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    pub fn blocking_try_acquire(&self) -> Result<Option<LockGuard>, Error> {
        self.check()?;
        match self.inner.blocking_try_acquire()? {
            Some(guard) => {
                lease_heartbeat::hold_blocking(guard, self.terms, self.on_compromise.clone())
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    /// Who holds the lease now, as its marker says (a snapshot).
    ///
    /// # Errors
    ///
    /// As [`FileLock::holder`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    pub async fn holder(&self) -> Result<Option<Holder>, Error> {
        self.inner.holder().await
    }

    /// Sync facade of [`holder`](Self::holder).
    ///
    /// # Errors
    ///
    /// As [`FileLock::holder`].
    pub fn blocking_holder(&self) -> Result<Option<Holder>, Error> {
        self.inner.blocking_holder()
    }
}

impl fmt::Debug for SoftFileLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftFileLease")
            .field("path", &self.path())
            .field("lease_duration", &self.terms.duration)
            .field("heartbeat_interval", &self.terms.heartbeat)
            .finish_non_exhaustive()
    }
}

/// Settings for a [`SoftFileLease`]; from [`SoftFileLease::builder`].
///
/// ```
/// use std::time::Duration;
/// use tokio_filelock::SoftFileLease;
/// # let dir = tempfile::tempdir().unwrap();
/// let lease = SoftFileLease::builder(dir.path().join("jobs.lock"))
///     .lease_duration(Duration::from_secs(60))
///     .heartbeat_interval(Duration::from_secs(5))
///     .on_compromise(|lost| eprintln!("{lost}"))
///     .timeout(Duration::from_secs(120))
///     .build();
/// # drop(lease);
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct SoftFileLeaseBuilder {
    inner: FileLockBuilder,
    duration: Duration,
    heartbeat: Option<Duration>,
    on_compromise: Option<CompromiseHook>,
}

impl SoftFileLeaseBuilder {
    /// How long a contender must see the marker unchanged, on its own clock, before taking
    /// it over. Every contender for a path must agree on it (Python's `lease_duration`,
    /// which it writes as `duration=` in seconds). Default: 30 s. Zero makes every acquire
    /// fail with [`Error::InvalidSetting`].
    pub fn lease_duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }

    /// How often the holder refreshes its marker. Default: a third of the lease duration.
    /// Must be above zero and below the lease duration, else every acquire fails with
    /// [`Error::InvalidSetting`].
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat = Some(interval);
        self
    }

    /// Called once, from the heartbeat (a Tokio task or the crate's heartbeat thread), when
    /// a hold's claim is lost, with the same value that [`LockGuard::lost`] resolves with.
    /// Keep it short; it must not block. A panic in it is caught and logged.
    pub fn on_compromise(mut self, hook: impl Fn(&Lost) + Send + Sync + 'static) -> Self {
        self.on_compromise = Some(Arc::new(hook));
        self
    }

    /// A hook called once per acquire that starts to wait, with the path and the holder
    /// named by the marker. As [`FileLockBuilder::on_wait`].
    pub fn on_wait(mut self, hook: impl Fn(&WaitEvent<'_>) + Send + Sync + 'static) -> Self {
        self.inner = self.inner.on_wait(hook);
        self
    }

    /// Lets `token` stop this handle's waiting acquires. As
    /// [`FileLockBuilder::cancel_token`].
    pub fn cancel_token(mut self, token: &crate::CancelToken) -> Self {
        self.inner = self.inner.cancel_token(token);
        self
    }

    /// Calls `hook` right after each hold is won, before its heartbeat starts and the
    /// acquire returns: as [`SoftFileLockBuilder::on_acquired`](crate::SoftFileLockBuilder::on_acquired)
    /// ([`Acquired::file`](crate::Acquired::file) is `None`: the marker is the lease's
    /// record). An error from it releases the hold and fails the acquire with
    /// [`Error::OnAcquired`].
    pub fn on_acquired(
        mut self,
        hook: impl Fn(&crate::Acquired<'_>) -> Result<(), crate::HookError> + Send + Sync + 'static,
    ) -> Self {
        self.inner = self.inner.on_acquired(hook);
        self
    }

    /// How long `acquire` and `blocking_acquire` wait. Default: forever. As
    /// [`FileLockBuilder::timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.inner = self.inner.timeout(timeout);
        self
    }

    /// `false`: every acquire makes exactly one attempt. Default: `true`. As
    /// [`FileLockBuilder::blocking`].
    pub fn blocking(mut self, blocking: bool) -> Self {
        self.inner = self.inner.blocking(blocking);
        self
    }

    /// The longest sleep between two attempts. Default: 50 ms. As
    /// [`FileLockBuilder::poll_interval`].
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.inner = self.inner.poll_interval(interval);
        self
    }

    /// Permission bits of the marker; group and other write bits are always dropped.
    /// As [`FileLockBuilder::mode`].
    pub fn mode(mut self, mode: u32) -> Self {
        self.inner = self.inner.mode(mode);
        self
    }

    /// The handle. Touches no file.
    pub fn build(self) -> SoftFileLease {
        let heartbeat = self.heartbeat.unwrap_or(self.duration / 3);
        let invalid = if self.duration.is_zero() {
            Some("the lease duration must be above zero")
        } else if heartbeat.is_zero() || heartbeat >= self.duration {
            Some("the heartbeat interval must be above zero and below the lease duration")
        } else {
            None
        };
        let terms = LeaseTerms {
            duration: self.duration,
            heartbeat,
        };
        SoftFileLease {
            inner: self.inner.protocol(Protocol::Lease(terms)).build(),
            terms,
            on_compromise: self.on_compromise,
            invalid,
        }
    }
}

impl fmt::Debug for SoftFileLeaseBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftFileLeaseBuilder")
            .field("inner", &self.inner)
            .field("lease_duration", &self.duration)
            .field("heartbeat_interval", &self.heartbeat)
            .finish_non_exhaustive()
    }
}

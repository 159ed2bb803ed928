//! The public strict soft lock: `StrictSoftFileLock` and its builder.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::attempt::Protocol;
use crate::attempt::soft::strict;
use crate::{Error, FileLock, FileLockBuilder, Reentrancy, StrictClaim, WaitEvent};

/// A fail-closed cross-process lock for **shared file systems** (NFS, Lustre, FUSE), held
/// with immutable owner claims, speaking Python `filelock` 4.3.1's `StrictSoftFileLock`
/// protocol byte for byte, so the two exclude each other.
///
/// # How it works
///
/// The lock path holds a fixed **sentinel** (`1\nfilelock-strict-v1\0\n0\n`), which a
/// [`SoftFileLock`](crate::SoftFileLock) (or Python's) treats as a marker it must never
/// break: every strict contender goes through `<lock>.filelock/claims/` instead. An
/// acquire publishes an **intent** claim `intent-v1-<token>.claim` (a record
/// `filelock-strict-v1`, the token, PID, host in hex and start token, written under a
/// private name and published by a **hard link**, which never replaces a name); if it is
/// the least claim and none is held, it links a **held** claim `held-v1-<token>.claim`
/// to it, and wins if its token is still the least. Release removes both claims; the
/// sentinel stays. No rename-exchange is needed, so it works where a
/// [`SoftFileLock`](crate::SoftFileLock) can never break a stale marker (NFS, FreeBSD);
/// it needs hard links (refused with [`Error::Protocol`] otherwise).
///
/// # Fail closed: a dead holder's claims stay
///
/// A claim is removed only by its owner, or **by hand**: as in Python, no contender
/// removes another's claim on its own, not even one whose owner it believes dead (a PID
/// check can be wrong across hosts and PID namespaces, and a wrong guess lets two holders
/// in). After a holder crashed, waiters time out (naming the holder) until someone who
/// knows it is gone removes its claims with [`force_break`](Self::force_break) (Python's
/// `force_break`); [`claims`](Self::claims) lists them, and
/// [`StrictClaim::owner_exited`] says which ones this process can prove gone (same host;
/// PID gone, or now another process):
///
/// ```no_run
/// # fn main() -> Result<(), tokio_filelock::Error> {
/// use tokio_filelock::StrictSoftFileLock;
/// let lock = StrictSoftFileLock::new("/nfs/cache/model.lock");
/// for claim in lock.blocking_claims()? {
///     if claim.owner_exited() {
///         lock.blocking_force_break(claim.name())?;
///     }
/// }
/// # Ok(())
/// # }
/// ```
///
/// # Limits
///
/// - **Exclusive only** (through the [`Lock`](crate::Lock) trait, shared acquires return
///   [`Error::Unsupported`]).
/// - The protocol's files are checked before use and refused at once with
///   [`Error::Protocol`] (nothing removed) when they are not its own: an entry in the
///   claim directory that is no claim, a malformed claim, a coordination directory that is
///   not a real directory or that belongs to another account under a sticky parent. A
///   symlink, directory, FIFO, socket or device at the lock path is [`Error::NotAFile`].
///   A live soft-lock marker at the lock path is waited on; one whose holder has exited,
///   or an unparsable file seen unchanged for 2 s, is refused: a strict lock never breaks
///   another protocol's marker.
/// - Waiting polls (50 ms at most by default); a release in this process wakes its
///   waiters at once.
/// - A claim removed by hand during the hold makes the guard's
///   [`lost()`](crate::LockGuard::lost) resolve with [`Lost::ClaimRemoved`](crate::Lost::ClaimRemoved);
///   its release then removes what is left of its claims, without an error.
/// - Unix only (Python's Windows variant renames open files with delete dispositions,
///   which this crate does not do yet): elsewhere every acquire returns
///   [`Error::Unsupported`].
///
/// # API
///
/// [`FileLock`]'s exclusive side: the same acquire methods with the same timeouts,
/// reentrancy, cancellation and errors (see [`FileLock`] for each).
///
/// ```
/// use std::time::Duration;
/// use tokio_filelock::StrictSoftFileLock;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tokio_filelock::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # if cfg!(unix) { // Unix only in this version
/// let lock = StrictSoftFileLock::new(dir.path().join("nfs-share.lock"));
/// let guard = lock.acquire_timeout(Duration::from_secs(10)).await?;
/// assert_eq!(lock.claims().await?.len(), 2); // our intent and held claims
/// guard.release()?;
/// assert!(lock.claims().await?.is_empty());
/// # }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct StrictSoftFileLock {
    inner: FileLock,
}

impl StrictSoftFileLock {
    /// A strict lock on `path` with the default settings: waits forever, polls at most
    /// every 50 ms. Touches no file. A relative `path` is made absolute now.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StrictSoftFileLock::builder(path).build()
    }

    /// A builder for a strict lock with other settings.
    pub fn builder(path: impl Into<PathBuf>) -> StrictSoftFileLockBuilder {
        StrictSoftFileLockBuilder {
            inner: FileLock::builder(path).protocol(Protocol::Strict),
        }
    }

    /// The handle this lock runs on: a [`FileLock`] speaking the strict protocol. For the
    /// crate only (the `Lock` trait).
    pub(crate) fn file_lock(&self) -> &FileLock {
        &self.inner
    }

    /// The lock path (where the sentinel is), made absolute when the handle was made.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    crate::acquire_family::forward_acquire_family! {
        acquire {
            /// Acquires the lock, waiting as configured (default: forever): publishes an
            /// intent claim, and turns it into a held claim once it is the least.
        }
        errors {
            /// As [`FileLock::acquire`], and [`Error::Protocol`] at once when the lock's
            /// files are not the protocol's; [`Error::Unsupported`] on platforms other than
            /// Unix.
        }
        cancelled {
            /// Cancel-safe, as [`FileLock::acquire`]: claims published by an attempt that
            /// ends after the future is gone are removed at once.
        }
        holder {
            /// Who holds this lock now, as its held claim (or else its least intent) names
            /// it, without taking the lock: `Ok(None)` when no claim stands. A snapshot.
        }
    }

    /// The claims that stand now, sorted by name (Python's `claims`): read only, nothing
    /// written or removed. Empty when the lock is free.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] when the claim directory holds something that is no claim,
    /// or a malformed claim; [`Error::Unsupported`] on platforms other than Unix.
    pub fn blocking_claims(&self) -> Result<Vec<StrictClaim>, Error> {
        Ok(strict::claims(self.path())?
            .into_iter()
            .map(StrictClaim::new)
            .collect())
    }

    /// Async form of [`blocking_claims`](Self::blocking_claims), on Tokio's blocking pool.
    ///
    /// # Errors
    ///
    /// As [`blocking_claims`](Self::blocking_claims); [`Error::Io`] with [`Op::Spawn`](crate::Op::Spawn)
    /// outside a Tokio runtime.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    pub async fn claims(&self) -> Result<Vec<StrictClaim>, Error> {
        let lock = self.clone();
        tokio::task::spawn_blocking(move || lock.blocking_claims())
            .await
            .map_err(|e| Error::io(self.path(), crate::Op::Spawn, std::io::Error::other(e)))?
    }

    /// Removes the claim named `name` (a file name as [`StrictClaim::name`] gives it),
    /// Python's `force_break`: for recovering from a holder known to be gone. If its owner
    /// still holds the lock, the next holder overlaps with it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] ([`Op::Claim`](crate::Op::Claim)): kind `InvalidInput` when `name` is
    /// not one public claim file name, `NotFound` when no such claim stands, or the
    /// operating system's error.
    pub fn blocking_force_break(&self, name: &str) -> Result<(), Error> {
        strict::force_break(self.path(), name)
    }

    /// Async form of [`blocking_force_break`](Self::blocking_force_break), on Tokio's
    /// blocking pool.
    ///
    /// # Errors
    ///
    /// As [`blocking_force_break`](Self::blocking_force_break).
    ///
    /// # Cancel safety
    ///
    /// Once started on the blocking pool, the removal runs to its end.
    pub async fn force_break(&self, name: &str) -> Result<(), Error> {
        let (lock, name) = (self.clone(), name.to_owned());
        tokio::task::spawn_blocking(move || lock.blocking_force_break(&name))
            .await
            .map_err(|e| Error::io(self.path(), crate::Op::Spawn, std::io::Error::other(e)))?
    }
}

impl fmt::Debug for StrictSoftFileLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StrictSoftFileLock")
            .field(&self.inner)
            .finish()
    }
}

/// Settings for a [`StrictSoftFileLock`]; from [`StrictSoftFileLock::builder`].
///
/// ```
/// use std::time::Duration;
/// use tokio_filelock::StrictSoftFileLock;
/// # let dir = tempfile::tempdir().unwrap();
/// let lock = StrictSoftFileLock::builder(dir.path().join("cache.lock"))
///     .timeout(Duration::from_secs(10))
///     .mode(0o640)
///     .build();
/// # drop(lock);
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct StrictSoftFileLockBuilder {
    inner: FileLockBuilder,
}

/// Forwards builder options to [`FileLockBuilder`], with a doc line pointing there.
macro_rules! forward {
    ($($(#[$doc:meta])* $name:ident($ty:ty);)*) => {$(
        $(#[$doc])*
        #[doc = concat!("\n\nAs [`FileLockBuilder::", stringify!($name), "`].")]
        pub fn $name(self, value: $ty) -> Self {
            StrictSoftFileLockBuilder { inner: self.inner.$name(value) }
        }
    )*};
}

impl StrictSoftFileLockBuilder {
    /// A hook called once per acquire that starts to wait, with the path and the holder
    /// named by the held claim.
    ///
    /// As [`FileLockBuilder::on_wait`].
    pub fn on_wait(self, hook: impl Fn(&WaitEvent<'_>) + Send + Sync + 'static) -> Self {
        StrictSoftFileLockBuilder {
            inner: self.inner.on_wait(hook),
        }
    }

    /// Calls `hook` right after each hold is won, once per hold (not on re-entry), as
    /// [`FileLockBuilder::on_acquired`]; here [`Acquired::file`](crate::Acquired::file)
    /// is `None` (the sentinel and the claims are the protocol's, not the hook's to
    /// write). An error from it releases the hold (withdraws the claims) and fails the
    /// acquire with [`Error::OnAcquired`](crate::Error::OnAcquired).
    pub fn on_acquired(
        self,
        hook: impl Fn(&crate::Acquired<'_>) -> Result<(), crate::HookError> + Send + Sync + 'static,
    ) -> Self {
        StrictSoftFileLockBuilder {
            inner: self.inner.on_acquired(hook),
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
        /// Permission bits of the sentinel and the claims (group and other write bits are
        /// always dropped), and, with search bits added where read bits are, of the claim
        /// directories (which also get the sticky bit), as Python filelock. Default: `0o666`
        /// reduced by the umask.
        mode(u32);
        /// Who re-enters a held lock. Default: [`Reentrancy::Off`], every acquire a hold of its own.
        reentrancy(Reentrancy);
        /// `true`: singleton handles of one path share one lock state.
        singleton(bool);
    }

    /// The handle. Touches no file: the first attempt makes the directories and the
    /// sentinel.
    pub fn build(self) -> StrictSoftFileLock {
        StrictSoftFileLock {
            inner: self.inner.build(),
        }
    }
}

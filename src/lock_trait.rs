//! One lock API for every backend, chosen at run time: the object-safe [`Lock`] trait and
//! [`open`].

use std::time::Duration;

use crate::{
    Error, FileLock, Holder, LockGuard, SoftFileLease, SoftFileLock, SoftReadWriteLock,
    StrictSoftFileLock,
};

/// What every lock of this crate offers, as an object-safe trait: [`FileLock`],
/// [`SoftFileLock`] and, with feature `postgres`, [`PgLock`](crate::postgres::PgLock).
/// [`open`](crate::open) picks one from a spec string at run time, so a program can read its lock from
/// its configuration and run unchanged on one machine or many.
///
/// Each method means what the inherent method of the same name means on the concrete type
/// (timeouts, reentrancy, cancellation, errors); see [`FileLock`]. The async methods are
/// boxed (`async-trait`): one allocation per call.
///
/// ```
/// use std::time::Duration;
/// use tokio_filelock::Lock;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tokio_filelock::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let spec = dir.path().join("nightly.lock").display().to_string();
/// // From the configuration: a path, `soft:PATH` or `postgres://host/db?lock=nightly`.
/// let lock: Box<dyn Lock> = tokio_filelock::open(&spec)?;
/// let guard = lock.acquire_timeout(Duration::from_secs(10)).await?;
/// // ... the nightly job ...
/// guard.release()?;
/// # Ok(())
/// # }
/// ```
#[async_trait::async_trait]
pub trait Lock: Send + Sync + std::fmt::Debug {
    /// The spec that [`open`](crate::open) turns into this lock (a password is left out).
    fn spec(&self) -> String;

    /// Acquires the exclusive lock, waiting as configured.
    ///
    /// # Errors
    ///
    /// As the concrete type's `acquire`.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future leaves nothing held.
    async fn acquire(&self) -> Result<LockGuard, Error>;

    /// Acquires the exclusive lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As the concrete type's `acquire_timeout`.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`acquire`](Self::acquire).
    async fn acquire_timeout(&self, timeout: Duration) -> Result<LockGuard, Error>;

    /// One attempt at the exclusive lock: `None` if it is held elsewhere.
    ///
    /// # Errors
    ///
    /// As the concrete type's `try_acquire`.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`acquire`](Self::acquire).
    async fn try_acquire(&self) -> Result<Option<LockGuard>, Error>;

    /// Acquires a shared lock, waiting as configured.
    ///
    /// # Errors
    ///
    /// As the concrete type's `acquire_shared` ([`Error::Unsupported`] for a soft lock).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`acquire`](Self::acquire).
    async fn acquire_shared(&self) -> Result<LockGuard, Error>;

    /// Acquires a shared lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`acquire_shared`](Self::acquire_shared).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`acquire`](Self::acquire).
    async fn acquire_shared_timeout(&self, timeout: Duration) -> Result<LockGuard, Error>;

    /// One attempt at a shared lock: `None` if it is held exclusively elsewhere.
    ///
    /// # Errors
    ///
    /// As [`acquire_shared`](Self::acquire_shared).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`acquire`](Self::acquire).
    async fn try_acquire_shared(&self) -> Result<Option<LockGuard>, Error>;

    /// Sync facade of [`acquire`](Self::acquire); needs no runtime.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    fn blocking_acquire(&self) -> Result<LockGuard, Error>;

    /// Sync facade of [`acquire_timeout`](Self::acquire_timeout).
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    fn blocking_acquire_timeout(&self, timeout: Duration) -> Result<LockGuard, Error>;

    /// Sync facade of [`try_acquire`](Self::try_acquire).
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire).
    fn blocking_try_acquire(&self) -> Result<Option<LockGuard>, Error>;

    /// Who holds the lock now, if that can be found (a snapshot).
    ///
    /// # Errors
    ///
    /// As the concrete type's `holder`.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    async fn holder(&self) -> Result<Option<Holder>, Error>;
}

/// A file lock type as the [`FileLock`] it runs on.
trait OnFileLock {
    fn file_lock(&self) -> &FileLock;
}

impl OnFileLock for FileLock {
    fn file_lock(&self) -> &FileLock {
        self
    }
}

impl OnFileLock for SoftFileLock {
    fn file_lock(&self) -> &FileLock {
        SoftFileLock::file_lock(self)
    }
}

impl OnFileLock for StrictSoftFileLock {
    fn file_lock(&self) -> &FileLock {
        StrictSoftFileLock::file_lock(self)
    }
}

/// Implements [`Lock`] for a file lock type by forwarding to the [`FileLock`] it runs on
/// (for a soft lock, whose shared acquires then fail with [`Error::Unsupported`]).
macro_rules! file_lock_impl {
    ($ty:ty, $spec:expr) => {
        #[async_trait::async_trait]
        impl Lock for $ty {
            fn spec(&self) -> String {
                let spec: fn(&$ty) -> String = $spec;
                spec(self)
            }
            async fn acquire(&self) -> Result<LockGuard, Error> {
                FileLock::acquire(self.file_lock()).await
            }
            async fn acquire_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
                FileLock::acquire_timeout(self.file_lock(), timeout).await
            }
            async fn try_acquire(&self) -> Result<Option<LockGuard>, Error> {
                FileLock::try_acquire(self.file_lock()).await
            }
            async fn acquire_shared(&self) -> Result<LockGuard, Error> {
                FileLock::acquire_shared(self.file_lock()).await
            }
            async fn acquire_shared_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
                FileLock::acquire_shared_timeout(self.file_lock(), timeout).await
            }
            async fn try_acquire_shared(&self) -> Result<Option<LockGuard>, Error> {
                FileLock::try_acquire_shared(self.file_lock()).await
            }
            fn blocking_acquire(&self) -> Result<LockGuard, Error> {
                FileLock::blocking_acquire(self.file_lock())
            }
            fn blocking_acquire_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
                FileLock::blocking_acquire_timeout(self.file_lock(), timeout)
            }
            fn blocking_try_acquire(&self) -> Result<Option<LockGuard>, Error> {
                FileLock::blocking_try_acquire(self.file_lock())
            }
            async fn holder(&self) -> Result<Option<Holder>, Error> {
                FileLock::holder(self.file_lock()).await
            }
        }
    };
}

file_lock_impl!(FileLock, |lock| lock.path().display().to_string());
file_lock_impl!(SoftFileLock, |lock| format!(
    "soft:{}",
    lock.path().display()
));
file_lock_impl!(StrictSoftFileLock, |lock| format!(
    "strict:{}",
    lock.path().display()
));

#[async_trait::async_trait]
impl Lock for SoftFileLease {
    fn spec(&self) -> String {
        format!(
            "lease:{}?duration={}&heartbeat={}",
            self.path().display(),
            self.lease_duration().as_secs_f64(),
            self.heartbeat_interval().as_secs_f64()
        )
    }
    async fn acquire(&self) -> Result<LockGuard, Error> {
        SoftFileLease::acquire(self).await
    }
    async fn acquire_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
        SoftFileLease::acquire_timeout(self, timeout).await
    }
    async fn try_acquire(&self) -> Result<Option<LockGuard>, Error> {
        SoftFileLease::try_acquire(self).await
    }
    async fn acquire_shared(&self) -> Result<LockGuard, Error> {
        Err(lease_is_exclusive(self))
    }
    async fn acquire_shared_timeout(&self, _timeout: Duration) -> Result<LockGuard, Error> {
        Err(lease_is_exclusive(self))
    }
    async fn try_acquire_shared(&self) -> Result<Option<LockGuard>, Error> {
        Err(lease_is_exclusive(self))
    }
    fn blocking_acquire(&self) -> Result<LockGuard, Error> {
        SoftFileLease::blocking_acquire(self)
    }
    fn blocking_acquire_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
        SoftFileLease::blocking_acquire_timeout(self, timeout)
    }
    fn blocking_try_acquire(&self) -> Result<Option<LockGuard>, Error> {
        SoftFileLease::blocking_try_acquire(self)
    }
    async fn holder(&self) -> Result<Option<Holder>, Error> {
        SoftFileLease::holder(self).await
    }
}

fn lease_is_exclusive(lease: &SoftFileLease) -> Error {
    Error::Unsupported {
        path: lease.path().to_path_buf(),
        reason: "a lease is exclusive only",
        source: None,
    }
}

#[async_trait::async_trait]
impl Lock for SoftReadWriteLock {
    fn spec(&self) -> String {
        format!(
            "softrw:{}?heartbeat={}&stale={}",
            self.path().display(),
            self.heartbeat_interval().as_secs_f64(),
            self.stale_threshold().as_secs_f64()
        )
    }
    async fn acquire(&self) -> Result<LockGuard, Error> {
        SoftReadWriteLock::acquire(self).await
    }
    async fn acquire_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
        SoftReadWriteLock::acquire_timeout(self, timeout).await
    }
    async fn try_acquire(&self) -> Result<Option<LockGuard>, Error> {
        SoftReadWriteLock::try_acquire(self).await
    }
    async fn acquire_shared(&self) -> Result<LockGuard, Error> {
        SoftReadWriteLock::acquire_shared(self).await
    }
    async fn acquire_shared_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
        SoftReadWriteLock::acquire_shared_timeout(self, timeout).await
    }
    async fn try_acquire_shared(&self) -> Result<Option<LockGuard>, Error> {
        SoftReadWriteLock::try_acquire_shared(self).await
    }
    fn blocking_acquire(&self) -> Result<LockGuard, Error> {
        SoftReadWriteLock::blocking_acquire(self)
    }
    fn blocking_acquire_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
        SoftReadWriteLock::blocking_acquire_timeout(self, timeout)
    }
    fn blocking_try_acquire(&self) -> Result<Option<LockGuard>, Error> {
        SoftReadWriteLock::blocking_try_acquire(self)
    }
    async fn holder(&self) -> Result<Option<Holder>, Error> {
        SoftReadWriteLock::holder(self).await
    }
}

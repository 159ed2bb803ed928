//! One lock API for every backend, chosen at run time: the object-safe [`Lock`] trait and
//! [`open`].

use std::path::PathBuf;
use std::time::Duration;

use crate::{Error, FileLock, Holder, LockGuard, SoftFileLock};

/// What every lock of this crate offers, as an object-safe trait: [`FileLock`],
/// [`SoftFileLock`] and, with feature `postgres`, [`PgLock`](crate::postgres::PgLock).
/// [`open`] picks one from a spec string at run time, so a program can read its lock from
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
    /// The spec that [`open`] turns into this lock (a password is left out).
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

/// Implements [`Lock`] for a file lock type by forwarding to its inherent methods.
macro_rules! file_lock_impl {
    ($ty:ty, $spec:expr) => {
        #[async_trait::async_trait]
        impl Lock for $ty {
            fn spec(&self) -> String {
                let spec: fn(&$ty) -> String = $spec;
                spec(self)
            }
            async fn acquire(&self) -> Result<LockGuard, Error> {
                FileLock::acquire(self).await
            }
            async fn acquire_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
                FileLock::acquire_timeout(self, timeout).await
            }
            async fn try_acquire(&self) -> Result<Option<LockGuard>, Error> {
                FileLock::try_acquire(self).await
            }
            async fn acquire_shared(&self) -> Result<LockGuard, Error> {
                FileLock::acquire_shared(self).await
            }
            async fn acquire_shared_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
                FileLock::acquire_shared_timeout(self, timeout).await
            }
            async fn try_acquire_shared(&self) -> Result<Option<LockGuard>, Error> {
                FileLock::try_acquire_shared(self).await
            }
            fn blocking_acquire(&self) -> Result<LockGuard, Error> {
                FileLock::blocking_acquire(self)
            }
            fn blocking_acquire_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
                FileLock::blocking_acquire_timeout(self, timeout)
            }
            fn blocking_try_acquire(&self) -> Result<Option<LockGuard>, Error> {
                FileLock::blocking_try_acquire(self)
            }
            async fn holder(&self) -> Result<Option<Holder>, Error> {
                FileLock::holder(self).await
            }
        }
    };
}

file_lock_impl!(FileLock, |lock| lock.path().display().to_string());
file_lock_impl!(SoftFileLock, |lock| format!(
    "soft:{}",
    lock.path().display()
));

/// The lock a spec names, with default settings:
///
/// | spec | lock |
/// |---|---|
/// | `PATH` (anything below) | [`FileLock`] on `PATH` |
/// | `soft:PATH` | [`SoftFileLock`] on `PATH` |
/// | `postgres://user@host:port/db?lock=NAME` (or `postgresql://`) | [`PgLock`](crate::postgres::PgLock) named `NAME` (feature `postgres`); the other query parameters are the connection's ([`PgLock::from_url`](crate::postgres::PgLock::from_url)) |
///
/// Touches nothing: no file is opened and no connection made until the first acquire.
///
/// # Errors
///
/// [`Error::InvalidSpec`] at once for an empty spec, an unknown `scheme://`, a
/// `postgres://` URL that does not parse or has no `lock=` name, or `postgres://` in a
/// build without feature `postgres`.
pub fn open(spec: &str) -> Result<Box<dyn Lock>, Error> {
    let invalid = |reason: &str| Error::InvalidSpec {
        path: PathBuf::from(redact(spec)),
        reason: reason.to_owned(),
    };
    if spec.is_empty() {
        return Err(invalid("the spec is empty"));
    }
    if let Some(path) = spec.strip_prefix("soft:") {
        if path.is_empty() {
            return Err(invalid("`soft:` needs a path after it"));
        }
        return Ok(Box::new(SoftFileLock::new(path)));
    }
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return Ok(Box::new(crate::postgres::PgLock::from_url(spec)?));
        #[cfg(not(feature = "postgres"))]
        return Err(invalid(
            "this build has no PostgreSQL backend (enable the crate's `postgres` feature)",
        ));
    }
    if let Some((scheme, _)) = spec.split_once("://")
        && !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return Err(invalid(
            "unknown scheme (known: a path, `soft:PATH`, `postgres://...?lock=NAME`)",
        ));
    }
    Ok(Box::new(FileLock::new(spec)))
}

/// `spec` with any URL password replaced by `***`, for messages.
pub(crate) fn redact(spec: &str) -> String {
    let Some((scheme, rest)) = spec.split_once("://") else {
        return spec.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => spec.to_owned(),
        },
        None => spec.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@h:5/db?lock=x"),
            "postgres://u:***@h:5/db?lock=x"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("/tmp/a.lock"), "/tmp/a.lock");
    }

    #[test]
    fn specs_pick_the_backend() {
        assert_eq!(open("/tmp/x.lock").unwrap().spec(), "/tmp/x.lock");
        assert_eq!(open("soft:/tmp/x.lock").unwrap().spec(), "soft:/tmp/x.lock");
        assert!(matches!(open(""), Err(Error::InvalidSpec { .. })));
        assert!(matches!(open("soft:"), Err(Error::InvalidSpec { .. })));
        assert!(matches!(
            open("redis://h/x"),
            Err(Error::InvalidSpec { .. })
        ));
        // A relative file name with a colon is a path (made absolute, as every lock path).
        let spec = open("a:b.lock").unwrap().spec();
        assert!(std::path::Path::new(&spec).is_absolute(), "{spec}");
        assert!(spec.ends_with("/a:b.lock"), "{spec}");
    }
}

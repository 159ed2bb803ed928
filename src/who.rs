//! Asking who holds a lock file, without taking it.

use std::path::Path;

use crate::config::Protocol;
use crate::driver::asynchronous;
use crate::{Error, FileLock, Holder, soft, sys};

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
        holder(self.path(), self.config().protocol)
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
        tokio::task::spawn_blocking(move || holder(&path, protocol))
            .await
            .map_err(|join| asynchronous::joined(self.path(), join))?
    }
}

/// Who holds the lock at `path` under `protocol`. Blocking: reads files.
fn holder(path: &Path, protocol: Protocol) -> Result<Option<Holder>, Error> {
    match protocol {
        Protocol::Soft => Ok(soft::holder(path)),
        Protocol::Os { .. } => sys::path_holder(path),
    }
}

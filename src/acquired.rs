//! The `on_acquired` hook of every lock type: what it is given ([`Acquired`]) and how a
//! lock runs it ([`AcquiredHook`]), in one place for every builder to reuse.

use std::fmt;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use crate::{Error, HookError, LockMode};

/// What an `on_acquired` hook is given: the lock just won, before the acquire returns its
/// guard (Python filelock's `on_acquired`, which gets the lock file's descriptor).
///
/// ```
/// use std::io::Write;
/// # let dir = tempfile::tempdir().unwrap();
/// let lock = tokio_filelock::FileLock::builder(dir.path().join("owner.lock"))
///     .on_acquired(|acquired| {
///         // The OS lock's file: say who holds it, for people reading it by hand.
///         if let Some(mut file) = acquired.file() {
///             file.set_len(0)?;
///             writeln!(file, "pid {}", std::process::id())?;
///         }
///         Ok(())
///     })
///     .build();
/// let guard = lock.blocking_acquire()?;
/// # #[cfg(unix)] // Windows refuses reads of a locked range through another handle
/// # assert!(std::fs::read_to_string(lock.path()).unwrap().starts_with("pid "));
/// # drop(guard);
/// # Ok::<(), tokio_filelock::Error>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Acquired<'a> {
    path: &'a Path,
    mode: LockMode,
    file: Option<&'a File>,
}

impl<'a> Acquired<'a> {
    pub(crate) fn new(path: &'a Path, mode: LockMode, file: Option<&'a File>) -> Self {
        Acquired { path, mode, file }
    }

    /// The lock file.
    #[must_use]
    pub fn path(&self) -> &'a Path {
        self.path
    }

    /// The mode won.
    #[must_use]
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// The file the OS lock is held on (a [`FileLock`](crate::FileLock)'s lock file),
    /// borrowed: write or clear its content here. `None` for the marker-file locks
    /// ([`SoftFileLock`](crate::SoftFileLock), [`SoftFileLease`](crate::SoftFileLease)):
    /// their file is the ownership record, which content written by the hook would
    /// destroy (Python filelock refuses `on_acquired` on those for the same reason).
    #[must_use]
    pub fn file(&self) -> Option<&'a File> {
        self.file
    }
}

/// The hook itself.
type HookFn = dyn Fn(&Acquired<'_>) -> Result<(), HookError> + Send + Sync;

/// An `on_acquired` hook, as a lock's settings keep it.
#[derive(Clone)]
pub(crate) struct AcquiredHook(Arc<HookFn>);

impl AcquiredHook {
    pub(crate) fn new(
        hook: impl Fn(&Acquired<'_>) -> Result<(), HookError> + Send + Sync + 'static,
    ) -> Self {
        AcquiredHook(Arc::new(hook))
    }

    /// Runs the hook for the hold just won on `path`. Its error comes back as
    /// [`Error::OnAcquired`]; the caller then releases the hold. Runs where attempts run
    /// (blocking: the hook may do I/O).
    pub(crate) fn run(
        &self,
        path: &Path,
        mode: LockMode,
        file: Option<&File>,
    ) -> Result<(), Error> {
        (self.0)(&Acquired::new(path, mode, file)).map_err(|source| {
            tracing::debug!(
                target: "tokio_filelock",
                path = %path.display(),
                error = %source,
                "the on_acquired hook failed; releasing the lock"
            );
            Error::OnAcquired {
                path: path.to_path_buf(),
                source,
            }
        })
    }
}

impl fmt::Debug for AcquiredHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AcquiredHook(..)")
    }
}

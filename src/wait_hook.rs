//! The waiting hook: tells the application, once per acquire, that it has to wait and for
//! whom.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::{Holder, LockMode};

/// What an acquire tells the [waiting hook](crate::FileLockBuilder::on_wait) when it starts
/// to wait (its first attempt found the lock held, or it lined up behind other waiters of
/// this process).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let lock = tokio_filelock::FileLock::builder(dir.path().join("cache.lock"))
///     .on_wait(|event| match event.holder() {
///         Some(holder) => eprintln!(
///             "Blocking: waiting for file lock on {} (held by {holder})",
///             event.path().display()
///         ),
///         None => eprintln!("Blocking: waiting for file lock on {}", event.path().display()),
///     })
///     .build();
/// # drop(lock);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct WaitEvent<'a> {
    path: &'a Path,
    mode: LockMode,
    holder: Option<&'a Holder>,
}

impl<'a> WaitEvent<'a> {
    pub(crate) fn new(path: &'a Path, mode: LockMode, holder: Option<&'a Holder>) -> Self {
        WaitEvent { path, mode, holder }
    }

    /// The lock file.
    #[must_use]
    pub fn path(&self) -> &'a Path {
        self.path
    }

    /// The mode this acquire asks for.
    #[must_use]
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// Who holds the lock, when that can be found (see [`Holder`]).
    #[must_use]
    pub fn holder(&self) -> Option<&'a Holder> {
        self.holder
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

//! [`CancelToken`]: stops waiting acquires from another thread or task.

use crate::wake::Cancel;

/// Stops the waits of the acquires of a handle built with it
/// ([`FileLockBuilder::cancel_token`](crate::FileLockBuilder::cancel_token)), from any thread
/// or task: Python filelock's `cancel_check`, made prompt. A cancelled wait ends at once (the
/// waiting thread or task is woken, not left to its next poll) with
/// [`Error::Cancelled`](crate::Error::Cancelled); it holds nothing afterwards.
///
/// Cancelling is for good: an acquire that starts after it still makes one attempt (a free
/// lock is taken, as with Python's `cancel_check`, which is asked only after a failed
/// attempt), and fails with `Error::Cancelled` instead of waiting. Clones share one state.
///
/// The sync facade has no other way to stop a wait without a timeout; async acquires can
/// also be dropped (`select!`, `timeout`), and take the token too.
///
/// ```
/// use std::time::Duration;
/// use tokio_filelock::{CancelToken, Error, FileLock};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("job.lock");
/// let held = FileLock::new(&path).blocking_acquire()?;
///
/// let stop = CancelToken::new();
/// let waiter = {
///     let lock = FileLock::builder(&path).cancel_token(&stop).build();
///     std::thread::spawn(move || lock.blocking_acquire())
/// };
/// std::thread::sleep(Duration::from_millis(20));
/// stop.cancel(); // e.g. on shutdown
/// assert!(matches!(waiter.join().unwrap(), Err(Error::Cancelled { .. })));
/// drop(held);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Cancel);

impl CancelToken {
    /// A token not cancelled yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Ends every wait of the acquires that use this token, now and later.
    pub fn cancel(&self) {
        self.0.cancel();
    }

    /// Whether [`cancel`](Self::cancel) was called.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }

    pub(crate) fn inner(&self) -> &Cancel {
        &self.0
    }
}

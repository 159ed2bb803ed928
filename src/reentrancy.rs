//! Who may re-enter a lock it already holds: [`Reentrancy`].

/// Who may re-enter a lock it already holds, without touching the file again.
///
/// By default ([`Reentrancy::Off`]) nobody does: every acquire is a hold of its own, as
/// with `tokio::sync::Mutex` and `std::sync::Mutex`, so a guard may be moved to any task or
/// thread and nothing can get in behind its back. Python filelock's recursive locks are one
/// builder call away ([`Reentrancy::Owner`], or [`Reentrancy::Handle`] for its
/// `thread_local=False`).
///
/// ```
/// use tokio_filelock::{FileLock, Reentrancy};
/// # let dir = tempfile::tempdir().unwrap();
/// let lock = FileLock::builder(dir.path().join("a.lock"))
///     .reentrancy(Reentrancy::Handle)
///     .build();
/// let first = lock.blocking_acquire().unwrap();
/// // Another thread re-enters the same handle instead of waiting (Python's
/// // `thread_local=False`).
/// std::thread::scope(|s| {
///     s.spawn(|| assert_eq!(lock.blocking_acquire().map(|_| lock.lock_counter()).unwrap(), 2));
/// });
/// drop(first);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Reentrancy {
    /// The default. Every acquire is a hold of its own: a second acquire, by the same task
    /// or thread, through the same handle or another, waits for the first hold to go like
    /// any other process would. Moving a guard to another task or thread is always safe.
    ///
    /// An acquire that could only wait forever for a hold its own task or thread took
    /// (no timeout) fails at once with [`Error::WouldDeadlock`](crate::Error::WouldDeadlock)
    /// instead of hanging. After a guard was moved away the crate cannot tell that the hold
    /// is someone else's now: acquire with a timeout then.
    #[default]
    Off,
    /// Python filelock's recursive locks: holds belong to the current Tokio task, or to the
    /// current thread outside any task (including the future driven by `block_on`, so
    /// `#[tokio::main]` bodies). The same owner acquiring again counts up without touching
    /// the file; another owner, even on the same handle, waits like any other process.
    /// Futures joined inside one task (`join!`, `select!`) share that task, so they
    /// re-enter rather than exclude each other.
    ///
    /// **Caveat: a moved guard.** Rust cannot see a guard move. A guard moved to another
    /// task or thread still counts as its acquirer's hold, so the acquirer re-enters at
    /// once while the other task works under the guard: two of them in the critical
    /// section. With this setting, keep guards with the task or thread that acquired them.
    Owner,
    /// Holds belong to the handle (and its clones): whoever acquires through it while it is
    /// held counts up. Python filelock's `thread_local=False`.
    Handle,
}

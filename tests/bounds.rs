//! Auto-trait bounds, checked at compile time (in the style of Tokio's `async_send_sync`
//! tests): if a change makes a type or a future lose one of these bounds, this file stops
//! compiling.
//!
//! - `FileLock`, `FileLockBuilder`, `LockGuard`, `Error`: `Send + Sync + Unpin + 'static`.
//! - The futures of every async method: `Send + 'static`, so they can be spawned and can
//!   outlive the handle that made them.

use std::time::Duration;

use tokio_filelock::{Error, FileLock, FileLockBuilder, LockGuard};

fn send_sync_unpin_static<T: Send + Sync + Unpin + 'static>() {}

fn send_static<T: Send + 'static>(_: &T) {}

fn error_for_boxing<T: std::error::Error + Send + Sync + 'static>() {}

#[test]
fn types_are_send_sync_unpin_and_static() {
    send_sync_unpin_static::<FileLock>();
    send_sync_unpin_static::<FileLockBuilder>();
    send_sync_unpin_static::<LockGuard>();
    send_sync_unpin_static::<Error>();
    error_for_boxing::<Error>();
}

/// Builds each future and drops it unpolled (which does nothing), after the bound check.
#[test]
fn futures_are_send_and_static() {
    let dir = tempfile::tempdir().unwrap();
    let lock = FileLock::new(dir.path().join("bounds.lock"));
    let d = Duration::from_secs(1);
    // `'static`: the futures do not borrow the handle, which is dropped below first.
    let futures = (
        lock.acquire(),
        lock.acquire_timeout(d),
        lock.try_acquire(),
        lock.acquire_shared(),
        lock.acquire_shared_timeout(d),
        lock.try_acquire_shared(),
        lock.with_lock(async { 42 }),
    );
    drop(lock);
    send_static(&futures.0);
    send_static(&futures.1);
    send_static(&futures.2);
    send_static(&futures.3);
    send_static(&futures.4);
    send_static(&futures.5);
    send_static(&futures.6);
}

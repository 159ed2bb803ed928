//! Locking a `std::sync::Mutex` without poisoning, once for the whole crate (as
//! tracing-appender's `sync.rs`): no code of this crate panics while holding one of its
//! mutexes, and if something ever did (a panicking waiting hook runs outside them), the data
//! is still consistent, so the next user takes it over instead of panicking in turn.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Locks `mutex`, taking the data over if a thread panicked while holding it.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// [`Condvar::wait`], poison-free as [`lock`].
// Used by the watcher's Condvar where no file watch exists.
#[cfg_attr(
    any(target_os = "linux", target_os = "macos", target_os = "freebsd"),
    allow(dead_code)
)]
pub(crate) fn wait<'a, T>(changed: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    changed.wait(guard).unwrap_or_else(PoisonError::into_inner)
}

/// [`Condvar::wait_timeout`], poison-free as [`lock`]; whether it timed out is not needed.
// Used by the watcher's Condvar where no file watch exists.
#[cfg_attr(
    any(target_os = "linux", target_os = "macos", target_os = "freebsd"),
    allow(dead_code)
)]
pub(crate) fn wait_timeout<'a, T>(
    changed: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Duration,
) -> MutexGuard<'a, T> {
    changed
        .wait_timeout(guard, timeout)
        .unwrap_or_else(PoisonError::into_inner)
        .0
}

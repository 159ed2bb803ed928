//! Platforms without a file watch (Windows, and any other than Linux, macOS and FreeBSD):
//! the watcher thread only times waits, and waiters rely on in-process wake-ups and their
//! timers. Windows has no event for an unlock (`UnlockFileEx`) nor for a handle's close.

use std::io;
use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use super::WatchEvent;

/// Times waits and can be interrupted; watches nothing.
#[derive(Debug)]
pub(crate) struct Notifier {
    pending: Mutex<bool>,
    changed: Condvar,
}

impl Notifier {
    pub(crate) fn new() -> io::Result<Notifier> {
        Ok(Notifier {
            pending: Mutex::new(false),
            changed: Condvar::new(),
        })
    }

    /// Always fails: no file watch on this platform.
    pub(crate) fn add_watch(&self, _path: &Path) -> io::Result<i32> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub(crate) fn remove_watch(&self, _wd: i32) {}

    /// Ends the current (or the next) [`Notifier::wait`] early.
    pub(crate) fn interrupt(&self) {
        *crate::sync::lock(&self.pending) = true;
        self.changed.notify_one();
    }

    /// Waits until [`Notifier::interrupt`] is called or `timeout` passes (`None`: none).
    pub(crate) fn wait(
        &self,
        timeout: Option<Duration>,
        _events: &mut Vec<WatchEvent>,
    ) -> io::Result<()> {
        let mut pending = crate::sync::lock(&self.pending);
        if !*pending {
            pending = match timeout {
                Some(timeout) => crate::sync::wait_timeout(&self.changed, pending, timeout),
                None => crate::sync::wait(&self.changed, pending),
            };
        }
        *pending = false;
        Ok(())
    }
}

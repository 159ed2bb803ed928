//! The settings of a handle, as the builder leaves them and the drivers read them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::schedule::Wait;
use crate::acquired::AcquiredHook;
use crate::attempt::Protocol;
use crate::{Reentrancy, WaitEvent};

/// Default cap of the wait between attempts (Python filelock's `poll_interval`).
pub(crate) const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) timeout: Option<Duration>,
    pub(crate) blocking: bool,
    pub(crate) poll_interval: Duration,
    pub(crate) permissions: Option<u32>,
    pub(crate) reentrancy: Reentrancy,
    pub(crate) preserve_lock_file: bool,
    pub(crate) on_wait: Option<WaitHook>,
    pub(crate) protocol: Protocol,
    /// Waiters take turns across processes (`wake::Fair`).
    pub(crate) fair: bool,
    /// Ends the waits of this handle's acquires when cancelled.
    pub(crate) cancel: Option<crate::wake::Cancel>,
    /// Soft protocol: a marker older than this (by mtime) is broken.
    pub(crate) lifetime: Option<Duration>,
    /// Called once per hold, right after it is won.
    pub(crate) on_acquired: Option<AcquiredHook>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeout: None,
            blocking: true,
            poll_interval: DEFAULT_POLL_INTERVAL,
            permissions: None,
            reentrancy: Reentrancy::Off,
            preserve_lock_file: false,
            on_wait: None,
            protocol: Protocol::Os {
                fallback_to_soft: true,
            },
            fair: true,
            cancel: None,
            lifetime: None,
            on_acquired: None,
        }
    }
}

impl Config {
    /// The wait of a plain `acquire`.
    pub(crate) fn wait(&self) -> Wait {
        Wait::new(self.timeout, self.blocking)
    }

    /// The wait of an `acquire_timeout(timeout)`: `blocking(false)` still wins.
    pub(crate) fn wait_for(&self, timeout: Duration) -> Wait {
        Wait::new(Some(timeout), self.blocking)
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

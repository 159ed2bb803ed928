//! Whether the current Tokio runtime has an IO driver (a reactor to register a file
//! watch with).
//!
//! Tokio cannot be asked: registering a descriptor on a runtime built without IO
//! (`enable_time` only) panics. So the first registration on each runtime is a probe, made
//! with a pipe: the panic, if any, is caught and kept quiet (this thread's panic message
//! only; other threads' panics reach the hook as before), and the answer is remembered.
//! Built with `panic = "abort"`, nothing is probed and waiters poll instead.
//!
//! This swaps the process's panic hook for the duration of one probe per runtime, which a
//! library should rather not do; a watcher thread of our own (no runtime IO needed) would
//! avoid it. Until then the swap is short, per-thread in effect, and restores the hook.

use std::panic::{self, AssertUnwindSafe, PanicHookInfo};
use std::sync::{Arc, Mutex};
use std::thread;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::runtime::{Handle, Id};

/// Runtimes probed so far, and whether each has IO. Few: one entry per runtime that ever
/// had a waiter with a watch.
static PROBED: Mutex<Vec<(Id, bool)>> = Mutex::new(Vec::new());

/// `true` when the current runtime has an IO driver (`false` outside any runtime).
pub(crate) fn has_io() -> bool {
    let Ok(handle) = Handle::try_current() else {
        return false;
    };
    let id = handle.id();
    // Held during the probe: one probe per runtime.
    let mut probed = crate::sync::lock(&PROBED);
    if let Some(&(_, io)) = probed.iter().find(|(known, _)| *known == id) {
        return io;
    }
    let io = probe();
    probed.push((id, io));
    io
}

/// With `panic = "abort"` a probe that panics would abort the process: assume no IO, so
/// waiters poll (and still get in-process wake-ups).
#[cfg(not(panic = "unwind"))]
fn probe() -> bool {
    false
}

#[cfg(panic = "unwind")]
fn probe() -> bool {
    let Ok((reader, _writer)) = std::io::pipe() else {
        return false;
    };
    // `with_interest` is deprecated in newer Tokio in favour of an `unsafe` constructor
    // whose contract (the descriptor stays open and the same for the `AsyncFd`'s life) an
    // owned pipe end keeps by itself.
    #[allow(deprecated)]
    let registered = quietly(move || AsyncFd::with_interest(reader, Interest::READABLE));
    matches!(registered, Ok(Ok(_)))
}

/// Runs `f`, catching a panic without printing this thread's panic message.
#[cfg(panic = "unwind")]
fn quietly<R>(f: impl FnOnce() -> R) -> thread::Result<R> {
    type Hook = Arc<dyn Fn(&PanicHookInfo<'_>) + Send + Sync>;
    let me = thread::current().id();
    let previous: Hook = Arc::from(panic::take_hook());
    let others = previous.clone();
    panic::set_hook(Box::new(move |info| {
        if thread::current().id() != me {
            others(info);
        }
    }));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    panic::set_hook(Box::new(move |info| previous(info)));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_runtimes_with_and_without_io_apart_without_panicking() {
        assert!(!has_io(), "outside any runtime");
        for (io, expected) in [(false, false), (true, true)] {
            let mut builder = tokio::runtime::Builder::new_current_thread();
            builder.enable_time();
            if io {
                builder.enable_io();
            }
            let rt = builder.build().unwrap();
            assert_eq!(rt.block_on(async { has_io() }), expected, "enable_io: {io}");
            assert_eq!(rt.block_on(async { has_io() }), expected, "remembered");
        }
    }
}

//! The sync facade's own watch: a thread waiting in a `blocking_*` acquire waits on a
//! notifier of its own for the time of its wait (Linux: an inotify instance and an eventfd;
//! macOS and FreeBSD: a kqueue),
//! so that the kernel wakes that thread directly when the lock file is released: one thread
//! wake-up, as for a thread blocked in `flock`, instead of two (the watcher thread, then the
//! waiting thread).
//!
//! Notifiers are kept in a pool for the next waiting thread: closing an inotify instance
//! waits for a kernel grace period, so it is never done. Inotify instances are limited per
//! user (128 by default) and the user's program may need its own, and every notifier holds
//! descriptors, so the pool makes at most [`MAX_OWN`]; a waiter that finds none free, or
//! whose watch cannot be made, is served by the watcher thread as before.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};
use std::time::Duration;

use crate::sys::{Notifier, Release, WatchEvent};

/// How many notifiers the pool makes at most (each is two descriptors on Linux, one on
/// macOS and FreeBSD, plus one per watched file there).
pub(crate) const MAX_OWN: usize = 8;

/// A notifier not in use, with the watch its last user left on it (see [`OwnWatch`]'s
/// `Drop`).
type Idle = (Arc<Notifier>, Option<i32>);

/// The notifiers not in use, and how many were made.
static POOL: Mutex<(Vec<Idle>, usize)> = Mutex::new((Vec::new(), 0));

/// A notifier from the pool (made if none is free and fewer than [`MAX_OWN`] exist).
fn take() -> Option<Idle> {
    let mut pool = crate::sync::lock(&POOL);
    if let Some(idle) = pool.0.pop() {
        return Some(idle);
    }
    if pool.1 >= MAX_OWN {
        return None;
    }
    let notifier = Arc::new(Notifier::new().ok()?);
    pool.1 += 1;
    Some((notifier, None))
}

/// Gives a notifier back to the pool, with the watch left on it, if any.
fn give_back(notifier: Arc<Notifier>, left: Option<i32>) {
    crate::sync::lock(&POOL).0.push((notifier, left));
}

/// A watch of one lock file on a notifier of the waiting thread's own. Dropping it gives
/// the notifier back, the watch still on it until its next user makes one.
#[derive(Debug)]
pub(crate) struct OwnWatch {
    notifier: Arc<Notifier>,
    wd: i32,
    release: Release,
    /// The kernel dropped the watch (the file is gone): it will not fire again.
    dead: bool,
    events: Vec<WatchEvent>,
}

impl OwnWatch {
    /// Watches `path` for `release` on a notifier from the pool. `None` when none is free
    /// or the watch cannot be made (the caller uses the watcher thread's); an error only
    /// for a file that is gone.
    pub(crate) fn new(path: &Path, release: Release) -> Option<std::io::Result<OwnWatch>> {
        let (notifier, left) = take()?;
        if let Some(left) = left {
            // Here, before this waiter's attempt, not at the last user's return (see `Drop`).
            // Removed even for the same file: its queued events are stale.
            notifier.remove_watch(left);
        }
        let wd = notifier.add_watch(path);
        if wd.is_err() {
            give_back(notifier.clone(), None);
        }
        match wd {
            Ok(wd) => Some(Ok(OwnWatch {
                notifier,
                wd,
                release,
                dead: false,
                events: Vec::new(),
            })),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Some(Err(error)),
            Err(_) => None,
        }
    }

    /// `false` once the kernel dropped the watch.
    pub(crate) fn is_alive(&self) -> bool {
        !self.dead
    }

    /// A waker that ends this thread's [`OwnWatch::wait`] (for wake-ups from this process:
    /// a release, a new head of the queue).
    pub(crate) fn waker(&self) -> Waker {
        Waker::from(Arc::new(Interrupt(self.notifier.clone())))
    }

    /// Waits up to `timeout` for an event of this watch or an interrupt; `true` when an
    /// event that may mean a release came (or the watch died).
    pub(crate) fn wait(&mut self, timeout: Duration) -> bool {
        self.events.clear();
        if self.notifier.wait(Some(timeout), &mut self.events).is_err() {
            // Not a busy loop if the failure persists: the caller's timer goes on.
            std::thread::sleep(timeout.min(Duration::from_millis(1)));
            return false;
        }
        let mut fired = false;
        for event in self.events.iter().filter(|event| event.wd == self.wd) {
            let cares =
                event.replaced || event.dead || (event.closed && self.release == Release::Close);
            fired |= cares;
            self.dead |= event.dead;
        }
        fired
    }
}

impl Drop for OwnWatch {
    /// Leaves the watch in place for the notifier's next user to remove, before its own
    /// attempt: removing an inotify watch queues kernel work, microseconds to tens of
    /// microseconds between a waiter's winning attempt and its acquire's return.
    fn drop(&mut self) {
        // A waker of this wait that fires later only cuts the next user's wait short once
        // (it polls again); events of the watch left are told apart by their descriptor.
        give_back(self.notifier.clone(), (!self.dead).then_some(self.wd));
    }
}

/// Wakes a thread waiting in [`OwnWatch::wait`].
struct Interrupt(Arc<Notifier>);

impl Wake for Interrupt {
    fn wake(self: Arc<Self>) {
        self.0.interrupt();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.interrupt();
    }
}

//! The waker of a thread that parks while it waits (the sync facade, a cancellable sleep):
//! waking it unparks the thread.

use std::sync::Arc;
use std::task::{Wake, Waker};

/// A waker that unparks the calling thread. A spurious unpark only makes the thread look
/// again, so its waits loop until their condition holds.
pub(crate) fn this_thread() -> Waker {
    Waker::from(Arc::new(Unpark(std::thread::current())))
}

struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

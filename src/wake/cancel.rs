//! A way to stop waits from another thread or task: the mechanism under the public
//! `CancelToken`. Cancelling wakes every wait registered with it at once (a parked or
//! notifier-waiting sync thread, an async task), so a cancelled wait ends promptly, not at
//! its next poll.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// Shared by the token's clones and the waits it may stop.
#[derive(Debug, Default, Clone)]
pub(crate) struct Cancel(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    cancelled: AtomicBool,
    /// The wakers of the waits that may be stopped now, by registration id.
    waiting: Mutex<Vec<(u64, Waker)>>,
    next: AtomicU64,
}

impl Cancel {
    /// Cancels: every wait registered now or later ends.
    pub(crate) fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::SeqCst);
        let wakers = std::mem::take(&mut *crate::sync::lock(&self.0.waiting));
        for (_, waker) in wakers {
            waker.wake();
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    /// A registration for one wait (dropping it forgets its waker).
    pub(crate) fn register(&self) -> Registration {
        Registration {
            cancel: self.clone(),
            id: self.0.next.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// One wait's registration with a [`Cancel`].
#[derive(Debug)]
pub(crate) struct Registration {
    cancel: Cancel,
    id: u64,
}

impl Registration {
    /// Ready once cancelled; else keeps `cx`'s waker to be woken by the cancel.
    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        let inner = &self.cancel.0;
        if inner.cancelled.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        {
            let mut waiting = crate::sync::lock(&inner.waiting);
            match waiting.iter_mut().find(|(id, _)| *id == self.id) {
                Some((_, waker)) if waker.will_wake(cx.waker()) => {}
                Some((_, waker)) => *waker = cx.waker().clone(),
                None => waiting.push((self.id, cx.waker().clone())),
            }
        }
        // A cancel between the first look and the registration took the wakers already.
        if inner.cancelled.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        crate::sync::lock(&self.cancel.0.waiting).retain(|(id, _)| *id != self.id);
    }
}

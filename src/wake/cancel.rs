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

impl Registration {
    /// Sleeps the calling thread for `duration`, or until cancelled: `true` if cancelled.
    pub(crate) fn sleep_blocking(&self, duration: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + duration;
        let waker = super::unpark::this_thread();
        let mut cx = Context::from_waker(&waker);
        loop {
            if self.poll(&mut cx).is_ready() {
                return true;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            // A spurious unpark only looks again.
            std::thread::park_timeout(left);
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        crate::sync::lock(&self.cancel.0.waiting).retain(|(id, _)| *id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sleep ends at once when cancelled (one that the cancel did not cut short would
    /// end after 30 s, uncancelled, and fail).
    #[test]
    fn a_cancel_ends_a_blocking_sleep_at_once() {
        let cancel = Cancel::default();
        let registration = cancel.register();
        let (started, is_started) = std::sync::mpsc::channel();
        let sleeper = std::thread::spawn(move || {
            started.send(()).unwrap();
            registration.sleep_blocking(std::time::Duration::from_secs(30))
        });
        is_started.recv().unwrap();
        cancel.cancel();
        assert!(sleeper.join().unwrap(), "cancelled");
        assert!(cancel.is_cancelled());
    }

    /// A registration forgets its waker when dropped: a token used by many waits does not
    /// grow.
    #[test]
    fn dropped_registrations_leave_no_waker() {
        let cancel = Cancel::default();
        for _ in 0..100 {
            let registration = cancel.register();
            let mut cx = Context::from_waker(Waker::noop());
            assert!(registration.poll(&mut cx).is_pending());
        }
        assert!(crate::sync::lock(&cancel.0.waiting).is_empty());
    }
}

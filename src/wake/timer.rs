//! The timer of the async poll loop: a thread of the crate's own, or Tokio's under paused
//! time.
//!
//! Tokio's timer panics ("timers are disabled") on a runtime built without `enable_time`,
//! and Tokio has no public way to ask whether a runtime has it (catching the panic would
//! print through the user's panic hook). So the waits between attempts are timed by one
//! thread of the crate's own, started by the first async wait of the process: it wakes
//! each waiter at its deadline and needs nothing from the runtime, so a contended acquire
//! works the same on every runtime, time driver or not. The thread sleeps on a condition
//! variable when no one waits.
//!
//! Under paused time (Tokio's `test-util`: `start_paused`, `tokio::time::pause`) time is
//! Tokio's to advance: a thread on the real clock would neither see its jumps nor keep
//! auto-advance from skipping past a pending wait. So while Tokio's clock is paused the
//! wait is a Tokio sleep, as every paused-time test expects. (A paused clock on a runtime
//! without the time driver, which only `tokio::time::pause` can make, would panic there,
//! as any Tokio sleep would.)

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A wait of the poll loop. Dropping it cancels it.
#[derive(Debug)]
pub(crate) struct Sleep(Inner);

#[derive(Debug)]
enum Inner {
    Tokio(Pin<Box<tokio::time::Sleep>>),
    Own(Arc<Entry>),
}

/// Waits `duration`: on the crate's timer thread, or on Tokio's timer while Tokio's clock is
/// paused. An error when the timer thread cannot be started.
pub(crate) fn sleep(duration: Duration) -> io::Result<Sleep> {
    if tokio_clock_is_paused() {
        return Ok(Sleep(Inner::Tokio(Box::pin(tokio::time::sleep(duration)))));
    }
    let timer = timer()?;
    let entry = Arc::new(Entry {
        deadline: Instant::now() + duration,
        state: Mutex::new(EntryState {
            fired: false,
            waker: None,
        }),
    });
    timer.entries().push(entry.clone());
    timer.changed.notify_one();
    Ok(Sleep(Inner::Own(entry)))
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.0 {
            Inner::Tokio(sleep) => sleep.as_mut().poll(cx),
            Inner::Own(entry) => {
                let mut state = entry.state();
                if state.fired {
                    return Poll::Ready(());
                }
                match &state.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => state.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Inner::Own(entry) = &self.0
            && let Some(timer) = TIMER.get()
        {
            timer.entries().retain(|e| !Arc::ptr_eq(e, entry));
        }
    }
}

/// `true` while Tokio's clock is paused (`test-util`). A running clock moves on between two
/// readings at least a microsecond apart; a paused one does not (it only moves when the
/// runtime advances it, never inside this call). Never panics: reading Tokio's clock needs
/// no time driver.
fn tokio_clock_is_paused() -> bool {
    let before = tokio::time::Instant::now();
    let real = Instant::now();
    while real.elapsed() < Duration::from_micros(1) {
        std::hint::spin_loop();
    }
    tokio::time::Instant::now() == before
}

#[derive(Debug)]
struct Entry {
    deadline: Instant,
    state: Mutex<EntryState>,
}

#[derive(Debug)]
struct EntryState {
    fired: bool,
    waker: Option<Waker>,
}

impl Entry {
    fn state(&self) -> MutexGuard<'_, EntryState> {
        // Nothing panics while holding this mutex; recover the data if something ever did.
        crate::sync::lock(&self.state)
    }

    fn fire(&self) {
        let waker = {
            let mut state = self.state();
            state.fired = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The pending waits of the process, and the thread that ends them.
struct Timer {
    /// Few: one per async acquire waiting right now. A vector beats a heap here.
    entries: Mutex<Vec<Arc<Entry>>>,
    changed: Condvar,
}

static TIMER: OnceLock<Timer> = OnceLock::new();

/// Serializes starting the thread (a failed start is retried by the next wait).
static STARTING: Mutex<()> = Mutex::new(());

impl Timer {
    fn entries(&self) -> MutexGuard<'_, Vec<Arc<Entry>>> {
        crate::sync::lock(&self.entries)
    }

    /// The thread's loop: fires the waits that are due, then sleeps until the next one (or
    /// until a wait is added).
    fn run(&self) {
        let mut entries = self.entries();
        loop {
            let now = Instant::now();
            let mut due = Vec::new();
            entries.retain(|e| {
                let is_due = e.deadline <= now;
                if is_due {
                    due.push(e.clone());
                }
                !is_due
            });
            if !due.is_empty() {
                drop(entries);
                for entry in due {
                    entry.fire();
                }
                entries = self.entries();
                continue;
            }
            let next = entries.iter().map(|e| e.deadline).min();
            entries = match next {
                Some(deadline) => crate::sync::wait_timeout(
                    &self.changed,
                    entries,
                    deadline.saturating_duration_since(now),
                ),
                None => crate::sync::wait(&self.changed, entries),
            };
        }
    }
}

/// The process's timer, starting its thread on first use.
fn timer() -> io::Result<&'static Timer> {
    if let Some(timer) = TIMER.get() {
        return Ok(timer);
    }
    let _starting = crate::sync::lock(&STARTING);
    if let Some(timer) = TIMER.get() {
        return Ok(timer);
    }
    std::thread::Builder::new()
        .name("tokio-filelock-timer".into())
        .spawn(|| {
            // Set before the spawn returns (`STARTING` is held until then): see below.
            let timer = TIMER.wait();
            timer.run();
        })?;
    Ok(TIMER.get_or_init(|| Timer {
        entries: Mutex::new(Vec::new()),
        changed: Condvar::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runtime without the time driver: the crate's timer ends the wait, no panic.
    #[test]
    fn waits_on_a_runtime_without_the_time_driver() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let started = Instant::now();
            sleep(Duration::from_millis(5)).unwrap().await;
            assert!(started.elapsed() >= Duration::from_millis(5));
        });
    }

    /// A cancelled wait leaves nothing behind in the timer.
    #[test]
    fn a_dropped_wait_is_forgotten() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut far = sleep(Duration::from_secs(3600)).unwrap();
            let entry = match &far.0 {
                Inner::Own(entry) => entry.clone(),
                Inner::Tokio(_) => panic!("the clock is not paused"),
            };
            let waker = Waker::noop();
            assert!(
                Pin::new(&mut far)
                    .poll(&mut Context::from_waker(waker))
                    .is_pending()
            );
            drop(far);
            let timer = TIMER.get().unwrap();
            assert!(!timer.entries().iter().any(|e| Arc::ptr_eq(e, &entry)));
        });
    }

    #[tokio::test(start_paused = true)]
    async fn under_paused_time_the_wait_is_tokios() {
        let sleep = sleep(Duration::from_secs(3600)).unwrap();
        assert!(matches!(sleep.0, Inner::Tokio(_)));
        let started = tokio::time::Instant::now();
        sleep.await; // auto-advance: no real hour passes
        assert_eq!(started.elapsed(), Duration::from_secs(3600));
    }
}

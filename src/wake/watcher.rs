//! The watcher: one thread of the crate's own per process, started by the first wait that
//! needs it, that owns the platform's change notification (`sys::Notifier`: inotify on
//! Linux, kqueue on macOS and FreeBSD) and the timers of the async waits, in one loop.
//!
//! - **Watches** ([`watch`]): a lock file is watched once however many waiters want it
//!   (the subscriptions are counted; the last one to leave removes the watch). An event is
//!   handed to every subscription of its file that cares (a marker's waiters ignore closes)
//!   by waking its waker: an async task, or a thread parked in the sync facade. No Tokio
//!   reactor is involved, so any runtime flavour (with or without IO) and no runtime at all
//!   are served alike.
//! - **Timers** ([`sleep`]): Tokio's timer panics on a runtime built without `enable_time`,
//!   and Tokio cannot be asked whether a runtime has it; so the waits between attempts are
//!   timed here, needing nothing from the runtime. Under paused time (Tokio's `test-util`:
//!   `start_paused`, `tokio::time::pause`) time is Tokio's to advance: a thread on the real
//!   clock would neither see its jumps nor keep auto-advance from skipping past a pending
//!   wait. So while Tokio's clock is paused the wait is a Tokio sleep, as every paused-time
//!   test expects.
//!
//! When no waiter exists the thread is idle: no watch, no timer, blocked in the notifier's
//! wait without a timeout. It keeps its descriptors (an inotify instance and an eventfd on
//! Linux, a kqueue on macOS and FreeBSD) for the next waiter: closing an inotify instance
//! waits for a kernel grace period.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::sys::{Notifier, Release, WatchEvent};

/// The thread's name (as `ps -L`, `top -H` and debuggers show it).
pub(crate) const THREAD_NAME: &str = "tokio-filelock-watcher";

/// How many watches nobody subscribes to may stay (see `Subscription::drop`): an idle
/// watch goes at its file's next event, or when the next waiter on its file subscribes
/// (where waiting is allowed, before that waiter's attempt); past this many, a new
/// subscription removes the others.
const MAX_IDLE_WATCHES: usize = 8;

/// A wake-up that may come while nobody looks: kept until its waiter polls.
#[derive(Debug, Default)]
struct Signal {
    state: Mutex<SignalState>,
}

#[derive(Debug, Default)]
struct SignalState {
    fired: bool,
    /// Watches only: the kernel dropped the watch; it will not fire again.
    dead: bool,
    waker: Option<Waker>,
}

impl Signal {
    fn state(&self) -> MutexGuard<'_, SignalState> {
        // Nothing panics while holding this mutex; recover the data if something ever did.
        crate::sync::lock(&self.state)
    }

    fn fire(&self, dead: bool) {
        let waker = {
            let mut state = self.state();
            state.fired = true;
            state.dead |= dead;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Ready once fired (consuming it).
    fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.state();
        if state.fired {
            state.fired = false;
            return Poll::Ready(());
        }
        match &state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// A pending timed wait.
#[derive(Debug)]
struct Timer {
    deadline: Instant,
    signal: Signal,
}

/// Asked on the watcher thread, for a close of the watched file, whether to wake the
/// subscriber (`false`: it would only find it is not its turn, or the lock busy; see
/// `Waiter::gate`). A replaced or dropped file wakes it whatever this says.
pub(crate) type Gate = Arc<dyn Fn() -> bool + Send + Sync>;

/// One waiter's subscription, as the watcher thread sees it.
struct Subscriber {
    signal: Arc<Signal>,
    release: Release,
    gate: Option<Gate>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("signal", &self.signal)
            .field("release", &self.release)
            .field("gated", &self.gate.is_some())
            .finish()
    }
}

/// The subscriptions to one watched file.
#[derive(Debug)]
struct Watched {
    wd: i32,
    subscribers: Vec<Subscriber>,
}

#[derive(Debug, Default)]
struct Timers {
    /// Few: one per async acquire waiting right now. A vector beats a heap here.
    pending: Vec<Arc<Timer>>,
    /// The deadline the thread waits for now (`None`: none, or busy): a new timer due
    /// earlier interrupts its wait.
    waiting_until: Option<Instant>,
}

/// The process's watcher.
#[derive(Debug)]
struct Watcher {
    notifier: Notifier,
    timers: Mutex<Timers>,
    watched: Mutex<Vec<Watched>>,
    /// Whether the thread runs (a failed start is retried by the next wait).
    started: Mutex<bool>,
    /// Tests: rounds of the thread's loop, to wait until it has handed out what came.
    #[cfg(test)]
    rounds: (Mutex<u64>, std::sync::Condvar),
}

static WATCHER: OnceLock<Watcher> = OnceLock::new();

/// Serializes making the watcher.
static MAKING: Mutex<()> = Mutex::new(());

/// The process's watcher, starting its thread on first use.
fn watcher() -> io::Result<&'static Watcher> {
    let watcher = match WATCHER.get() {
        Some(watcher) => watcher,
        None => {
            let _making = crate::sync::lock(&MAKING);
            match WATCHER.get() {
                Some(watcher) => watcher,
                None => {
                    let watcher = Watcher {
                        notifier: Notifier::new()?,
                        timers: Mutex::new(Timers::default()),
                        watched: Mutex::new(Vec::new()),
                        started: Mutex::new(false),
                        #[cfg(test)]
                        rounds: Default::default(),
                    };
                    WATCHER.get_or_init(|| watcher)
                }
            }
        }
    };
    let mut started = crate::sync::lock(&watcher.started);
    if !*started {
        std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || watcher.run())?;
        *started = true;
    }
    Ok(watcher)
}

impl Watcher {
    fn timers(&self) -> MutexGuard<'_, Timers> {
        crate::sync::lock(&self.timers)
    }

    fn watched(&self) -> MutexGuard<'_, Vec<Watched>> {
        crate::sync::lock(&self.watched)
    }

    /// The thread's loop: fires the timers that are due, waits for the next deadline, an
    /// event or an interrupt, and hands the events out.
    fn run(&self) {
        let mut events = Vec::new();
        loop {
            let next = self.fire_due();
            let timeout = next.map(|deadline| deadline.saturating_duration_since(Instant::now()));
            if let Err(error) = self.notifier.wait(timeout, &mut events) {
                tracing::debug!(target: "tokio_filelock", %error, "the watcher's wait failed");
                // Not a busy loop if the failure persists; the waiters' timers go on.
                std::thread::sleep(Duration::from_millis(1));
            }
            self.dispatch(&mut events);
            #[cfg(test)]
            {
                *crate::sync::lock(&self.rounds.0) += 1;
                self.rounds.1.notify_all();
            }
        }
    }

    /// Fires the due timers; returns the next deadline (and records it as awaited).
    fn fire_due(&self) -> Option<Instant> {
        loop {
            let now = Instant::now();
            let mut due = Vec::new();
            let mut timers = self.timers();
            timers.pending.retain(|t| {
                let is_due = t.deadline <= now;
                if is_due {
                    due.push(t.clone());
                }
                !is_due
            });
            if due.is_empty() {
                let next = timers.pending.iter().map(|t| t.deadline).min();
                timers.waiting_until = next;
                return next;
            }
            timers.waiting_until = None;
            drop(timers);
            for timer in due {
                timer.signal.fire(false);
            }
        }
    }

    fn dispatch(&self, events: &mut Vec<WatchEvent>) {
        if events.is_empty() {
            return;
        }
        let mut fire = Vec::new();
        {
            let mut watched = self.watched();
            for event in events.drain(..) {
                let Some(i) = watched.iter().position(|w| w.wd == event.wd) else {
                    continue; // a watch removed meanwhile
                };
                for subscriber in &watched[i].subscribers {
                    let changed = event.replaced || event.dead;
                    if changed || (event.closed && subscriber.release == Release::Close) {
                        // The gate is asked below, without the lock.
                        let gate = subscriber.gate.clone().filter(|_| !changed);
                        fire.push((subscriber.signal.clone(), event.dead, gate));
                    }
                }
                if event.dead {
                    watched.swap_remove(i);
                } else if watched[i].subscribers.is_empty() {
                    // Idle (see `Subscription::drop`): this thread is awake anyway.
                    self.notifier.remove_watch(event.wd);
                    watched.swap_remove(i);
                }
            }
        }
        for (signal, dead, gate) in fire {
            if gate.is_none_or(|wakes| wakes()) {
                signal.fire(dead);
            }
        }
    }
}

/// A timed wait. Dropping it cancels it.
#[derive(Debug)]
pub(crate) struct Sleep(Inner);

#[derive(Debug)]
enum Inner {
    Tokio(Pin<Box<tokio::time::Sleep>>),
    Own(Arc<Timer>),
}

/// Waits `duration`: on the watcher thread, or on Tokio's timer while Tokio's clock is
/// paused. An error when the watcher thread cannot be started.
pub(crate) fn sleep(duration: Duration) -> io::Result<Sleep> {
    if tokio_clock_is_paused() {
        return Ok(Sleep(Inner::Tokio(Box::pin(tokio::time::sleep(duration)))));
    }
    let watcher = watcher()?;
    let timer = Arc::new(Timer {
        deadline: Instant::now() + duration,
        signal: Signal::default(),
    });
    let interrupt = {
        let mut timers = watcher.timers();
        timers.pending.push(timer.clone());
        match timers.waiting_until {
            Some(until) if until <= timer.deadline => false,
            _ => {
                timers.waiting_until = Some(timer.deadline);
                true
            }
        }
    };
    if interrupt {
        watcher.notifier.interrupt();
    }
    Ok(Sleep(Inner::Own(timer)))
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.0 {
            Inner::Tokio(sleep) => sleep.as_mut().poll(cx),
            Inner::Own(timer) => timer.signal.poll(cx),
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Inner::Own(timer) = &self.0
            && let Some(watcher) = WATCHER.get()
        {
            watcher.timers().pending.retain(|t| !Arc::ptr_eq(t, timer));
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

/// One waiter's subscription to the watch of a lock file. Dropping it unsubscribes (the
/// last subscriber removes the watch).
#[derive(Debug)]
pub(crate) struct Subscription {
    wd: i32,
    signal: Arc<Signal>,
}

/// Subscribes to the events of the file at `path` that may mean `release` (the file itself,
/// not a symlink); a close wakes the subscriber only if `gate` (if any) says so. Looks up
/// the path, so it runs where file system calls may run.
pub(crate) fn watch(path: &Path, release: Release, gate: Option<Gate>) -> io::Result<Subscription> {
    let watcher = watcher()?;
    let signal = Arc::new(Signal::default());
    // Under the lock: a last subscriber leaving meanwhile cannot remove the watch that
    // `add_watch` returned (the same descriptor for the same file).
    let mut watched = watcher.watched();
    let mut wd = watcher.notifier.add_watch(path)?;
    if let Some(i) = watched
        .iter()
        .position(|w| w.wd == wd && w.subscribers.is_empty())
    {
        // The file's idle watch: events queued for it are stale (the closes of earlier
        // waiters' descriptors, say) and would wake this waiter for nothing. A fresh watch
        // (a new descriptor) leaves them behind.
        watched.swap_remove(i);
        watcher.notifier.remove_watch(wd);
        wd = watcher.notifier.add_watch(path)?;
    }
    let subscriber = Subscriber {
        signal: signal.clone(),
        release,
        gate,
    };
    match watched.iter_mut().find(|w| w.wd == wd) {
        Some(w) => w.subscribers.push(subscriber),
        None => watched.push(Watched {
            wd,
            subscribers: vec![subscriber],
        }),
    }
    if watched.iter().filter(|w| w.subscribers.is_empty()).count() > MAX_IDLE_WATCHES {
        watched.retain(|w| {
            let idle = w.subscribers.is_empty();
            if idle {
                watcher.notifier.remove_watch(w.wd);
            }
            !idle
        });
    }
    Ok(Subscription { wd, signal })
}

impl Subscription {
    /// `false` once the kernel dropped the watch: it will never fire again, and a new one
    /// is needed.
    pub(crate) fn is_alive(&self) -> bool {
        !self.signal.state().dead
    }

    /// Ready when an event came since the last call, or when the watch died. Events that
    /// came while nobody polled (during an attempt) are reported at the next poll, so no
    /// wake-up is lost.
    pub(crate) fn poll_event(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.signal.poll(cx)
    }
}

impl Drop for Subscription {
    /// The last subscriber of a file leaves its watch idle; the watcher thread removes it at
    /// its next event, or the next subscription to that file does, before it makes its own
    /// (see [`MAX_IDLE_WATCHES`]).
    /// Removing an inotify watch queues kernel work and an `IN_IGNORED` event that wakes
    /// the watcher thread: tens of microseconds that would otherwise be spent here,
    /// between a waiter's winning attempt and its acquire's return.
    fn drop(&mut self) {
        let Some(watcher) = WATCHER.get() else { return };
        let mut watched = watcher.watched();
        if let Some(w) = watched.iter_mut().find(|w| w.wd == self.wd) {
            w.subscribers
                .retain(|subscriber| !Arc::ptr_eq(&subscriber.signal, &self.signal));
        }
    }
}

/// Tests: returns once the watcher has handed out every event that came before the call.
#[cfg(all(
    test,
    any(target_os = "linux", target_os = "macos", target_os = "freebsd")
))]
pub(crate) fn flush() {
    let Some(watcher) = WATCHER.get() else { return };
    let (rounds, changed) = &watcher.rounds;
    let mut round = crate::sync::lock(rounds);
    let until = *round + 2;
    let deadline = Instant::now() + Duration::from_secs(30);
    while *round < until {
        watcher.notifier.interrupt();
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the watcher thread does not go round");
        round = changed
            .wait_timeout(round, left.min(Duration::from_millis(100)))
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
    }
}

/// Tests: what a holder in another process does when it lets go of the file at `path`: it
/// opens it, takes the lock and closes it (Linux and FreeBSD report the close, macOS the
/// unlock that the close makes). Nobody else may hold the lock.
#[cfg(all(
    test,
    any(target_os = "linux", target_os = "macos", target_os = "freebsd")
))]
pub(crate) fn release_elsewhere(path: &Path) {
    let holder = std::fs::File::open(path).unwrap();
    assert!(matches!(
        crate::sys::try_lock(&holder, crate::LockMode::Exclusive),
        crate::sys::TryLock::Acquired
    ));
    drop(holder);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runtime without the time driver: the watcher ends the wait, no panic.
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

    /// A cancelled wait leaves nothing behind in the watcher.
    #[test]
    fn a_dropped_wait_is_forgotten() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut far = sleep(Duration::from_secs(3600)).unwrap();
            let timer = match &far.0 {
                Inner::Own(timer) => timer.clone(),
                Inner::Tokio(_) => panic!("the clock is not paused"),
            };
            let waker = Waker::noop();
            assert!(
                Pin::new(&mut far)
                    .poll(&mut Context::from_waker(waker))
                    .is_pending()
            );
            drop(far);
            let watcher = WATCHER.get().unwrap();
            assert!(
                !watcher
                    .timers()
                    .pending
                    .iter()
                    .any(|t| Arc::ptr_eq(t, &timer))
            );
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

    /// Two subscriptions to one file share one watch; the last to leave leaves it idle.
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
    #[test]
    fn one_watch_per_file_shared_by_its_subscribers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared-watch");
        std::fs::write(&path, b"").unwrap();
        let a = watch(&path, Release::Close, None).unwrap();
        let b = watch(&path, Release::Unlink, None).unwrap();
        assert_eq!(a.wd, b.wd);
        let subscribers = |wd| {
            let watched = WATCHER.get().unwrap().watched();
            watched
                .iter()
                .find(|w| w.wd == wd)
                .map_or(0, |w| w.subscribers.len())
        };
        assert_eq!(subscribers(a.wd), 2);
        // A release wakes the OS lock's waiter, not the marker's.
        release_elsewhere(&path);
        let (wd, parked) = (a.wd, std::thread::current());
        let waker = Waker::from(Arc::new(Unpark(parked)));
        let mut cx = Context::from_waker(&waker);
        let deadline = Instant::now() + Duration::from_secs(30);
        while a.poll_event(&mut cx).is_pending() {
            assert!(Instant::now() < deadline, "no event");
            std::thread::park_timeout(Duration::from_millis(100));
        }
        assert!(b.poll_event(&mut cx).is_pending());
        drop(a);
        assert_eq!(subscribers(wd), 1);
        drop(b);
        assert_eq!(subscribers(wd), 0);
    }

    /// A gated subscription is woken by a close only when its gate says so (asked on the
    /// watcher thread); a replaced file wakes it whatever the gate says.
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
    #[test]
    fn a_close_wakes_a_gated_subscriber_only_when_its_gate_lets_it() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gated");
        std::fs::write(&path, b"").unwrap();
        let open = Arc::new(AtomicBool::new(false));
        let asked = Arc::new(AtomicUsize::new(0));
        let gate: Gate = {
            let (open, asked) = (open.clone(), asked.clone());
            Arc::new(move || {
                asked.fetch_add(1, Ordering::SeqCst);
                open.load(Ordering::SeqCst)
            })
        };
        let gated = watch(&path, Release::Close, Some(gate)).unwrap();
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        release_elsewhere(&path);
        flush();
        assert_eq!(asked.load(Ordering::SeqCst), 1, "the gate was asked");
        assert!(gated.poll_event(&mut cx).is_pending(), "kept asleep");
        open.store(true, Ordering::SeqCst);
        release_elsewhere(&path);
        flush();
        assert!(gated.poll_event(&mut cx).is_ready(), "let through");
        open.store(false, Ordering::SeqCst);
        std::fs::rename(dir.path().join("gated"), dir.path().join("moved")).unwrap();
        std::fs::write(&path, b"").unwrap();
        flush();
        if cfg!(target_os = "linux") {
            assert!(
                gated.poll_event(&mut cx).is_ready(),
                "a replaced file wakes it anyway"
            );
        }
    }

    /// Whether the watcher keeps an entry for `wd`, and with how many subscribers.
    #[cfg(target_os = "linux")]
    fn entry(wd: i32) -> Option<usize> {
        let watched = WATCHER.get().unwrap().watched();
        watched
            .iter()
            .find(|w| w.wd == wd)
            .map(|w| w.subscribers.len())
    }

    /// The last subscriber leaves the watch idle; the next waiter on the file gets a fresh
    /// one (the idle one's queued events are stale), and the watcher thread removes an idle
    /// watch at the file's next event.
    #[cfg(target_os = "linux")]
    #[test]
    fn an_idle_watch_goes_at_the_next_subscription_or_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idle-watch");
        std::fs::write(&path, b"").unwrap();
        let first = watch(&path, Release::Close, None).unwrap();
        let first_wd = first.wd;
        drop(first);
        assert_eq!(entry(first_wd), Some(0), "idle, kept");
        // An event that came while it was idle does not wake the next subscriber.
        release_elsewhere(&path);
        let again = watch(&path, Release::Close, None).unwrap();
        assert_ne!(again.wd, first_wd, "a fresh watch");
        assert_eq!(entry(first_wd), None);
        flush();
        let waker = Waker::noop();
        assert!(
            again
                .poll_event(&mut Context::from_waker(waker))
                .is_pending(),
            "woken by a stale event"
        );
        let wd = again.wd;
        drop(again);
        release_elsewhere(&path);
        let deadline = Instant::now() + Duration::from_secs(30);
        while entry(wd).is_some() {
            assert!(
                Instant::now() < deadline,
                "the idle watch stayed after an event"
            );
            flush();
        }
        // Removed from the kernel too: a new watch of another file may reuse the number
        // only once the old one is gone; `add_watch` of this file makes a fresh one.
        let fresh = watch(&path, Release::Close, None).unwrap();
        assert_eq!(entry(fresh.wd), Some(1));
    }

    /// At most `MAX_IDLE_WATCHES` idle watches stay: a new subscription removes the others.
    #[cfg(target_os = "linux")]
    #[test]
    fn idle_watches_do_not_pile_up() {
        let dir = tempfile::tempdir().unwrap();
        let wds: Vec<i32> = (0..MAX_IDLE_WATCHES + 2)
            .map(|i| {
                let path = dir.path().join(format!("idle-{i}"));
                std::fs::write(&path, b"").unwrap();
                watch(&path, Release::Close, None).unwrap().wd
            })
            .collect();
        let path = dir.path().join("new");
        std::fs::write(&path, b"").unwrap();
        let _new = watch(&path, Release::Close, None).unwrap();
        let left = wds.iter().filter(|wd| entry(**wd).is_some()).count();
        assert!(left <= MAX_IDLE_WATCHES, "{left} idle watches left");
    }

    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
    struct Unpark(std::thread::Thread);

    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
}

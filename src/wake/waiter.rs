//! One acquire's view of the wake-ups (async or sync): its place in the in-process queue,
//! its subscription to the watcher's watch of the lock file (where the platform has one:
//! `sys::FILE_WATCH`; head only), and the
//! timer of its wait.

use std::future::{Future, poll_fn};
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::fair::{AtClose, Fair, LineView};
use super::own_watch::OwnWatch;
use super::queue::Place;
use super::retry::Retry;
use super::watcher::{self, Subscription};
use crate::LockMode;
use crate::sys::{FileId, Release};

/// Why a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Woke {
    /// A release in this process, a file watch event, or this waiter became the head:
    /// attempt now.
    Signal,
    /// The backoff timer ran out.
    Timer,
    /// The acquire's cancel token was cancelled: give up.
    Cancelled,
}

/// The wake-up state of one async acquire. Dropping it (with the acquire future) leaves
/// the queue and closes the watch.
#[derive(Debug)]
pub(crate) struct Waiter {
    path: Arc<Path>,
    mode: LockMode,
    place: Option<Place>,
    watch: Option<Subscription>,
    /// The sync facade's watch on its thread's own notifier (see `own_watch`), used
    /// instead of `watch` where it could be made.
    own: Option<OwnWatch>,
    /// Creating a watch failed once (no inotify, instance limit, an unreadable file on
    /// FreeBSD): do not try again.
    watch_failed: bool,
    /// The queue's attempt count (in `mode`) when this waiter last looked.
    seen_attempts: u64,
    /// The last wait ended by a watch event.
    woke_by_watch: bool,
    /// Attempts in a row, woken by the watch, that found the lock busy.
    watch_misses: u32,
    /// The place in the cross-process line (`None` while an attempt has it).
    fair: Option<Fair>,
    /// The cancel token that may end this acquire's waits.
    cancel: Option<super::cancel::Registration>,
    /// The retry the watcher thread makes for this waiter, made with its watch's gate
    /// (an acquire that never waits has none).
    retry: Option<Arc<Retry>>,
}

/// After this many attempts in a row woken by the watch and finding the lock busy, one wait
/// ignores the watch (its events are kept, not lost): a storm of events that are not
/// releases (another program opening and closing the file in a loop) cannot make a waiter
/// spin.
const MAX_WATCH_MISSES: u32 = 8;

/// How long at most the wait that ignores the watch lasts: long enough that a storm costs
/// a few attempts per millisecond at most, short enough that a waiter whose misses were
/// releases taken by others is back to its events at once.
const STORM_PAUSE: Duration = Duration::from_millis(2);

impl Waiter {
    pub(crate) fn new(path: Arc<Path>, mode: LockMode) -> Self {
        Waiter {
            path,
            mode,
            place: None,
            watch: None,
            own: None,
            watch_failed: false,
            seen_attempts: 0,
            woke_by_watch: false,
            watch_misses: 0,
            fair: None,
            cancel: None,
            retry: None,
        }
    }

    /// Lets `cancel` end this waiter's waits.
    pub(crate) fn with_cancel(mut self, cancel: Option<&super::Cancel>) -> Self {
        self.cancel = cancel.map(super::Cancel::register);
        self
    }

    /// Joins the cross-process line (see [`Fair`]) as well.
    pub(crate) fn with_fair(mut self, fair: Fair) -> Self {
        self.fair = Some(fair);
        self
    }

    /// The place in the cross-process line, for the attempt (which runs where file system
    /// calls may run); give it back with [`Waiter::put_fair`].
    pub(crate) fn take_fair(&mut self) -> Option<Fair> {
        self.fair_behind();
        self.fair.take()
    }

    pub(crate) fn put_fair(&mut self, fair: Option<Fair>) {
        self.fair = fair;
    }

    /// The path to watch before the next attempt: where the platform has a file watch, for
    /// the head of the queue, when it has no live watch.
    pub(crate) fn wants_watch(&self) -> Option<Arc<Path>> {
        let wanted = crate::sys::FILE_WATCH
            && !watches_disabled()
            && !self.watch_failed
            && self.watch.as_ref().is_none_or(|w| !w.is_alive())
            && self.own.as_ref().is_none_or(|w| !w.is_alive())
            && self.place.as_ref().is_some_and(Place::is_head);
        wanted.then(|| self.path.clone())
    }

    /// Before the first attempt: lines up behind this process's waiters on the same path
    /// and mode, if any (see [`Place::follow`]), and returns the file they wait for.
    pub(crate) fn follow(&mut self) -> Option<FileId> {
        let place = Place::follow(&self.path, self.mode)?;
        self.seen_attempts = place.attempts(self.mode);
        let file = place.file();
        self.place = Some(place);
        self.fair_behind();
        Some(file)
    }

    /// The file this waiter's queue waits for, once it is in one.
    pub(crate) fn file(&self) -> Option<FileId> {
        self.place.as_ref().map(Place::file)
    }

    /// Leaves the queue (after [`Waiter::follow`] found that following would not do).
    pub(crate) fn unfollow(&mut self) {
        self.place = None;
    }

    /// Records the outcome of arming a watch (asked for by [`Waiter::wants_watch`]).
    pub(crate) fn armed(&mut self, watch: Option<std::io::Result<Subscription>>) {
        match watch {
            Some(Ok(watch)) => self.watch = Some(watch),
            // The file is gone (released soft lock): the next attempt arms again.
            Some(Err(error)) if error.kind() == std::io::ErrorKind::NotFound => {}
            Some(Err(error)) => {
                tracing::debug!(
                    target: "tokio_filelock",
                    path = %self.path.display(),
                    %error,
                    "no file watch; waiting by polling"
                );
                self.watch_failed = true;
            }
            None => {}
        }
    }

    /// The sync facade's [`Waiter::armed`]: arms the watch (asked for by
    /// [`Waiter::wants_watch`]) on the calling thread's own notifier where it can have one,
    /// else on the watcher thread's. Looks up the path: runs where file system calls may.
    pub(crate) fn arm_here(&mut self, path: &Path, soft: bool) {
        let release = if soft {
            Release::Unlink
        } else {
            Release::Close
        };
        match OwnWatch::new(path, release) {
            Some(Ok(own)) => {
                self.watch = None;
                self.own = Some(own);
            }
            // The file is gone (released soft lock): the next attempt arms again.
            Some(Err(_)) => {}
            None => {
                let fair = self.fair.take();
                let gate = self.gate(fair.as_ref());
                self.fair = fair;
                self.armed(Some(arm(path, soft, Some(gate))));
            }
        }
    }

    /// The gate of this waiter's file watch ([`watcher::Gate`]): its place in the line
    /// says whether it is its turn, then, if so, its retry ([`Waiter::retry_on`]) whether
    /// the lock is free.
    pub(crate) fn gate(&mut self, fair: Option<&Fair>) -> watcher::Gate {
        let line = fair.and_then(Fair::view);
        let retry = self.retry.get_or_insert_default().clone();
        Arc::new(
            move || match line.as_ref().map_or(AtClose::Retry, LineView::at_close) {
                AtClose::Sleep => false,
                AtClose::Retry => retry.wakes(),
                AtClose::Wake => true,
            },
        )
    }

    /// Between attempts, the watcher thread may make this waiter's lock call on a
    /// duplicate of `file` (see [`Retry`]), the descriptor its attempt keeps open, if this
    /// waiter's wake-ups come through the watcher thread's watch (`None`: it may not).
    pub(crate) fn retry_on(&mut self, file: Option<(&std::fs::File, FileId)>) {
        if let Some(retry) = &self.retry {
            retry.waits_on(file.filter(|_| self.watch.is_some()));
        }
    }

    /// Counts an attempt of this waiter about to start.
    pub(crate) fn attempt_started(&mut self) {
        if let Some(retry) = &self.retry {
            retry.attempting();
        }
        if let Some(place) = &self.place {
            self.seen_attempts = place.attempt_started(self.mode);
        }
    }

    /// After an attempt that found the lock busy on file `id`: line up in its queue. When
    /// the file at the path was replaced (a soft lock's marker is a new file each time),
    /// the queue follows it and everyone keeps their place; the watch, on the old file, is
    /// renewed at the next attempt.
    pub(crate) fn busy(&mut self, id: Option<FileId>) {
        // A busy lock after a wake-up is no miss while this crate's newcomers may still
        // overtake this waiter (see `fair::OVERTAKE_FOR`): the event was a release.
        let overtaken = self.fair.as_ref().is_some_and(Fair::may_be_overtaken);
        self.watch_misses = match (self.woke_by_watch, overtaken) {
            (false, _) => 0,
            (true, true) => self.watch_misses,
            (true, false) => self.watch_misses + 1,
        };
        let Some(id) = id else { return };
        if let Some(place) = &self.place {
            if place.file() == id {
                self.fair_behind();
                return;
            }
            self.watch = None;
            if place.rekey(id) {
                self.fair_behind();
                return;
            }
        }
        self.watch = None;
        let place = Place::join(id, &self.path, self.mode);
        self.seen_attempts = place.attempts(self.mode);
        self.place = Some(place);
        self.fair_behind();
    }

    /// A waiter behind another of this process holds no place in the cross-process line:
    /// the head stands for both (only it is woken by a release).
    fn fair_behind(&mut self) {
        let behind = self.place.as_ref().is_some_and(|place| !place.is_head());
        if let Some(fair) = &mut self.fair {
            fair.set_behind(behind);
        }
    }

    /// Waits for a wake-up or for `sleep` to pass, whichever comes first. An error when
    /// the wait cannot be timed (the crate's timer thread cannot be started).
    ///
    /// With `spread` (not for a sleep that ends at the deadline), waiters behind the head
    /// shorten their sleep by up to half (in 32 steps, by arrival order), so that a crowd
    /// that started together does not wake in the same timer tick.
    pub(crate) async fn wait(&mut self, sleep: Duration, spread: bool) -> std::io::Result<Woke> {
        let (sleep, use_watch) = self.prepare(sleep, spread);
        let mut timer = pin!(watcher::sleep(sleep)?);
        let woke = poll_fn(|cx| {
            if let Poll::Ready(woke) = self.poll_signal(cx, use_watch) {
                return Poll::Ready(woke);
            }
            timer.as_mut().poll(cx).map(|()| Woke::Timer)
        })
        .await;
        Ok(woke)
    }

    /// The sync facade's [`Waiter::wait`]: parks the calling thread until a wake-up (the
    /// watcher or a release in this process unparks it) or until `sleep` has passed.
    pub(crate) fn wait_blocking(&mut self, sleep: Duration, spread: bool) -> Woke {
        let (sleep, use_watch) = self.prepare(sleep, spread);
        let deadline = std::time::Instant::now() + sleep;
        let waker = match &self.own {
            Some(own) if use_watch => own.waker(),
            _ => super::unpark::this_thread(),
        };
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(woke) = self.poll_signal(&mut cx, use_watch) {
                return woke;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Woke::Timer;
            }
            match self.own.as_mut().filter(|_| use_watch) {
                // Woken by the kernel on an event, or by the waker on a wake-up of this
                // process (then polled above).
                Some(own) => {
                    if own.wait(left) {
                        self.woke_by_watch = true;
                        if let Some(fair) = &mut self.fair {
                            fair.woken();
                        }
                        return Woke::Signal;
                    }
                }
                // A spurious unpark only polls again.
                None => std::thread::park_timeout(left),
            }
        }
    }

    /// Before a wait of `sleep`: tells the queue when the head attempts next, spreads the
    /// followers' timers, and says whether the watch may end this wait.
    fn prepare(&mut self, sleep: Duration, spread: bool) -> (Duration, bool) {
        let sleep = match &self.place {
            Some(place) if place.is_head() => {
                place.head_waits_until(tokio::time::Instant::now() + sleep);
                sleep
            }
            Some(place) if spread => sleep.mul_f64(1.0 - (place.ticket() % 32) as f64 / 64.0),
            _ => sleep,
        };
        let use_watch = self.watch_misses < MAX_WATCH_MISSES;
        let sleep = if use_watch {
            sleep
        } else {
            self.watch_misses = 0;
            sleep.min(STORM_PAUSE)
        };
        self.woke_by_watch = false;
        (sleep, use_watch)
    }

    /// Ready with [`Woke::Signal`] once a release in this process or the watch woke this
    /// waiter.
    fn poll_signal(&mut self, cx: &mut Context<'_>, use_watch: bool) -> Poll<Woke> {
        if let Some(cancel) = &self.cancel
            && cancel.poll(cx).is_ready()
        {
            return Poll::Ready(Woke::Cancelled);
        }
        let woken = if let Some(place) = &self.place
            && place.poll_woken(cx).is_ready()
        {
            true
        } else if let Some(watch) = self.watch.as_ref().filter(|_| use_watch)
            && watch.poll_event(cx).is_ready()
        {
            self.woke_by_watch = true;
            true
        } else {
            false
        };
        if !woken {
            return Poll::Pending;
        }
        if let Some(fair) = &mut self.fair {
            fair.woken();
        }
        Poll::Ready(Woke::Signal)
    }

    /// After the timer ran out: `true` when this waiter may skip its attempt because
    /// another waiter of this process attempted in the same mode while it slept (that
    /// answer would be its own), or the head of the queue is waiting on its schedule (it
    /// attempts for everyone, and the release wakes it). Never for the head itself.
    pub(crate) fn may_skip(&mut self) -> bool {
        let Some(place) = &self.place else {
            return false;
        };
        if place.is_head() {
            return false;
        }
        let now = place.attempts(self.mode);
        let attempted = now != self.seen_attempts;
        self.seen_attempts = now;
        attempted || place.head_on_schedule(self.mode)
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        // The retry's duplicate first: no guard is handed out, and no lock released, while
        // a copy of the waiter's descriptor stays open.
        if let Some(retry) = &self.retry {
            retry.leave();
        }
        // The watch first: its instance may go back to the pool, which the departure of
        // the process's last waiter (dropping the place) then empties.
        self.watch = None;
        self.own = None;
        self.place = None;
    }
}

/// Arms a watch on `path` (in the blocking-pool job, before the attempt it precedes), for
/// the release of a soft lock's marker or of an OS lock.
/// A close wakes the waiter only if `gate` ([`Waiter::gate`]) says so.
pub(crate) fn arm(
    path: &Path,
    soft: bool,
    gate: Option<watcher::Gate>,
) -> std::io::Result<Subscription> {
    let release = if soft {
        Release::Unlink
    } else {
        Release::Close
    };
    watcher::watch(path, release, gate)
}

#[cfg(not(test))]
fn watches_disabled() -> bool {
    false
}

/// Tests that prove the in-process queue alone switch the watch off for their thread.
#[cfg(test)]
fn watches_disabled() -> bool {
    tests::NO_WATCH.get()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys;
    use std::cell::Cell;

    thread_local! {
        /// Set by tests that prove the in-process queue alone (the watch would also wake).
        pub(super) static NO_WATCH: Cell<bool> = const { Cell::new(false) };
    }

    /// Under paused time (a current-thread runtime: every waiter runs on this thread), with
    /// no file watch: a release in this process wakes its waiters through the queue alone,
    /// in arrival order, with the clock frozen (no backoff timer can fire).
    #[tokio::test(start_paused = true)]
    async fn the_queue_alone_hands_the_lock_over_in_arrival_order() {
        NO_WATCH.set(true);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.lock");
        let guard = crate::FileLock::new(&path).acquire().await.unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut tasks = Vec::new();
        for id in 0..3 {
            let lock = crate::FileLock::builder(&path).poll_interval(LONG).build();
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                let held = lock.acquire().await.unwrap();
                tx.send(id).unwrap();
                drop(held);
            }));
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        let order = tokio::task::spawn_blocking(move || {
            drop(guard);
            (0..3)
                .map(|_| rx.recv_timeout(Duration::from_secs(30)))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .unwrap();
        assert_eq!(order, Ok(vec![0, 1, 2]));
        for task in tasks {
            task.await.unwrap();
        }
    }

    const LONG: Duration = Duration::from_secs(3600);
    /// A real-time wait that a test allows: a wake-up that never comes ends it with
    /// `Woke::Timer`, which fails the test, after this long (not after an hour).
    const BOUND: Duration = Duration::from_secs(30);
    const HEAD_FOLLOWER_SHARED: [LockMode; 3] =
        [LockMode::Exclusive, LockMode::Exclusive, LockMode::Shared];

    /// Waiters in `modes` lined up, in that order, on a new file `name` in `dir`.
    fn lined_up(dir: &tempfile::TempDir, name: &str, modes: &[LockMode]) -> Vec<Waiter> {
        let path: Arc<Path> = Arc::from(dir.path().join(name));
        let file = std::fs::File::create(&path).unwrap();
        let id = sys::inspect(&file).unwrap().id;
        modes
            .iter()
            .map(|&mode| {
                let mut waiter = Waiter::new(path.clone(), mode);
                waiter.busy(Some(id));
                waiter
            })
            .collect()
    }

    /// The head of a new queue with its watch armed.
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
    async fn armed_head(dir: &tempfile::TempDir, name: &str) -> Waiter {
        let mut waiter = lined_up(dir, name, &[LockMode::Exclusive]).remove(0);
        let path = waiter.wants_watch().expect("the head wants a watch");
        let watch = tokio::task::spawn_blocking(move || arm(&path, false, None))
            .await
            .unwrap();
        waiter.armed(Some(watch));
        assert!(waiter.wants_watch().is_none());
        waiter
    }

    /// The head of a new queue with its watch armed as the async driver arms it: gated by
    /// its place in the line (`fair`, if any) and its retry.
    #[cfg(target_os = "linux")]
    async fn gated_head(dir: &tempfile::TempDir, name: &str, fair: Option<Fair>) -> Waiter {
        let mut waiter = lined_up(dir, name, &[LockMode::Exclusive]).remove(0);
        let gate = waiter.gate(fair.as_ref());
        waiter.put_fair(fair);
        let path = waiter.path.clone();
        let watch = tokio::task::spawn_blocking(move || arm(&path, false, Some(gate)))
            .await
            .unwrap();
        waiter.armed(Some(watch));
        waiter
    }

    /// Whether an exclusive lock call on `file` wins.
    #[cfg(target_os = "linux")]
    fn locks(file: &std::fs::File) -> bool {
        matches!(
            sys::try_lock(file, LockMode::Exclusive),
            sys::TryLock::Acquired
        )
    }

    /// Under paused time a wait that no wake-up ends returns `Timer` at once (the clock
    /// jumps), so `Signal` proves the wake-up.
    #[tokio::test(start_paused = true)]
    async fn a_release_during_the_attempt_still_wakes_the_waiter() {
        let dir = tempfile::tempdir().unwrap();
        let mut waiter = lined_up(&dir, "a.lock", &[LockMode::Exclusive]).remove(0);
        let id = waiter.place.as_ref().unwrap().file();
        assert_eq!(
            waiter.wait(LONG, true).await.unwrap(),
            Woke::Timer,
            "nothing happened yet"
        );
        waiter.attempt_started();
        // ... the attempt runs; the holder releases meanwhile ...
        super::super::released(id);
        assert_eq!(waiter.wait(LONG, true).await.unwrap(), Woke::Signal);
        assert_eq!(waiter.wait(LONG, true).await.unwrap(), Woke::Timer);
    }

    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
    #[tokio::test(start_paused = true)]
    async fn a_close_during_the_attempt_fires_the_watch_at_the_next_wait() {
        let dir = tempfile::tempdir().unwrap();
        let mut waiter = armed_head(&dir, "b.lock").await;
        // A holder elsewhere releases (closes its descriptor) while the attempt runs.
        watcher::release_elsewhere(&dir.path().join("b.lock"));
        watcher::flush();
        assert_eq!(
            waiter.wait(LONG, true).await.unwrap(),
            Woke::Signal,
            "watch event lost"
        );
        assert_eq!(
            waiter.wait(LONG, true).await.unwrap(),
            Woke::Timer,
            "events are consumed"
        );
    }

    /// (Not on macOS: there the unlock itself fires the watch, see the next test.)
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    #[tokio::test(start_paused = true)]
    async fn descriptors_kept_open_by_other_waiters_do_not_fire_the_watch() {
        let dir = tempfile::tempdir().unwrap();
        let mut waiter = armed_head(&dir, "c.lock").await;
        // Another waiter opens the file and keeps it open between its attempts.
        let other = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.path().join("c.lock"))
            .unwrap();
        assert!(matches!(
            sys::try_lock(&other, LockMode::Exclusive),
            sys::TryLock::Acquired
        ));
        assert!(matches!(sys::unlock(&other), Ok(())));
        watcher::flush();
        assert_eq!(waiter.wait(LONG, true).await.unwrap(), Woke::Timer);
        drop(other);
        watcher::flush();
        assert_eq!(waiter.wait(LONG, true).await.unwrap(), Woke::Signal);
    }

    /// macOS reports an `flock` unlock itself (`NOTE_FUNLOCK`), even while the holder keeps
    /// its descriptor open; a waiter's failed attempt on its kept descriptor fires nothing.
    #[cfg(target_os = "macos")]
    #[tokio::test(start_paused = true)]
    async fn on_macos_an_unlock_without_a_close_fires_the_watch() {
        let dir = tempfile::tempdir().unwrap();
        let mut waiter = armed_head(&dir, "m.lock").await;
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(dir.path().join("m.lock"))
                .unwrap()
        };
        let holder = open();
        assert!(matches!(
            sys::try_lock(&holder, LockMode::Exclusive),
            sys::TryLock::Acquired
        ));
        let other = open();
        assert!(matches!(
            sys::try_lock(&other, LockMode::Exclusive),
            sys::TryLock::Contended
        ));
        watcher::flush();
        assert_eq!(waiter.wait(LONG, true).await.unwrap(), Woke::Timer);
        assert!(matches!(sys::unlock(&holder), Ok(())));
        watcher::flush();
        assert_eq!(waiter.wait(LONG, true).await.unwrap(), Woke::Signal);
        drop((holder, other));
    }

    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
    #[tokio::test(start_paused = true)]
    async fn a_storm_of_events_that_are_not_releases_cannot_make_a_waiter_spin() {
        let dir = tempfile::tempdir().unwrap();
        let mut waiter = armed_head(&dir, "storm.lock").await;
        let id = waiter.place.as_ref().unwrap().file();
        assert_eq!(storm(&mut waiter, id, 100).await, MAX_WATCH_MISSES);
        // The storm's last event came after the wait that ignored the watch began.
        assert_eq!(
            waiter.wait(LONG, true).await.unwrap(),
            Woke::Signal,
            "events were kept"
        );
    }

    /// Another program takes and releases the lock at `waiter`'s file (`id`) up to `events`
    /// times, each event ending a wait whose attempt finds the lock busy, until a wait
    /// ignores the watch: returns the waits the events ended. The wait that ignored the
    /// watch lasts [`STORM_PAUSE`], not the schedule's sleep.
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
    async fn storm(waiter: &mut Waiter, id: FileId, events: u32) -> u32 {
        let path = waiter.path.clone();
        for signals in 0..events {
            watcher::release_elsewhere(&path);
            watcher::flush();
            let start = tokio::time::Instant::now();
            if waiter.wait(LONG, true).await.unwrap() == Woke::Timer {
                assert_eq!(start.elapsed(), STORM_PAUSE);
                return signals;
            }
            waiter.busy(Some(id)); // the attempt found the lock busy
        }
        events
    }

    /// An async waiter armed as the driver arms it ([`arm`] with its place's gate) sleeps
    /// through the closes that come while an earlier waiter is in the line, and is woken
    /// by the first one after that waiter left.
    #[cfg(target_os = "linux")]
    #[tokio::test(start_paused = true)]
    async fn a_waiter_behind_an_earlier_one_in_the_line_sleeps_through_releases() {
        let dir = tempfile::tempdir().unwrap();
        let path: Arc<Path> = Arc::from(dir.path().join("behind.lock"));
        let mut early = Fair::new(path.clone(), LockMode::Exclusive, 0o600, true);
        early.busy(false);
        let mut fair = Fair::new(path, LockMode::Exclusive, 0o600, true);
        fair.busy(false);
        let mut waiter = gated_head(&dir, "behind.lock", Some(fair)).await;
        watcher::release_elsewhere(&waiter.path);
        watcher::flush();
        assert_eq!(waiter.wait(LONG, true).await.unwrap(), Woke::Timer);
        early.won();
        watcher::release_elsewhere(&waiter.path);
        watcher::flush();
        assert_eq!(waiter.wait(LONG, true).await.unwrap(), Woke::Signal);
    }

    /// The watcher thread makes the waiter's lock call at each close (as the async driver
    /// arms it: the gate, then [`Waiter::retry_on`] with the descriptor its attempt keeps
    /// open): closes while the lock is held elsewhere leave the task asleep; the release
    /// wakes it with the lock already won for its descriptor.
    #[cfg(target_os = "linux")]
    #[tokio::test(start_paused = true)]
    async fn the_watcher_thread_retries_and_wakes_the_waiter_only_when_it_won() {
        let dir = tempfile::tempdir().unwrap();
        let mut waiter = gated_head(&dir, "retry.lock", None).await;
        let path = waiter.path.clone();
        let open = || std::fs::File::open(&*path);
        let holder = open().unwrap();
        assert!(locks(&holder));
        let own = open().unwrap();
        let id = sys::inspect(&own).unwrap().id;
        waiter.retry_on(Some((&own, id)));
        for _ in 0..3 {
            // Another program opens and closes the file: no release.
            drop(open().unwrap());
            watcher::flush();
            assert_eq!(waiter.wait(LONG, true).await.unwrap(), Woke::Timer);
        }
        drop(holder);
        watcher::flush();
        assert_eq!(waiter.wait(LONG, true).await.unwrap(), Woke::Signal);
        assert!(!locks(&open().unwrap()), "won for the waiter's descriptor");
        assert!(locks(&own), "its own lock call finds it held");
        drop(waiter);
        drop(own);
        assert!(locks(&open().unwrap()), "nothing left held");
    }

    /// A waiter not in the line yet (its attempt asks the line and may let an earlier
    /// waiter go first) is woken, and no lock call is made for it: it must not hold the
    /// lock while it lets another go first.
    #[cfg(target_os = "linux")]
    #[tokio::test(start_paused = true)]
    async fn no_lock_call_is_made_for_a_waiter_that_may_let_another_go_first() {
        let dir = tempfile::tempdir().unwrap();
        let path: Arc<Path> = Arc::from(dir.path().join("newcomer.lock"));
        let fair = Fair::new(path, LockMode::Exclusive, 0o600, true);
        let mut waiter = gated_head(&dir, "newcomer.lock", Some(fair)).await;
        let own = std::fs::File::open(&*waiter.path).unwrap();
        let id = sys::inspect(&own).unwrap().id;
        waiter.retry_on(Some((&own, id)));
        watcher::release_elsewhere(&waiter.path);
        watcher::flush();
        assert_eq!(waiter.wait(LONG, true).await.unwrap(), Woke::Signal);
        let other = std::fs::File::open(&*waiter.path).unwrap();
        assert!(locks(&other), "the lock was left free");
    }

    /// A waiter that this crate's newcomers may still overtake (`fair::OVERTAKE_FOR`)
    /// counts no misses: its events were releases, taken by others. Past that, a storm is
    /// cut short as before.
    #[cfg(target_os = "linux")]
    #[tokio::test(start_paused = true)]
    async fn events_that_others_took_the_lock_on_are_no_storm() {
        let dir = tempfile::tempdir().unwrap();
        let mut waiter = armed_head(&dir, "overtaken.lock").await;
        let id = waiter.place.as_ref().unwrap().file();
        let mut fair = Fair::new(waiter.path.clone(), LockMode::Exclusive, 0o600, true);
        fair.busy(false);
        waiter.put_fair(Some(fair));
        assert_eq!(
            storm(&mut waiter, id, 3 * MAX_WATCH_MISSES).await,
            3 * MAX_WATCH_MISSES
        );
        tokio::time::advance(crate::wake::fair::OVERTAKE_FOR).await;
        assert_eq!(storm(&mut waiter, id, 100).await, MAX_WATCH_MISSES);
    }

    #[tokio::test(start_paused = true)]
    async fn followers_skip_a_timed_attempt_that_another_waiter_just_made() {
        let dir = tempfile::tempdir().unwrap();
        let [mut head, mut follower, mut shared] = lined_up(&dir, "d.lock", &HEAD_FOLLOWER_SHARED)
            .try_into()
            .unwrap();
        // Nobody else attempted: the follower attempts itself.
        assert!(!follower.may_skip());
        head.attempt_started();
        assert!(follower.may_skip(), "the head's attempt answers for it");
        assert!(!follower.may_skip(), "but not twice");
        assert!(!shared.may_skip(), "another mode's attempt does not count");
        assert!(!head.may_skip(), "the head never skips");
    }

    #[tokio::test(start_paused = true)]
    async fn followers_leave_attempts_to_a_head_on_schedule_in_their_mode_only() {
        let dir = tempfile::tempdir().unwrap();
        let [mut head, mut follower, mut shared] = lined_up(&dir, "e.lock", &HEAD_FOLLOWER_SHARED)
            .try_into()
            .unwrap();
        // The head now waits, due to attempt in 10 s.
        let head_waits = head.wait(Duration::from_secs(10), true);
        tokio::pin!(head_waits);
        assert!(futures_poll(head_waits.as_mut()).is_pending());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(follower.may_skip(), "the head attempts on time for it");
        assert!(
            !shared.may_skip(),
            "an exclusive head does not answer for a shared waiter"
        );
        // The head's future is not polled any more: once it is overdue, the follower
        // attempts itself.
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(!follower.may_skip());
    }

    /// The sync facade's wait is cut short by a release in this process: a parked thread is
    /// unparked (a wait that nothing cuts short ends with `Timer` after [`BOUND`]).
    #[test]
    fn a_release_in_this_process_unparks_a_sync_waiter() {
        let dir = tempfile::tempdir().unwrap();
        let mut waiter = lined_up(&dir, "sync.lock", &[LockMode::Exclusive]).remove(0);
        let id = waiter.place.as_ref().unwrap().file();
        let (tx, rx) = std::sync::mpsc::channel();
        let parked = std::thread::spawn(move || {
            tx.send(()).unwrap();
            waiter.wait_blocking(BOUND, true)
        });
        rx.recv().unwrap();
        // Before or during the park: the wake-up is kept until the waiter looks.
        super::super::released(id);
        assert_eq!(parked.join().unwrap(), Woke::Signal);
    }

    /// ... and by the watcher, when another process closes the lock file (its release).
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
    #[test]
    fn a_close_elsewhere_unparks_a_sync_waiter() {
        let dir = tempfile::tempdir().unwrap();
        let mut waiter = lined_up(&dir, "sync-watch.lock", &[LockMode::Exclusive]).remove(0);
        let path = waiter.wants_watch().expect("the head wants a watch");
        waiter.armed(Some(arm(&path, false, None)));
        let parked = std::thread::spawn(move || waiter.wait_blocking(BOUND, true));
        watcher::release_elsewhere(&path);
        assert_eq!(parked.join().unwrap(), Woke::Signal);
    }

    /// The sync facade arms its watch on a notifier of its own (not the watcher thread's),
    /// so the kernel wakes the waiting thread itself: a close elsewhere ends its wait.
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
    #[test]
    fn a_close_elsewhere_wakes_a_sync_waiter_through_its_own_notifier() {
        let dir = tempfile::tempdir().unwrap();
        let mut waiter = lined_up(&dir, "own-watch.lock", &[LockMode::Exclusive]).remove(0);
        let path = waiter.wants_watch().expect("the head wants a watch");
        waiter.arm_here(&path, false);
        assert!(waiter.own.is_some() && waiter.watch.is_none());
        assert!(waiter.wants_watch().is_none(), "armed");
        let parked = std::thread::spawn(move || waiter.wait_blocking(BOUND, true));
        watcher::release_elsewhere(&path);
        assert_eq!(parked.join().unwrap(), Woke::Signal);
    }

    /// ... and a release in this process ends it too (through the waker, which interrupts
    /// the notifier's wait).
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
    #[test]
    fn a_release_in_this_process_wakes_a_sync_waiter_on_its_own_notifier() {
        let dir = tempfile::tempdir().unwrap();
        let mut waiter = lined_up(&dir, "own-release.lock", &[LockMode::Exclusive]).remove(0);
        let path = waiter.wants_watch().expect("the head wants a watch");
        waiter.arm_here(&path, false);
        assert!(waiter.own.is_some());
        let id = waiter.place.as_ref().unwrap().file();
        let (tx, rx) = std::sync::mpsc::channel();
        let parked = std::thread::spawn(move || {
            tx.send(()).unwrap();
            waiter.wait_blocking(BOUND, true)
        });
        rx.recv().unwrap();
        super::super::released(id);
        assert_eq!(parked.join().unwrap(), Woke::Signal);
    }

    /// A cancel token ends a sync wait at once, parked or on its own notifier (a wait that
    /// nothing cuts short ends with `Timer` after [`BOUND`]).
    #[test]
    fn a_cancel_ends_a_sync_wait_at_once() {
        let dir = tempfile::tempdir().unwrap();
        for own in [false, true] {
            let cancel = super::super::Cancel::default();
            let mut waiter = lined_up(&dir, &format!("cancel-{own}.lock"), &[LockMode::Exclusive])
                .remove(0)
                .with_cancel(Some(&cancel));
            if own && crate::sys::FILE_WATCH {
                let path = waiter.wants_watch().expect("the head wants a watch");
                waiter.arm_here(&path, false);
                assert!(waiter.own.is_some());
            }
            let (tx, rx) = std::sync::mpsc::channel();
            let parked = std::thread::spawn(move || {
                tx.send(()).unwrap();
                waiter.wait_blocking(BOUND, true)
            });
            rx.recv().unwrap();
            cancel.cancel();
            assert_eq!(
                parked.join().unwrap(),
                Woke::Cancelled,
                "own notifier: {own}"
            );
        }
    }

    /// ... and an async wait.
    #[tokio::test]
    async fn a_cancel_ends_an_async_wait_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let cancel = super::super::Cancel::default();
        let mut waiter = lined_up(&dir, "cancel-async.lock", &[LockMode::Exclusive])
            .remove(0)
            .with_cancel(Some(&cancel));
        let waiting = tokio::spawn(async move { waiter.wait(BOUND, true).await.unwrap() });
        tokio::task::yield_now().await;
        cancel.cancel();
        assert_eq!(waiting.await.unwrap(), Woke::Cancelled);
    }

    /// Polls a future once with a no-op waker.
    fn futures_poll<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        f.poll(&mut cx)
    }
}

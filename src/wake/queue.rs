//! The in-process queue of the waiters on one lock file, keyed by the file's identity.
//!
//! Waiters join in arrival order. A release of the file by this process wakes the head of
//! the queue (and only it), so one waiter at a time retries the OS; when the head leaves
//! (won, gave up, cancelled), the next one becomes the head and is woken to take over.
//! A wake-up that comes while its waiter is busy (attempting) is remembered until the
//! waiter looks: it is never lost.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

use crate::LockMode;
use crate::sys::FileId;

/// The files that have waiters in this process. Few at a time: a vector beats a map.
static SLOTS: Mutex<Vec<Arc<Slot>>> = Mutex::new(Vec::new());

/// `SLOTS.len()`, readable without the mutex: a release with no waiter anywhere in this
/// process costs one atomic load.
static WAITED_FILES: AtomicUsize = AtomicUsize::new(0);

fn slots() -> MutexGuard<'static, Vec<Arc<Slot>>> {
    // Nothing panics while holding this mutex; recover the data if something ever did.
    crate::sync::lock(&SLOTS)
}

/// The waiters of one lock file.
#[derive(Debug)]
struct Slot {
    /// The path its first waiter named the file by: later acquires through the same path
    /// may line up without a first attempt of their own ([`Place::follow`]).
    path: Arc<Path>,
    queue: Mutex<Queue>,
    /// Attempts started by this process's waiters, per mode (exclusive, shared).
    attempts: [AtomicU64; 2],
}

#[derive(Debug)]
struct Queue {
    /// The file waited for. It changes when the lock file is replaced (a soft lock's
    /// marker is a new file each time it is taken): see [`Place::rekey`].
    file: FileId,
    /// In arrival order; tickets only grow, so the queue stays sorted by ticket.
    entries: VecDeque<Entry>,
    next_ticket: u64,
    /// When the head means to attempt next (set as it starts waiting), and in which mode:
    /// until then, the waiters behind it in that mode leave the attempts to it.
    head_due: Option<(Instant, LockMode)>,
}

#[derive(Debug)]
struct Entry {
    ticket: u64,
    mode: LockMode,
    /// Woken and not yet seen by its waiter.
    woken: bool,
    waker: Option<Waker>,
}

impl Slot {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        crate::sync::lock(&self.queue)
    }

    fn file(&self) -> FileId {
        self.queue().file
    }

    /// Wakes the head of the queue, if any.
    fn wake_head(&self) {
        let waker = {
            let mut queue = self.queue();
            let Some(head) = queue.entries.front_mut() else {
                return;
            };
            head.woken = true;
            head.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Queue {
    /// Appends a waiter.
    fn push(&mut self, mode: LockMode) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.entries.push_back(Entry {
            ticket,
            mode,
            woken: false,
            waker: None,
        });
        ticket
    }

    fn position(&self, ticket: u64) -> Option<usize> {
        self.entries
            .binary_search_by_key(&ticket, |e| e.ticket)
            .ok()
    }
}

fn mode_index(mode: LockMode) -> usize {
    match mode {
        LockMode::Exclusive => 0,
        LockMode::Shared => 1,
    }
}

/// A waiter's place in the queue of one file. Dropping it leaves the queue (and wakes the
/// next head if it was the head).
#[derive(Debug)]
pub(crate) struct Place {
    slot: Arc<Slot>,
    ticket: u64,
}

impl Place {
    /// Joins the queue of `file` (reached through `path`) at its end, after an attempt in
    /// `mode` found the lock busy. A waiter that joins an empty queue is the head; a release
    /// that came between its failed attempt and now is seen by its next attempt (armed
    /// first), after the first sleep of its schedule.
    pub(crate) fn join(file: FileId, path: &Arc<Path>, mode: LockMode) -> Place {
        let mut slots = slots();
        let slot = match slots.iter().find(|s| s.file() == file) {
            Some(slot) => slot.clone(),
            None => {
                let slot = Arc::new(Slot {
                    path: path.clone(),
                    queue: Mutex::new(Queue {
                        file,
                        entries: VecDeque::new(),
                        next_ticket: 0,
                        head_due: None,
                    }),
                    attempts: [AtomicU64::new(0), AtomicU64::new(0)],
                });
                slots.push(slot.clone());
                WAITED_FILES.store(slots.len(), Ordering::SeqCst);
                slot
            }
        };
        // Joined under the `SLOTS` lock, so a departing last waiter cannot remove the slot
        // in between.
        let ticket = slot.queue().push(mode);
        drop(slots);
        Place { slot, ticket }
    }

    /// Lines up, before any attempt of its own, behind the waiters of this process that
    /// wait through the same `path` in the same `mode`, if there are any: the lock is held,
    /// and their attempts answer for this waiter too. So a crowd of acquires on one lock
    /// makes one attempt, not one each, and takes its turn in arrival order.
    pub(crate) fn follow(path: &Path, mode: LockMode) -> Option<Place> {
        if WAITED_FILES.load(Ordering::SeqCst) == 0 {
            return None; // the uncontended path takes no lock
        }
        let slots = slots();
        let slot = slots.iter().find(|s| *s.path == *path)?;
        let ticket = {
            let mut queue = slot.queue();
            if !queue.entries.iter().any(|e| e.mode == mode) {
                return None;
            }
            queue.push(mode)
        };
        Some(Place {
            slot: slot.clone(),
            ticket,
        })
    }

    /// This waiter's number in arrival order (used to spread the followers' timers).
    pub(crate) fn ticket(&self) -> u64 {
        self.ticket
    }

    /// The file this queue is for.
    pub(crate) fn file(&self) -> FileId {
        self.slot.file()
    }

    /// The lock file at the path is now `file` (it was replaced): the queue follows it,
    /// keeping everyone's place, unless another queue of this process waits for `file`
    /// already (then `false`: join that one).
    pub(crate) fn rekey(&self, file: FileId) -> bool {
        let slots = slots();
        if slots
            .iter()
            .any(|s| !Arc::ptr_eq(s, &self.slot) && s.file() == file)
        {
            return false;
        }
        self.slot.queue().file = file;
        true
    }

    /// `true` for the first waiter in the queue.
    pub(crate) fn is_head(&self) -> bool {
        self.slot.queue().entries.front().map(|e| e.ticket) == Some(self.ticket)
    }

    /// Ready once this waiter was woken (consuming the wake-up).
    pub(crate) fn poll_woken(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut queue = self.slot.queue();
        let Some(i) = queue.position(self.ticket) else {
            return Poll::Pending; // not reachable: a place is in its queue until dropped
        };
        let entry = &mut queue.entries[i];
        if entry.woken {
            entry.woken = false;
            return Poll::Ready(());
        }
        match &entry.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => entry.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The head starts waiting and means to attempt again by `due` (or earlier, when woken).
    pub(crate) fn head_waits_until(&self, due: Instant) {
        let mut queue = self.slot.queue();
        if let Some(head) = queue.entries.front().filter(|e| e.ticket == self.ticket) {
            queue.head_due = Some((due, head.mode));
        }
    }

    /// `true` while the head waits in `mode` and is on its schedule: its next attempt is
    /// not overdue (by more than a timer tick). A head whose future is not being polled
    /// falls behind, and then the others attempt themselves; a head in the other mode
    /// never answers for them (a shared waiter may get in while an exclusive one may not).
    pub(crate) fn head_on_schedule(&self, mode: LockMode) -> bool {
        /// Timer resolution plus the time to start an attempt.
        const GRACE: Duration = Duration::from_millis(2);
        let due = self.slot.queue().head_due;
        due.is_some_and(|(due, head_mode)| head_mode == mode && Instant::now() <= due + GRACE)
    }

    /// Counts an attempt in `mode` starting now; returns the count after it.
    pub(crate) fn attempt_started(&self, mode: LockMode) -> u64 {
        self.slot.attempts[mode_index(mode)].fetch_add(1, Ordering::SeqCst) + 1
    }

    /// How many attempts in `mode` this process's waiters on the file have started.
    pub(crate) fn attempts(&self, mode: LockMode) -> u64 {
        self.slot.attempts[mode_index(mode)].load(Ordering::SeqCst)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut slots = slots();
        let (was_head, empty) = {
            let mut queue = self.slot.queue();
            let was_head = queue.entries.front().map(|e| e.ticket) == Some(self.ticket);
            if let Some(i) = queue.position(self.ticket) {
                queue.entries.remove(i);
            }
            if was_head {
                queue.head_due = None;
            }
            (was_head, queue.entries.is_empty())
        };
        if empty {
            slots.retain(|s| !Arc::ptr_eq(s, &self.slot));
            WAITED_FILES.store(slots.len(), Ordering::SeqCst);
        }
        drop(slots);
        if was_head && !empty {
            // The next waiter takes over: it attempts (and arms its watch) at once.
            self.slot.wake_head();
        }
    }
}

/// This process released `file`: wakes the first of its waiters here, if any.
pub(crate) fn released(file: FileId) {
    if WAITED_FILES.load(Ordering::SeqCst) == 0 {
        return;
    }
    let slot = slots().iter().find(|s| s.file() == file).cloned();
    if let Some(slot) = slot {
        slot.wake_head();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::task::Wake;

    /// A waker that records whether it was woken.
    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn flag() -> (Arc<Flag>, Waker) {
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        (flag.clone(), Waker::from(flag))
    }

    /// A distinct file identity per test (the statics are shared by parallel tests).
    fn file_id(dir: &tempfile::TempDir, name: &str) -> (FileId, Arc<Path>) {
        let path: Arc<Path> = Arc::from(dir.path().join(name));
        let file = std::fs::File::create(&path).unwrap();
        (crate::sys::inspect(&file).unwrap().id, path)
    }

    const X: LockMode = LockMode::Exclusive;

    #[test]
    fn a_wake_up_while_the_waiter_is_busy_is_kept_until_it_looks() {
        let dir = tempfile::tempdir().unwrap();
        let (id, path) = file_id(&dir, "kept");
        let place = Place::join(id, &path, X);
        let (_, waker) = flag();
        let mut cx = Context::from_waker(&waker);
        assert!(place.poll_woken(&mut cx).is_pending());
        // The waiter is attempting (not polling) when the release comes.
        released(id);
        assert!(place.poll_woken(&mut cx).is_ready(), "wake-up lost");
        assert!(place.poll_woken(&mut cx).is_pending());
    }

    #[test]
    fn a_release_wakes_only_the_head_and_the_next_takes_over_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (id, path) = file_id(&dir, "fifo");
        let places: Vec<Place> = (0..3).map(|_| Place::join(id, &path, X)).collect();
        let flags: Vec<_> = (0..3).map(|_| flag()).collect();
        let poll = |i: usize| {
            let mut cx = Context::from_waker(&flags[i].1);
            places[i].poll_woken(&mut cx).is_ready()
        };
        assert_eq!([poll(0), poll(1), poll(2)], [false, false, false]);
        released(id);
        assert!(flags[0].0.0.load(Ordering::SeqCst) || poll(0));
        assert!(!flags[1].0.0.load(Ordering::SeqCst) && !flags[2].0.0.load(Ordering::SeqCst));
        assert_eq!([poll(1), poll(2)], [false, false]);
        let mut places = places.into_iter();
        drop(places.next()); // the head leaves (won, gave up or was cancelled)
        assert!(
            flags[1].0.0.load(Ordering::SeqCst),
            "the next head is woken"
        );
        assert!(!flags[2].0.0.load(Ordering::SeqCst));
    }

    #[test]
    fn the_last_waiter_to_leave_removes_the_files_queue() {
        let dir = tempfile::tempdir().unwrap();
        let (id, path) = file_id(&dir, "gone");
        let a = Place::join(id, &path, X);
        let b = Place::join(id, &path, X);
        assert!(Arc::ptr_eq(&a.slot, &b.slot));
        drop(a);
        assert!(b.is_head());
        drop(b);
        assert!(!slots().iter().any(|s| s.file() == id));
    }

    #[test]
    fn a_replaced_file_takes_the_queue_along_and_everyone_keeps_their_place() {
        let dir = tempfile::tempdir().unwrap();
        let (old, path) = file_id(&dir, "marker");
        let (new, _) = file_id(&dir, "next-marker");
        let head = Place::join(old, &path, X);
        let next = Place::join(old, &path, X);
        assert!(head.rekey(new));
        assert_eq!((head.file(), next.file()), (new, new));
        let (_, waker) = flag();
        let mut cx = Context::from_waker(&waker);
        assert!(head.poll_woken(&mut cx).is_pending());
        released(new);
        assert!(
            head.poll_woken(&mut cx).is_ready(),
            "releases of the new file wake it"
        );
        // A queue for the new file exists already: no rekey, the waiter moves there.
        let (other, _) = file_id(&dir, "other");
        let elsewhere = Place::join(other, &path, X);
        assert!(!head.rekey(other));
        drop(elsewhere);
    }

    #[test]
    fn acquires_through_a_waited_path_follow_without_a_first_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let (id, path) = file_id(&dir, "follow");
        assert!(
            Place::follow(&path, X).is_none(),
            "nobody waits yet: attempt"
        );
        let head = Place::join(id, &path, X);
        let follower = Place::follow(&path, X).expect("someone waits in this mode");
        assert!(Arc::ptr_eq(&head.slot, &follower.slot));
        assert!(!follower.is_head());
        assert!(
            Place::follow(&path, LockMode::Shared).is_none(),
            "a shared acquire may get in now: it attempts"
        );
        drop((head, follower));
        assert!(Place::follow(&path, X).is_none());
    }
}

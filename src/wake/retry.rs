//! An async waiter's retry, made by the watcher thread at the event that may be a release:
//! one `flock(LOCK_NB)` on a duplicate of the descriptor the waiter keeps open between
//! attempts (`sys::KEEP_OPEN_WHILE_WAITING`). The waiter's task is woken only when that
//! call wins the lock (or fails otherwise): a release that another process takes first,
//! the common case under contention, costs the task no wake-up.
//!
//! A lock won here belongs to the waiter's open file description, so the waiter's own
//! attempt, which follows its wake-up, finds it held (a `flock` on a description that holds
//! the lock succeeds) and goes on as after any won lock call: the identity check, the line,
//! the guard. Nothing else can own it: the duplicate exists only while the waiter waits on
//! that description ([`Retry::waits_on`]), is never used while the waiter attempts
//! ([`Retry::attempting`]), and is closed when the waiter leaves ([`Retry::leave`], also
//! when its acquire is dropped), before a guard is handed out. A waiter that gives up or
//! is cancelled closes both descriptors, which releases what the retry won.
//!
//! For an exclusive acquire of the OS lock only: a shared one may have to let an earlier
//! exclusive waiter go first even when its lock call would win (`fair::Turn::GoIfFree`).

use std::fs::File;
use std::sync::Mutex;

use crate::LockMode;
use crate::sync::lock;
use crate::sys::{self, FileId, TryLock};

/// The watcher thread's copy of a waiting acquire's descriptor.
#[derive(Debug, Default)]
pub(crate) struct Retry {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The duplicate, and the identity of the file it is open on.
    file: Option<(File, FileId)>,
    /// The waiter waits (does not attempt) on `file`.
    waiting: bool,
}

impl Retry {
    /// The waiter waits from now on `file` (identity `id`, open in the waiter's attempt),
    /// exclusively; `None`: it keeps no descriptor open, or waits for something else.
    pub(crate) fn waits_on(&self, file: Option<(&File, FileId)>) {
        let mut state = lock(&self.state);
        state.waiting = false;
        let Some((file, id)) = file else {
            state.file = None;
            return;
        };
        if state.file.as_ref().is_none_or(|(_, known)| *known != id) {
            // A new description (the file was replaced): closing the old duplicate is safe,
            // as the waiter closed its original already.
            state.file = file.try_clone().ok().map(|copy| (copy, id));
        }
        state.waiting = state.file.is_some();
    }

    /// The waiter attempts (or stops waiting): no retry here until it waits again.
    pub(crate) fn attempting(&self) {
        lock(&self.state).waiting = false;
    }

    /// The waiter is done: closes the duplicate.
    pub(crate) fn leave(&self) {
        *lock(&self.state) = State::default();
    }

    /// On the watcher thread, at an event that may be a release: `false` when the retry
    /// found the lock busy (the waiter sleeps on), else `true` (wake it: the lock is its
    /// own now, or there was nothing to retry, or its own attempt reports the error).
    pub(crate) fn wakes(&self) -> bool {
        let state = lock(&self.state);
        let Some((file, _)) = state.file.as_ref().filter(|_| state.waiting) else {
            return true;
        };
        !matches!(sys::try_lock(file, LockMode::Exclusive), TryLock::Contended)
    }

    #[cfg(all(test, unix))]
    fn holds_copy(&self) -> bool {
        lock(&self.state).file.is_some()
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn open(path: &std::path::Path) -> (File, FileId) {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap();
        let id = sys::inspect(&file).unwrap().id;
        (file, id)
    }

    fn locks(file: &File) -> bool {
        matches!(sys::try_lock(file, LockMode::Exclusive), TryLock::Acquired)
    }

    #[test]
    fn the_retry_wakes_the_waiter_only_when_it_wins_and_the_win_is_the_waiters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.lock");
        let (holder, _) = open(&path);
        assert!(locks(&holder));
        let (waiting, id) = open(&path);
        let retry = Retry::default();
        assert!(retry.wakes(), "nothing to retry: wake");
        retry.waits_on(Some((&waiting, id)));
        assert!(!retry.wakes(), "held elsewhere: sleep on");
        drop(holder);
        assert!(retry.wakes(), "won");
        // The lock is the waiter's description's: its own attempt finds it held, and
        // nobody else gets it.
        assert!(locks(&waiting));
        let (other, _) = open(&path);
        assert!(!locks(&other));
        // The waiter leaves (gives up, cancelled): both descriptors closed, the lock free.
        retry.leave();
        drop(waiting);
        assert!(locks(&other));
    }

    #[test]
    fn no_retry_while_the_waiter_attempts_nor_after_it_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.lock");
        let (waiting, id) = open(&path);
        let retry = Retry::default();
        retry.waits_on(Some((&waiting, id)));
        retry.attempting();
        assert!(retry.wakes());
        let (other, _) = open(&path);
        assert!(locks(&other), "the retry made no lock call");
        drop(other);
        retry.waits_on(None);
        assert!(!retry.holds_copy(), "no descriptor kept: no copy");
        retry.waits_on(Some((&waiting, id)));
        retry.leave();
        assert!(!retry.holds_copy());
        assert!(retry.wakes());
    }

    #[test]
    fn a_new_description_replaces_the_copy_and_frees_what_it_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.lock");
        let (first, first_id) = open(&path);
        let (first_elsewhere, _) = open(&path);
        let retry = Retry::default();
        retry.waits_on(Some((&first, first_id)));
        assert!(retry.wakes(), "won on the first file");
        assert!(!locks(&first_elsewhere));
        // The file is replaced at the path: the waiter closes it and opens the new one.
        std::fs::remove_file(&path).unwrap();
        drop(first);
        let (second, second_id) = open(&path);
        retry.waits_on(Some((&second, second_id)));
        assert!(
            locks(&first_elsewhere),
            "the old copy is closed: its lock with it"
        );
        assert!(retry.wakes(), "retries on the new file");
        assert!(locks(&second));
    }
}

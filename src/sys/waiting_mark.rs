//! Linux, local file systems: a waiter of this crate marks the lock file itself as waited
//! for, so that a holder can tell at release whether to close its descriptor (which is
//! what wakes a waiter in another process: inotify reports a close, not an unlock) or keep
//! it open for its handle's next acquire.
//!
//! The mark is an open-file-description read lock (`F_OFD_SETLK`) on one byte far past any
//! content, [`MARK_AT`], taken on the descriptor a waiter keeps open between attempts, and
//! dropped when it wins (or with the descriptor: when it gives up, is cancelled or dies).
//! On Linux these byte-range locks and `flock` locks are independent, so the mark never
//! conflicts with the lock itself, nor with Python filelock, `flock(1)` or cargo. On a
//! network file system `flock` may be emulated with byte-range locks, where a mark would
//! conflict: marks are only made on file systems known to be local (the caller's check).
//! The mark is a hint, like every wake-up: a missing one costs a waiter its prompt
//! wake-up (it falls back to its timed attempts), never exclusion.

use std::fs::File;
use std::io;

use super::queue_file::{conflicts, set};

/// The byte that stands for "waited for": far past any content a lock file may have.
const MARK_AT: u64 = 1 << 62;

/// Marks `file` (a waiter's open lock file) as waited for; `Ok(false)` when a conflicting
/// byte-range lock of another program covers the byte (then there is no mark).
pub(crate) fn mark(file: &File) -> io::Result<bool> {
    set(file, libc::F_RDLCK, MARK_AT, 1)
}

/// Withdraws this descriptor's mark (the waiter won: it waits no more).
pub(crate) fn unmark(file: &File) -> io::Result<()> {
    set(file, libc::F_UNLCK, MARK_AT, 1).map(|_| ())
}

/// Whether a waiter other than `file`'s own description marked the lock file (or some
/// other program holds a byte-range lock over the mark's byte: then, to be safe, yes).
pub(crate) fn marked_by_another(file: &File) -> io::Result<bool> {
    conflicts(file, libc::F_WRLCK, MARK_AT, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock_file() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.lock");
        std::fs::write(&path, b"").unwrap();
        (dir, path)
    }

    #[test]
    fn a_mark_is_seen_by_other_descriptions_until_withdrawn_or_closed() {
        let (_dir, path) = lock_file();
        let holder = File::open(&path).unwrap();
        let waiter = File::open(&path).unwrap();
        assert!(!marked_by_another(&holder).unwrap());
        assert!(mark(&waiter).unwrap());
        assert!(marked_by_another(&holder).unwrap());
        // Its own mark does not count for the waiter.
        assert!(!marked_by_another(&waiter).unwrap());
        unmark(&waiter).unwrap();
        assert!(!marked_by_another(&holder).unwrap());
        assert!(mark(&waiter).unwrap());
        let second = File::open(&path).unwrap();
        assert!(
            mark(&second).unwrap(),
            "marks are shared: many waiters mark at once"
        );
        drop(waiter);
        assert!(marked_by_another(&holder).unwrap());
        drop(second);
        assert!(!marked_by_another(&holder).unwrap());
    }

    #[test]
    fn a_mark_and_the_flock_lock_do_not_conflict() {
        let (_dir, path) = lock_file();
        let holder = File::open(&path).unwrap();
        let waiter = File::open(&path).unwrap();
        assert!(mark(&waiter).unwrap());
        let exclusive = crate::LockMode::Exclusive;
        assert!(matches!(
            crate::sys::try_lock(&holder, exclusive),
            crate::sys::TryLock::Acquired
        ));
        assert!(
            matches!(
                crate::sys::try_lock(&waiter, exclusive),
                crate::sys::TryLock::Contended
            ),
            "the flock lock still excludes"
        );
        assert!(mark(&File::open(&path).unwrap()).unwrap());
        crate::sys::unlock(&holder).unwrap();
        assert!(matches!(
            crate::sys::try_lock(&waiter, exclusive),
            crate::sys::TryLock::Acquired
        ));
    }
}

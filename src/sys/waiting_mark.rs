//! Linux, local file systems: a waiter of this crate marks the lock file itself as waited
//! for, so that a holder can tell at release whether to close its descriptor (which is
//! what wakes a waiter in another process: inotify reports a close, not an unlock) or keep
//! it open for its handle's next acquire.
//!
//! The mark is an open-file-description read lock (`F_OFD_SETLK`) on one byte far past any
//! content, one byte per process (see [`own_byte`]), taken on the descriptor a waiter keeps
//! open between attempts, and dropped when it wins (or with the descriptor: when it gives
//! up, is cancelled or dies). A holder looks for the marks of other processes only: a
//! waiter in its own process is woken by the release itself, so a close would only cost
//! (it wakes the watcher thread for nothing).
//! On Linux these byte-range locks and `flock` locks are independent, so the mark never
//! conflicts with the lock itself, nor with Python filelock, `flock(1)` or cargo. On a
//! network file system `flock` may be emulated with byte-range locks, where a mark would
//! conflict: marks are only made on file systems known to be local (the caller's check).
//! The mark is a hint, like every wake-up: a missing one costs a waiter its prompt
//! wake-up (it falls back to its timed attempts), never exclusion.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use super::queue_file::{conflict_at, conflicts, set};

/// Where the marks begin: far past any content a lock file may have.
const MARKS_AT: u64 = 1 << 62;

/// How many bytes the marks may use: one per process (see [`own_byte`]).
const MARKS_SPAN: u64 = 1 << 40;

/// Bits of a process id (Linux's `pid_max` is at most 2^22).
const PID_BITS: u32 = 22;

/// This process's mark byte, and the process id it was computed for (a fork gets its own).
static OWN: AtomicU64 = AtomicU64::new(0);

/// This process's byte among the marks: its process id, above it a hash of its PID
/// namespace (processes in two containers may share an id and a lock file). A holder
/// passes over the marks of its own process: its waiters are woken by the release itself.
fn own_byte() -> u64 {
    let pid = u64::from(std::process::id());
    let cached = OWN.load(Ordering::Relaxed);
    if cached != 0 && cached & ((1 << PID_BITS) - 1) == pid {
        return MARKS_AT + cached;
    }
    let namespace = std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .and_then(|link| {
            let link = link.to_string_lossy().into_owned();
            link.strip_prefix("pid:[")?
                .strip_suffix(']')?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    let spread = namespace.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - (40 - PID_BITS));
    let offset = (spread << PID_BITS | pid) & (MARKS_SPAN - 1);
    OWN.store(offset, Ordering::Relaxed);
    MARKS_AT + offset
}

/// Marks `file` (a waiter's open lock file) as waited for by this process; `Ok(false)`
/// when a conflicting byte-range lock of another program covers the byte (then there is
/// no mark).
pub(crate) fn mark(file: &File) -> io::Result<bool> {
    set(file, libc::F_RDLCK, own_byte(), 1)
}

/// Withdraws this descriptor's mark (the waiter won: it waits no more).
pub(crate) fn unmark(file: &File) -> io::Result<()> {
    set(file, libc::F_UNLCK, own_byte(), 1).map(|_| ())
}

/// Whether a waiter in another process marked the lock file (or some other program holds
/// a byte-range lock over the marks: then, to be safe, yes). One `F_OFD_GETLK`, which
/// names one conflicting lock: only when that one is this process's own mark, two more,
/// around it.
pub(crate) fn marked_by_another_process(file: &File) -> io::Result<bool> {
    let Some(at) = conflict_at(file, libc::F_WRLCK, MARKS_AT, MARKS_SPAN)? else {
        return Ok(false); // the common case when nobody waits
    };
    let own = own_byte();
    if at != own {
        return Ok(true); // the common case when others wait
    }
    Ok(conflicts(file, libc::F_WRLCK, MARKS_AT, own - MARKS_AT)?
        || conflicts(
            file,
            libc::F_WRLCK,
            own + 1,
            MARKS_AT + MARKS_SPAN - own - 1,
        )?)
}

/// Whether any waiter but `file`'s own description, in any process, marked the lock file.
/// One `F_OFD_GETLK`.
pub(crate) fn marked_by_another(file: &File) -> io::Result<bool> {
    conflicts(file, libc::F_WRLCK, MARKS_AT, MARKS_SPAN)
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
        // A holder passes over the marks of its own process.
        assert!(!marked_by_another_process(&holder).unwrap());
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

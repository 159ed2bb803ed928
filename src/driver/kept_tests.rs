//! The lock file a handle keeps open between holds (`attempt::Kept`), driven through the
//! public types: when it is kept, when it is closed instead, and that a kept descriptor is
//! never the way into a lock someone else holds.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::FileLock;

/// A handle whose lock file is known to be on a local file system (as the first acquire
/// would learn).
fn local_handle(path: &Path) -> FileLock {
    let lock = FileLock::new(path);
    lock.state().set_locality(Some(true));
    lock
}

/// Descriptors of this process open on `path`.
fn descriptors_on(path: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target == path)
        .count()
}

#[test]
fn a_released_hold_keeps_its_file_open_and_unlocked_for_the_next_acquire() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kept.lock");
    let lock = local_handle(&path);
    let guard = lock.blocking_acquire().unwrap();
    assert_eq!(descriptors_on(&path), 1);
    drop(guard);
    assert!(lock.state().kept().holds_file());
    assert_eq!(descriptors_on(&path), 1, "kept open");
    // Unlocked: another handle takes the lock at once, and the kept descriptor cannot get
    // in while it holds.
    let other = FileLock::new(&path).blocking_try_acquire().unwrap();
    assert!(other.is_some(), "the kept descriptor holds no lock");
    assert!(lock.blocking_try_acquire().unwrap().is_none());
    drop(other);
    // The next hold is the kept descriptor: no new one is opened.
    let again = lock.blocking_acquire().unwrap();
    assert!(!lock.state().kept().holds_file());
    assert_eq!(descriptors_on(&path), 1);
    drop(again);
    drop(lock);
    assert_eq!(descriptors_on(&path), 0, "closed with the handle");
}

/// A waiter in this process marks the file too (for holders elsewhere), but the holder
/// here passes over its own process's marks: its release wakes that waiter directly, so it
/// keeps the file (a close would wake the watcher thread for nothing). A waiter in another
/// process gets the close: `tests/wakeups.rs`
/// `a_release_through_a_kept_descriptor_in_another_process_wakes_the_waiter`.
#[test]
fn a_waiter_in_this_process_does_not_make_the_release_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("marked.lock");
    let lock = local_handle(&path);
    drop(lock.blocking_acquire().unwrap());
    let guard = lock.blocking_acquire().unwrap();
    let waiter = {
        let path = path.clone();
        std::thread::spawn(move || {
            local_handle(&path)
                .blocking_acquire_timeout(Duration::from_secs(30))
                .map(drop)
        })
    };
    // Until the waiter's mark is there (a bounded look).
    let probe = std::fs::File::open(&path).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !crate::sys::waiting_mark::marked_by_another(&probe).unwrap() {
        assert!(
            Instant::now() < deadline,
            "the waiter never marked the file"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        !crate::sys::waiting_mark::marked_by_another_process(&probe).unwrap(),
        "the mark is this process's"
    );
    drop(guard);
    assert!(lock.state().kept().holds_file());
    waiter.join().unwrap().unwrap();
    // The waiter withdrew its mark when it won.
    assert!(!crate::sys::waiting_mark::marked_by_another(&probe).unwrap());
}

#[cfg(unix)]
#[test]
fn a_descriptor_handed_out_is_never_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("handed.lock");
    let lock = local_handle(&path);
    drop(lock.blocking_acquire().unwrap());
    let guard = lock.blocking_acquire().unwrap();
    assert!(guard.raw_fd().is_some());
    drop(guard);
    // A copy of it (in a child) would share its lock with the next hold.
    assert!(!lock.state().kept().holds_file());
    assert_eq!(descriptors_on(&path), 0);
}

#[test]
fn no_file_is_kept_where_the_file_system_is_not_known_local() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("remote.lock");
    let lock = FileLock::new(&path);
    lock.state().set_locality(Some(false));
    drop(lock.blocking_acquire().unwrap());
    drop(lock.blocking_acquire().unwrap());
    assert!(!lock.state().kept().holds_file());
    assert_eq!(descriptors_on(&path), 0);
}

#[test]
fn an_acquire_with_an_on_acquired_hook_keeps_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hooked.lock");
    let lock = FileLock::builder(&path)
        .on_acquired(|_: &crate::Acquired<'_>| Ok(()))
        .build();
    lock.state().set_locality(Some(true));
    drop(lock.blocking_acquire().unwrap());
    drop(lock.blocking_acquire().unwrap());
    assert!(!lock.state().kept().holds_file());
}

/// The lock file is replaced (a new file renamed over the path) while the handle keeps the
/// old one: its next acquire must not win on the old file, which nobody else locks any
/// more, while another holds the file at the path.
#[test]
fn a_kept_file_replaced_by_rename_over_gives_no_second_holder() {
    no_second_holder_after("replaced.lock", |path| {
        let new = path.with_extension("new");
        std::fs::write(&new, b"").unwrap();
        std::fs::rename(&new, path).unwrap();
    });
}

/// The same for a lock file deleted while the handle keeps it: the next acquire locks the
/// file created at the path, not the deleted one.
#[test]
fn a_kept_file_deleted_gives_no_second_holder() {
    no_second_holder_after("deleted.lock", |path| std::fs::remove_file(path).unwrap());
}

/// A handle keeps `name`'s lock file, then `change` replaces or removes it; while another
/// handle holds the file at the path, the handle's try fails; then it holds that file.
fn no_second_holder_after(name: &str, change: impl FnOnce(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let lock = local_handle(&path);
    drop(lock.blocking_acquire().unwrap());
    assert!(lock.state().kept().holds_file());
    change(&path);
    let other = FileLock::new(&path).blocking_acquire().unwrap();
    assert!(
        lock.blocking_try_acquire().unwrap().is_none(),
        "won on the old file while another holds the one at the path"
    );
    drop(other);
    let guard = lock
        .blocking_try_acquire()
        .unwrap()
        .expect("the file at the path is free");
    // It holds the file at the path now.
    let third = FileLock::new(&path).blocking_try_acquire().unwrap();
    assert!(third.is_none());
    drop(guard);
}

/// Async, inline on the worker: the same kept file serves the next acquire, and a replaced
/// file is followed.
#[test]
fn an_async_acquire_reuses_the_kept_file_and_follows_a_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("async.lock");
    let lock = local_handle(&path);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        drop(lock.acquire().await.unwrap());
        assert!(lock.state().kept().holds_file());
        let guard = lock.acquire().await.unwrap();
        assert!(
            !lock.state().kept().holds_file(),
            "the hold took the kept file"
        );
        assert_eq!(descriptors_on(&path), 1);
        drop(guard);
        let new = dir.path().join("async.lock.new");
        std::fs::write(&new, b"").unwrap();
        std::fs::rename(&new, &path).unwrap();
        let other = FileLock::new(&path).try_acquire().await.unwrap().unwrap();
        assert!(lock.try_acquire().await.unwrap().is_none());
        drop(other);
        drop(lock.acquire().await.unwrap());
    });
}

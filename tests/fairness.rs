//! Fair turns across processes (issue 12): a process that releases and re-acquires at once
//! lets a process that was already waiting go first, with the async API and the sync
//! facade alike; with `fair(false)` the line is not used.
#![cfg(target_os = "linux")]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use tokio_filelock::FileLock;

#[test]
fn child_entry() {
    common::child_entry(common::hold_role);
}

/// Whether some waiter of this crate holds a place in the line of the lock file `lock`
/// (a byte lock in `<lock>.queue`).
fn someone_in_line(lock: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let mut queue = lock.as_os_str().to_owned();
    queue.push(".queue");
    let Ok(file) = std::fs::File::open(queue) else {
        return false;
    };
    // SAFETY (test): plain data, all zeroes is valid; `l_pid` must be 0 for OFD commands.
    let mut probe: libc::flock = unsafe { std::mem::zeroed() };
    probe.l_type = libc::F_WRLCK as libc::c_short;
    probe.l_whence = libc::SEEK_SET as libc::c_short;
    probe.l_start = 1;
    // SAFETY (test): `file` is open and `probe` a valid, writable `struct flock`.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut probe) };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    probe.l_type != libc::F_UNLCK as libc::c_short
}

/// Holds the lock, lets a child start waiting for it, then releases and re-acquires at
/// once (with `reacquire`, on another thread): the child gets it first, and the re-acquire
/// waits until the child lets go.
fn the_waiting_process_goes_first(
    name: &str,
    reacquire: impl FnOnce(FileLock) -> tokio_filelock::LockGuard + Send + 'static,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let lock = FileLock::new(&path);
    let held = lock.blocking_acquire().unwrap();
    let mut child = common::spawn("hold", &[path.to_str().unwrap()]);
    let deadline = Instant::now() + common::CHILD_WAIT;
    while !someone_in_line(&path) {
        assert!(Instant::now() < deadline, "the child never lined up");
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(held);
    let again = std::thread::spawn(move || reacquire(lock));
    // Before the fix the re-acquire won at once and held on: the child never got in.
    child.expect("acquired");
    assert!(!again.is_finished(), "both hold the lock");
    child.tell("release");
    drop(again.join().unwrap());
    assert!(child.wait_success());
}

#[test]
fn a_sync_reacquire_lets_the_waiting_process_go_first() {
    the_waiting_process_goes_first("sync.lock", |lock| lock.blocking_acquire().unwrap());
}

#[test]
fn an_async_reacquire_lets_the_waiting_process_go_first() {
    the_waiting_process_goes_first("async.lock", |lock| {
        common::runtime().block_on(lock.acquire()).unwrap()
    });
}

#[test]
fn an_unfair_handle_does_not_line_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unfair.lock");
    let held = FileLock::new(&path).blocking_acquire().unwrap();
    let unfair = FileLock::builder(&path).fair(false).build();
    let err = unfair
        .blocking_acquire_timeout(Duration::from_millis(20))
        .unwrap_err();
    assert!(err.is_timeout());
    let queue = dir.path().join("unfair.lock.queue");
    assert!(!queue.exists(), "no line for an unfair handle");
    // A fair one lines up (the file is made on first contention) and leaves the line.
    let err = FileLock::new(&path)
        .blocking_acquire_timeout(Duration::from_millis(20))
        .unwrap_err();
    assert!(err.is_timeout());
    assert!(queue.exists());
    assert!(!someone_in_line(&path));
    drop(held);
}

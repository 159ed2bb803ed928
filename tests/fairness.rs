//! Fair turns across processes (issue 12): a process that releases and re-acquires at once
//! lets a process that was already waiting go first, with the async API and the sync
//! facade alike; with `fair(false)` the line is not used.
#![cfg(target_os = "linux")]

mod common;

use std::time::{Duration, Instant};

use tokio_filelock::FileLock;

#[test]
fn child_entry() {
    common::child_entry(common::hold_role);
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
    while !common::someone_in_line(&path) {
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
    assert!(!common::someone_in_line(&path));
    drop(held);
}

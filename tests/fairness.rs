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

/// A waiter that lined up this long ago is past the time in which a newcomer may take a
/// free lock before it (5 ms: `FileLockBuilder::fair`'s docs).
const WAITED: Duration = Duration::from_millis(10);

/// Holds the lock, lets a child start waiting for it (for [`WAITED`]), then releases and
/// re-acquires at once (with `reacquire`, on another thread): the child gets it first, and
/// the re-acquire waits until the child lets go.
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
    std::thread::sleep(WAITED);
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

/// Writer preference across processes (issue 19, item 1): while a reader holds the lock
/// shared and a writer (another process) waits, a new reader does not join the shared hold,
/// however long it waits: not within the grace a stuck waiter gets, and not after it (the
/// lock is held, so the writer is not stuck: it waits for the reader). Then the writer gets
/// the lock when the first reader lets go.
#[test]
fn a_new_reader_never_joins_while_a_writer_process_waits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("writer-first.lock");
    let p = path.to_str().unwrap();
    let mut reader = common::spawn("hold_shared", &[p]);
    reader.expect("acquired");
    let mut writer = common::spawn("hold", &[p]);
    let deadline = Instant::now() + common::CHILD_WAIT;
    while !common::someone_in_line(&path) {
        assert!(Instant::now() < deadline, "the writer never lined up");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Ten times the grace: before the fix the new reader joined once the grace ran out.
    let late = FileLock::new(&path).blocking_acquire_shared_timeout(Duration::from_millis(200));
    assert!(
        matches!(late, Err(tokio_filelock::Error::Timeout { .. })),
        "a new reader joined while a writer waited: {late:?}"
    );
    reader.tell("release");
    writer.expect("acquired");
    writer.tell("release");
    assert!(reader.wait_success());
    assert!(writer.wait_success());
}

/// ... and a writer that does not take a free lock (stopped) does not keep readers out for
/// good: once its grace is over and the lock is free, a reader goes.
#[test]
fn a_stopped_writer_does_not_keep_readers_out_of_a_free_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stopped-writer.lock");
    let held = FileLock::new(&path).blocking_acquire().unwrap();
    let mut writer = common::spawn("hold", &[path.to_str().unwrap()]);
    let deadline = Instant::now() + common::CHILD_WAIT;
    while !common::someone_in_line(&path) {
        assert!(Instant::now() < deadline, "the writer never lined up");
        std::thread::sleep(Duration::from_millis(1));
    }
    let pid = writer.id() as libc::pid_t;
    // SAFETY (test): signals our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    // `kill` returns before the child has stopped: wait until every thread of it has
    // (state `T`).
    let stopped = || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .all(|task| {
                std::fs::read_to_string(task.unwrap().path().join("stat"))
                    .unwrap_or_default()
                    .rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('T'))
            })
    };
    while !stopped() {
        assert!(Instant::now() < deadline, "the writer never stopped");
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(held);
    let reader = FileLock::new(&path).blocking_acquire_shared_timeout(common::CHILD_WAIT);
    // SAFETY (test): as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    let reader = reader.expect("a reader goes past a stopped writer once the lock is free");
    drop(reader);
    writer.expect("acquired");
    writer.tell("release");
    assert!(writer.wait_success());
}

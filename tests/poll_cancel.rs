//! Cancel safety at every await point, poll by poll (issue 12, with `tokio-test`): an
//! acquire of a lock that another process holds is polled k times and then dropped, for
//! every k up to completion (the holder lets go after a few polls). After each drop (or
//! the completed acquire's release) no lock is held, no count is left, no file watch is
//! registered, no place in the cross-process line is held, and no descriptor is open.
//!
//! Its own test binary with one test, so that nothing else opens descriptors meanwhile.
#![cfg(target_os = "linux")]

mod common;

use std::path::Path;
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio_filelock::FileLock;
use tokio_test::{assert_pending, task};

#[test]
fn child_entry() {
    common::child_entry(common::hold_role);
}

/// The holder lets go after this many polls of the acquire.
const RELEASE_AFTER: usize = 6;

/// The open descriptors of this process, but pipes (the holder's stdout pipe closes when it
/// exits, whatever the acquire does).
fn open_descriptors() -> Vec<String> {
    let mut fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            if target.to_string_lossy().starts_with("pipe:") {
                return None;
            }
            Some(format!(
                "{} -> {}",
                e.file_name().to_string_lossy(),
                target.display()
            ))
        })
        .collect();
    fds.sort();
    fds
}

/// One run: a child holds the lock; an acquire is polled (each poll after its waker was
/// woken) until it completes or `drop_after` polls were made, then dropped. Returns how many
/// polls it took, and whether it completed.
async fn run(path: &Path, drop_after: usize) -> (usize, bool) {
    let mut holder = common::spawn("hold", &[path.to_str().unwrap()]);
    holder.expect("acquired");
    let before = open_descriptors();
    let lock = FileLock::new(path);
    let mut acquire = task::spawn(lock.acquire());
    let mut polls = 0;
    let mut completed = false;
    let mut last = Poll::Pending;
    while polls < drop_after {
        polls += 1;
        last = match acquire.poll() {
            Poll::Ready(guard) => {
                let guard = guard.unwrap();
                assert_eq!(lock.lock_counter(), 1);
                drop(guard);
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        };
        match last {
            Poll::Ready(()) => {
                assert!(polls > RELEASE_AFTER, "won while the holder held it");
                completed = true;
                break;
            }
            Poll::Pending => {}
        }
        if polls == RELEASE_AFTER {
            holder.tell("release");
        }
        let deadline = Instant::now() + common::CHILD_WAIT;
        while !acquire.is_woken() {
            assert!(Instant::now() < deadline, "poll {polls}: never woken");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    if !completed {
        assert_pending!(last, "k = {drop_after}: dropped while pending");
    }
    drop(acquire);
    // An attempt still on the blocking pool finishes (and lets go of what it won) by itself.
    let deadline = Instant::now() + common::CHILD_WAIT;
    while lock.lock_counter() != 0 || lock.is_locked() {
        assert!(
            Instant::now() < deadline,
            "k = {drop_after}: a hold is left"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The handle may keep its lock file open between holds (Linux, local file system),
    // unlocked; it closes it when dropped. No other descriptor may be left.
    drop(lock);
    while open_descriptors() != before {
        assert!(
            Instant::now() < deadline,
            "k = {drop_after}: descriptors left open, before: {before:#?}, after: {:#?}",
            open_descriptors()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The crate's watch of this lock file may stay, idle, for the next waiter on it (it
    // goes at the file's next event): nothing else may, and nothing piles up.
    let lock_file = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap());
    let left = common::inotify_watched_inodes();
    assert!(
        left.len() <= 1 && left.iter().all(|ino| *ino == lock_file),
        "k = {drop_after}: watches left on {left:?} (the lock file: {lock_file})"
    );
    assert!(
        !common::someone_in_line(path),
        "k = {drop_after}: a place in line is left"
    );
    if polls < RELEASE_AFTER {
        holder.tell("release");
    }
    assert!(holder.wait_success());
    // Nobody holds it: one attempt wins.
    let free = FileLock::new(path).try_acquire().await.unwrap();
    assert!(free.is_some(), "k = {drop_after}: the lock is still held");
    (polls, completed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acquire_dropped_after_any_number_of_polls_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("polled.lock");
    // The crate's watcher thread starts with the first wait: its own two descriptors (kept
    // while it idles) are then open before every count below.
    let warm_up = dir.path().join("warm-up.lock");
    let held = FileLock::new(&warm_up).acquire().await.unwrap();
    let waited = FileLock::new(&warm_up)
        .acquire_timeout(Duration::from_millis(5))
        .await;
    assert!(waited.unwrap_err().is_timeout());
    drop(held);
    // Once to completion: how many polls it takes.
    let (total, completed) = run(&path, usize::MAX).await;
    assert!(completed);
    println!("{total} polls to completion");
    for k in 1..=total {
        run(&path, k).await;
    }
}

//! Stopping a wait from another thread or task (issue 19, item 9; Python filelock's
//! `cancel_check`): `FileLockBuilder::cancel_token`. Promptness (a wait is woken by the
//! cancel, not left to its next poll) is pinned at the waiter level
//! (`wake::waiter::tests::a_cancel_ends_a_sync_wait_at_once`); here, what a user sees.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use tokio_filelock::{CancelToken, Error, FileLock, SoftFileLock};

/// Longer than any test may take: a wait that only its poll could end would hang the test
/// (bounded by `common::CHILD_WAIT` below), so ending it proves the cancel woke it.
const HOUR: Duration = Duration::from_secs(3600);

/// A lock held by another thread (another owner) until the returned sender is used.
fn held_elsewhere(path: &std::path::Path) -> mpsc::Sender<()> {
    let (release, released) = mpsc::channel::<()>();
    let (held, is_held) = mpsc::channel();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let guard = FileLock::new(&path).blocking_acquire().unwrap();
        held.send(()).unwrap();
        let _ = released.recv();
        drop(guard);
    });
    is_held.recv().unwrap();
    release
}

#[test]
fn a_sync_wait_without_timeout_is_cancelled_from_another_thread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sync.lock");
    let _release = held_elsewhere(&path);
    let token = CancelToken::new();
    let (waiting, is_waiting) = mpsc::channel();
    let lock = FileLock::builder(&path)
        .poll_interval(HOUR)
        .cancel_token(&token)
        .on_wait(move |_| {
            let _ = waiting.send(());
        })
        .build();
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(lock.blocking_acquire().map(drop));
    });
    is_waiting.recv_timeout(common::CHILD_WAIT).unwrap();
    token.cancel();
    let result = result
        .recv_timeout(common::CHILD_WAIT)
        .expect("the wait ended");
    match result {
        Err(Error::Cancelled { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected Error::Cancelled, got {other:?}"),
    }
    assert!(token.is_cancelled());
}

#[tokio::test]
async fn an_async_wait_is_cancelled_and_holds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("async.lock");
    let release = held_elsewhere(&path);
    let token = CancelToken::new();
    let (waiting, mut is_waiting) = tokio::sync::mpsc::unbounded_channel();
    let lock = FileLock::builder(&path)
        .poll_interval(HOUR)
        .cancel_token(&token)
        .on_wait(move |_| {
            let _ = waiting.send(());
        })
        .build();
    let acquire = tokio::spawn({
        let lock = lock.clone();
        async move { lock.acquire().await.map(drop) }
    });
    tokio::time::timeout(common::CHILD_WAIT, is_waiting.recv())
        .await
        .expect("the acquire started to wait")
        .unwrap();
    token.cancel();
    let result = tokio::time::timeout(common::CHILD_WAIT, acquire)
        .await
        .expect("the wait ended")
        .unwrap();
    assert!(matches!(result, Err(Error::Cancelled { .. })), "{result:?}");
    assert_eq!(lock.lock_counter(), 0);
    assert!(!lock.is_locked());
    // Nothing of the cancelled acquire is left: once the holder lets go, the lock is free.
    release.send(()).unwrap();
    let fresh = FileLock::builder(&path).timeout(common::CHILD_WAIT).build();
    drop(fresh.acquire().await.expect("the lock is free"));
}

/// As Python's `cancel_check` (asked after a failed attempt only): a cancelled token does
/// not stop an acquire that finds the lock free; it stops one that would wait, at once.
#[test]
fn a_cancelled_token_still_takes_a_free_lock_and_never_waits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("free.lock");
    let token = CancelToken::new();
    token.cancel();
    let lock = FileLock::builder(&path).cancel_token(&token).build();
    drop(lock.blocking_acquire().expect("a free lock is taken"));
    let _release = held_elsewhere(&path);
    let err = lock.blocking_acquire().unwrap_err();
    assert!(matches!(err, Error::Cancelled { .. }), "{err:?}");
}

/// The soft lock takes the token too.
#[test]
fn a_soft_lock_wait_is_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("soft.lock");
    let held = SoftFileLock::new(&path).blocking_acquire().unwrap();
    let token = CancelToken::new();
    let lock = SoftFileLock::builder(&path)
        .poll_interval(HOUR)
        .cancel_token(&token)
        .build();
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(lock.blocking_acquire().map(drop));
    });
    // Before or during its wait: either way the wait ends with the error.
    token.cancel();
    let result = result
        .recv_timeout(common::CHILD_WAIT)
        .expect("the wait ended");
    assert!(matches!(result, Err(Error::Cancelled { .. })), "{result:?}");
    drop(held);
}

/// The read-write soft lock takes the token too, for its async and sync waits.
#[cfg(unix)]
#[tokio::test]
async fn a_soft_read_write_lock_wait_is_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rw.lock");
    let writer = tokio_filelock::SoftReadWriteLock::new(&path);
    let held = writer.acquire().await.unwrap();
    let token = CancelToken::new();
    let lock = tokio_filelock::SoftReadWriteLock::builder(&path)
        .cancel_token(&token)
        .build();
    let waiting = tokio::spawn({
        let lock = lock.clone();
        async move { lock.acquire_shared().await.map(drop) }
    });
    let blocking = std::thread::spawn({
        let lock = lock.clone();
        move || lock.blocking_acquire().map(drop)
    });
    token.cancel();
    let result = tokio::time::timeout(common::CHILD_WAIT, waiting)
        .await
        .expect("the async wait ended")
        .unwrap();
    assert!(matches!(result, Err(Error::Cancelled { .. })), "{result:?}");
    let result = blocking.join().unwrap();
    assert!(matches!(result, Err(Error::Cancelled { .. })), "{result:?}");
    drop(held);
    // Neither cancelled acquire is left in the log: the lock is free.
    drop(writer.try_acquire().await.unwrap().expect("free"));
}

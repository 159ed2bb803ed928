//! `on_acquired` on every builder: called right after a hold is won, once per hold (never
//! on re-entry), with the lock file for an OS lock and none for the marker-file locks; an
//! error from it releases the hold and fails the acquire with `Error::OnAcquired`.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio_filelock::{Error, FileLock, LockMode, Reentrancy, SoftFileLease, SoftFileLock};

#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused by the test hook")
    }
}

impl std::error::Error for Refused {}

fn counter() -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    (calls.clone(), calls)
}

fn assert_refused(err: Error, path: &std::path::Path) {
    assert_eq!(err.path(), path);
    match &err {
        Error::OnAcquired { source, .. } => assert!(source.downcast_ref::<Refused>().is_some()),
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string().contains("refused by the test hook"),
        "{err}"
    );
}

#[tokio::test]
async fn file_lock_hook_gets_the_locked_file_once_per_hold() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hooked.lock");
    let (calls, seen) = counter();
    // Kept on release (Windows deletes it otherwise), and read after release (Windows
    // refuses reads of a locked range through another handle).
    let lock = FileLock::builder(&path)
        .preserve_lock_file(true)
        .reentrancy(Reentrancy::Owner)
        .on_acquired(move |acquired| {
            seen.fetch_add(1, Ordering::SeqCst);
            assert_eq!(acquired.mode(), LockMode::Exclusive);
            let mut file = acquired.file().expect("an OS lock's file");
            file.set_len(0)?;
            write!(file, "hold {}", seen.load(Ordering::SeqCst))?;
            Ok(())
        })
        .build();
    let guard = lock.acquire().await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Re-entry by the same owner is the same hold: no call.
    let again = lock.acquire().await.unwrap();
    assert_eq!(lock.lock_counter(), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    drop(again);
    drop(guard);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "hold 1");
    // A new hold, through the sync facade: called again.
    let guard = lock.blocking_acquire().unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    drop(guard);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "hold 2");
}

#[tokio::test]
async fn a_failing_hook_releases_the_hold_and_is_returned_typed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("refused.lock");
    let (calls, seen) = counter();
    let lock = FileLock::builder(&path)
        .on_acquired(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
            Err(Box::new(Refused))
        })
        .build();
    assert_refused(lock.acquire().await.unwrap_err(), &path);
    assert_refused(lock.blocking_try_acquire().unwrap_err(), &path);
    assert_refused(lock.try_acquire().await.unwrap_err(), &path);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(!lock.is_locked());
    assert_eq!(lock.lock_counter(), 0);
    // Nothing is left held: another handle (another holder, as far as the OS lock goes)
    // takes it at once.
    let other = FileLock::new(&path);
    assert!(other.try_acquire().await.unwrap().is_some());
}

#[test]
fn soft_lock_hook_gets_no_file_and_its_error_removes_the_marker() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("soft.lock");
    let (calls, seen) = counter();
    let lock = SoftFileLock::builder(&path)
        .on_acquired(move |acquired| {
            seen.fetch_add(1, Ordering::SeqCst);
            // The marker is the ownership record, not the hook's to write.
            assert!(acquired.file().is_none());
            // The record is in place when the hook runs.
            let record = std::fs::read_to_string(acquired.path())?;
            assert!(record.starts_with(&format!("{}\n", std::process::id())));
            Ok(())
        })
        .build();
    let guard = lock.blocking_acquire().unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    drop(guard);

    let refusing = SoftFileLock::builder(&path)
        .on_acquired(|_| Err(Box::new(Refused)))
        .build();
    assert_refused(refusing.blocking_acquire().unwrap_err(), &path);
    assert!(
        std::fs::symlink_metadata(&path).is_err(),
        "the marker is removed"
    );
}

#[tokio::test]
async fn lease_hook_runs_before_the_heartbeat_and_its_error_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lease.lock");
    let (calls, seen) = counter();
    let lease = SoftFileLease::builder(&path)
        .on_acquired(move |acquired| {
            seen.fetch_add(1, Ordering::SeqCst);
            assert!(acquired.file().is_none());
            Ok(())
        })
        .build();
    let guard = lease.acquire().await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    guard.release().unwrap();

    let refusing = SoftFileLease::builder(&path)
        .on_acquired(|_| Err(Box::new(Refused)))
        .build();
    assert_refused(refusing.acquire().await.unwrap_err(), &path);
    assert_refused(refusing.blocking_acquire().unwrap_err(), &path);
    assert!(std::fs::symlink_metadata(&path).is_err(), "no marker left");
    assert!(!refusing.is_locked());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acquire_cancelled_while_its_hook_runs_leaves_nothing_held() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cancelled.lock");
    let (started_tx, started) = std::sync::mpsc::channel();
    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    let go_rx = std::sync::Mutex::new(go_rx);
    let lock = FileLock::builder(&path)
        .on_acquired(move |_| {
            started_tx.send(()).unwrap();
            // Bounded: a regression must not hang the suite.
            let _ = go_rx
                .lock()
                .unwrap()
                .recv_timeout(std::time::Duration::from_secs(10));
            Ok(())
        })
        .build();
    let mut acquire = tokio_test::task::spawn(lock.acquire());
    tokio_test::assert_pending!(acquire.poll());
    // The lock is won and the hook is running on the blocking pool: cancel now.
    started
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the hook runs");
    drop(acquire);
    go.send(()).unwrap();
    // The hold the cancelled acquire won is released once its job ends: another holder
    // gets it (woken by that release; the bound only keeps a regression from hanging).
    let other = FileLock::new(&path);
    let guard = other
        .acquire_timeout(std::time::Duration::from_secs(10))
        .await
        .expect("released after the hook returned");
    assert!(!lock.is_locked());
    assert_eq!(lock.lock_counter(), 0);
    drop(guard);
}

/// The strict lock takes the hook too (no file: the claims are the protocol's); its error
/// withdraws the claims.
#[cfg(unix)]
#[test]
fn strict_lock_hook_gets_no_file_and_its_error_withdraws_the_claims() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("strict.lock");
    let (calls, seen) = counter();
    let lock = tokio_filelock::StrictSoftFileLock::builder(&path)
        .on_acquired(move |acquired| {
            seen.fetch_add(1, Ordering::SeqCst);
            assert!(acquired.file().is_none());
            Ok(())
        })
        .build();
    drop(lock.blocking_acquire().unwrap());
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let refusing = tokio_filelock::StrictSoftFileLock::builder(&path)
        .on_acquired(|_| Err(Box::new(Refused)))
        .build();
    assert_refused(refusing.blocking_acquire().unwrap_err(), &path);
    assert!(
        refusing.blocking_claims().unwrap().is_empty(),
        "claims withdrawn"
    );
    drop(lock.blocking_try_acquire().unwrap().expect("free again"));
}

/// The read-write soft lock takes the hook too, for both modes; its error withdraws the
/// hold, so the lock is free at once.
#[cfg(unix)]
#[tokio::test]
async fn soft_read_write_lock_hook_runs_per_hold_and_its_error_withdraws_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rw.lock");
    let (calls, seen) = counter();
    let modes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let lock = tokio_filelock::SoftReadWriteLock::builder(&path)
        .on_acquired({
            let modes = modes.clone();
            move |acquired| {
                seen.fetch_add(1, Ordering::SeqCst);
                assert!(acquired.file().is_none());
                modes.lock().unwrap().push(acquired.mode());
                Ok(())
            }
        })
        .build();
    drop(lock.acquire().await.unwrap());
    drop(lock.blocking_acquire_shared().unwrap());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        *modes.lock().unwrap(),
        [LockMode::Exclusive, LockMode::Shared]
    );

    let refusing = tokio_filelock::SoftReadWriteLock::builder(&path)
        .on_acquired(|_| Err(Box::new(Refused)))
        .build();
    assert_refused(refusing.acquire().await.unwrap_err(), &path);
    assert_refused(refusing.blocking_acquire().unwrap_err(), &path);
    drop(lock.try_acquire().await.unwrap().expect("free again"));
}

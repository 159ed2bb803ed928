//! `LockGuard::lost()` / `is_lost()` for file locks, and the `Lock` trait over the file
//! backends (`open(spec)`).

use std::time::Duration;

use tokio_filelock::{FileLock, Lock, Lost, SoftFileLock};

/// Bound on every wait for `lost()` (it checks every 500 ms).
const LOST_WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
#[cfg_attr(
    windows,
    ignore = "a held lock file (an open marker) can be neither removed nor replaced on Windows"
)]
async fn a_file_lock_is_lost_when_its_file_is_unlinked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.lock");
    let guard = FileLock::new(&path).acquire().await.unwrap();
    assert!(!guard.is_lost());
    std::fs::remove_file(&path).unwrap();
    assert!(guard.is_lost());
    let lost = tokio::time::timeout(LOST_WAIT, guard.lost())
        .await
        .expect("lost() resolves");
    assert_eq!(lost, Lost::FileReplaced { path: path.clone() });
    // Another process locking the path now locks another file: two holders.
    let other = FileLock::new(&path).try_acquire().await.unwrap();
    assert!(other.is_some());
}

#[tokio::test]
#[cfg_attr(
    windows,
    ignore = "a held lock file (an open marker) can be neither removed nor replaced on Windows"
)]
async fn a_file_lock_is_lost_when_its_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.lock");
    let guard = FileLock::new(&path).acquire().await.unwrap();
    let lost = guard.lost();
    let other = dir.path().join("other");
    std::fs::write(&other, b"").unwrap();
    std::fs::rename(&other, &path).unwrap();
    let lost = tokio::time::timeout(LOST_WAIT, lost).await.unwrap();
    assert!(matches!(lost, Lost::FileReplaced { .. }));
    assert!(guard.is_lost());
}

#[tokio::test(start_paused = true)]
async fn an_intact_file_lock_is_never_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.lock");
    let guard = FileLock::new(&path).acquire().await.unwrap();
    // An hour of (paused, auto-advanced) checks: nothing resolves.
    let waited = tokio::time::timeout(Duration::from_secs(3600), guard.lost()).await;
    assert!(
        waited.is_err(),
        "lost() resolved on an intact lock: {waited:?}"
    );
    assert!(!guard.is_lost());
    assert_eq!(guard.fencing_token(), None);
}

#[tokio::test]
#[cfg_attr(
    windows,
    ignore = "a held lock file (an open marker) can be neither removed nor replaced on Windows"
)]
async fn a_soft_lock_is_lost_when_its_marker_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.lock");
    let guard = SoftFileLock::new(&path).acquire().await.unwrap();
    assert!(!guard.is_lost());
    // Someone judges the marker stale and replaces it with their own.
    std::fs::remove_file(&path).unwrap();
    let thief = SoftFileLock::new(&path).try_acquire().await.unwrap();
    assert!(thief.is_some());
    let lost = tokio::time::timeout(LOST_WAIT, guard.lost()).await.unwrap();
    assert_eq!(lost, Lost::FileReplaced { path: path.clone() });
    assert!(!thief.unwrap().is_lost());
}

/// One body for every backend: exclusion, try, release, timeout.
pub async fn exclusion_through_the_trait(spec: &str) {
    let a: Box<dyn Lock> = tokio_filelock::open(spec).unwrap();
    let b: Box<dyn Lock> = tokio_filelock::open(spec).unwrap();
    assert_eq!(a.spec(), spec);
    let held = a.acquire().await.unwrap();
    assert!(!held.is_lost());
    // Another handle (as another process) cannot take it; a waiter times out.
    let other = tokio::spawn(async move {
        let tried = b.try_acquire().await.unwrap().is_none();
        let timed_out = b
            .acquire_timeout(Duration::from_millis(100))
            .await
            .unwrap_err()
            .is_timeout();
        (tried, timed_out, b)
    });
    let (tried, timed_out, b) = other.await.unwrap();
    assert!(tried && timed_out);
    held.release().unwrap();
    let again = tokio::spawn(async move { b.try_acquire().await.unwrap().is_some() });
    assert!(again.await.unwrap());
}

#[tokio::test]
async fn the_trait_runs_one_body_for_file_and_soft_locks() {
    let dir = tempfile::tempdir().unwrap();
    exclusion_through_the_trait(&dir.path().join("os.lock").display().to_string()).await;
    exclusion_through_the_trait(&format!("soft:{}", dir.path().join("soft.lock").display())).await;
}

#[test]
fn the_trait_is_object_safe_and_send() {
    fn is_send_sync<T: Send + Sync>(_: &T) {}
    let lock: Box<dyn Lock> = tokio_filelock::open("x.lock").unwrap();
    is_send_sync(&lock);
    fn is_send<T: Send + 'static>(_: &T) {}
    let guard_lost = |g: &tokio_filelock::LockGuard| {
        let f = g.lost();
        is_send(&f);
    };
    let _ = guard_lost;
}

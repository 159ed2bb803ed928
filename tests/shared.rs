//! Shared (read) locks: many shared holders at once across tasks, threads and processes;
//! an exclusive holder excludes them all, in both directions; the reentrancy rules (a
//! shared holder asking for exclusive gets `UpgradeNotSupported`, an exclusive holder
//! asking for shared re-enters and keeps its exclusive lock).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_filelock::{Error, FileLock, LockGuard, LockMode, Reentrancy};

/// Bound of every wait in this file that is expected to succeed.
const WAIT: Duration = Duration::from_secs(30);

/// How many holders share the lock at once in the coexistence tests.
const READERS: usize = 4;

#[test]
fn child_entry() {
    common::child_entry(run_role);
}

fn run_role(role: &str, args: &[String]) {
    match role {
        // args: flavor (async|sync), mode (shared|exclusive), path. Holds until told (or
        // stdin closes), then releases.
        "hold" => {
            let lock = FileLock::new(&args[2]);
            let mode = parse_mode(&args[1]);
            let guard = match args[0].as_str() {
                "async" => common::runtime().block_on(async {
                    // Acquire inside a spawned task: the task is the owner.
                    tokio::spawn(async move {
                        match mode {
                            LockMode::Shared => lock.acquire_shared_timeout(WAIT).await,
                            LockMode::Exclusive => lock.acquire_timeout(WAIT).await,
                        }
                    })
                    .await
                    .unwrap()
                }),
                "sync" => match mode {
                    LockMode::Shared => lock.blocking_acquire_shared_timeout(WAIT),
                    LockMode::Exclusive => lock.blocking_acquire_timeout(WAIT),
                },
                other => panic!("unknown flavor {other}"),
            }
            .unwrap();
            assert_eq!(guard.mode(), mode);
            common::say("acquired");
            let _ = common::hear();
            guard.release().unwrap();
            common::say("released");
        }
        // args: mode, path. One attempt; reports "won" or "busy".
        "try" => {
            let lock = FileLock::new(&args[1]);
            let got = match parse_mode(&args[0]) {
                LockMode::Shared => lock.blocking_try_acquire_shared(),
                LockMode::Exclusive => lock.blocking_try_acquire(),
            };
            common::say(if got.unwrap().is_some() {
                "won"
            } else {
                "busy"
            });
        }
        other => panic!("unknown role {other}"),
    }
}

fn parse_mode(s: &str) -> LockMode {
    match s {
        "shared" => LockMode::Shared,
        "exclusive" => LockMode::Exclusive,
        other => panic!("unknown mode {other}"),
    }
}

fn lock_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("shared.lock")
}

/// One attempt from another process: "won" or "busy".
fn try_in_child(mode: &str, path: &Path) -> String {
    let mut child = common::spawn("try", &[mode, path.to_str().unwrap()]);
    let said = child.next_message();
    assert!(child.wait_success());
    said
}

/// One attempt from a fresh task: whether it won.
async fn task_tries(lock: &FileLock, mode: LockMode) -> bool {
    let lock = lock.clone();
    tokio::spawn(async move {
        match mode {
            LockMode::Shared => lock.try_acquire_shared().await,
            LockMode::Exclusive => lock.try_acquire().await,
        }
        .unwrap()
        .is_some()
    })
    .await
    .unwrap()
}

/// One attempt from a fresh thread: whether it won.
fn thread_tries(lock: &FileLock, mode: LockMode) -> bool {
    let lock = lock.clone();
    std::thread::spawn(move || {
        match mode {
            LockMode::Shared => lock.blocking_try_acquire_shared(),
            LockMode::Exclusive => lock.blocking_try_acquire(),
        }
        .unwrap()
        .is_some()
    })
    .join()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_hold_one_handle_shared_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let lock = FileLock::new(lock_path(&dir));
    // Every task passes the barrier only while all of them hold the shared lock.
    let all_holding = Arc::new(tokio::sync::Barrier::new(READERS + 1));
    let release = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for _ in 0..READERS {
        let (lock, all_holding, release) = (lock.clone(), all_holding.clone(), release.clone());
        let released = release.notified_owned();
        tasks.push(tokio::spawn(async move {
            let guard = lock.acquire_shared_timeout(WAIT).await.unwrap();
            assert_eq!(guard.mode(), LockMode::Shared);
            assert_eq!(lock.lock_counter(), 1, "each task is its own owner");
            all_holding.wait().await;
            released.await;
            drop(guard);
        }));
    }
    tokio::time::timeout(WAIT, all_holding.wait())
        .await
        .expect("all readers hold the lock at once");

    // Shared holders exclude an exclusive one: another task, a thread, another process.
    assert!(!task_tries(&lock, LockMode::Exclusive).await);
    assert!(!thread_tries(&lock, LockMode::Exclusive));
    let path = lock_path(&dir);
    let said = tokio::task::spawn_blocking(move || try_in_child("exclusive", &path))
        .await
        .unwrap();
    assert_eq!(said, "busy");
    // ... and admit one more shared holder.
    assert!(task_tries(&lock, LockMode::Shared).await);

    release.notify_waiters();
    for task in tasks {
        tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
    }
    assert!(task_tries(&lock, LockMode::Exclusive).await);
}

#[test]
fn many_threads_hold_one_handle_shared_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let lock = FileLock::new(lock_path(&dir));
    let all_holding = Arc::new(std::sync::Barrier::new(READERS + 1));
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = Arc::new(std::sync::Mutex::new(release_rx));
    let threads: Vec<_> = (0..READERS)
        .map(|_| {
            let (lock, all_holding, release_rx) =
                (lock.clone(), all_holding.clone(), release_rx.clone());
            std::thread::spawn(move || {
                let guard = lock.blocking_acquire_shared_timeout(WAIT).unwrap();
                assert_eq!(guard.mode(), LockMode::Shared);
                all_holding.wait();
                // Bounded: the test body sends one message per thread.
                let _ = release_rx.lock().unwrap().recv_timeout(WAIT);
                drop(guard);
            })
        })
        .collect();
    // A thread that fails before the barrier would leave this wait hanging: run it on a
    // helper thread and bound it.
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let waiter = all_holding.clone();
    std::thread::spawn(move || {
        waiter.wait();
        let _ = held_tx.send(());
    });
    held_rx
        .recv_timeout(WAIT)
        .expect("all readers hold the lock at once");

    assert!(!thread_tries(&lock, LockMode::Exclusive));
    assert_eq!(try_in_child("exclusive", &lock_path(&dir)), "busy");
    assert!(thread_tries(&lock, LockMode::Shared));

    for _ in 0..READERS {
        release_tx.send(()).unwrap();
    }
    for thread in threads {
        thread.join().unwrap();
    }
    assert!(thread_tries(&lock, LockMode::Exclusive));
}

#[test]
fn many_processes_hold_shared_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let path_arg = path.to_str().unwrap();
    // Each holds until told to release: all saying "acquired" means all hold at once.
    let mut holders: Vec<_> = (0..READERS)
        .map(|i| common::spawn("hold", &[common::flavor(i), "shared", path_arg]))
        .collect();
    for holder in &mut holders {
        holder.expect("acquired");
    }
    // This process may share too, but not take it exclusively; nor may another process.
    let lock = FileLock::new(&path);
    let mine = lock.blocking_try_acquire_shared().unwrap().expect("shared");
    drop(mine);
    assert!(lock.blocking_try_acquire().unwrap().is_none());
    assert_eq!(try_in_child("exclusive", &path), "busy");
    assert_eq!(try_in_child("shared", &path), "won");

    // One holder leaving is not enough for an exclusive holder.
    holders[0].tell("release");
    holders[0].expect("released");
    assert!(lock.blocking_try_acquire().unwrap().is_none());
    for holder in &mut holders[1..] {
        holder.tell("release");
        holder.expect("released");
    }
    for holder in &mut holders {
        assert!(holder.wait_success());
    }
    assert!(lock.blocking_try_acquire().unwrap().is_some());
}

#[test]
fn an_exclusive_process_excludes_shared_holders_and_waits_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let path_arg = path.to_str().unwrap();
    let lock = FileLock::new(&path);

    // Exclusive elsewhere: no shared holder here, in a task or in another process.
    for flavor in ["async", "sync"] {
        let mut writer = common::spawn("hold", &[flavor, "exclusive", path_arg]);
        writer.expect("acquired");
        assert!(lock.blocking_try_acquire_shared().unwrap().is_none());
        assert!(
            common::runtime()
                .block_on(lock.try_acquire_shared())
                .unwrap()
                .is_none()
        );
        assert_eq!(try_in_child("shared", &path), "busy");
        writer.tell("release");
        writer.expect("released");
        assert!(writer.wait_success());
    }

    // Shared here: an exclusive process waits until this holder lets go, then gets it.
    let reader = lock.blocking_acquire_shared().unwrap();
    let mut writer = common::spawn("hold", &["sync", "exclusive", path_arg]);
    assert_eq!(
        writer.next_message_within(Duration::from_millis(300)),
        None,
        "an exclusive holder got in beside a shared one"
    );
    drop(reader);
    writer.expect("acquired");
    assert!(lock.blocking_try_acquire_shared().unwrap().is_none());
    writer.tell("release");
    writer.expect("released");
    assert!(writer.wait_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exclusive_task_excludes_shared_tasks_and_threads() {
    let dir = tempfile::tempdir().unwrap();
    let lock = FileLock::new(lock_path(&dir));
    let writer = {
        let lock = lock.clone();
        tokio::spawn(async move { lock.acquire().await.unwrap() })
            .await
            .unwrap()
    };
    assert!(!task_tries(&lock, LockMode::Shared).await);
    assert!(!thread_tries(&lock, LockMode::Shared));
    let other_handle = FileLock::new(lock_path(&dir));
    assert!(!task_tries(&other_handle, LockMode::Shared).await);
    drop(writer);
    assert!(task_tries(&lock, LockMode::Shared).await);
    assert!(thread_tries(&lock, LockMode::Shared));
}

/// Asks for exclusive through every method while `lock` is held shared by this owner: each
/// must say `UpgradeNotSupported` (naming the path) at once, and leave the hold alone.
async fn every_exclusive_acquire_is_refused(lock: &FileLock, path: &Path) {
    let start = tokio::time::Instant::now();
    let errors = vec![
        lock.acquire().await.err(),
        lock.acquire_timeout(Duration::from_secs(3600)).await.err(),
        lock.try_acquire().await.err(),
        lock.blocking_acquire().err(),
        lock.blocking_acquire_timeout(Duration::from_secs(3600))
            .err(),
        lock.blocking_try_acquire().err(),
    ];
    // Under paused time any sleep would have advanced the clock: none happened.
    assert_eq!(start.elapsed(), Duration::ZERO, "refused without waiting");
    for error in errors {
        let error = error.expect("a shared holder must not get an exclusive guard");
        assert!(
            matches!(error, Error::UpgradeNotSupported { .. }),
            "{error:?}"
        );
        assert_eq!(error.path(), path);
        assert_eq!(error.kind(), std::io::ErrorKind::Deadlock);
    }
    assert_eq!(
        lock.lock_counter(),
        1,
        "the refused acquires counted nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn a_shared_holder_asking_for_exclusive_gets_upgrade_not_supported() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let lock = FileLock::builder(&path)
        .reentrancy(Reentrancy::Owner)
        .build();
    let shared = lock.acquire_shared().await.unwrap();
    every_exclusive_acquire_is_refused(&lock, &path).await;

    // Still held shared, as before: others share it, nobody takes it exclusively.
    let other = FileLock::new(&path);
    assert!(other.try_acquire_shared().await.unwrap().is_some());
    assert!(other.try_acquire().await.unwrap().is_none());

    // Release the shared guard first, then exclusive works.
    drop(shared);
    let exclusive = lock.acquire().await.unwrap();
    assert_eq!(exclusive.mode(), LockMode::Exclusive);
}

#[tokio::test(start_paused = true)]
async fn the_upgrade_error_holds_with_per_handle_reentrancy_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let lock = FileLock::builder(&path)
        .reentrancy(Reentrancy::Handle)
        .build();
    let _shared = lock.blocking_acquire_shared().unwrap();
    every_exclusive_acquire_is_refused(&lock, &path).await;
}

#[tokio::test]
async fn an_exclusive_holder_asking_for_shared_reenters_and_stays_exclusive() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let lock = FileLock::builder(&path)
        .reentrancy(Reentrancy::Owner)
        .build();
    let other = FileLock::new(&path);
    let exclusive = lock.acquire().await.unwrap();
    let mut reentered: Vec<LockGuard> = vec![
        lock.acquire_shared().await.unwrap(),
        lock.acquire_shared_timeout(Duration::ZERO).await.unwrap(),
        lock.try_acquire_shared().await.unwrap().unwrap(),
        lock.blocking_acquire_shared().unwrap(),
        lock.blocking_acquire_shared_timeout(Duration::ZERO)
            .unwrap(),
        lock.blocking_try_acquire_shared().unwrap().unwrap(),
    ];
    for guard in &reentered {
        assert_eq!(guard.mode(), LockMode::Exclusive, "kept exclusive");
    }
    assert_eq!(lock.lock_counter(), 1 + reentered.len());

    // Dropping the original exclusive guard leaves the lock exclusive: the OS lock was
    // never converted, so nobody may even share it while a re-entered guard remains.
    drop(exclusive);
    let last = reentered.pop().unwrap();
    drop(reentered);
    assert_eq!(lock.lock_counter(), 1);
    assert!(other.try_acquire_shared().await.unwrap().is_none());
    assert!(other.try_acquire().await.unwrap().is_none());
    drop(last);
    assert_eq!(lock.lock_counter(), 0);
    assert!(other.try_acquire_shared().await.unwrap().is_some());
}

#[tokio::test]
#[cfg_attr(
    windows,
    ignore = "Windows: the held lock file cannot be deleted (opened without FILE_SHARE_DELETE), so the test cannot remove it"
)]
async fn a_shared_holder_reenters_shared_without_touching_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let lock = FileLock::builder(&path)
        .reentrancy(Reentrancy::Owner)
        .build();
    let first = lock.acquire_shared().await.unwrap();
    // A re-entry that opened the path would create the file again.
    std::fs::remove_file(&path).unwrap();
    let second = lock.blocking_acquire_shared().unwrap();
    assert!(!path.exists(), "re-entry must not touch the file");
    assert_eq!(second.mode(), LockMode::Shared);
    assert_eq!(lock.lock_counter(), 2);
    drop(first);
    assert_eq!(lock.lock_counter(), 1);
    drop(second);
    assert_eq!(lock.lock_counter(), 0);
}

#[tokio::test]
async fn the_same_owner_through_two_handles() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let a = FileLock::new(&path);
    let b = FileLock::new(&path);

    // Shared through both: compatible, no wait.
    let ra = a.acquire_shared().await.unwrap();
    let rb = b.acquire_shared().await.unwrap();
    assert_eq!(rb.mode(), LockMode::Shared);
    drop(rb);
    // Shared through one, exclusive without timeout through the other: would wait for
    // itself forever, so it is refused at once.
    let err = b.acquire().await.unwrap_err();
    assert!(matches!(err, Error::WouldDeadlock { .. }), "{err:?}");
    drop(ra);

    // Exclusive through one, shared without timeout through the other: the same.
    let wa = a.acquire().await.unwrap();
    let err = b.blocking_acquire_shared().unwrap_err();
    assert!(matches!(err, Error::WouldDeadlock { .. }), "{err:?}");
    let err = b.acquire_shared().await.unwrap_err();
    assert!(matches!(err, Error::WouldDeadlock { .. }), "{err:?}");
    // With a timeout it is an ordinary wait that runs out.
    let err = b
        .acquire_shared_timeout(Duration::from_millis(5))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    drop(wa);
}

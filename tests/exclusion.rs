//! Mutual exclusion between handles, tasks, threads and processes; reentrancy.

mod common;

use std::sync::Arc;
use std::time::Duration;

use tokio_filelock::{Error, FileLock, LockMode, Reentrancy};

#[test]
fn child_entry() {
    common::child_entry(run_role);
}

fn run_role(role: &str, args: &[String]) {
    match role {
        // Holds the lock on args[0] until told "release" (or stdin closes).
        "hold" => {
            let lock = FileLock::new(&args[0]);
            let guard = lock.blocking_acquire().unwrap();
            common::say("acquired");
            let _ = common::hear();
            guard.release().unwrap();
            common::say("released");
        }
        // Tries once on args[0] and reports.
        "try" => {
            let lock = FileLock::new(&args[0]);
            match lock.blocking_try_acquire().unwrap() {
                Some(_) => common::say("won"),
                None => common::say("busy"),
            }
        }
        // Linux: keeps the lock file of one handle open between holds, forks (without
        // exec), and has the fork try the same handle while the parent holds it.
        #[cfg(target_os = "linux")]
        "fork_after_keep" => common::say(fork_after_keep(&args[0])),
        other => panic!("unknown role {other}"),
    }
}

fn lock_path(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("exclusion.lock")
}

/// Acquires `lock` in a task of its own (so the holder is that task) and returns the guard.
async fn acquired_in_a_task(lock: &FileLock) -> tokio_filelock::LockGuard {
    let lock = lock.clone();
    tokio::spawn(async move { lock.acquire().await.unwrap() })
        .await
        .unwrap()
}

/// Whether one attempt at `lock`, made by a task of its own, wins.
async fn wins_in_a_task(lock: &FileLock) -> bool {
    let lock = lock.clone();
    tokio::spawn(async move { lock.try_acquire().await.unwrap().is_some() })
        .await
        .unwrap()
}

#[tokio::test]
async fn two_handles_exclude_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let a = FileLock::new(lock_path(&dir));
    let b = FileLock::new(lock_path(&dir));
    let held = a.try_acquire().await.unwrap().expect("free at first");
    assert!(b.try_acquire().await.unwrap().is_none());
    drop(held);
    assert!(b.try_acquire().await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tasks_sharing_one_handle_exclude_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let lock = FileLock::new(lock_path(&dir));
    let held = acquired_in_a_task(&lock).await;
    // Another task, same handle: not the owner, so it is excluded.
    assert!(!wins_in_a_task(&lock).await);
    drop(held);
    assert!(wins_in_a_task(&lock).await);
}

#[tokio::test]
async fn a_thread_and_a_task_exclude_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let lock = FileLock::new(lock_path(&dir));
    let held = acquired_in_a_task(&lock).await;
    let thread_lock = lock.clone();
    let won = std::thread::spawn(move || thread_lock.blocking_try_acquire().unwrap().is_some())
        .join()
        .unwrap();
    assert!(!won, "a thread must not enter while a task holds the lock");

    drop(held);
    let thread_lock = lock.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let guard = thread_lock.blocking_acquire().unwrap();
        tx.send(()).unwrap();
        release_rx.recv().unwrap();
        drop(guard);
    });
    rx.recv_timeout(common::CHILD_WAIT).unwrap();
    assert!(
        !wins_in_a_task(&lock).await,
        "a task must not enter while a thread holds the lock"
    );
    release_tx.send(()).unwrap();
    thread.join().unwrap();
}

#[test]
fn two_processes_exclude_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let path_arg = path.to_str().unwrap();
    let mut holder = common::spawn("hold", &[path_arg]);
    holder.expect("acquired");

    // This process cannot take it, and neither can a third process.
    let lock = FileLock::new(&path);
    assert!(lock.blocking_try_acquire().unwrap().is_none());
    let mut third = common::spawn("try", &[path_arg]);
    third.expect("busy");
    assert!(third.wait_success());

    holder.tell("release");
    holder.expect("released");
    // A waiter with a bounded wait gets it once the holder let go.
    let guard = lock
        .blocking_acquire_timeout(Duration::from_secs(30))
        .unwrap();
    let mut fourth = common::spawn("try", &[path_arg]);
    fourth.expect("busy");
    drop(guard);
    assert!(holder.wait_success());
}

#[test]
fn a_killed_holder_releases_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let mut holder = common::spawn("hold", &[path.to_str().unwrap()]);
    holder.expect("acquired");
    let lock = FileLock::new(&path);
    assert!(lock.blocking_try_acquire().unwrap().is_none());
    holder.kill();
    assert!(lock.blocking_try_acquire().unwrap().is_some());
}

#[tokio::test]
async fn the_same_task_reenters_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let lock = FileLock::builder(lock_path(&dir))
        .reentrancy(Reentrancy::Owner)
        .build();
    let probe = FileLock::new(lock_path(&dir));
    assert_eq!(lock.lock_counter(), 0);
    let first = lock.acquire().await.unwrap();
    let second = lock.acquire().await.unwrap();
    let third = lock.blocking_acquire().unwrap();
    assert_eq!(lock.lock_counter(), 3);
    assert!(lock.is_locked());
    drop(second);
    assert_eq!(lock.lock_counter(), 2);
    first.release().unwrap();
    assert_eq!(lock.lock_counter(), 1);
    assert!(
        probe.try_acquire().await.unwrap().is_none(),
        "still held once"
    );
    drop(third);
    assert_eq!(lock.lock_counter(), 0);
    assert!(!lock.is_locked());
    assert!(
        probe.try_acquire().await.unwrap().is_some(),
        "released at zero"
    );
}

#[tokio::test]
#[cfg_attr(
    windows,
    ignore = "Windows: the held lock file cannot be deleted (opened without FILE_SHARE_DELETE), so the test cannot remove it"
)]
async fn reentry_touches_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let lock = FileLock::builder(&path)
        .reentrancy(Reentrancy::Owner)
        .build();
    let _first = lock.acquire().await.unwrap();
    // With the file gone, an acquire that opened the path would create it again: a
    // reentrant one must not open anything.
    std::fs::remove_file(&path).unwrap();
    let _second = lock.acquire().await.unwrap();
    assert!(!path.exists(), "reentry must not recreate the file");
    assert_eq!(lock.lock_counter(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_releases_the_hold_of_its_owner_wherever_it_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let lock = FileLock::new(lock_path(&dir));
    let guard = lock.acquire().await.unwrap();
    assert_eq!(lock.lock_counter(), 1);
    tokio::spawn(async move { drop(guard) }).await.unwrap();
    assert_eq!(lock.lock_counter(), 0);
    let probe = FileLock::new(lock_path(&dir));
    assert!(probe.try_acquire().await.unwrap().is_some());
}

#[tokio::test]
async fn same_owner_other_handle_without_timeout_is_a_deadlock_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = FileLock::new(lock_path(&dir));
    let b = FileLock::new(lock_path(&dir));
    let _held = a.acquire().await.unwrap();
    let err = b.acquire().await.unwrap_err();
    assert!(matches!(err, Error::WouldDeadlock { .. }), "{err:?}");
    assert_eq!(err.path(), lock_path(&dir));
    let err = b.blocking_acquire().unwrap_err();
    assert!(matches!(err, Error::WouldDeadlock { .. }), "{err:?}");
    // With a timeout it is an ordinary wait that times out.
    let err = b
        .acquire_timeout(Duration::from_millis(5))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
}

#[tokio::test]
async fn singleton_handles_share_holds() {
    let dir = tempfile::tempdir().unwrap();
    let a = FileLock::builder(lock_path(&dir))
        .singleton(true)
        .reentrancy(Reentrancy::Owner)
        .build();
    let b = FileLock::builder(lock_path(&dir))
        .singleton(true)
        .reentrancy(Reentrancy::Owner)
        .timeout(Duration::ZERO)
        .build();
    let _first = a.acquire().await.unwrap();
    let _second = b.acquire().await.unwrap(); // re-enters instead of deadlocking
    assert_eq!(a.lock_counter(), 2);
    assert_eq!(b.lock_counter(), 2);
    let plain = FileLock::new(lock_path(&dir));
    assert!(
        plain
            .acquire_timeout(Duration::ZERO)
            .await
            .unwrap_err()
            .is_timeout()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_handle_reentrancy_lets_other_tasks_in() {
    let dir = tempfile::tempdir().unwrap();
    let lock = FileLock::builder(lock_path(&dir))
        .reentrancy(Reentrancy::Handle)
        .build();
    let _held = lock.acquire().await.unwrap();
    let other = lock.clone();
    let count = tokio::spawn(async move {
        let _guard = other.acquire().await.unwrap();
        other.lock_counter()
    })
    .await
    .unwrap();
    assert_eq!(count, 2);
    assert_eq!(lock.lock_counter(), 1);
}

#[tokio::test]
async fn with_lock_runs_the_future_while_holding() {
    let dir = tempfile::tempdir().unwrap();
    let lock = FileLock::new(lock_path(&dir));
    let probe = FileLock::new(lock_path(&dir));
    let seen_held = lock
        .with_lock(async {
            let probe = probe.clone();
            // A different task sees it held.
            tokio::spawn(async move { probe.try_acquire().await.unwrap().is_none() })
                .await
                .unwrap()
        })
        .await
        .unwrap();
    assert!(seen_held);
    assert!(
        probe.try_acquire().await.unwrap().is_some(),
        "released after"
    );
    let value = lock.blocking_with_lock(|| 7).unwrap();
    assert_eq!(value, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_never_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let lock = FileLock::builder(lock_path(&dir))
        .poll_interval(Duration::from_millis(2))
        .build();
    let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let lock = lock.clone();
        let inside = inside.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                let _guard = lock.acquire().await.unwrap();
                let now = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                assert_eq!(now, 0, "two tasks inside at once");
                tokio::task::yield_now().await;
                inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn shared_holders_coexist_and_exclusive_excludes_them() {
    let dir = tempfile::tempdir().unwrap();
    let a = FileLock::new(lock_path(&dir));
    let b = FileLock::new(lock_path(&dir));
    let w = FileLock::new(lock_path(&dir));
    let ra = a.try_acquire_shared().await.unwrap().unwrap();
    let rb = b.try_acquire_shared().await.unwrap().unwrap();
    assert_eq!(ra.mode(), LockMode::Shared);
    assert!(w.try_acquire().await.unwrap().is_none());
    drop((ra, rb));
    let wg = w.try_acquire().await.unwrap().unwrap();
    assert_eq!(wg.mode(), LockMode::Exclusive);
    assert!(a.try_acquire_shared().await.unwrap().is_none());
}

/// Issue 16, item 3: a guard moved to another task is that task's hold now. Its acquirer,
/// acquiring again through the same handle, must wait for it like anyone else (with the
/// old default it re-entered at once: two tasks in the critical section).
#[tokio::test(start_paused = true)]
async fn a_guard_moved_to_another_task_keeps_its_acquirer_out() {
    let dir = tempfile::tempdir().unwrap();
    let lock = FileLock::new(lock_path(&dir));
    let guard = lock.acquire().await.unwrap();
    let (held_tx, held_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let keeper = tokio::spawn(async move {
        let _guard = guard;
        held_tx.send(()).unwrap();
        let _ = release_rx.await;
    });
    held_rx.await.unwrap();

    let err = lock
        .acquire_timeout(Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "got in while another task holds: {err:?}");
    assert!(lock.try_acquire().await.unwrap().is_none());
    // Without a timeout the crate cannot tell the hold was moved: it refuses to wait
    // forever, and says how to proceed.
    let err = lock.acquire().await.unwrap_err();
    assert!(matches!(err, Error::WouldDeadlock { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("timeout") && message.contains("Reentrancy::Owner"),
        "{message}"
    );

    release_tx.send(()).unwrap();
    keeper.await.unwrap();
    let guard = lock.acquire_timeout(Duration::from_secs(1)).await.unwrap();
    drop(guard);
}

/// The same with threads and the sync facade.
#[test]
fn a_guard_moved_to_another_thread_keeps_its_acquirer_out() {
    let dir = tempfile::tempdir().unwrap();
    let lock = FileLock::new(lock_path(&dir));
    let guard = lock.blocking_acquire().unwrap();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let keeper = std::thread::spawn(move || {
        let _guard = guard;
        let _ = release_rx.recv_timeout(common::CHILD_WAIT);
    });
    let err = lock
        .blocking_acquire_timeout(Duration::from_millis(50))
        .unwrap_err();
    assert!(
        err.is_timeout(),
        "got in while another thread holds: {err:?}"
    );
    assert!(lock.blocking_try_acquire().unwrap().is_none());
    release_tx.send(()).unwrap();
    keeper.join().unwrap();
    assert!(lock.blocking_try_acquire().unwrap().is_some());
}

/// The default: a second acquire by the same task is a hold of its own. It waits (and
/// times out) rather than re-entering; without a timeout it is `WouldDeadlock` at once.
#[tokio::test(start_paused = true)]
async fn by_default_the_same_task_does_not_reenter() {
    let dir = tempfile::tempdir().unwrap();
    let lock = FileLock::new(lock_path(&dir));
    let _held = lock.acquire().await.unwrap();
    let err = lock
        .acquire_timeout(Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    let err = lock.acquire().await.unwrap_err();
    assert!(matches!(err, Error::WouldDeadlock { .. }), "{err:?}");
    let err = lock.blocking_acquire().unwrap_err();
    assert!(matches!(err, Error::WouldDeadlock { .. }), "{err:?}");
    assert_eq!(lock.lock_counter(), 1);
}

/// Issue 16, item 4, first symptom: thread A takes a per-handle hold, B re-enters, A lets
/// go. B is the holder now: B waiting forever for the file through another handle must be
/// told `WouldDeadlock`, not hang (the registry used to name A).
#[test]
fn per_handle_holds_name_who_holds_now_so_the_last_holder_gets_would_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let shared = FileLock::builder(lock_path(&dir))
        .reentrancy(Reentrancy::Handle)
        .build();
    let other = FileLock::new(lock_path(&dir));
    let taker = shared.clone();
    let a_guard = std::thread::spawn(move || taker.blocking_acquire().unwrap())
        .join()
        .unwrap();
    let (reentered_tx, reentered_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (result_tx, result_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let b_guard = shared.blocking_acquire().unwrap();
        reentered_tx.send(shared.lock_counter()).unwrap();
        if go_rx.recv_timeout(common::CHILD_WAIT).is_ok() {
            let _ = result_tx.send(other.blocking_acquire().map(drop));
        }
        drop(b_guard);
    });
    assert_eq!(
        reentered_rx.recv_timeout(common::CHILD_WAIT).unwrap(),
        2,
        "B re-entered"
    );
    drop(a_guard);
    go_tx.send(()).unwrap();
    let result = result_rx
        .recv_timeout(common::CHILD_WAIT)
        .expect("B hangs waiting for a lock only it holds");
    let err = result.unwrap_err();
    assert!(matches!(err, Error::WouldDeadlock { .. }), "{err:?}");
}

/// Issue 16, item 4, second symptom: after A let go of its share of a per-handle hold that
/// B still has, A waiting through another handle is an ordinary wait that ends when B
/// lets go, not a false `WouldDeadlock`.
#[test]
fn per_handle_holds_forget_an_owner_that_let_go() {
    enum Event {
        Waiting,
        Done(Result<(), Error>),
    }
    let dir = tempfile::tempdir().unwrap();
    let shared = FileLock::builder(lock_path(&dir))
        .reentrancy(Reentrancy::Handle)
        .build();
    let (events_tx, events_rx) = std::sync::mpsc::channel();
    let hook_tx = std::sync::Mutex::new(events_tx.clone());
    let other = FileLock::builder(lock_path(&dir))
        .on_wait(move |_| {
            let _ = hook_tx.lock().unwrap().send(Event::Waiting);
        })
        .build();
    let (a_took_tx, a_took_rx) = std::sync::mpsc::channel();
    let (a_go_tx, a_go_rx) = std::sync::mpsc::channel::<()>();
    let a_handle = shared.clone();
    let a = std::thread::spawn(move || {
        let a_guard = a_handle.blocking_acquire().unwrap();
        a_took_tx.send(()).unwrap();
        if a_go_rx.recv_timeout(common::CHILD_WAIT).is_ok() {
            drop(a_guard);
            let _ = events_tx.send(Event::Done(other.blocking_acquire().map(drop)));
        }
    });
    a_took_rx.recv_timeout(common::CHILD_WAIT).unwrap();
    let (b_took_tx, b_took_rx) = std::sync::mpsc::channel();
    let (b_go_tx, b_go_rx) = std::sync::mpsc::channel::<()>();
    let b = std::thread::spawn(move || {
        let b_guard = shared.blocking_acquire().unwrap();
        b_took_tx.send(()).unwrap();
        let _ = b_go_rx.recv_timeout(common::CHILD_WAIT);
        drop(b_guard);
    });
    b_took_rx.recv_timeout(common::CHILD_WAIT).unwrap();
    a_go_tx.send(()).unwrap();
    match events_rx.recv_timeout(common::CHILD_WAIT).unwrap() {
        Event::Waiting => {}
        Event::Done(result) => panic!("A must wait for B, got {:?}", result.err()),
    }
    b_go_tx.send(()).unwrap();
    b.join().unwrap();
    match events_rx.recv_timeout(common::CHILD_WAIT).unwrap() {
        Event::Done(result) => result.unwrap(),
        Event::Waiting => panic!("the hook runs once"),
    }
    a.join().unwrap();
}

/// The fork's try through its copy of the handle, while the parent holds the lock through
/// the descriptor that handle kept: `"busy"`, or `"won"` (two holders).
#[cfg(target_os = "linux")]
fn fork_after_keep(path: &str) -> &'static str {
    let lock = FileLock::new(path);
    // The first acquire learns that the file system is local; its release keeps the file.
    drop(lock.blocking_acquire().unwrap());
    let mut pipe = [0; 2];
    // SAFETY: `pipe` is two writable ints.
    assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
    let [read_end, write_end] = pipe;
    // SAFETY: this process runs one thread (the role), so the fork copies no lock held
    // by another thread; the child only reads a pipe, tries the lock and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let mut byte = [0u8; 1];
        // SAFETY: `read_end` is open and `byte` one writable byte.
        unsafe { libc::read(read_end, byte.as_mut_ptr().cast(), 1) };
        let won = lock.blocking_try_acquire().unwrap().is_some();
        // SAFETY: ends the fork at once, without running the parent's exit handlers.
        unsafe { libc::_exit(if won { 1 } else { 0 }) };
    }
    // The parent holds through the kept descriptor, then lets the fork try.
    let guard = lock.blocking_acquire().unwrap();
    // SAFETY: `write_end` is open and the byte readable.
    assert_eq!(
        unsafe { libc::write(write_end, [1u8].as_ptr().cast(), 1) },
        1
    );
    let mut status = 0;
    // SAFETY: `pid` is our child; `status` is writable.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    drop(guard);
    match libc::WEXITSTATUS(status) {
        0 => "busy",
        _ => "won",
    }
}

/// A process forked after a handle kept its lock file open shares that descriptor's open
/// file description with its parent: a lock call on it would be the parent's own lock,
/// granted again. The fork must open its own and find the lock busy.
#[cfg(target_os = "linux")]
#[test]
fn a_fork_never_locks_through_its_parents_kept_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forked.lock");
    let mut child = common::spawn("fork_after_keep", &[path.to_str().unwrap()]);
    child.expect("busy");
}

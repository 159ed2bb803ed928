//! Who holds it: the holder named in `Error::Timeout`, in the waiting hook, and by
//! `FileLock::holder`, with real processes holding the lock.
#![cfg(target_os = "linux")] // holders are looked up in /proc/locks

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_filelock::{Error, FileLock, Holder, LockMode};

#[test]
fn child_entry() {
    common::child_entry(common::hold_role);
}

/// A child holding the lock on a fresh path, and the path.
fn held_by_child(role: &str) -> (common::ChildProcess, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("who.lock");
    let mut child = common::spawn(role, &[path.to_str().unwrap()]);
    child.expect("acquired");
    (child, dir, path)
}

/// The child's command line contains its harness arguments.
fn assert_is_child(holder: &Holder, child: &common::ChildProcess) {
    assert_eq!(holder.pid, child.id(), "{holder:?}");
    let command = holder.command.as_deref().expect("the child's command line");
    let command = command.to_string_lossy();
    assert!(command.contains("child_entry --exact"), "{command}");
}

type Seen = Arc<Mutex<Vec<(std::path::PathBuf, Option<Holder>)>>>;

fn recording(path: &std::path::Path) -> (FileLock, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let lock = FileLock::builder(path)
        .on_wait(move |event| {
            let entry = (event.path().to_path_buf(), event.holder().cloned());
            record.lock().unwrap().push(entry);
        })
        .build();
    (lock, seen)
}

#[tokio::test(start_paused = true)]
async fn timeout_and_waiting_hook_name_the_child() {
    let (child, _dir, path) = held_by_child("hold");
    let (lock, seen) = recording(&path);

    let err = lock
        .acquire_timeout(Duration::from_secs(5))
        .await
        .unwrap_err();
    let Error::Timeout { holder, waited, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(*waited >= Duration::from_secs(5));
    let holder = holder.as_ref().expect("a holder");
    assert_is_child(holder, &child);
    assert_eq!(holder.mode, LockMode::Exclusive);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "the file lock '{}' could not be acquired: held by pid {} (",
            path.display(),
            child.id()
        )),
        "{text}"
    );
    assert!(text.contains("; waited 5."), "{text}");

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "the hook runs once per acquire: {seen:?}");
    assert_eq!(seen[0].0, path);
    assert_is_child(seen[0].1.as_ref().expect("a holder"), &child);
}

#[test]
fn the_sync_facade_names_the_holder_too() {
    let (child, _dir, path) = held_by_child("hold");
    let (lock, seen) = recording(&path);
    let err = lock
        .blocking_acquire_timeout(Duration::from_millis(20))
        .unwrap_err();
    let Error::Timeout { holder, .. } = &err else {
        panic!("{err:?}")
    };
    assert_is_child(holder.as_ref().unwrap(), &child);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

/// A single attempt on an OS lock does not read /proc/locks (it costs more than the
/// attempt); `holder()` names it on request.
#[test]
fn one_attempt_names_no_holder_and_calls_no_hook() {
    let (child, _dir, path) = held_by_child("hold");
    let (lock, seen) = recording(&path);
    let err = lock.blocking_acquire_timeout(Duration::ZERO).unwrap_err();
    let Error::Timeout { holder, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(holder, &None);
    assert_eq!(
        err.to_string(),
        format!(
            "the file lock '{}' could not be acquired: held elsewhere; one attempt, no wait",
            path.display()
        )
    );
    assert!(seen.lock().unwrap().is_empty(), "nothing waited");
    assert_is_child(&lock.blocking_holder().unwrap().unwrap(), &child);
}

#[test]
fn a_shared_holder_is_named_shared() {
    let (child, _dir, path) = held_by_child("hold_shared");
    let err = FileLock::new(&path)
        .blocking_acquire_timeout(Duration::from_millis(1))
        .unwrap_err();
    let Error::Timeout { holder, .. } = &err else {
        panic!("{err:?}")
    };
    let holder = holder.as_ref().unwrap();
    assert_is_child(holder, &child);
    assert_eq!(holder.mode, LockMode::Shared);
    // A shared request is not blocked by it.
    let lock = FileLock::new(&path);
    assert!(lock.blocking_try_acquire_shared().unwrap().is_some());
}

#[test]
fn holder_query_takes_nothing_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.lock");
    assert_eq!(FileLock::new(&path).blocking_holder().unwrap(), None);
    assert!(!path.exists(), "a query does not create the lock file");

    let mut child = common::spawn("hold", &[path.to_str().unwrap()]);
    child.expect("acquired");
    let holder = FileLock::new(&path).blocking_holder().unwrap().unwrap();
    assert_is_child(&holder, &child);
    assert!(child.wait_success());
    assert_eq!(FileLock::new(&path).blocking_holder().unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn this_process_is_named_when_it_holds_the_lock_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("self.lock");
    let held = FileLock::new(&path);
    let guard = tokio::spawn(async move { held.acquire().await.unwrap() })
        .await
        .unwrap();
    let err = FileLock::new(&path)
        .acquire_timeout(Duration::from_millis(10))
        .await
        .unwrap_err();
    let Error::Timeout { holder, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(holder.as_ref().unwrap().pid, std::process::id());
    assert_eq!(
        FileLock::new(&path).holder().await.unwrap().unwrap().pid,
        std::process::id()
    );
    drop(guard);
}

/// A panic in the waiting hook reaches the caller as a panic, in the async driver (where
/// the hook runs on the blocking pool) as in the sync facade, not as an I/O error.
#[tokio::test]
async fn a_panicking_hook_panics_the_acquire() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("panic.lock");
    let _held = tokio_filelock::FileLock::new(&path)
        .acquire()
        .await
        .unwrap();
    let lock = tokio_filelock::FileLock::builder(&path)
        .timeout(std::time::Duration::from_secs(5))
        .on_wait(|_| panic!("hook says no"))
        .build();
    let joined = tokio::spawn(async move { lock.acquire().await.map(drop) }).await;
    let panic = joined.expect_err("the task panicked").into_panic();
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"hook says no"));
}

/// `holder()` polled outside any Tokio runtime is an error, not a panic.
#[test]
fn holder_outside_a_runtime_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let lock = tokio_filelock::FileLock::new(dir.path().join("nort.lock"));
    let err = block_on_without_runtime(lock.holder()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::Other, "{err}");
    // The message names what failed; the cause (no runtime) is its source, said once.
    assert!(
        err.to_string().starts_with("could not run an attempt"),
        "{err}"
    );
    let cause = std::error::Error::source(&err)
        .expect("a cause")
        .to_string();
    assert!(cause.contains("no Tokio runtime"), "{cause}");
    assert!(!err.to_string().contains(&cause), "{err}");
}

/// Polls a future to completion on this thread, with no Tokio runtime around it.
fn block_on_without_runtime<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}

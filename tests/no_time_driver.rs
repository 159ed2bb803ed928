//! Runtimes built without the time driver (`Builder::new_current_thread()` without
//! `enable_time`): a contended acquire waits on the crate's own timer instead of panicking
//! in Tokio ("timers are disabled"), the same on every call (issue 16, item 8).

mod common;

use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

use tokio_filelock::FileLock;

#[test]
fn child_entry() {
    common::child_entry(common::hold_role);
}

/// Runtimes without the time driver: current-thread and multi-thread, with and without IO.
fn runtimes() -> Vec<(&'static str, tokio::runtime::Runtime)> {
    vec![
        (
            "current_thread",
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
        ),
        (
            "current_thread + io",
            tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .unwrap(),
        ),
        (
            "multi_thread",
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .build()
                .unwrap(),
        ),
    ]
}

#[test]
fn contended_acquires_time_out_and_tries_say_busy_without_a_time_driver() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-timer.lock");
    let _held = FileLock::new(&path).blocking_acquire().unwrap();
    for (name, rt) in runtimes() {
        let lock = FileLock::new(&path);
        for call in 0..2 {
            let err = rt
                .block_on(lock.acquire_timeout(Duration::from_millis(30)))
                .unwrap_err();
            assert!(err.is_timeout(), "{name}, call {call}: {err:?}");
            let tried = rt.block_on(lock.try_acquire()).unwrap();
            assert!(tried.is_none(), "{name}, call {call}");
        }
    }
}

#[test]
fn a_contended_acquire_without_timeout_waits_for_the_release_without_a_time_driver() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-timer-wait.lock");
    for (name, rt) in runtimes() {
        // Held by another process: its release wakes no in-process queue, so the waiter's
        // own timed attempts (or, with IO, its file watch) must find the lock free.
        let mut holder = common::spawn("hold", &[path.to_str().unwrap()]);
        holder.expect("acquired");
        let (waiting_tx, waiting_rx) = mpsc::channel();
        let waiting_tx = Mutex::new(waiting_tx);
        let lock = FileLock::builder(&path)
            .poll_interval(Duration::from_millis(20))
            .on_wait(move |_| {
                let _ = waiting_tx.lock().unwrap().send(());
            })
            .build();
        let (done_tx, done_rx) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let result = rt.block_on(lock.acquire()).map(drop);
            let _ = done_tx.send(result);
        });
        waiting_rx
            .recv_timeout(common::CHILD_WAIT)
            .unwrap_or_else(|_| panic!("{name}: the waiter started waiting"));
        assert!(holder.wait_status(common::CHILD_WAIT).success()); // releases and exits
        let result = done_rx
            .recv_timeout(common::CHILD_WAIT)
            .unwrap_or_else(|_| panic!("{name}: the waiter got in"));
        result.unwrap_or_else(|e| panic!("{name}: {e}"));
        waiter.join().unwrap();
    }
}

//! The sync facade on a thread that drives a Tokio runtime: a `blocking_*` acquire that has
//! to wait panics there in debug builds (as tokio's `Mutex::blocking_lock`) instead of
//! stalling the thread's tasks. It is fine on the blocking pool, inside `block_in_place`,
//! in a runtime's context without driving it, with no runtime at all, and wherever it does
//! not wait (it wins, re-enters, or makes a single attempt).
#![cfg(debug_assertions)]

use std::time::Duration;

use tokio_filelock::{FileLock, Reentrancy};

fn path(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("facade.lock")
}

fn message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn inside_block_on_a_blocking_acquire_that_must_wait_panics() {
    let dir = tempfile::tempdir().unwrap();
    let lock = FileLock::builder(path(&dir))
        .reentrancy(Reentrancy::Owner)
        .build();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Not waiting: allowed (uncontended, re-entry, a single attempt).
    rt.block_on(async {
        let held = lock.blocking_acquire().unwrap();
        let again = lock.blocking_acquire().unwrap();
        assert_eq!(lock.lock_counter(), 2);
        let other = FileLock::new(path(&dir));
        assert!(other.blocking_try_acquire().unwrap().is_none());
        assert!(other.blocking_acquire_timeout(Duration::ZERO).is_err());
        // Waiting for the other handle's hold: it would stall this thread's tasks.
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = other.blocking_acquire_timeout(Duration::from_secs(5));
        }))
        .expect_err("a wait on the runtime's thread panics");
        let text = message(panicked);
        assert!(text.contains("drives a Tokio runtime"), "{text}");
        assert!(text.contains("facade.lock"), "{text}");
        assert!(!other.is_locked());
        drop((held, again));
    });
}

#[test]
fn on_a_worker_each_waiting_form_panics() {
    let dir = tempfile::tempdir().unwrap();
    let holder = FileLock::new(path(&dir));
    let _held = holder.blocking_acquire().unwrap();
    // A configured timeout bounds the forms without one, should they wait after all.
    let lock = FileLock::builder(path(&dir))
        .timeout(Duration::from_secs(1))
        .build();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    type Call = fn(&FileLock);
    let calls: [(&str, Call); 5] = [
        ("blocking_acquire", |l| drop(l.blocking_acquire())),
        ("blocking_acquire_timeout", |l| {
            drop(l.blocking_acquire_timeout(Duration::from_secs(1)))
        }),
        ("blocking_acquire_shared", |l| {
            drop(l.blocking_acquire_shared())
        }),
        ("blocking_acquire_shared_timeout", |l| {
            drop(l.blocking_acquire_shared_timeout(Duration::from_secs(1)))
        }),
        ("blocking_with_lock", |l| drop(l.blocking_with_lock(|| ()))),
    ];
    for (name, call) in calls {
        let lock = lock.clone();
        let joined = rt.block_on(rt.spawn(async move { call(&lock) }));
        let text = message(joined.expect_err("it panics").into_panic());
        assert!(text.contains("drives a Tokio runtime"), "{name}: {text}");
    }
    assert!(!lock.is_locked());
}

#[test]
fn off_the_runtime_threads_it_waits_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // In each place the acquire finds the lock held by another thread, which lets go only
    // once the acquire's waiting hook says it waits: so each one really waits, then wins.
    let waits_for_a_release = |acquire: &dyn Fn(FileLock)| {
        let (waiting, heard) = std::sync::mpsc::channel::<()>();
        let (taken, held) = std::sync::mpsc::channel::<()>();
        let holder_path = path(&dir);
        let holder = std::thread::spawn(move || {
            let guard = FileLock::new(holder_path).blocking_acquire().unwrap();
            taken.send(()).unwrap();
            heard
                .recv_timeout(Duration::from_secs(30))
                .expect("the acquire waits");
            drop(guard);
        });
        held.recv_timeout(Duration::from_secs(30)).unwrap();
        let lock = FileLock::builder(path(&dir))
            .on_wait(move |_| waiting.send(()).unwrap())
            .build();
        acquire(lock);
        holder.join().unwrap();
    };
    // No runtime.
    waits_for_a_release(&|lock| drop(lock.blocking_acquire().unwrap()));
    // A runtime's context entered, but not driven.
    waits_for_a_release(&|lock| {
        let _entered = rt.enter();
        drop(lock.blocking_acquire().unwrap());
    });
    // The blocking pool: the place for it.
    waits_for_a_release(&|lock| {
        rt.block_on(rt.spawn_blocking(move || {
            drop(
                lock.blocking_acquire_timeout(Duration::from_secs(5))
                    .unwrap(),
            );
        }))
        .unwrap();
    });
    // `block_in_place` on a worker.
    waits_for_a_release(&|lock| {
        rt.block_on(rt.spawn(async move {
            tokio::task::block_in_place(|| drop(lock.blocking_acquire().unwrap()));
        }))
        .unwrap();
    });
}

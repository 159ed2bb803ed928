//! The crate's watcher thread (issue 12): one per process, whatever waits (async on any
//! runtime flavour, with or without IO or time, and the sync facade), and idle once no
//! waiter exists: no watch, no timer, blocked without a timeout.
//!
//! Its own test binary, so that no other test's waiter is about while it looks.
#![cfg(target_os = "linux")]

mod common;

use std::time::{Duration, Instant};

use tokio_filelock::FileLock;

/// The watcher threads of this process (a thread's `comm` is its name cut to 15 bytes).
fn watcher_threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| {
            let task = task.ok()?.path();
            let comm = std::fs::read_to_string(task.join("comm")).ok()?;
            "tokio-filelock-watcher"
                .starts_with(comm.trim_end())
                .then(|| task.file_name().unwrap().to_string_lossy().into_owned())
        })
        .collect()
}

/// `true` while thread `tid` is blocked in `ppoll` with no timeout (a null `tmo_p`: no timer
/// pending), and the only inotify watches left in the process are on `lock_file` (the file
/// the test waited for): a watch nobody subscribes to stays, idle, for the next waiter on
/// its file (the watcher's, and one per sync notifier of the crate's pool at most), and goes
/// at the file's next event.
fn idle(tid: &str, lock_file: u64) -> bool {
    let Ok(syscall) = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")) else {
        return false;
    };
    let fields: Vec<&str> = syscall.split_whitespace().collect();
    let in_ppoll_forever = fields.first() == Some(&libc::SYS_ppoll.to_string().as_str())
        && fields.get(3) == Some(&"0x0");
    let watches = common::inotify_watched_inodes();
    in_ppoll_forever && watches.len() <= 1 + 8 && watches.iter().all(|ino| *ino == lock_file)
}

#[test]
fn one_named_watcher_serves_every_kind_of_waiter_and_idles_when_none_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watched.lock");
    assert!(watcher_threads().is_empty(), "started before anyone waited");
    let held = FileLock::new(&path).blocking_acquire().unwrap();
    let wait = Duration::from_millis(20);
    let lock = FileLock::new(&path);
    let runtimes = [
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap(),
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap(),
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap(),
    ];
    for rt in &runtimes {
        let err = rt.block_on(lock.acquire_timeout(wait)).unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
    }
    assert!(
        lock.blocking_acquire_timeout(wait)
            .unwrap_err()
            .is_timeout()
    );
    // Hand-offs: to a sync waiter, then to an async one on a runtime without IO or time.
    let sync_waiter = {
        let lock = lock.clone();
        std::thread::spawn(move || lock.blocking_acquire())
    };
    drop(held);
    let held = sync_waiter.join().unwrap().unwrap();
    let async_waiter = {
        let lock = lock.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(lock.acquire()).map(drop)
        })
    };
    drop(held);
    async_waiter.join().unwrap().unwrap();
    let threads = watcher_threads();
    assert_eq!(threads.len(), 1, "one watcher per process: {threads:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let lock_file = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
    while !idle(&threads[0], lock_file) {
        assert!(Instant::now() < deadline, "the watcher never went idle");
        std::thread::sleep(Duration::from_millis(1));
    }
}

//! Linux: a handle keeps its lock file open between holds, and a process keeps at most 64
//! such descriptors. Its own test binary: the bound is process-wide.
#![cfg(target_os = "linux")]

use tokio_filelock::FileLock;

/// Descriptors of this process open on files in `dir`.
fn descriptors_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

#[test]
fn a_process_keeps_at_most_64_lock_files_open_between_holds() {
    let dir = tempfile::tempdir().unwrap();
    let locks: Vec<FileLock> = (0..72)
        .map(|i| FileLock::new(dir.path().join(format!("{i}.lock"))))
        .collect();
    for lock in &locks {
        drop(lock.blocking_acquire().unwrap());
    }
    assert_eq!(descriptors_in(dir.path()), 64, "one per handle, 64 at most");
    // Kept or not, every handle locks and lets go as before, and another handle gets in
    // while none holds.
    for lock in &locks {
        drop(lock.blocking_try_acquire().unwrap().unwrap());
    }
    for i in 0..72 {
        let other = FileLock::new(dir.path().join(format!("{i}.lock")));
        drop(other.blocking_try_acquire().unwrap().unwrap());
    }
    drop(locks);
    assert_eq!(descriptors_in(dir.path()), 0, "closed with their handles");
}

//! `SoftFileLock` on Windows: exclusion across processes, and stale markers broken only on
//! proof (the holder's process is gone, or its PID now names a process created at another
//! time: `GetProcessTimes`), by moving the marker aside as Python filelock does on Windows.
//! The Unix suite (symlinks, FIFOs, modes, Python interop) is tests/soft.rs.
#![cfg(windows)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_filelock::{Error, SoftFileLock};

const BOUND: Duration = Duration::from_secs(10);

#[test]
fn child_entry() {
    common::child_entry(run_role);
}

fn run_role(role: &str, args: &[String]) {
    match role {
        // Holds the soft lock on args[0] until told to release (or stdin closes).
        "hold" => {
            let guard = SoftFileLock::new(&args[0]).blocking_acquire().unwrap();
            common::say("acquired");
            let _ = common::hear();
            guard.release().unwrap();
            common::say("released");
        }
        other => panic!("unknown role {other}"),
    }
}

fn lock_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("soft.lock")
}

/// Our own marker's lines (PID, host, start token), read from a marker we write.
fn our_record(dir: &tempfile::TempDir) -> Vec<String> {
    let path = dir.path().join("probe.lock");
    let guard = SoftFileLock::new(&path).blocking_acquire().unwrap();
    let record = std::fs::read_to_string(&path).unwrap();
    guard.release().unwrap();
    record.lines().map(str::to_owned).collect()
}

fn expect_timeout(lock: &SoftFileLock) {
    match lock.blocking_acquire_timeout(Duration::ZERO) {
        Err(Error::Timeout { .. }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
}

/// A child process holding the soft lock on `path`, and our lock on it, checked excluded.
fn held_elsewhere(path: &Path) -> (common::ChildProcess, SoftFileLock) {
    let mut holder = common::spawn("hold", &[path.to_str().unwrap()]);
    holder.expect("acquired");
    let lock = SoftFileLock::new(path);
    expect_timeout(&lock);
    (holder, lock)
}

#[test]
fn our_marker_names_pid_host_and_creation_time() {
    let dir = tempfile::tempdir().unwrap();
    let record = our_record(&dir);
    assert_eq!(record.len(), 3, "pid, host, start token: {record:?}");
    assert_eq!(record[0], std::process::id().to_string());
    assert!(!record[1].is_empty());
    assert!(record[2].parse::<u64>().unwrap() > 0, "a FILETIME");
}

#[test]
fn another_process_is_excluded_until_release() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let (mut holder, lock) = held_elsewhere(&path);
    holder.tell("release");
    holder.expect("released");
    lock.blocking_acquire_timeout(BOUND)
        .unwrap()
        .release()
        .unwrap();
    assert!(!exists(&path), "release deletes our marker");
}

#[test]
fn a_killed_holders_marker_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let (mut holder, lock) = held_elsewhere(&path);
    holder.kill(); // TerminateProcess: the marker stays behind
    assert!(exists(&path));
    let guard = lock.blocking_acquire_timeout(BOUND).unwrap();
    let record = std::fs::read_to_string(&path).unwrap();
    assert!(record.starts_with(&format!("{}\n", std::process::id())));
    guard.release().unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no aside left behind"
    );
}

#[test]
fn a_recycled_pid_is_told_apart_by_its_creation_time() {
    let dir = tempfile::tempdir().unwrap();
    let ours = our_record(&dir);
    let path = lock_path(&dir);
    let lock = SoftFileLock::new(&path);
    // Our PID, our host, another creation time: the PID was recycled, the marker is stale.
    std::fs::write(&path, format!("{}\n{}\n1\n", ours[0], ours[1])).unwrap();
    lock.blocking_acquire_timeout(BOUND)
        .unwrap()
        .release()
        .unwrap();
    // Our PID and host without a start token: a live PID is taken as the holder.
    std::fs::write(&path, format!("{}\n{}\n", ours[0], ours[1])).unwrap();
    expect_timeout(&lock);
    // The exact record of a live process: not stale.
    std::fs::write(&path, format!("{}\n", ours.join("\n"))).unwrap();
    expect_timeout(&lock);
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

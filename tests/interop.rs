//! Interop: Python `filelock` and util-linux `flock(1)` exclude this crate and are excluded
//! by it, both directions, and a counter incremented by Rust and Python processes together
//! stays exact.
//!
//! Needs `python3` with `filelock` (`python3 -m pip install filelock==4.3.1`) and `flock(1)`
//! (`apt-get install -y util-linux`). A test whose tool is missing fails, saying what to
//! install; none passes silently.
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::ChildProcess;
use common::workload::{self, CounterRun};
use tokio_filelock::FileLock;

/// The Python peer, kept in the repository.
const PY_LOCK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/py_lock.py");

/// Bound of every wait in this file that is expected to succeed.
const WAIT: Duration = Duration::from_secs(30);

#[test]
fn child_entry() {
    common::child_entry(run_role);
}

fn run_role(role: &str, args: &[String]) {
    match role {
        "count" => workload::count_role(args),
        other => panic!("unknown role {other}"),
    }
}

fn require_python_filelock() {
    common::require_tool(
        "python3",
        &["-c", "import filelock"],
        "install it with `python3 -m pip install filelock==4.3.1`",
    );
}

fn require_flock() {
    common::require_tool(
        "flock",
        &["--version"],
        "install util-linux (`apt-get install -y util-linux`)",
    );
}

fn lock_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("interop.lock")
}

fn python(args: &[&str]) -> ChildProcess {
    let mut command = Command::new("python3");
    command.arg(PY_LOCK).args(args);
    common::spawn_command(command)
}

/// One attempt by Python `filelock`: whether it won.
fn python_wins(path: &Path) -> bool {
    let mut child = python(&["try", path.to_str().unwrap()]);
    let said = child.next_message();
    assert!(child.wait_success(), "py_lock.py try failed");
    match said.as_str() {
        "won" => true,
        "busy" => false,
        other => panic!("py_lock.py try said {other:?}"),
    }
}

/// `flock(1)` holding `path` (shared or exclusive) until its stdin closes. `-o`: only
/// `flock` itself holds the lock, not the shell it runs, so killing it releases the lock.
fn flock_hold(path: &Path, shared: bool) -> ChildProcess {
    let mut command = Command::new("flock");
    command
        .arg("-o")
        .arg(if shared { "-s" } else { "-x" })
        .args(["-w", "30"])
        .arg(path)
        .args(["sh", "-c", "echo @@acquired; read _; echo @@released"]);
    let mut child = common::spawn_command(command);
    child.expect("acquired");
    child
}

/// One non-blocking attempt by `flock(1)`: whether it won.
fn flock_wins(path: &Path, shared: bool) -> bool {
    // -E: exit status 75 for "held elsewhere", told apart from other failures.
    let status = Command::new("flock")
        .args(["-n", "-E", "75", if shared { "-s" } else { "-x" }])
        .arg(path)
        .arg("true")
        .status()
        .unwrap_or_else(|e| panic!("cannot run flock(1): {e}"));
    match status.code() {
        Some(0) => true,
        Some(75) => false,
        _ => panic!("flock(1) failed: {status}"),
    }
}

/// Whether a fresh handle of this crate wins one attempt, through each facade.
fn crate_wins(path: &Path, shared: bool) -> bool {
    let lock = FileLock::new(path);
    let sync = if shared {
        lock.blocking_try_acquire_shared()
    } else {
        lock.blocking_try_acquire()
    }
    .unwrap()
    .is_some();
    let runtime = common::runtime();
    let task = runtime.block_on(async move {
        tokio::spawn(async move {
            if shared {
                lock.try_acquire_shared().await
            } else {
                lock.try_acquire().await
            }
        })
        .await
        .unwrap()
        .unwrap()
        .is_some()
    });
    assert_eq!(sync, task, "the sync and async facades disagree");
    sync
}

/// A waiter of this crate gets the lock once `holder` (another program) releases it.
fn a_waiter_gets_it_on_release(path: &Path, holder: &mut ChildProcess) {
    let waiter = {
        let path = path.to_owned();
        std::thread::spawn(move || FileLock::new(&path).blocking_acquire_timeout(WAIT).is_ok())
    };
    holder.tell("release");
    holder.expect("released");
    assert!(waiter.join().unwrap(), "no hand-off from {}", holder.id());
    assert!(holder.wait_success());
}

#[test]
fn python_filelock_excludes_this_crate() {
    require_python_filelock();
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let mut holder = python(&["hold", path.to_str().unwrap()]);
    let said = holder.next_message();
    assert!(
        said.starts_with("acquired "),
        "py_lock.py hold said {said:?}"
    );
    assert!(!crate_wins(&path, false), "exclusive beside Python's lock");
    assert!(!crate_wins(&path, true), "shared beside Python's lock");

    a_waiter_gets_it_on_release(&path, &mut holder);
}

#[test]
fn this_crate_excludes_python_filelock() {
    require_python_filelock();
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let lock = FileLock::new(&path);
    for shared in [false, true] {
        let guard = if shared {
            lock.blocking_acquire_shared()
        } else {
            lock.blocking_acquire()
        }
        .unwrap();
        assert!(!python_wins(&path), "Python got in (shared: {shared})");
        drop(guard);
        assert!(python_wins(&path), "Python excluded after release");
    }
}

#[test]
fn flock_1_excludes_this_crate() {
    require_flock();
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);

    let mut exclusive = flock_hold(&path, false);
    assert!(!crate_wins(&path, false));
    assert!(!crate_wins(&path, true));
    a_waiter_gets_it_on_release(&path, &mut exclusive);

    let mut shared = flock_hold(&path, true);
    assert!(crate_wins(&path, true), "shared beside flock -s");
    assert!(!crate_wins(&path, false), "exclusive beside flock -s");
    shared.tell("release");
    shared.expect("released");
    assert!(shared.wait_success());
    assert!(crate_wins(&path, false));
}

#[test]
fn this_crate_excludes_flock_1() {
    require_flock();
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let lock = FileLock::new(&path);

    let exclusive = lock.blocking_acquire().unwrap();
    assert!(!flock_wins(&path, false));
    assert!(!flock_wins(&path, true));
    drop(exclusive);

    let shared = lock.blocking_acquire_shared().unwrap();
    assert!(flock_wins(&path, true), "flock -s beside a shared holder");
    assert!(!flock_wins(&path, false));
    drop(shared);
    assert!(flock_wins(&path, false));
}

#[test]
fn the_counter_stays_exact_with_python_processes_mixed_in() {
    require_python_filelock();
    const RUST_PROCESSES: usize = 2;
    const RUST_INCREMENTS: usize = 300;
    const PY_PROCESSES: usize = 2;
    const PY_INCREMENTS: usize = 150;
    let run = CounterRun::new();
    let mut children = run.counters(RUST_PROCESSES, RUST_INCREMENTS);
    let (lock, counter) = (run.lock.to_str().unwrap(), run.counter.to_str().unwrap());
    let py_increments = PY_INCREMENTS.to_string();
    for _ in 0..PY_PROCESSES {
        let child = python(&["count", lock, counter, &py_increments]);
        children.push((child, PY_INCREMENTS));
    }
    workload::run_together(&mut children);
    assert_eq!(
        run.value(),
        (RUST_PROCESSES * RUST_INCREMENTS + PY_PROCESSES * PY_INCREMENTS) as u64,
        "increments were lost"
    );
}

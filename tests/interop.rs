//! Interop: Python `filelock` and util-linux `flock(1)` exclude this crate and are excluded
//! by it, both directions, and a counter incremented by Rust and Python processes together
//! stays exact.
//!
//! The Python peer runs in the test venv (`target/test-venv`, pinned `filelock==4.3.1`),
//! which the harness creates from `python3` on first need and reuses offline afterwards
//! (`common::tools`); `flock(1)` comes from util-linux. A test whose tool is missing fails,
//! saying what to install; none passes silently. The venv's provisioning is tested here
//! too: created once by processes starting together, reused without network, and failing
//! with the fix named when `python3` or the network is missing.
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::ChildProcess;
use common::tools;
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
        "provision" => provision_role(args),
        other => panic!("unknown role {other}"),
    }
}

fn lock_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("interop.lock")
}

fn python(args: &[&str]) -> ChildProcess {
    let mut command = Command::new(tools::python());
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
    let mut command = Command::new(tools::flock());
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
    let status = Command::new(tools::flock())
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

// ---- the test venv (tests/common/tools.rs) ----------------------------------------------

/// Child role: `provision <dir> <base python> [requirement...]` once told to start
/// ([`common::ready_steady_go`]); says `ok <what it did>` or `err <message>`.
fn provision_role(args: &[String]) {
    let (dir, base, requirements) = (Path::new(&args[0]), &args[1], &args[2..]);
    common::ready_steady_go();
    let requirements: Vec<&str> = requirements.iter().map(String::as_str).collect();
    match tools::provision(base.as_ref(), dir, &requirements) {
        Ok(done) => common::say(format!("ok {}", done.as_str())),
        Err(message) => common::say(format!("err {message}")),
    }
}

/// What a child provisioning `dir` from `python3` with `requirements` says, in an
/// environment where pip can reach no index.
fn provision_offline(dir: &Path, requirements: &[&str]) -> String {
    let mut args = vec![dir.to_str().unwrap(), tools::BASE_PYTHON];
    args.extend_from_slice(requirements);
    let mut child = common::spawn_with("provision", &args, |command| {
        command
            .env("PIP_NO_INDEX", "1")
            .env("PIP_INDEX_URL", "http://127.0.0.1:9/")
            .env_remove("PIP_FIND_LINKS")
            .env_remove("PIP_EXTRA_INDEX_URL");
    })
    .unwrap();
    common::start_together(std::slice::from_mut(&mut child), |child| child);
    let said = child.next_message_within(PROVISION_WAIT).unwrap();
    assert!(child.wait_success());
    said
}

/// Bound of a provisioning child (creating a venv takes a few seconds).
const PROVISION_WAIT: Duration = Duration::from_secs(120);

#[test]
fn processes_starting_together_create_the_venv_once() {
    const PROCESSES: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let venv = dir.path().join("venv");
    let venv_s = venv.to_str().unwrap();
    let mut children: Vec<ChildProcess> = (0..PROCESSES)
        .map(|_| common::spawn("provision", &[venv_s, tools::BASE_PYTHON]))
        .collect();
    common::start_together(&mut children, |child| child);
    let mut said: Vec<String> = children
        .iter_mut()
        .map(|child| child.next_message_within(PROVISION_WAIT).unwrap())
        .collect();
    said.sort();
    assert_eq!(said, ["ok created", "ok reused", "ok reused"], "{said:?}");
    assert!(tools::venv_python(&venv).exists());
}

#[test]
fn the_test_venv_is_reused_without_network() {
    let python = tools::python();
    let said = provision_offline(&tools::venv_dir(), tools::REQUIREMENTS);
    assert_eq!(said, "ok reused");
    let output = Command::new(python)
        .args(["-c", "import filelock; print(filelock.__version__)"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "4.3.1");
}

#[test]
fn without_network_provisioning_fails_naming_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let said = provision_offline(&dir.path().join("venv"), &["filelock==4.3.1"]);
    assert!(
        said.starts_with("err `pip install filelock==4.3.1` into the test venv")
            && said.contains("needs network access")
            && said.contains("fix: connect and rerun"),
        "{said}"
    );
    assert!(!said.contains('\n'));
}

#[test]
fn without_python3_provisioning_fails_naming_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-python3-here");
    let message = tools::provision(missing.as_os_str(), &dir.path().join("venv"), &[]).unwrap_err();
    assert!(
        message.contains("cannot run")
            && message.ends_with("fix: `apt-get install -y python3 python3-venv`"),
        "{message}"
    );
    assert!(!message.contains('\n'));
}

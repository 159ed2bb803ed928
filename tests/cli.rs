//! The `filelock` command-line tool against real processes and util-linux `flock(1)`.
#![cfg(target_os = "linux")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const FILELOCK: &str = env!("CARGO_BIN_EXE_filelock");

#[test]
fn child_entry() {
    common::child_entry(common::hold_role);
}

fn lock_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cli.lock");
    (dir, path)
}

/// Runs a program to completion; its stdin is closed. Bounded by the lock waits it is given.
fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn holding(role: &str, path: &Path) -> common::ChildProcess {
    let mut child = common::spawn(role, &[path.to_str().unwrap()]);
    child.expect("acquired");
    child
}

/// A shell holding the lock through `program` (`filelock` or `flock`) until its stdin
/// closes.
fn shell_holding(program: &str, mode: &str, path: &Path) -> common::ChildProcess {
    let mut command = Command::new(program);
    command.args([
        mode,
        path.to_str().unwrap(),
        "sh",
        "-c",
        "echo @@acquired; cat >/dev/null",
    ]);
    let mut child = common::spawn_command(command);
    child.expect("acquired");
    child
}

#[test]
fn who_prints_the_holders_pid_and_command() {
    let (_dir, path) = lock_path();
    let out = run(FILELOCK, &["--who", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "not locked");
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("not locked\n"));

    let child = holding("hold", &path);
    let out = run(FILELOCK, &["--who", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let expected = format!(
        "{}: exclusive lock held by pid {} (",
        path.display(),
        child.id()
    );
    assert!(stdout.starts_with(&expected), "{stdout}");
    assert!(stdout.contains("child_entry --exact"), "{stdout}");
}

#[test]
fn nonblock_returns_the_conflict_exit_code() {
    let (_dir, path) = lock_path();
    let p = path.to_str().unwrap();
    let _child = holding("hold", &path);
    let out = run(FILELOCK, &["-n", p, "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.is_empty(), "-n fails silently, as flock(1)");
    assert_eq!(
        run(FILELOCK, &["-n", "-E", "42", p, "true"]).status.code(),
        Some(42)
    );
    assert_eq!(run(FILELOCK, &["-nE42", p, "true"]).status.code(), Some(42));
}

#[test]
fn timeout_waits_at_least_its_time_and_names_the_holder() {
    let (_dir, path) = lock_path();
    let child = holding("hold", &path);
    let start = Instant::now();
    let out = run(FILELOCK, &["-w", "0.2", path.to_str().unwrap(), "true"]);
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(1));
    // 0.2 s plus one attempt, plus starting a process: generous but bounded.
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let waiting = format!(
        "Blocking: waiting for file lock on {}, held by pid {} (",
        path.display(),
        child.id()
    );
    assert!(stderr.starts_with(&waiting), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "could not be acquired: held by pid {} (",
            child.id()
        )),
        "{stderr}"
    );

    let quiet = run(
        FILELOCK,
        &["-q", "-w", "0.05", path.to_str().unwrap(), "true"],
    );
    assert_eq!(quiet.status.code(), Some(1));
    assert!(quiet.stderr.is_empty(), "-q prints nothing");
}

#[test]
fn runs_the_command_and_passes_its_exit_code_through() {
    let (_dir, path) = lock_path();
    let p = path.to_str().unwrap();
    assert_eq!(
        run(FILELOCK, &[p, "sh", "-c", "exit 7"]).status.code(),
        Some(7)
    );
    assert_eq!(run(FILELOCK, &[p, "-c", "exit 9"]).status.code(), Some(9));
    assert_eq!(
        run(FILELOCK, &[p, "-c", "kill -TERM $$"]).status.code(),
        Some(128 + 15)
    );
    // The command runs while the lock is held.
    let out = run(FILELOCK, &[p, FILELOCK, "--who", p]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("exclusive lock held by pid"), "{stdout}");
    assert_eq!(
        run(FILELOCK, &[p, "/nonexistent/program"]).status.code(),
        Some(69)
    );
    assert_eq!(run(FILELOCK, &[]).status.code(), Some(64));
    assert_eq!(
        run(FILELOCK, &["-w", "soon", p, "true"]).status.code(),
        Some(64)
    );
    assert_eq!(
        run(FILELOCK, &["-E", "256", p, "true"]).status.code(),
        Some(64)
    );
}

#[test]
fn shared_and_exclusive_behave_as_flock() {
    let (_dir, path) = lock_path();
    let p = path.to_str().unwrap();
    // (held by the child, asked for) -> exit code; checked against flock(1) itself.
    for (role, asked, expected) in [
        ("hold_shared", "-s", 0),
        ("hold_shared", "-x", 1),
        ("hold", "-s", 1),
        ("hold", "-x", 1),
    ] {
        let child = holding(role, &path);
        for program in [FILELOCK, "flock"] {
            let code = run(program, &["-n", asked, p, "true"]).status.code();
            assert_eq!(code, Some(expected), "{program} {asked} while {role}");
        }
        drop(child);
    }
}

#[test]
fn filelock_and_util_linux_flock_exclude_each_other() {
    let (_dir, path) = lock_path();
    let p = path.to_str().unwrap();
    for (holder, other) in [(FILELOCK, "flock"), ("flock", FILELOCK)] {
        let mut held = shell_holding(holder, "-x", &path);
        assert_eq!(
            run(other, &["-n", p, "true"]).status.code(),
            Some(1),
            "{other} while {holder} holds"
        );
        assert_eq!(run(other, &["-n", "-s", p, "true"]).status.code(), Some(1));
        assert!(held.wait_success());
        assert_eq!(
            run(other, &["-n", p, "true"]).status.code(),
            Some(0),
            "{other} after {holder}"
        );
    }
    // flock(1) takes the lock itself and runs the command in a child: the holder named is
    // flock's own process.
    let held = shell_holding("flock", "-s", &path);
    let out = run(FILELOCK, &["--who", p]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expected = format!("shared lock held by pid {} (flock -s {p} sh -c", held.id());
    assert!(stdout.contains(&expected), "{stdout}");
}

#[test]
fn soft_uses_the_marker_file_lock() {
    let (_dir, path) = lock_path();
    let p = path.to_str().unwrap();
    let mut holder = shell_holding(FILELOCK, "--soft", &path);
    // The marker names the CLI process (the shell is its child).
    let record = std::fs::read_to_string(&path).unwrap();
    let marker_pid: u32 = record.lines().next().unwrap().parse().unwrap();
    assert_eq!(marker_pid, holder.id(), "{record:?}");

    // A soft lock in this process is excluded, and so is another `--soft` run.
    let soft = tokio_filelock::SoftFileLock::new(&path);
    assert!(soft.blocking_try_acquire().unwrap().is_none());
    assert_eq!(
        run(FILELOCK, &["--soft", "-n", p, "true"]).status.code(),
        Some(1)
    );
    // `--who --soft` reads the holder from the marker.
    let out = run(FILELOCK, &["--soft", "--who", p]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!("held by pid {}", holder.id())),
        "{stdout}"
    );

    assert!(holder.wait_success());
    assert!(!path.exists(), "the marker is removed on release");
    assert_eq!(
        run(FILELOCK, &["--soft", "-n", p, "true"]).status.code(),
        Some(0)
    );
}

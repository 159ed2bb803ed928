//! A relative lock path is made absolute once, when the handle is made: a change of the
//! working directory afterwards moves neither a `FileLock` nor a `SoftFileLock`, and a soft
//! lock's release still finds its marker. `chdir` is process-wide, so it only ever runs in
//! a child process.

mod common;

use std::path::{Path, PathBuf};

use tokio_filelock::{FileLock, Lock, SoftFileLock};

#[test]
fn child_entry() {
    common::child_entry(run_role);
}

/// args: kind (`soft` or `os`), directories a, b, c. Makes a lock on `rel.lock` in a,
/// acquires it from b, says `acquired <lock.path()>`, waits for a line, releases it from c
/// and says `released` or `release failed: <error>`.
fn run_role(role: &str, args: &[String]) {
    assert_eq!(role, "chdir");
    std::env::set_current_dir(&args[1]).unwrap();
    let (lock, path): (Box<dyn Lock>, PathBuf) = match args[0].as_str() {
        "soft" => {
            let lock = SoftFileLock::new("rel.lock");
            let path = lock.path().to_path_buf();
            (Box::new(lock), path)
        }
        "os" => {
            let lock = FileLock::new("rel.lock");
            let path = lock.path().to_path_buf();
            (Box::new(lock), path)
        }
        other => panic!("unknown kind {other}"),
    };
    std::env::set_current_dir(&args[2]).unwrap();
    let guard = lock.blocking_acquire().unwrap();
    common::say(format!("acquired {}", path.display()));
    let _ = common::hear();
    std::env::set_current_dir(&args[3]).unwrap();
    match guard.release() {
        Ok(()) => common::say("released"),
        Err(e) => common::say(format!("release failed: {e}")),
    }
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Runs the `chdir` role for `kind`; returns the three directories' parent.
fn chdir_between_construction_acquire_and_release(kind: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|d| root.path().join(d))
        .collect();
    for dir in &dirs {
        std::fs::create_dir(dir).unwrap();
    }
    let args: Vec<&str> = std::iter::once(kind)
        .chain(dirs.iter().map(|d| d.to_str().unwrap()))
        .collect();
    let mut child = common::spawn("chdir", &args);
    let acquired = child.next_message();
    let expected = dirs[0].join("rel.lock");
    let in_a = exists(&expected);
    let in_b = exists(&dirs[1].join("rel.lock"));
    let marker = std::fs::read(&expected).unwrap_or_default();
    child.tell("release");
    assert_eq!(child.next_message(), "released");
    assert!(child.wait_success());
    assert_eq!(
        acquired,
        format!("acquired {}", expected.display()),
        "path() is absolute, in the directory of construction"
    );
    assert!(in_a, "the lock file was in a");
    assert!(!in_b, "not in b");
    if kind == "soft" {
        assert!(marker.starts_with(format!("{}\n", child.id()).as_bytes()));
    }
    root
}

#[test]
fn a_soft_lock_made_relative_releases_its_marker_after_chdir() {
    let root = chdir_between_construction_acquire_and_release("soft");
    for dir in ["a", "b", "c"] {
        let dir = root.path().join(dir);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "{}: the marker was removed and nothing else made",
            dir.display()
        );
    }
}

#[test]
fn a_file_lock_made_relative_locks_the_same_file_after_chdir() {
    let root = chdir_between_construction_acquire_and_release("os");
    assert!(exists(&root.path().join("a/rel.lock")) || cfg!(windows));
    assert!(!exists(&root.path().join("b/rel.lock")));
    assert!(!exists(&root.path().join("c/rel.lock")));
}

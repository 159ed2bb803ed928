//! Behaviours of Python filelock 4.3.1 this crate matches (issue 19, items 2 and 5 to 7;
//! items 3 and 4 need `flock`'s answer injected and live in `src/attempt/parity_tests.rs`).
//! Each was checked against Python 4.3.1 by running it.
#![cfg(unix)] // symlinked directories, modes and users

mod common;

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use tokio_filelock::{Error, FileLock, Op, Reentrancy, SoftFileLock};

/// How long a check may take before it counts as hanging.
const HANG: Duration = Duration::from_secs(5);

/// The unprivileged user a permission check runs as when the tests run as root (root
/// bypasses permission bits).
const NOBODY: u32 = 65534;

#[test]
fn child_entry() {
    common::child_entry(run_role);
}

fn run_role(role: &str, args: &[String]) {
    match role {
        "unwritable_empty_soft_lock" => {
            check_unwritable_empty_soft_lock(Path::new(&args[0]));
            common::say("checked");
        }
        other => panic!("unknown role {other}"),
    }
}

/// Runs `check` on a thread of its own and fails if it takes longer than [`HANG`]: a
/// regression to "wait" fails the test instead of hanging it.
fn within_bound<T: Send + 'static>(check: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(check());
    });
    rx.recv_timeout(HANG)
        .expect("the acquire waited instead of answering at once")
}

// ---- item 2: a soft lock on an empty lock file it cannot write ---------------------------

/// `path` is an empty file without write permission for this user. Python raises
/// `PermissionError` at once; so must every acquire here, with no timeout configured.
fn check_unwritable_empty_soft_lock(dir: &Path) {
    let path = dir.join("readonly.lock");
    let err = within_bound({
        let path = path.clone();
        move || SoftFileLock::new(&path).blocking_acquire().unwrap_err()
    });
    assert_permission_denied(&err, &path);
    let err = within_bound({
        let path = path.clone();
        move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(SoftFileLock::new(&path).acquire())
                .unwrap_err()
        }
    });
    assert_permission_denied(&err, &path);
    // A one-attempt acquire reports it too, rather than "held elsewhere".
    let err = SoftFileLock::new(&path).blocking_try_acquire().unwrap_err();
    assert_permission_denied(&err, &path);
    assert_eq!(fs::read(&path).unwrap(), b"", "left as it was");
}

fn assert_permission_denied(err: &Error, path: &Path) {
    assert!(
        matches!(err, Error::Io { op: Op::Open, .. }),
        "{err:?}: not a typed I/O error"
    );
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err:?}");
    assert_eq!(err.path(), path, "the error names the lock file");
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
}

#[test]
fn soft_lock_on_an_empty_file_it_cannot_write_is_a_permission_error_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("readonly.lock");
    fs::write(&path, b"").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).unwrap();
    let probe = dir.path().join("uid-probe");
    fs::write(&probe, b"").unwrap();
    let root = fs::metadata(&probe).unwrap().uid() == 0;
    if !root {
        check_unwritable_empty_soft_lock(dir.path());
        return;
    }
    // Root may write any file: run the check as `nobody`, in a directory it may enter.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let arg = dir.path().to_str().unwrap();
    let spawned = common::spawn_with("unwritable_empty_soft_lock", &[arg], |command| {
        use std::os::unix::process::CommandExt;
        command.uid(NOBODY).gid(NOBODY);
    });
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            common::skipped(
                "soft_lock_on_an_empty_file_it_cannot_write",
                &format!("cannot start a child process as uid {NOBODY}: {e}"),
            );
            return;
        }
    };
    child.expect("checked");
    assert!(child.wait_success(), "the unprivileged child failed");
}

#[test]
fn soft_lock_on_an_empty_file_it_may_write_still_waits() {
    // Control for the above: an empty marker that this user may write is contention (a
    // writer that has not written its record yet), as before.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("writable.lock");
    fs::write(&path, b"").unwrap();
    assert!(
        SoftFileLock::new(&path)
            .blocking_try_acquire()
            .unwrap()
            .is_none()
    );
}

// ---- item 5: one lock, however the path is spelled --------------------------------------

/// A directory holding `sub/` and `link -> .`: `dir/a`, `dir/link/a` and `dir/sub/../a`
/// name one file.
fn spellings() -> (tempfile::TempDir, [PathBuf; 3]) {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("sub")).unwrap();
    symlink(dir.path(), dir.path().join("link")).unwrap();
    let paths = spell(dir.path(), "a");
    (dir, paths)
}

/// `name` in `dir` (made by [`spellings`]), spelled three ways.
fn spell(dir: &Path, name: &str) -> [PathBuf; 3] {
    [
        dir.join(name),
        dir.join("link").join(name),
        dir.join("sub").join("..").join(name),
    ]
}

#[test]
fn singletons_of_one_file_are_one_lock_however_the_parent_is_spelled() {
    let (_dir, [plain, linked, dotted]) = spellings();
    let singleton = |path: &Path| {
        FileLock::builder(path)
            .singleton(true)
            .reentrancy(Reentrancy::Owner)
            .build()
    };
    let first = singleton(&plain);
    let guard = first.blocking_try_acquire().unwrap().expect("free");
    for other in [&linked, &dotted] {
        let other = singleton(other);
        // One state: the owner re-enters through the other spelling instead of finding its
        // own OS lock held.
        assert_eq!(other.lock_counter(), 1, "{}", other.path().display());
        let again = other.blocking_try_acquire().unwrap();
        assert!(
            again.is_some(),
            "{}: not re-entered",
            other.path().display()
        );
        assert_eq!(first.lock_counter(), 2);
        drop(again);
    }
    drop(guard);
    assert_eq!(first.lock_counter(), 0);
}

#[tokio::test]
async fn an_infinite_wait_through_another_spelling_is_a_deadlock_error() {
    let (dir, [plain, linked, dotted]) = spellings();
    let expect_deadlock = |result: Result<Result<_, Error>, _>, what: &str| {
        let err = result.expect("waited for its own hold").unwrap_err();
        assert!(
            matches!(err, Error::WouldDeadlock { .. }),
            "{what}: {err:?}"
        );
    };
    let held = FileLock::new(&plain).acquire().await.unwrap();
    for other in [&linked, &dotted] {
        let result = tokio::time::timeout(HANG, FileLock::new(other).acquire()).await;
        expect_deadlock(result, &format!("os {}", other.display()));
    }
    drop(held);
    // The soft lock on a file of its own (the OS lock's empty file stays, and an empty
    // marker is never broken).
    let [plain, linked, dotted] = spell(dir.path(), "soft");
    let held = SoftFileLock::new(&plain).acquire().await.unwrap();
    for other in [&linked, &dotted] {
        let result = tokio::time::timeout(HANG, SoftFileLock::new(other).acquire()).await;
        expect_deadlock(result, &format!("soft {}", other.display()));
    }
    drop(held);
}

// ---- item 6: FileLock and SoftFileLock singletons are different locks --------------------

#[test]
fn file_lock_and_soft_lock_singletons_of_one_path_keep_separate_states() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kinds.lock");
    let soft = SoftFileLock::builder(&path)
        .singleton(true)
        .reentrancy(Reentrancy::Owner)
        .build();
    let os = FileLock::builder(&path)
        .singleton(true)
        .reentrancy(Reentrancy::Owner)
        .build();
    let marker = soft.blocking_try_acquire().unwrap().expect("free");
    // The soft hold is not the OS lock's: the OS handle holds nothing, and its acquire
    // takes the OS lock (a different lock) instead of re-entering the marker's hold.
    assert_eq!(os.lock_counter(), 0);
    let flock = os
        .blocking_try_acquire()
        .unwrap()
        .expect("the OS lock is free");
    assert_eq!(soft.lock_counter(), 1);
    assert_eq!(os.lock_counter(), 1);
    // Released as what it is: the OS lock leaves the file, the soft lock removes its marker.
    flock.release().unwrap();
    assert!(path.exists());
    marker.release().unwrap();
    assert!(!path.exists());
    // And the other way round: an OS hold does not let a soft acquire re-enter.
    let held = os.blocking_try_acquire().unwrap().expect("free");
    assert_eq!(soft.lock_counter(), 0);
    drop(held);
}

// ---- item 7: with_lock reports a failed release -------------------------------------------

#[tokio::test]
async fn with_lock_returns_the_unlock_failure_when_the_body_succeeded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("with.lock");
    let soft = SoftFileLock::new(&path);
    // The body succeeds, but someone removes the marker meanwhile: the release fails.
    let result = soft
        .with_lock(async { fs::remove_file(&path).map(|()| 42) })
        .await;
    let err = result.expect_err("the release failure was hidden");
    assert!(matches!(err, Error::MarkerReplaced { .. }), "{err:?}");
    assert_eq!(err.path(), path);
    // A clean release still returns the body's value.
    assert_eq!(soft.with_lock(async { 7 }).await.unwrap(), 7);
    assert!(!path.exists());
}

#[test]
fn blocking_with_lock_returns_the_unlock_failure_when_the_body_succeeded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocking-with.lock");
    let soft = SoftFileLock::new(&path);
    let result = soft.blocking_with_lock(|| fs::remove_file(&path).map(|()| 42));
    let err = result.expect_err("the release failure was hidden");
    assert!(matches!(err, Error::MarkerReplaced { .. }), "{err:?}");
    assert_eq!(err.path(), path);
    assert_eq!(soft.blocking_with_lock(|| 7).unwrap(), 7);
}

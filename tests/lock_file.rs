//! What happens to the lock file itself: created with parents, never truncated, never
//! deleted on Unix, and the configured mode applied only to a file this lock created.
#![cfg(unix)]

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

use tokio_filelock::FileLock;

fn mode_of(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn missing_parents_are_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c/app.lock");
    let guard = FileLock::new(&path).blocking_acquire().unwrap();
    assert!(path.is_file());
    drop(guard);
}

#[test]
fn an_existing_file_is_never_truncated_nor_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.lock");
    std::fs::write(&path, b"written by another program").unwrap();
    let guard = FileLock::new(&path).blocking_acquire().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"written by another program");
    guard.release().unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"written by another program",
        "the lock file stays after release on Unix"
    );
}

#[test]
fn the_configured_mode_is_set_exactly_on_a_file_this_lock_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("created.lock");
    // 0o666 is wider than any usual umask leaves: only an explicit chmod gives it.
    let guard = FileLock::builder(&path)
        .mode(0o666)
        .build()
        .blocking_acquire()
        .unwrap();
    assert_eq!(mode_of(&path), 0o666);
    drop(guard);
}

#[test]
fn the_configured_mode_leaves_an_existing_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("existing.lock");
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let guard = FileLock::builder(&path)
        .mode(0o666)
        .build()
        .blocking_acquire()
        .unwrap();
    assert_eq!(mode_of(&path), 0o600);
    drop(guard);
}

#[test]
fn without_a_mode_the_file_gets_0o666_reduced_by_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("default.lock");
    let guard = FileLock::new(&path).blocking_acquire().unwrap();
    // Read the umask the way the kernel applied it: create a reference file with 0o666.
    let reference = dir.path().join("reference");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o666)
        .open(&reference)
        .unwrap();
    assert_eq!(mode_of(&path), mode_of(&reference));
    drop(guard);
}

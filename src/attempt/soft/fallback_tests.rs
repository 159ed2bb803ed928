//! `FileLock` falling back to the soft protocol where `flock` is unsupported. No file
//! system without `flock` can be mounted on a test machine, so `flock`'s answer is injected
//! (`sys::FLOCK_UNSUPPORTED`, per thread); everything else is real. The sync facade runs its
//! attempts on the calling thread, where the injection applies.

use std::path::Path;

use super::identity;
use crate::sys::FlockUnsupported as Unsupported;
use crate::{Error, FileLock, SoftFileLock};

fn our_record() -> Vec<u8> {
    identity::ours().to_bytes()
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

#[test]
fn a_new_lock_file_becomes_our_marker() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/fallback.lock");
    let _flock = Unsupported::on();
    let lock = FileLock::new(&path);
    let guard = lock.blocking_acquire().unwrap();
    // The file this acquire created holds our record: a soft marker.
    assert_eq!(std::fs::read(&path).unwrap(), our_record());
    // A soft lock excludes it, as another process's would.
    let soft = SoftFileLock::new(&path);
    assert!(soft.blocking_try_acquire().unwrap().is_none());
    guard.release().unwrap();
    // Released as a soft lock: the marker is gone.
    assert!(!exists(&path));
}

#[test]
fn an_existing_marker_is_contended_then_taken() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fallback.lock");
    let soft = SoftFileLock::new(&path);
    let held = soft.blocking_acquire().unwrap();
    let _flock = Unsupported::on();
    let lock = FileLock::new(&path);
    // The file exists (the soft holder's marker): the fallback contends with it.
    assert!(lock.blocking_try_acquire().unwrap().is_none());
    assert_eq!(std::fs::read(&path).unwrap(), our_record());
    drop(held);
    let guard = lock.blocking_try_acquire().unwrap().expect("free now");
    assert_eq!(std::fs::read(&path).unwrap(), our_record());
    drop(guard);
    assert!(!exists(&path));
}

#[test]
fn disabled_fallback_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nofallback.lock");
    let _flock = Unsupported::on();
    let lock = FileLock::builder(&path).fallback_to_soft(false).build();
    let err = lock.blocking_acquire().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unsupported {
                source: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.path(), path);
    assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
    // Shared requests cannot fall back (the soft lock is exclusive only).
    let shared = FileLock::new(&path).blocking_acquire_shared().unwrap_err();
    assert!(matches!(shared, Error::Unsupported { .. }), "{shared:?}");
}

#[test]
fn without_injection_flock_is_used() {
    // Control: the same acquire without the injected answer takes the OS lock, and leaves
    // an empty lock file (never deleted on Unix).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("native.lock");
    let guard = FileLock::new(&path).blocking_acquire().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"");
    drop(guard);
    assert!(exists(&path));
}

#[test]
fn an_old_empty_lock_file_of_an_flock_user_is_a_typed_error_not_a_wait() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flock-user.lock");
    let file = std::fs::File::create(&path).unwrap();
    // Left by cargo, flock(1) or Python's FileLock some time ago.
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    file.set_modified(long_ago).unwrap();
    drop(file);
    let _flock = Unsupported::on();
    // The answer comes at once as a typed error, not as a timeout (and, with no timeout,
    // not as a wait for ever). The bound only keeps a regression from hanging the suite.
    let err = FileLock::new(&path)
        .blocking_acquire_timeout(std::time::Duration::from_secs(10))
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert!(err.to_string().contains("empty lock file"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"", "left as it was");
}

#[test]
fn a_young_empty_file_is_contention() {
    // Just created: maybe a marker whose writer has not written its record yet.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("young.lock");
    std::fs::File::create(&path).unwrap();
    let _flock = Unsupported::on();
    assert!(
        FileLock::new(&path)
            .blocking_try_acquire()
            .unwrap()
            .is_none()
    );
    assert!(exists(&path));
}

#[test]
fn on_acquired_refuses_the_fallback_as_python_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hooked.lock");
    let _flock = Unsupported::on();
    let lock = FileLock::builder(&path).on_acquired(|_| Ok(())).build();
    let err = lock.blocking_acquire().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unsupported {
                source: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("on_acquired"), "{err}");
    // No marker was made of the file, and the handle did not switch to the soft protocol.
    assert_ne!(std::fs::read(&path).unwrap_or_default(), our_record());
    assert!(
        FileLock::builder(&path)
            .on_acquired(|_| Ok(()))
            .build()
            .blocking_try_acquire()
            .is_err()
    );
    // Control: without a hook, the same acquire falls back (on a fresh path: the empty
    // file the refused attempt created looks like a marker being written for 2 s).
    let fresh = dir.path().join("unhooked.lock");
    let guard = FileLock::new(&fresh)
        .blocking_try_acquire()
        .unwrap()
        .expect("fell back");
    assert_eq!(std::fs::read(&fresh).unwrap(), our_record());
    drop(guard);
}

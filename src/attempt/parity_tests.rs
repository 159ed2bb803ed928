//! Python filelock 4.3.1 parity where `flock` is unsupported (issue 19, items 3 and 4).
//! `flock`'s answer is injected (`sys::FLOCK_UNSUPPORTED`, per thread), as in
//! `soft/fallback_tests.rs`; the sync facade runs its attempts on the calling thread.

use std::path::Path;

use crate::sys::FlockUnsupported as Unsupported;
use crate::{Error, FileLock};

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// The soft protocol deletes its file on release, which `preserve_lock_file` forbids:
/// fail closed with the unsupported-`flock` error, as Python does, and keep the file.
#[test]
fn preserve_lock_file_refuses_the_soft_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("preserved.lock");
    let lock = FileLock::builder(&path).preserve_lock_file(true).build();
    let _flock = Unsupported::on();
    // No timeout configured: the answer must come at once, not as a wait.
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
    assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
    assert_eq!(err.path(), path);
    assert!(err.to_string().contains("preserve_lock_file"), "{err}");
    // Nothing held, and the (created, empty) file is still there.
    assert_eq!(lock.lock_counter(), 0);
    assert_eq!(std::fs::read(&path).unwrap(), b"");
    // An existing file is refused the same way.
    let err = lock.blocking_try_acquire().unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert!(exists(&path));
}

/// After one fallback, later acquires of the handle (and its clones) speak the soft
/// protocol straight away, without trying `flock` first: shown by lifting the injection,
/// after which an acquire that tried `flock` would take the OS lock (an empty file that
/// stays) instead of making a marker (our record, removed on release).
#[test]
fn after_a_fallback_later_acquires_go_straight_to_the_soft_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("remembered.lock");
    let lock = FileLock::new(&path);
    {
        let _flock = Unsupported::on();
        lock.blocking_acquire().unwrap().release().unwrap();
    }
    assert!(!exists(&path), "released as a soft lock");
    // A marker's record starts with the holder's PID.
    let record = format!("{}\n", std::process::id());
    let clone = lock.clone();
    for handle in [&lock, &clone] {
        let guard = handle.blocking_acquire().unwrap();
        let content = std::fs::read(&path).unwrap();
        assert!(
            content.starts_with(record.as_bytes()),
            "not a soft marker: {content:?}"
        );
        guard.release().unwrap();
        assert!(!exists(&path), "not released as a soft lock");
    }
    // Another handle of the path has not fallen back: it takes the OS lock.
    let other = FileLock::new(&path).blocking_acquire().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"");
    drop(other);
    assert!(exists(&path));
}

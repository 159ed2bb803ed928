//! Logging (DESIGN.md, semantics 9): every event inside an acquire carries the lock id,
//! through the `acquire` span the driver enters around each step (lock id, path, mode), on
//! the blocking pool too, and from the lower layers (attempt, soft, wake) as well as the
//! driver's own events.
//!
//! The capture here takes the events of every thread (the blocking pool's included), so
//! the tests of this binary run one at a time (`SERIAL`).

mod common;

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use common::capture::{Capture, Record};
use tokio_filelock::{FileLock, SoftFileLock};

static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn child_entry() {
    common::child_entry(|role, args| {
        assert_eq!(role, "hold_soft");
        let _guard = SoftFileLock::new(&args[0]).blocking_acquire().unwrap();
        common::say("acquired");
        let _ = common::hear();
    });
}

/// Runs `body` alone, with every thread's events captured, on a current-thread runtime
/// with paused time.
fn serial_paused<F: Future>(body: impl FnOnce(Capture) -> F) -> F::Output {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let capture = Capture::install_all_threads();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(body(capture))
}

/// Runs `body` alone, with every thread's events captured, outside any runtime.
fn serial_sync<T>(body: impl FnOnce(Capture) -> T) -> T {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    body(Capture::install_all_threads())
}

/// The lock id of a handle, from its `Debug` (`id: N`).
fn id_of(lock: &impl std::fmt::Debug) -> String {
    let debug = format!("{lock:?}");
    let at = debug.find("id: ").expect("Debug shows the id") + "id: ".len();
    debug[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

/// Asserts that each of `records` (the events of one acquire by the handle with id `id`
/// on `path`) was emitted inside that acquire's span, whatever thread emitted it, and
/// that `required` events are among them. Returns the messages, in order.
fn assert_all_in_acquire_span(
    records: &[Record],
    id: &str,
    path: &Path,
    required: &[&str],
) -> Vec<String> {
    assert!(!records.is_empty());
    for record in records {
        let span = record
            .span("acquire")
            .unwrap_or_else(|| panic!("event outside the acquire span: {record:#?}"));
        assert_eq!(span.fields["lock"], id, "{record:#?}");
        assert_eq!(
            span.fields["path"],
            path.display().to_string(),
            "{record:#?}"
        );
        assert_eq!(span.fields["mode"], "Exclusive", "{record:#?}");
        assert_eq!(record.field("lock"), id, "{record:#?}");
    }
    let messages: Vec<String> = records.iter().map(|r| r.message.clone()).collect();
    for wanted in required {
        assert!(
            messages.iter().any(|m| m == wanted),
            "no {wanted:?} event in {messages:?}"
        );
    }
    messages
}

#[test]
fn async_contended_os_lock_events_all_carry_the_lock_id() {
    serial_paused(|capture| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("os.lock");
        let held = FileLock::new(&path).acquire().await.unwrap();
        // A waiting hook: the holder is looked up when the wait starts (for the hook) and
        // again in the final sleep (for the timeout), both on the blocking pool.
        let waiter = FileLock::builder(&path).on_wait(|_| {}).build();
        capture.clear();
        let err = waiter
            .acquire_timeout(Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        let records = capture.records();
        drop(held);
        assert_all_in_acquire_span(
            &records,
            &id_of(&waiter),
            &path,
            &["attempt", "waiting", "holder", "timeout"],
        );
        let here = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned();
        let lookups: Vec<&Record> = records.iter().filter(|r| r.message == "holder").collect();
        assert_eq!(lookups.len(), 2, "{records:#?}");
        assert!(
            lookups.iter().all(|r| r.thread != here),
            "the lookups ran on the blocking pool"
        );
    });
}

#[test]
fn sync_contended_os_lock_events_all_carry_the_lock_id() {
    serial_sync(|capture| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("os.lock");
        let held = FileLock::new(&path).blocking_acquire().unwrap();
        let waiter = FileLock::new(&path);
        capture.clear();
        let err = waiter
            .blocking_acquire_timeout(Duration::from_millis(30))
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        let records = capture.records();
        drop(held);
        assert_all_in_acquire_span(
            &records,
            &id_of(&waiter),
            &path,
            &["attempt", "waiting", "holder", "timeout"],
        );
    });
}

#[test]
fn async_contended_soft_lock_events_all_carry_the_lock_id() {
    serial_paused(|capture| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("soft.lock");
        let held = SoftFileLock::new(&path).acquire().await.unwrap();
        let waiter = SoftFileLock::new(&path);
        capture.clear();
        let err = waiter
            .acquire_timeout(Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        let records = capture.records();
        drop(held);
        assert_all_in_acquire_span(
            &records,
            &id_of(&waiter),
            &path,
            &["attempt", "waiting", "holder", "timeout"],
        );
    });
}

#[test]
fn sync_contended_soft_lock_events_all_carry_the_lock_id() {
    serial_sync(|capture| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("soft.lock");
        let held = SoftFileLock::new(&path).blocking_acquire().unwrap();
        let waiter = SoftFileLock::new(&path);
        capture.clear();
        let err = waiter
            .blocking_acquire_timeout(Duration::from_millis(30))
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        let records = capture.records();
        drop(held);
        assert_all_in_acquire_span(
            &records,
            &id_of(&waiter),
            &path,
            &["attempt", "waiting", "holder", "timeout"],
        );
    });
}

/// The soft protocol's own event (breaking a killed holder's marker) comes from the attempt
/// layer, on the blocking pool, and still names the lock.
#[test]
fn a_stale_marker_broken_on_the_blocking_pool_is_logged_with_the_lock_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stale.lock");
    let mut holder = common::spawn("hold_soft", &[path.to_str().unwrap()]);
    holder.expect("acquired");
    holder.kill(); // SIGKILL: the marker stays
    assert!(path.exists());
    serial_paused(|capture| async move {
        let lock = SoftFileLock::new(&path);
        capture.clear();
        let guard = lock.acquire_timeout(Duration::from_secs(10)).await.unwrap();
        let records = capture.records();
        drop(guard);
        let messages = assert_all_in_acquire_span(
            &records,
            &id_of(&lock),
            &path,
            &["attempt", "breaking a stale soft lock marker", "acquired"],
        );
        let here = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned();
        let broke = &records[messages
            .iter()
            .position(|m| m == "breaking a stale soft lock marker")
            .unwrap()];
        assert_ne!(broke.thread, here, "the attempt ran on the blocking pool");
    });
}

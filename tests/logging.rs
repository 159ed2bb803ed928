//! Logging (DESIGN.md, semantics 9): `tracing` events at DEBUG with target
//! `tokio_filelock` for attempt, waiting, acquired, timeout and release, each carrying the
//! `lock` id of its handle and the `path`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::capture::{Capture, Record, ms};
use tokio_filelock::{FileLock, Reentrancy};
use tracing::Level;

/// Asserts every event is at DEBUG and names `path`; returns `(message, lock id)` of each,
/// with runs of consecutive attempts of one lock counted as one.
fn sequence(records: &[Record], path: &Path) -> Vec<(String, u64)> {
    let mut sequence: Vec<(String, u64)> = Vec::new();
    for record in records {
        assert_eq!(record.level, Level::DEBUG, "{record:?}");
        assert_eq!(
            record.field("path"),
            path.display().to_string(),
            "{record:?}"
        );
        let lock: u64 = record.field("lock").parse().expect("a numeric lock id");
        let entry = (record.message.clone(), lock);
        // The holder lookup has its own tests (tests/holder.rs); the async driver runs it
        // on the blocking pool, where this thread's capture does not see it.
        if entry.0 == "holder" {
            continue;
        }
        if entry.0 == "attempt" && sequence.last() == Some(&entry) {
            continue;
        }
        sequence.push(entry);
    }
    sequence
}

/// The lock id of the first event with this message.
fn lock_of(records: &[Record], message: &str) -> u64 {
    records
        .iter()
        .find(|r| r.message == message)
        .unwrap_or_else(|| panic!("no {message:?} event in {records:#?}"))
        .field("lock")
        .parse()
        .unwrap()
}

/// Asserts the events of: a holder acquires and re-enters, a waiter through another handle
/// waits and times out, the holder releases. Returns them and the waiter's lock id.
fn assert_holder_then_waiter(capture: &Capture, path: &Path) -> (Vec<Record>, u64) {
    let records = capture.records();
    let (holder, waiter) = (lock_of(&records, "acquired"), lock_of(&records, "timeout"));
    assert_ne!(holder, waiter, "each handle has its own id");
    let expected: Vec<(String, u64)> = [
        ("attempt", holder),
        ("acquired", holder),
        ("reentered", holder),
        ("attempt", waiter),
        ("waiting", waiter),
        ("attempt", waiter), // the retries
        ("timeout", waiter),
        ("released", holder),
    ]
    .into_iter()
    .map(|(m, id)| (m.to_owned(), id))
    .collect();
    assert_eq!(sequence(&records, path), expected);
    (records, waiter)
}

#[tokio::test(start_paused = true)]
async fn async_events_name_the_lock_and_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logging.lock");
    let holder = FileLock::builder(&path)
        .reentrancy(Reentrancy::Owner)
        .build();
    let waiter = FileLock::new(&path);
    let capture = Capture::install();

    let guard = holder.acquire().await.unwrap();
    let again = holder.acquire().await.unwrap();
    waiter.acquire_timeout(ms(5)).await.unwrap_err();
    drop(again);
    drop(guard);

    let (records, w) = assert_holder_then_waiter(&capture, &path);
    // Attempts at 0, 1, 3 and 5 ms, numbered.
    let attempts: Vec<_> = records
        .iter()
        .filter(|r| r.message == "attempt" && r.field("lock") == w.to_string())
        .map(|r| r.field("attempt").to_owned())
        .collect();
    assert_eq!(attempts, ["1", "2", "3", "4"]);
}

#[test]
fn sync_events_name_the_lock_and_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logging.lock");
    let holder = FileLock::builder(&path)
        .reentrancy(Reentrancy::Owner)
        .build();
    let waiter = FileLock::new(&path);
    let capture = Capture::install();

    let guard = holder.blocking_acquire().unwrap();
    let again = holder.blocking_acquire().unwrap();
    // Long enough for a retry however slowly the first attempt runs on a loaded machine.
    waiter
        .blocking_acquire_timeout(Duration::from_millis(100))
        .unwrap_err();
    drop(again);
    drop(guard);

    assert_holder_then_waiter(&capture, &path);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_that_wins_logs_waiting_then_acquired() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logging.lock");
    let guard = FileLock::new(&path).acquire().await.unwrap();
    let waiter = FileLock::new(&path);
    let capture = Capture::install();
    let waiting = tokio::spawn(async move { waiter.acquire().await.map(drop) });
    tokio::time::sleep(ms(10)).await;
    drop(guard);
    waiting.await.unwrap().unwrap();

    let records = capture.records();
    let w = lock_of(&records, "waiting");
    let h = lock_of(&records, "released");
    let got = sequence(&records, &path);
    let want: Vec<(String, u64)> = [
        ("attempt", w),
        ("waiting", w),
        ("attempt", w),  // at 1, 3 and 7 ms
        ("released", h), // at 10 ms
        ("attempt", w),  // at 15 ms
        ("acquired", w),
        ("released", w),
    ]
    .into_iter()
    .map(|(m, id)| (m.to_owned(), id))
    .collect();
    assert_eq!(got, want);
}

/// Naming the holder must not delay a timeout: the lookup (on Linux it waits for an RCU
/// grace period to read /proc/locks) runs during the final sleep, so its event comes
/// before the final attempt, and the error still names the holder.
#[cfg(target_os = "linux")]
#[test]
fn the_holder_is_looked_up_during_the_final_sleep() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logging.lock");
    let _guard = FileLock::new(&path).blocking_acquire().unwrap();
    let waiter = FileLock::new(&path);
    let capture = Capture::install();
    // The final sleep (here from 127 ms to 200 ms) is made only if no earlier sleep
    // overshoots the deadline: a long one leaves a wide margin on a loaded machine.
    let err = waiter
        .blocking_acquire_timeout(Duration::from_millis(200))
        .unwrap_err();
    let tokio_filelock::Error::Timeout { holder, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(holder.as_ref().map(|h| h.pid), Some(std::process::id()));
    let messages: Vec<String> = capture.records().into_iter().map(|r| r.message).collect();
    let tail: Vec<&str> = messages
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(tail, ["holder", "attempt", "timeout"], "{messages:?}");
    assert_eq!(
        messages.iter().filter(|m| *m == "holder").count(),
        1,
        "one lookup: {messages:?}"
    );
}

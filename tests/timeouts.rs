//! The wait, pinned under paused Tokio time: no timeout waits until the holder releases,
//! `Duration::ZERO` and `blocking(false)` make exactly one attempt, a finite timeout gives
//! up with a final attempt exactly at the deadline, and the backoff between attempts
//! doubles from 1 ms up to the poll interval.
//!
//! Attempts are counted and timed from the crate's `"attempt"` events (see
//! `common/capture.rs`). Under paused time, Tokio's clock does not move while an attempt
//! runs on the blocking pool, so every time below is exact.

mod common;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::capture::{Capture, ms};
use tokio::time::Instant;
use tokio_filelock::{Error, FileLock, LockGuard};

fn lock_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("timeouts.lock")
}

/// Milliseconds to durations.
fn ms_list(times: &[u64]) -> Vec<Duration> {
    times.iter().copied().map(ms).collect()
}

/// Asserts that `result` is a timeout of `path` that waited exactly `waited`.
fn assert_timeout(result: Result<LockGuard, Error>, path: &Path, waited: Duration) {
    match result {
        Err(Error::Timeout {
            path: p, waited: w, ..
        }) => {
            assert_eq!(p, path);
            assert_eq!(w, waited, "the time the error says it waited");
        }
        other => panic!("expected Error::Timeout, got {other:?}"),
    }
}

/// A lock file held by the test body's thread through its own handle, and a capture of the
/// events on this thread.
struct Held {
    path: PathBuf,
    capture: Capture,
    _guard: LockGuard,
    _dir: tempfile::TempDir,
}

impl Held {
    async fn new() -> Held {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_path(&dir);
        let guard = FileLock::new(&path).acquire().await.unwrap();
        Held {
            path,
            capture: Capture::install(),
            _guard: guard,
            _dir: dir,
        }
    }

    /// Runs `acquire` alone and asserts that it gives up with `Error::Timeout` after exactly
    /// `waited` of virtual time, saying so. Returns the times of its attempts.
    async fn attempts_until_timeout(
        &self,
        acquire: impl Future<Output = Result<LockGuard, Error>>,
        waited: Duration,
    ) -> Vec<Duration> {
        self.capture.clear();
        let start = Instant::now();
        let result = acquire.await;
        assert_eq!(Instant::now() - start, waited, "virtual time taken");
        assert_timeout(result, &self.path, waited);
        self.capture.attempt_times(start)
    }
}

#[tokio::test(start_paused = true)]
async fn no_timeout_waits_until_the_holder_releases() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let capture = Capture::install();
    for shared_handle in [false, true] {
        let holder = FileLock::new(&path);
        let guard = holder.acquire().await.unwrap();
        // The waiter is another task (another owner): through another handle, or through
        // the holder's own handle.
        let waiter = if shared_handle {
            holder.clone()
        } else {
            FileLock::new(&path)
        };
        capture.clear();
        let start = Instant::now();
        let releaser = tokio::spawn(async move {
            tokio::time::sleep(ms(200)).await;
            drop(guard);
            Instant::now()
        });
        let waiting = tokio::spawn(async move {
            let guard = waiter.acquire().await.unwrap();
            (Instant::now(), guard)
        });
        let released_at = releaser.await.unwrap();
        let (acquired_at, guard) = waiting.await.unwrap();
        assert_eq!(released_at - start, ms(200));
        // Attempts back off 1, 2, 4, ... ms up to the 50 ms cap; the release (at 200 ms)
        // wakes the waiter, whose attempt then wins at once (not at the next poll, 213 ms).
        let expected = [0, 1, 3, 7, 15, 31, 63, 113, 163, 200].map(ms);
        assert_eq!(
            capture.attempt_times(start),
            expected,
            "shared handle: {shared_handle}"
        );
        assert_eq!(
            acquired_at - start,
            ms(200),
            "shared handle: {shared_handle}"
        );
        drop(guard);
    }
}

#[tokio::test(start_paused = true)]
async fn zero_timeout_is_exactly_one_attempt() {
    let held = Held::new().await;
    let configured = FileLock::builder(&held.path)
        .timeout(Duration::ZERO)
        .build();
    let default = FileLock::new(&held.path);
    let zero = Duration::ZERO;
    let once = [zero];
    assert_eq!(
        held.attempts_until_timeout(configured.acquire(), zero)
            .await,
        once
    );
    let acquire = default.acquire_timeout(zero);
    assert_eq!(held.attempts_until_timeout(acquire, zero).await, once);

    held.capture.clear();
    let start = Instant::now();
    assert!(default.try_acquire().await.unwrap().is_none());
    assert_eq!(held.capture.attempt_times(start), once, "try_acquire");
}

#[tokio::test(start_paused = true)]
async fn a_finite_timeout_gives_up_with_a_final_attempt_at_the_deadline() {
    let held = Held::new().await;
    let configured = FileLock::builder(&held.path).timeout(ms(100)).build();
    let default = FileLock::new(&held.path);
    // No overshoot: the last sleep (50 ms, after the attempt at 63 ms) is clamped to end at
    // the deadline, where the final attempt is made.
    let expected = ms_list(&[0, 1, 3, 7, 15, 31, 63, 100]);
    let attempts = held.attempts_until_timeout(configured.acquire(), ms(100));
    assert_eq!(attempts.await, expected, "timeout(100 ms) + acquire");
    assert_eq!(held.capture.named("timeout").len(), 1);
    let attempts = held.attempts_until_timeout(default.acquire_timeout(ms(100)), ms(100));
    assert_eq!(attempts.await, expected, "acquire_timeout(100 ms)");
    assert_eq!(held.capture.named("timeout").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn short_timeouts_clamp_the_backoff_to_the_deadline() {
    let held = Held::new().await;
    let lock = FileLock::new(&held.path);
    let cases: [(u64, &[u64]); 4] = [
        (1, &[0, 1]),
        (2, &[0, 1, 2]),
        (5, &[0, 1, 3, 5]),
        (10, &[0, 1, 3, 7, 10]),
    ];
    for (timeout, attempts) in cases {
        let acquire = lock.acquire_timeout(ms(timeout));
        let got = held.attempts_until_timeout(acquire, ms(timeout)).await;
        assert_eq!(got, ms_list(attempts), "timeout {timeout} ms");
    }
}

/// Tokio's timer has a resolution of 1 ms: a deadline between two ticks is reached at the
/// next one, so the wait overshoots by less than 1 ms.
/// Tokio's timer has a resolution of 1 ms: a deadline between two ticks is reached at the
/// next one, so the wait overshoots by less than 1 ms.
#[tokio::test(start_paused = true)]
async fn a_timeout_between_timer_ticks_overshoots_by_less_than_a_tick() {
    let held = Held::new().await;
    let timeout = ms(10) + Duration::from_micros(500);
    let acquire = FileLock::new(&held.path).acquire_timeout(timeout);
    // The deadline at 10.5 ms is reached at the 11 ms tick.
    let attempts = held.attempts_until_timeout(acquire, ms(11)).await;
    assert_eq!(attempts, ms_list(&[0, 1, 3, 7, 11]));
}

#[tokio::test(start_paused = true)]
async fn blocking_false_wins_over_any_timeout() {
    let held = Held::new().await;
    let with_timeout = FileLock::builder(&held.path)
        .timeout(Duration::from_secs(10))
        .blocking(false)
        .build();
    let without_timeout = FileLock::builder(&held.path).blocking(false).build();
    let (zero, once) = (Duration::ZERO, [Duration::ZERO]);
    let ten_s = Some(Duration::from_secs(10));
    let calls = [
        ("timeout(10 s) + acquire", &with_timeout, None),
        ("acquire_timeout(10 s)", &with_timeout, ten_s),
        ("no timeout + acquire", &without_timeout, None),
        (
            "no timeout + acquire_timeout(10 s)",
            &without_timeout,
            ten_s,
        ),
    ];
    for (what, lock, timeout) in calls {
        let acquire = async {
            match timeout {
                None => lock.acquire().await,
                Some(t) => lock.acquire_timeout(t).await,
            }
        };
        assert_eq!(
            held.attempts_until_timeout(acquire, zero).await,
            once,
            "{what}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_backoff_doubles_from_1_ms_up_to_the_poll_interval() {
    let held = Held::new().await;
    // (poll interval, timeout in ms, attempt times in ms)
    let cases: [(Duration, u64, &[u64]); 5] = [
        (
            ms(50),
            400,
            &[0, 1, 3, 7, 15, 31, 63, 113, 163, 213, 263, 313, 363, 400],
        ),
        (ms(10), 60, &[0, 1, 3, 7, 15, 25, 35, 45, 55, 60]),
        (ms(3), 12, &[0, 1, 3, 6, 9, 12]),
        // Under 1 ms counts as 1 ms: nothing spins.
        (Duration::ZERO, 5, &[0, 1, 2, 3, 4, 5]),
        (Duration::from_micros(300), 3, &[0, 1, 2, 3]),
    ];
    for (poll_interval, timeout, attempts) in cases {
        let lock = FileLock::builder(&held.path)
            .poll_interval(poll_interval)
            .timeout(ms(timeout))
            .build();
        let got = held
            .attempts_until_timeout(lock.acquire(), ms(timeout))
            .await;
        assert_eq!(got, ms_list(attempts), "poll interval {poll_interval:?}");
    }
}

// The sync facade sleeps on the real clock, which cannot be paused: only what does not
// depend on timing is pinned here.

#[test]
fn sync_zero_timeout_and_blocking_false_make_one_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let _held = FileLock::new(&path).blocking_acquire().unwrap();
    let capture = Capture::install();
    let default = FileLock::new(&path);
    let zero = FileLock::builder(&path).timeout(Duration::ZERO).build();
    let non_blocking = FileLock::builder(&path)
        .timeout(Duration::from_secs(10))
        .blocking(false)
        .build();
    type Call<'a> = &'a dyn Fn() -> Result<LockGuard, Error>;
    let calls: [(&str, Call); 4] = [
        ("blocking_acquire_timeout(ZERO)", &|| {
            default.blocking_acquire_timeout(Duration::ZERO)
        }),
        ("timeout(ZERO) + blocking_acquire", &|| {
            zero.blocking_acquire()
        }),
        ("blocking(false) + blocking_acquire", &|| {
            non_blocking.blocking_acquire()
        }),
        ("blocking(false) + blocking_acquire_timeout(10 s)", &|| {
            non_blocking.blocking_acquire_timeout(Duration::from_secs(10))
        }),
    ];
    for (what, call) in calls {
        capture.clear();
        assert_timeout(call(), &path, Duration::ZERO);
        assert_eq!(capture.named("attempt").len(), 1, "{what}");
    }
    capture.clear();
    assert!(default.blocking_try_acquire().unwrap().is_none());
    assert_eq!(capture.named("attempt").len(), 1, "blocking_try_acquire");
}

#[test]
fn sync_finite_timeout_returns_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let _held = FileLock::new(&path).blocking_acquire().unwrap();
    let capture = Capture::install();
    let timeout = ms(20);
    match FileLock::new(&path).blocking_acquire_timeout(timeout) {
        Err(Error::Timeout {
            path: p, waited, ..
        }) => {
            assert_eq!(p, path);
            // It gives up only once the deadline has passed, on its own clock.
            assert!(waited >= timeout, "waited {waited:?}");
        }
        other => panic!("expected Error::Timeout, got {other:?}"),
    }
    assert!(
        capture.named("attempt").len() >= 2,
        "it retried before giving up"
    );
    assert_eq!(capture.named("timeout").len(), 1);
}

//! Cancellation leaks nothing (DESIGN.md, semantics 3): thousands of acquires, on fresh
//! handles and on a handle shared with a holder that toggles the lock, are cancelled at
//! random points (`select!` against a sleep or a number of polls, `tokio::time::timeout`,
//! `JoinHandle::abort`). Afterwards no lock is held, no count is left over, and the number
//! of open descriptors is what it was before.
//!
//! Its own test binary with one test, so that nothing else opens descriptors meanwhile.
//! The seed of the random choices is printed; set `TOKIO_FILELOCK_SEED` to replay one.
#![cfg(target_os = "linux")]

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio_filelock::{Error, FileLock, LockGuard};

/// How many acquires are started (and most of them cancelled).
const ACQUIRES: usize = 3000;
/// How many tasks start them, concurrently.
const WORKERS: usize = 8;
/// The bound on every wait of the test itself.
const BOUND: Duration = Duration::from_secs(30);

/// xorshift64*: small, seeded, good enough to pick cancellation points.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn micros(&mut self, max: u64) -> Duration {
        Duration::from_micros(self.below(max + 1))
    }
}

/// Ready after being polled `n` times: to cancel a `select!` partner after exactly that many
/// polls of it.
struct Polls(u64);

impl Future for Polls {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 == 0 {
            return Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Makes one acquire wait, so that the crate's notifiers exist: their descriptors (an
/// inotify instance and an eventfd each, kept for reuse) belong to the process, not to any
/// acquire.
fn start_the_watcher(dir: &std::path::Path) {
    let path = dir.join("warm-up.lock");
    let held = FileLock::new(&path).blocking_acquire().unwrap();
    let waited = FileLock::new(&path).blocking_acquire_timeout(Duration::from_millis(5));
    assert!(matches!(waited, Err(Error::Timeout { .. })));
    drop(held);
}

fn open_descriptors() -> Vec<String> {
    let mut fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let target = std::fs::read_link(entry.path())
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            format!("{} -> {target}", entry.file_name().to_string_lossy())
        })
        .collect();
    fds.sort();
    fds
}

/// What happened to the acquires, by how they were cancelled.
#[derive(Default)]
struct Tally(Mutex<BTreeMap<&'static str, [usize; 3]>>);

const ACQUIRED: usize = 0;
const CANCELLED: usize = 1;
const HELD_ELSEWHERE: usize = 2;

impl Tally {
    fn add(&self, how: &'static str, outcome: usize) {
        self.0.lock().unwrap().entry(how).or_default()[outcome] += 1;
    }

    fn total(&self, outcome: usize) -> usize {
        self.0.lock().unwrap().values().map(|t| t[outcome]).sum()
    }
}

/// One acquire, of a randomly chosen kind, on `lock`. Releases what it wins, after a yield.
/// `true` if it won the lock, `false` if it found it held elsewhere (a timeout, or
/// `try_acquire`'s `None`).
async fn acquire_and_release(lock: FileLock, kind: u64, timeout: Duration) -> bool {
    let result: Result<Option<LockGuard>, Error> = match kind {
        0 => lock.acquire().await.map(Some),
        1 => lock.acquire_shared().await.map(Some),
        2 => lock.acquire_timeout(timeout).await.map(Some),
        _ => lock.try_acquire().await,
    };
    match result {
        Ok(Some(guard)) => {
            tokio::task::yield_now().await; // a cancellation point while holding
            drop(guard);
            true
        }
        Ok(None) | Err(Error::Timeout { .. }) => false,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

async fn worker(
    seed: u64,
    shared: FileLock,
    path: std::path::PathBuf,
    tally: Arc<Tally>,
    handles: Arc<Mutex<Vec<FileLock>>>,
) {
    let mut rng = Rng::new(seed);
    for _ in 0..ACQUIRES / WORKERS {
        let lock = if rng.below(2) == 0 {
            shared.clone()
        } else {
            let fresh = FileLock::new(&path);
            handles.lock().unwrap().push(fresh.clone());
            fresh
        };
        let acquire = acquire_and_release(lock, rng.below(4), rng.micros(2000));
        let outcome = |won: bool| if won { ACQUIRED } else { HELD_ELSEWHERE };
        match rng.below(4) {
            0 => {
                let how = "select! against a sleep";
                tokio::select! {
                    won = acquire => tally.add(how, outcome(won)),
                    _ = tokio::time::sleep(rng.micros(2000)) => tally.add(how, CANCELLED),
                }
            }
            1 => {
                let how = "select! against n polls";
                tokio::select! {
                    biased;
                    won = acquire => tally.add(how, outcome(won)),
                    _ = Polls(rng.below(30)) => tally.add(how, CANCELLED),
                }
            }
            2 => {
                let how = "tokio::time::timeout";
                match tokio::time::timeout(rng.micros(2000), acquire).await {
                    Ok(won) => tally.add(how, outcome(won)),
                    Err(_) => tally.add(how, CANCELLED),
                }
            }
            _ => {
                let how = "JoinHandle::abort";
                let task = tokio::spawn(acquire);
                if rng.below(2) == 0 {
                    tokio::time::sleep(rng.micros(2000)).await;
                } else {
                    for _ in 0..rng.below(10) {
                        tokio::task::yield_now().await;
                    }
                }
                task.abort();
                match task.await {
                    Ok(won) => tally.add(how, outcome(won)),
                    Err(e) if e.is_cancelled() => tally.add(how, CANCELLED),
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                }
            }
        }
    }
}

#[test]
fn random_cancellations_leave_nothing_held_and_no_descriptor_open() {
    let seed = std::env::var("TOKIO_FILELOCK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_f11e_10c4);
    println!("seed {seed} (set TOKIO_FILELOCK_SEED to replay)");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cancellation.lock");
    // Polling every 1 ms at most, the holder wins the lock back soon after it is free.
    let shared = FileLock::builder(&path)
        .poll_interval(Duration::from_millis(1))
        .build();
    let tally = Arc::new(Tally::default());
    let handles = Arc::new(Mutex::new(vec![shared.clone()]));
    let toggles = Arc::new(Mutex::new(0usize));

    start_the_watcher(dir.path());
    let before = open_descriptors();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        // The holder toggles the lock on the shared handle: acquire, hold a little, release.
        let holder = {
            let (lock, stop, toggles) = (shared.clone(), stop.clone(), toggles.clone());
            let mut rng = Rng::new(seed ^ 0xa5a5);
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let guard = lock.acquire().await.unwrap();
                    tokio::time::sleep(rng.micros(5000)).await;
                    drop(guard);
                    *toggles.lock().unwrap() += 1;
                    tokio::time::sleep(rng.micros(500)).await;
                }
            })
        };
        let workers: Vec<_> = (0..WORKERS as u64)
            .map(|i| {
                tokio::spawn(worker(
                    seed.wrapping_add(i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    shared.clone(),
                    path.clone(),
                    tally.clone(),
                    handles.clone(),
                ))
            })
            .collect();
        for worker in workers {
            tokio::time::timeout(BOUND, worker)
                .await
                .expect("a worker did not finish")
                .unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        tokio::time::timeout(BOUND, holder)
            .await
            .expect("the holder did not stop")
            .unwrap();
    });
    // Waits for attempts still running on the blocking pool (each releases what it won).
    runtime.shutdown_timeout(BOUND);

    for (how, [acquired, cancelled, held]) in tally.0.lock().unwrap().iter() {
        println!("{how}: {acquired} acquired, {cancelled} cancelled, {held} held elsewhere");
    }
    println!("holder toggles: {}", toggles.lock().unwrap());
    assert!(tally.total(ACQUIRED) > 0, "some acquires succeeded");
    assert!(tally.total(CANCELLED) > 0, "some acquires were cancelled");
    assert_eq!(
        tally.total(ACQUIRED) + tally.total(CANCELLED) + tally.total(HELD_ELSEWHERE),
        ACQUIRES / WORKERS * WORKERS
    );

    // No count left over, for this thread, on any handle.
    for lock in handles.lock().unwrap().iter() {
        assert_eq!(lock.lock_counter(), 0);
        assert!(!lock.is_locked());
    }
    // Nobody holds the lock: one attempt wins, through a fresh handle and the shared one.
    FileLock::new(&path)
        .blocking_acquire_timeout(Duration::ZERO)
        .expect("a zero-timeout acquire after the storm")
        .release()
        .unwrap();
    shared
        .blocking_acquire_timeout(Duration::ZERO)
        .expect("a zero-timeout acquire through the shared handle")
        .release()
        .unwrap();
    // A handle keeps its lock file open between holds (Linux, local file system), unlocked:
    // one descriptor per handle at most, closed with the handle.
    let handles = std::mem::take(&mut *handles.lock().unwrap());
    let on_lock_file = open_descriptors()
        .iter()
        .filter(|fd| fd.ends_with(&*path.to_string_lossy()))
        .count();
    assert!(
        on_lock_file <= handles.len() + 1,
        "{on_lock_file} descriptors on the lock file for {} handles",
        handles.len() + 1
    );
    drop((handles, shared));
    // No descriptor left open. The crate's notifiers (an inotify instance and an eventfd
    // each: the watcher thread's, and the pool the sync facade's waits take theirs from)
    // belong to the process, not to any acquire, and are kept for reuse: at most 1 + 8.
    let after = open_descriptors();
    let (kept, after): (Vec<String>, Vec<String>) = after
        .into_iter()
        .partition(|fd| fd.ends_with("anon_inode:inotify") || fd.ends_with("anon_inode:[eventfd]"));
    let before: Vec<String> = before.into_iter().filter(|fd| !kept.contains(fd)).collect();
    assert_eq!(
        after.len(),
        before.len(),
        "open descriptors, before: {before:#?}, after: {after:#?}"
    );
    let instances = kept.iter().filter(|fd| fd.ends_with("inotify")).count();
    assert!(instances <= 9, "{instances} inotify instances: {kept:#?}");
}

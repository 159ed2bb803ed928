//! What waiting does to the rest of the program, measured for each async row in a child
//! process of its own (a thread left behind in one probe cannot disturb another):
//! - *stall*: how late a 1 ms ticker on the same runtime gets while the row waits 300 ms;
//! - *cancel*: a wait dropped by `tokio::time::timeout` after 50 ms: how many threads of the
//!   process are still in `flock` afterwards, and whether the lock is free 50 ms after the
//!   holder lets go.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio_filelock::FileLock;

use crate::child::{Proc, say, threads_in_flock};
use crate::rows::{Flavor, Row, hold_async, open};
use crate::runtime;

/// How long the holder (a thread of the probe) keeps the lock.
const HOLD: Duration = Duration::from_millis(300);
/// Tries of the stall probe (the best of them counts).
const TRIES: usize = 5;
/// When the cancel probe gives up waiting.
const CANCEL_AFTER: Duration = Duration::from_millis(50);

/// A thread that holds the lock for [`HOLD`] and then closes its descriptor; returns once
/// the lock is held.
#[allow(clippy::disallowed_methods)] // the holder is a raw `flock`
fn holder(path: &Path) -> std::thread::JoinHandle<()> {
    let file = open(path);
    file.lock().unwrap();
    std::thread::spawn(move || {
        std::thread::sleep(HOLD);
        drop(file);
    })
}

/// A 1 ms ticker on the current runtime: set `ticking` false to stop it; its task returns
/// the worst lag it saw.
fn ticker(ticking: Arc<AtomicBool>) -> tokio::task::JoinHandle<Duration> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(1));
        let mut worst = Duration::ZERO;
        while ticking.load(Ordering::Relaxed) {
            let due = interval.tick().await;
            worst = worst.max(tokio::time::Instant::now() - due);
        }
        worst
    })
}

/// The worst lag (µs) of a 1 ms ticker for [`HOLD`] with nothing else on the runtime (the
/// baseline: how busy the machine is), then while the row waits [`HOLD`] for the lock; each
/// the best of [`TRIES`]. The
/// runtime has one worker (what the waiter and the ticker share); `block_on` and `NoIo` wait
/// where those flavors wait.
pub fn stall(row: Row, path: &Path) {
    let flavor = row.flavor();
    let rt = runtime::for_flavor(flavor, 1);
    let ours = FileLock::new(path);
    let (mut alone, mut waiting) = (Duration::MAX, Duration::MAX);
    for _ in 0..TRIES {
        let (a, w) = rt.block_on(async {
            let ticking = Arc::new(AtomicBool::new(true));
            let alone = ticker(ticking.clone());
            tokio::time::sleep(HOLD).await;
            ticking.store(false, Ordering::Relaxed);
            let alone = alone.await.unwrap();

            let ticking = Arc::new(AtomicBool::new(true));
            let waiting = ticker(ticking.clone());
            // Let the ticker start before the wait begins.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let held = holder(path);
            let (ours, path) = (ours.clone(), PathBuf::from(path));
            let wait = async move { hold_async(row, &path, &ours, || ()).await };
            if flavor == Flavor::Task {
                tokio::spawn(wait).await.unwrap();
            } else {
                wait.await;
            }
            ticking.store(false, Ordering::Relaxed);
            held.join().unwrap();
            (alone, waiting.await.unwrap())
        });
        alone = alone.min(a);
        waiting = waiting.min(w);
    }
    say(format!("lag {} {}", alone.as_micros(), waiting.as_micros()));
}

/// The cancel probe: says `completed <ms>` when the timeout could not fire (the acquire
/// returned first), else `cancelled <threads in flock> <lock free 50 ms after release: 0|1>`.
#[allow(clippy::disallowed_methods)] // the check that the lock is free is a raw attempt
pub fn cancel(row: Row, path: &Path) {
    let flavor = row.flavor();
    let rt = runtime::for_flavor(flavor, 2);
    let ours = FileLock::new(path);
    let held = holder(path);
    let start = Instant::now();
    let (o, p) = (ours.clone(), PathBuf::from(path));
    let outcome = runtime::run(&rt, flavor, async move {
        tokio::time::timeout(CANCEL_AFTER, hold_async(row, &p, &o, || ())).await
    });
    if outcome.is_ok() {
        held.join().unwrap();
        say(format!("completed {}", start.elapsed().as_millis()));
        return;
    }
    // Give a thread that the dropped future left behind time to be seen where it sleeps.
    std::thread::sleep(Duration::from_millis(20));
    let in_flock = threads_in_flock();
    held.join().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let free = open(path).try_lock().is_ok();
    say(format!("cancelled {in_flock} {}", u8::from(free)));
    drop(rt);
}

/// Parent side of [`stall`]: the worst ticker lag (µs) alone and while waiting.
pub fn run_stall(row: Row, path: &Path) -> (f64, f64) {
    let mut child = Proc::start(&["stall", row.id(), path.to_str().unwrap()]);
    let line = child.hear();
    let lags: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    (lags[0], lags[1])
}

/// What a cancelled wait left behind.
pub enum Cancelled {
    /// The timeout could not fire: the acquire returned after this many ms.
    CouldNotFire(u64),
    /// The wait was dropped.
    Dropped {
        threads_in_flock: usize,
        free_after: bool,
    },
}

/// Parent side of [`cancel`].
pub fn run_cancel(row: Row, path: &Path) -> Cancelled {
    let mut child = Proc::start(&["cancel", row.id(), path.to_str().unwrap()]);
    let line = child.hear();
    let fields: Vec<&str> = line.split_whitespace().collect();
    match fields.as_slice() {
        ["completed", ms] => Cancelled::CouldNotFire(ms.parse().unwrap()),
        ["cancelled", threads, free] => Cancelled::Dropped {
            threads_in_flock: threads.parse().unwrap(),
            free_after: *free == "1",
        },
        _ => panic!("cancel probe said {line:?}"),
    }
}

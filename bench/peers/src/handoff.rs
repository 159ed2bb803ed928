//! Hand-off latency: this process holds the lock file with a raw `flock`, a waiter of the row
//! in another process waits (5-20 ms already), this process releases at a recorded
//! CLOCK_MONOTONIC time, the waiter records when its acquire returns.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_filelock::FileLock;

use crate::child::{Proc, hear, mono_ns, say};
use crate::rows::{Flavor, Row, hold_async, hold_sync, open};
use crate::runtime;
use crate::stats::sorted;

/// How the holder lets go.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// `flock(LOCK_UN)` and `close` (dropping the `File`).
    Close,
    /// `flock(LOCK_UN)` only; the descriptor stays open until the waiter has the lock.
    UnlockKeepOpen,
}

/// A small deterministic spread of hold times, so that a poller's phase varies.
fn hold_time(i: usize) -> Duration {
    Duration::from_micros(5_000 + (i as u64 * 7_919) % 15_000)
}

/// Sorted hand-off latencies (µs) to a waiter of `row`.
#[allow(clippy::disallowed_methods)] // the holder is the raw baseline
pub fn samples(row: Row, path: &Path, release: Release, count: usize) -> Vec<f64> {
    let mut waiter = Proc::start(&["waiter", row.id(), path.to_str().unwrap()]);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let holder = open(path);
        holder.lock().unwrap();
        waiter.tell("go");
        waiter.expect("waiting");
        std::thread::sleep(hold_time(i));
        let t0 = mono_ns();
        holder.unlock().unwrap();
        if release == Release::Close {
            drop(holder);
        }
        let line = waiter.hear();
        let t1: u64 = line.strip_prefix("t1 ").unwrap().parse().unwrap();
        out.push(t1.saturating_sub(t0) as f64 / 1000.0);
        // With `UnlockKeepOpen` the descriptor closes only now (`holder` drops here).
    }
    sorted(out)
}

/// The child's side: on each line from the parent, say "waiting", acquire, note the time,
/// release, say "t1 <ns>".
pub fn waiter(row: Row, path: &Path) {
    let flavor = row.flavor();
    let ours = FileLock::new(path);
    if flavor == Flavor::Sync {
        while hear().is_some() {
            say("waiting");
            let mut t1 = 0;
            hold_sync(row, path, &ours, || t1 = mono_ns());
            say(format!("t1 {t1}"));
        }
        return;
    }
    let rt = runtime::for_flavor(flavor, 2);
    while hear().is_some() {
        say("waiting");
        let (ours, path) = (ours.clone(), PathBuf::from(path));
        let t1 = runtime::run(&rt, flavor, async move {
            let mut t1 = 0;
            hold_async(row, &path, &ours, || t1 = mono_ns()).await;
            t1
        });
        say(format!("t1 {t1}"));
    }
}

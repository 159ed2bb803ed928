//! The shared-counter workload of the reliability and interop tests, and the hold-interval
//! log.
//!
//! The counter file holds one fixed-width decimal number (`COUNTER_LEN` bytes), read and
//! rewritten in place with `pread`/`pwrite`, so a reader never sees a partly written number,
//! only a stale one: without the lock, increments get lost, and the final count says so.
//! `tests/interop/py_lock.py` writes the same format.
//!
//! Child roles (run with `common::spawn`; each says `ready`, waits for `go` so that all
//! start together, then says `done <n>`):
//! - `count <flavor> <lock> <counter> <workers> <per_worker> <log|->`: `workers` tasks
//!   (flavor `async`, on a two-worker runtime) or threads (`sync`) share one handle and each
//!   makes `per_worker` read-modify-write increments under the exclusive lock.
//! - `read <flavor> <lock> <counter> <reads> <log|->`: `reads` holds of the shared lock,
//!   each reading the counter.
//!
//! With a log, every hold appends one line `<X|S> <pid> <start ns> <end ns>` (taken with
//! [`monotonic_ns`](super::monotonic_ns) right after acquiring and right before releasing)
//! to the log, opened `O_APPEND` and written with one `write` per line.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_filelock::{FileLock, LockGuard};

use super::{ChildProcess, ready_steady_go};

/// Bound of every acquire of a worker: generous, since many processes queue for the lock.
pub const ACQUIRE_WAIT: Duration = Duration::from_secs(120);

/// Bound of a whole worker run (all its holds), from `go` to `done`.
pub const RUN_WAIT: Duration = Duration::from_secs(240);

/// How long an increment sleeps between reading and writing the counter.
pub const HOLD_PAUSE: Duration = Duration::from_micros(100);

/// Bytes of the counter file: 20 digits and a newline.
pub const COUNTER_LEN: usize = 21;

/// Creates the counter file holding 0.
pub fn init_counter(path: &Path) {
    std::fs::write(path, format_counter(0)).unwrap();
}

/// The counter's value now.
pub fn counter_value(path: &Path) -> u64 {
    read_counter(&File::open(path).unwrap())
}

fn format_counter(value: u64) -> String {
    format!("{value:020}\n")
}

fn read_counter(file: &File) -> u64 {
    let mut buf = [0u8; COUNTER_LEN];
    file.read_exact_at(&mut buf, 0).unwrap();
    let text = std::str::from_utf8(&buf).unwrap();
    text.trim_end()
        .parse()
        .unwrap_or_else(|e| panic!("counter file holds {text:?}: {e}"))
}

fn write_counter(file: &File, value: u64) {
    file.write_all_at(format_counter(value).as_bytes(), 0)
        .unwrap();
}

/// Runs the `count` role.
pub fn count_role(args: &[String]) {
    let [flavor, lock, counter, workers, per_worker, log] = args else {
        panic!("count: expected 6 arguments, got {args:?}");
    };
    let lock = FileLock::new(lock);
    let counter = File::options()
        .read(true)
        .write(true)
        .open(counter)
        .unwrap();
    let log = open_log(log);
    let workers: usize = workers.parse().unwrap();
    let per_worker: usize = per_worker.parse().unwrap();
    let increment = move |guard: LockGuard| {
        let start = super::monotonic_ns();
        let value = read_counter(&counter);
        // A critical section takes time (real ones do I/O): other processes run meanwhile,
        // so that without the lock their increments would interleave with this one.
        std::thread::sleep(HOLD_PAUSE);
        write_counter(&counter, value + 1);
        let end = super::monotonic_ns();
        guard.release().unwrap();
        if let Some(log) = &log {
            append_interval(log, 'X', start, end);
        }
    };
    ready_steady_go();
    run_workers(flavor, workers, per_worker, &lock, false, increment);
    super::say(format!("done {}", workers * per_worker));
}

/// Runs the `read` role.
pub fn read_role(args: &[String]) {
    let [flavor, lock, counter, reads, log] = args else {
        panic!("read: expected 5 arguments, got {args:?}");
    };
    let lock = FileLock::new(lock);
    let counter = File::open(counter).unwrap();
    let log = open_log(log);
    let reads: usize = reads.parse().unwrap();
    let read = move |guard: LockGuard| {
        let start = super::monotonic_ns();
        read_counter(&counter);
        let end = super::monotonic_ns();
        guard.release().unwrap();
        if let Some(log) = &log {
            append_interval(log, 'S', start, end);
        }
        // Leave gaps, as readers do, so that writers are not starved.
        std::thread::sleep(Duration::from_millis(1));
    };
    ready_steady_go();
    run_workers(flavor, 1, reads, &lock, true, read);
    super::say(format!("done {reads}"));
}

/// `workers` tasks or threads sharing `lock`, each `per_worker` times: acquire (bounded),
/// then hand the guard to `hold`.
fn run_workers(
    flavor: &str,
    workers: usize,
    per_worker: usize,
    lock: &FileLock,
    shared: bool,
    hold: impl Fn(LockGuard) + Send + Sync + 'static,
) {
    let hold = std::sync::Arc::new(hold);
    match flavor {
        "async" => super::runtime().block_on(async {
            let tasks: Vec<_> = (0..workers)
                .map(|_| {
                    let (lock, hold) = (lock.clone(), hold.clone());
                    tokio::spawn(async move {
                        for _ in 0..per_worker {
                            let guard = if shared {
                                lock.acquire_shared_timeout(ACQUIRE_WAIT).await
                            } else {
                                lock.acquire_timeout(ACQUIRE_WAIT).await
                            };
                            hold(guard.unwrap());
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        }),
        "sync" => std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    for _ in 0..per_worker {
                        let guard = if shared {
                            lock.blocking_acquire_shared_timeout(ACQUIRE_WAIT)
                        } else {
                            lock.blocking_acquire_timeout(ACQUIRE_WAIT)
                        };
                        hold(guard.unwrap());
                    }
                });
            }
        }),
        other => panic!("unknown flavor {other}"),
    }
}

fn open_log(path: &str) -> Option<File> {
    (path != "-").then(|| {
        OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .unwrap()
    })
}

fn append_interval(log: &File, kind: char, start: u64, end: u64) {
    let line = format!("{kind} {} {start} {end}\n", std::process::id());
    // One write of a short line to an O_APPEND file: lines never interleave.
    let written = (&*log).write(line.as_bytes()).unwrap();
    assert_eq!(written, line.len(), "short write to the interval log");
}

/// One hold, as logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    /// `true` for an exclusive hold.
    pub exclusive: bool,
    pub pid: u32,
    pub start: u64,
    pub end: u64,
}

/// Every hold in the log at `path`; panics on a malformed line.
pub fn read_intervals(path: &Path) -> Vec<Interval> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let [kind, pid, start, end] = fields[..] else {
                panic!("malformed log line {line:?}");
            };
            let interval = Interval {
                exclusive: match kind {
                    "X" => true,
                    "S" => false,
                    _ => panic!("malformed log line {line:?}"),
                },
                pid: pid.parse().unwrap(),
                start: start.parse().unwrap(),
                end: end.parse().unwrap(),
            };
            assert!(
                interval.start <= interval.end,
                "{line:?} ends before it starts"
            );
            interval
        })
        .collect()
}

/// Pairs of holds that overlap although one of them is exclusive (holds that only touch
/// do not overlap). Sweeps the holds in order of start, keeping those still open.
pub fn conflicting_overlaps(intervals: &[Interval]) -> Vec<(Interval, Interval)> {
    let mut sorted = intervals.to_vec();
    sorted.sort_by_key(|i| (i.start, i.end));
    let mut open: Vec<Interval> = Vec::new();
    let mut conflicts = Vec::new();
    for next in sorted {
        open.retain(|held| held.end > next.start);
        for held in &open {
            if held.exclusive || next.exclusive {
                conflicts.push((*held, next));
            }
        }
        open.push(next);
    }
    conflicts
}

/// Releases every child's `go` at once (after all said `ready`), then waits (bounded) for
/// each to say `done <n>`, `n` paired with it, and to exit cleanly.
pub fn run_together(children: &mut [(ChildProcess, usize)]) {
    super::start_together(children, |(child, _)| child);
    for (child, n) in children.iter_mut() {
        child.expect_within(&format!("done {n}"), RUN_WAIT);
        assert!(child.wait_success(), "child {} failed", child.id());
    }
}

/// A counter and its lock in a fresh directory, and the children that work on it. The
/// test binary must dispatch the roles `count` and `read` to [`count_role`] and
/// [`read_role`].
pub struct CounterRun {
    _dir: tempfile::TempDir,
    pub lock: PathBuf,
    pub counter: PathBuf,
    /// The hold log, if holds are logged.
    pub log: Option<PathBuf>,
}

impl CounterRun {
    /// A counter at 0; holds are not logged.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let run = CounterRun {
            lock: dir.path().join("counter.lock"),
            counter: dir.path().join("counter"),
            log: None,
            _dir: dir,
        };
        init_counter(&run.counter);
        run
    }

    /// Makes every hold of this run's workers append to a log.
    pub fn logging_holds(mut self) -> Self {
        self.log = Some(self._dir.path().join("holds.log"));
        self
    }

    fn log_arg(&self) -> &str {
        self.log.as_deref().map_or("-", |p| p.to_str().unwrap())
    }

    /// `processes` counting processes (alternately async and sync, each with two workers
    /// sharing one handle) making `per_process` increments each; not started yet.
    pub fn counters(&self, processes: usize, per_process: usize) -> Vec<(ChildProcess, usize)> {
        assert!(per_process.is_multiple_of(2));
        let (lock, counter) = (self.lock.to_str().unwrap(), self.counter.to_str().unwrap());
        let per_worker = (per_process / 2).to_string();
        (0..processes)
            .map(|i| {
                let args = [
                    super::flavor(i),
                    lock,
                    counter,
                    "2",
                    &per_worker,
                    self.log_arg(),
                ];
                (super::spawn("count", &args), per_process)
            })
            .collect()
    }

    /// `readers` reading processes (alternately async and sync) making `reads` shared holds
    /// each; not started yet.
    pub fn readers(&self, readers: usize, reads: usize) -> Vec<(ChildProcess, usize)> {
        let (lock, counter) = (self.lock.to_str().unwrap(), self.counter.to_str().unwrap());
        let reads_arg = reads.to_string();
        (0..readers)
            .map(|i| {
                let args = [super::flavor(i), lock, counter, &reads_arg, self.log_arg()];
                (super::spawn("read", &args), reads)
            })
            .collect()
    }

    /// Runs [`counters`](Self::counters) and [`readers`](Self::readers) together to the
    /// end; the final count.
    pub fn run(&self, processes: usize, per_process: usize, readers: usize, reads: usize) -> u64 {
        let mut children = self.counters(processes, per_process);
        children.extend(self.readers(readers, reads));
        run_together(&mut children);
        self.value()
    }

    /// The counter's value now.
    pub fn value(&self) -> u64 {
        counter_value(&self.counter)
    }
}

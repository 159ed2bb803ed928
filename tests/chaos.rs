//! Chaos: several processes (async, sync, guard-moving, soft, and Python `filelock`) enter a
//! critical section that appends enter/leave records to a log, while a chaos loop kills
//! holders (SIGKILL), stops and continues them (SIGSTOP/SIGCONT), renames the lock file away
//! and back and replaces it. A checker then reads the log and fails on any two overlapping
//! holds, except those no flock-based lock can prevent (a holder of an inode that was
//! renamed away or replaced, beside a newcomer on the new file), which it counts and prints.
//!
//! The schedule of the chaos comes from a seed: `TOKIO_FILELOCK_CHAOS_SEED=<n>` replays it
//! (the operating system's own scheduling still varies); the seed is printed at the start and
//! in every failure. `TOKIO_FILELOCK_CHAOS_SECS` sets the length of the run (default 6 s).
//!
//! Log records, one `write` each to an `O_APPEND` file, times in `CLOCK_MONOTONIC` ns:
//! - `E <id> <start> <enter>`: the hold `<id>` (`<role>:<pid>.<n>`) began; `<start>` is when its
//!   acquire call began, `<enter>` is read after the acquire returned;
//! - `L <id> <leave>`: read before the guard is dropped;
//! - `K <pid> <t>` (chaos): `<t>` is read before `<pid>` is sent SIGKILL, so a hold of a
//!   killed process ends no later than its true end;
//! - `R <before> <after>` (chaos): read just before and just after the lock file was
//!   renamed away, back, or replaced (the chaos thread may be preempted on either side).
//!
//! Recorded holds lie inside the true holds, so a recorded overlap is a true one.
#![cfg(target_os = "linux")]

mod common;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ChildProcess, monotonic_ns};
use tokio_filelock::{FileLock, Lock, SoftFileLock};

/// The Python peer, kept in the repository.
const PY_CHAOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/py_chaos.py");

/// Bound of each acquire in a worker: short, so a worker stopped or killed elsewhere never
/// keeps the others from looking at the stop file for long.
const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(500);

/// Bound of the wait for the workers to finish after the stop file appears.
const FINISH_WAIT: Duration = Duration::from_secs(30);

#[test]
fn child_entry() {
    common::child_entry(run_role);
}

/// A worker: `args` = lock path, log path, stop path.
fn run_role(role: &str, args: &[String]) {
    let [lock, log, stop] = args else {
        panic!("chaos worker needs lock, log and stop paths, got {args:?}");
    };
    let log = Log::open(Path::new(log));
    let stop = Path::new(stop);
    let _ = ROLE.set(role.to_owned());
    common::say("ready");
    match role {
        "os_sync" => sync_worker(&FileLock::new(lock), &log, stop),
        "soft_sync" => sync_worker(&SoftFileLock::new(lock), &log, stop),
        "os_async" => common::runtime().block_on(async_worker(&FileLock::new(lock), &log, stop)),
        "soft_async" => {
            common::runtime().block_on(async_worker(&SoftFileLock::new(lock), &log, stop))
        }
        "os_move" => common::runtime().block_on(moving_worker(FileLock::new(lock), log, stop)),
        other => panic!("unknown role {other}"),
    }
}

/// The interval log, shared by every process of a run.
#[derive(Clone)]
struct Log {
    file: std::sync::Arc<File>,
}

impl Log {
    fn open(path: &Path) -> Log {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .unwrap();
        Log {
            file: std::sync::Arc::new(file),
        }
    }

    /// One short line in one write to an `O_APPEND` file: lines never interleave.
    fn record(&self, line: &str) {
        let line = format!("{line}\n");
        let written = (&*self.file).write(line.as_bytes()).unwrap();
        assert_eq!(written, line.len(), "short write to the chaos log");
    }
}

/// Names holds `<role>:<pid>.<n>` for one worker process.
struct Ids(std::sync::atomic::AtomicU64);

impl Ids {
    const fn new() -> Ids {
        Ids(std::sync::atomic::AtomicU64::new(0))
    }

    fn next(&self) -> String {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let role = ROLE.get().map_or("?", String::as_str);
        format!("{role}:{}.{n}", std::process::id())
    }
}

static IDS: Ids = Ids::new();

/// This worker's role, the first part of its hold ids, so a failure says who overlapped.
static ROLE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// A pause of 0 to 2 ms inside the critical section, from a cheap per-process source.
fn hold_pause() -> Duration {
    Duration::from_micros(monotonic_ns() % 2000)
}

fn enter(log: &Log, start: u64) -> String {
    let id = IDS.next();
    log.record(&format!("E {id} {start} {}", monotonic_ns()));
    id
}

fn leave(log: &Log, id: &str) {
    log.record(&format!("L {id} {}", monotonic_ns()));
}

/// Acquires and releases through the `Lock` trait (any backend) on this thread.
fn sync_worker(lock: &dyn Lock, log: &Log, stop: &Path) {
    while !stop.exists() {
        let start = monotonic_ns();
        let Ok(guard) = lock.blocking_acquire_timeout(ACQUIRE_TIMEOUT) else {
            continue;
        };
        let id = enter(log, start);
        std::thread::sleep(hold_pause());
        leave(log, &id);
        drop(guard);
    }
}

/// Acquires and releases through the `Lock` trait (any backend) in a Tokio task.
async fn async_worker(lock: &dyn Lock, log: &Log, stop: &Path) {
    while !stop.exists() {
        let start = monotonic_ns();
        let Ok(guard) = lock.acquire_timeout(ACQUIRE_TIMEOUT).await else {
            continue;
        };
        let id = enter(log, start);
        tokio::time::sleep(hold_pause()).await;
        leave(log, &id);
        drop(guard);
    }
}

/// Acquires in one task, moves the guard to another task that holds it for a while, and at
/// once acquires again through the same handle: the second acquire must wait for the moved
/// guard like any other holder.
async fn moving_worker(lock: FileLock, log: Log, stop: &Path) {
    while !stop.exists() {
        let start = monotonic_ns();
        let Ok(guard) = lock.acquire_timeout(ACQUIRE_TIMEOUT).await else {
            continue;
        };
        let id = enter(&log, start);
        let holder_log = log.clone();
        let holder = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1) + hold_pause()).await;
            leave(&holder_log, &id);
            drop(guard);
        });
        let start = monotonic_ns();
        if let Ok(again) = lock.acquire_timeout(Duration::from_millis(20)).await {
            let id = enter(&log, start);
            leave(&log, &id);
            drop(again);
        }
        holder.await.unwrap();
    }
}

/// A small, seeded generator (xorshift64*): the chaos schedule, replayable from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from + 1))
    }
}

fn seed() -> u64 {
    match std::env::var("TOKIO_FILELOCK_CHAOS_SEED") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("TOKIO_FILELOCK_CHAOS_SEED={s:?} is not a number")),
        Err(_) => monotonic_ns() | 1,
    }
}

fn run_length() -> Duration {
    std::env::var("TOKIO_FILELOCK_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(6), Duration::from_secs)
}

/// Which lock a worker takes, and the Python flavour that shares its protocol.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    Os,
    Soft,
}

/// A worker of the run: its role, and the running process.
struct Worker {
    role: &'static str,
    group: Group,
    child: ChildProcess,
}

struct Run {
    dir: tempfile::TempDir,
}

impl Run {
    fn path(&self, group: Group) -> PathBuf {
        self.dir.path().join(match group {
            Group::Os => "chaos.lock",
            Group::Soft => "chaos.soft.lock",
        })
    }

    fn log_path(&self, group: Group) -> PathBuf {
        self.dir.path().join(match group {
            Group::Os => "os.log",
            Group::Soft => "soft.log",
        })
    }

    fn stop_path(&self) -> PathBuf {
        self.dir.path().join("stop")
    }

    fn start(&self, role: &'static str, group: Group) -> Worker {
        let lock = self.path(group);
        let log = self.log_path(group);
        let stop = self.stop_path();
        let args = [
            lock.to_str().unwrap(),
            log.to_str().unwrap(),
            stop.to_str().unwrap(),
        ];
        let mut child = if role == "python" {
            let mut command = Command::new(common::tools::python());
            command.arg(PY_CHAOS).arg(match group {
                Group::Os => "os",
                Group::Soft => "soft",
            });
            command.args(args);
            common::spawn_command(command)
        } else {
            common::spawn(role, &args)
        };
        child.expect("ready");
        Worker { role, group, child }
    }

    /// Records a chaos event in the log of `group` (and so in the checker's view).
    fn event(&self, group: Group, line: &str) {
        Log::open(&self.log_path(group)).record(line);
    }
}

fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) with a pid of a child this test started and has not reaped yet.
    let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {signal}): {}",
        std::io::Error::last_os_error()
    );
}

/// The chaos loop: until `length` has passed, one action every 10-40 ms.
fn chaos(
    run: &Run,
    workers: &mut [Worker],
    rng: &mut Rng,
    length: Duration,
) -> HashMap<&'static str, u32> {
    let mut counts: HashMap<&'static str, u32> = HashMap::new();
    let lock = run.path(Group::Os);
    let marker = run.path(Group::Soft);
    let mut empty_since: Option<(u64, Instant)> = None;
    let deadline = Instant::now() + length;
    while Instant::now() < deadline {
        std::thread::sleep(rng.millis(10, 40));
        // A soft holder killed between creating its marker and writing it leaves an empty
        // marker, which is never broken (documented): the operator's remedy is to remove it.
        // Done here only once it has stayed empty, as the same file, for a whole second (a
        // live holder writes within microseconds, and no stop lasts over 60 ms).
        if clear_stuck_empty_marker(&marker, &mut empty_since) {
            *counts.entry("empty marker removed").or_default() += 1;
        }
        let action = match rng.below(10) {
            0..=3 => "kill",
            4..=6 => "stop",
            7 | 8 => "rename",
            _ => "replace",
        };
        *counts.entry(action).or_default() += 1;
        match action {
            "kill" => {
                let i = rng.below(workers.len() as u64) as usize;
                let (role, group) = (workers[i].role, workers[i].group);
                run.event(
                    group,
                    &format!("K {} {}", workers[i].child.id(), monotonic_ns()),
                );
                workers[i].child.kill();
                workers[i] = run.start(role, group);
            }
            "stop" => {
                let i = rng.below(workers.len() as u64) as usize;
                let pid = workers[i].child.id();
                signal(pid, libc::SIGSTOP);
                std::thread::sleep(rng.millis(5, 60));
                signal(pid, libc::SIGCONT);
            }
            "rename" => {
                let old = lock.with_extension("old");
                if rename_logged(run, &lock, &old).is_ok() {
                    std::thread::sleep(rng.millis(0, 20));
                    rename_logged(run, &old, &lock).unwrap();
                }
            }
            _ => {
                let fresh = lock.with_extension("new");
                std::fs::write(&fresh, b"").unwrap();
                rename_logged(run, &fresh, &lock).unwrap();
            }
        }
    }
    counts
}

/// Renames `from` to `to` and logs `R <before> <after>`: the rename took effect somewhere in
/// between (the chaos thread may be preempted on either side of the call).
fn rename_logged(run: &Run, from: &Path, to: &Path) -> std::io::Result<()> {
    let before = monotonic_ns();
    std::fs::rename(from, to)?;
    let after = monotonic_ns();
    run.event(Group::Os, &format!("R {before} {after}"));
    Ok(())
}

/// Removes the soft marker once it has been empty, as one file, for a second; `true` then.
fn clear_stuck_empty_marker(marker: &Path, empty_since: &mut Option<(u64, Instant)>) -> bool {
    use std::os::unix::fs::MetadataExt;
    let empty = std::fs::symlink_metadata(marker)
        .ok()
        .filter(|m| m.len() == 0)
        .map(|m| m.ino());
    match (empty, *empty_since) {
        (Some(ino), Some((seen, since))) if ino == seen => {
            if since.elapsed() >= Duration::from_secs(1) {
                let _ = std::fs::remove_file(marker);
                *empty_since = None;
                return true;
            }
        }
        (Some(ino), _) => *empty_since = Some((ino, Instant::now())),
        (None, _) => *empty_since = None,
    }
    false
}

/// One hold read back from a log.
#[derive(Clone)]
struct Hold {
    id: String,
    start: u64,
    enter: u64,
    leave: u64,
}

/// What a log says: the holds, and the times the lock file was renamed or replaced.
impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (acquire began {}, entered {}, left {})",
            self.id, self.start, self.enter, self.leave
        )
    }
}

struct Verdict {
    holds: Vec<Hold>,
    violations: Vec<(Hold, Hold)>,
    excused: usize,
}

fn check(log: &Path, end: u64) -> Verdict {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut open: HashMap<String, (u64, u64)> = HashMap::new();
    let mut holds = Vec::new();
    let mut kills: HashMap<String, u64> = HashMap::new();
    let mut renames = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let num = |s: &str| -> u64 {
            s.parse()
                .unwrap_or_else(|_| panic!("malformed chaos log line {line:?}"))
        };
        match fields[..] {
            ["E", id, start, enter] => {
                open.insert(id.to_owned(), (num(start), num(enter)));
            }
            ["L", id, leave] => {
                let (start, enter) = open
                    .remove(id)
                    .unwrap_or_else(|| panic!("leave without enter: {line:?}"));
                holds.push(Hold {
                    id: id.to_owned(),
                    start,
                    enter,
                    leave: num(leave),
                });
            }
            ["K", pid, t] => {
                kills.insert(pid.to_owned(), num(t));
            }
            ["R", before, after] => renames.push((num(before), num(after))),
            _ => panic!("malformed chaos log line {line:?}"),
        }
    }
    // A hold that never left ends when its process was sent SIGKILL (or at the end).
    for (id, (start, enter)) in open {
        let pid = id
            .split([':', '.'])
            .nth(1)
            .unwrap_or_else(|| panic!("malformed hold id {id:?}"));
        let leave = kills.get(pid).copied().unwrap_or(end);
        holds.push(Hold {
            id,
            start,
            enter,
            leave: leave.max(enter),
        });
    }
    holds.sort_by_key(|h| h.enter);
    let mut violations = Vec::new();
    let mut excused = 0;
    let mut current: Vec<Hold> = Vec::new();
    for next in &holds {
        current.retain(|h| h.leave > next.enter);
        for earlier in &current {
            // Excused: the lock file may have been renamed or replaced after one of the two
            // acquires began and before the later hold entered (a rename's interval meets
            // that window): the two may hold different inodes.
            let from = earlier.start.min(next.start);
            if renames
                .iter()
                .any(|&(before, after)| after >= from && before <= next.enter)
            {
                excused += 1;
            } else {
                violations.push((earlier.clone(), next.clone()));
            }
        }
        current.push(next.clone());
    }
    Verdict {
        holds,
        violations,
        excused,
    }
}

#[test]
fn no_two_holders_under_chaos() {
    // Provisions (or finds) the test venv with Python filelock before the clock starts.
    common::tools::python();
    let seed = seed();
    eprintln!("chaos seed: {seed} (replay with TOKIO_FILELOCK_CHAOS_SEED={seed})");
    let mut rng = Rng(seed);
    let run = Run {
        dir: tempfile::tempdir().unwrap(),
    };
    let roles: [(&'static str, Group); 7] = [
        ("os_async", Group::Os),
        ("os_sync", Group::Os),
        ("os_move", Group::Os),
        ("python", Group::Os),
        ("soft_async", Group::Soft),
        ("soft_sync", Group::Soft),
        ("python", Group::Soft),
    ];
    let mut workers: Vec<Worker> = roles.iter().map(|&(r, g)| run.start(r, g)).collect();
    let counts = chaos(&run, &mut workers, &mut rng, run_length());

    File::create(run.stop_path()).unwrap();
    let finish = Instant::now() + FINISH_WAIT;
    for worker in &mut workers {
        let left = finish.saturating_duration_since(Instant::now());
        assert!(
            worker.child.wait_status(left).success(),
            "a {} worker failed (seed {seed})",
            worker.role
        );
    }
    let end = monotonic_ns();

    let mut failures = Vec::new();
    for group in [Group::Os, Group::Soft] {
        let name = if group == Group::Os { "os" } else { "soft" };
        let verdict = check(&run.log_path(group), end);
        eprintln!(
            "chaos {name}: {} holds, {} overlaps excused (lock file renamed or replaced), \
             {} overlapping holds; actions {counts:?}",
            verdict.holds.len(),
            verdict.excused,
            verdict.violations.len()
        );
        if verdict.holds.len() < 20 {
            failures.push(format!(
                "{name}: only {} holds in the run: the chaos left too little to check",
                verdict.holds.len()
            ));
        }
        if !verdict.violations.is_empty() {
            failures.push(format!(
                "{name}: {} overlapping holds; first: {:?}",
                verdict.violations.len(),
                &verdict.violations[..verdict.violations.len().min(3)]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "seed {seed} (replay with TOKIO_FILELOCK_CHAOS_SEED={seed}):\n{}",
        failures.join("\n")
    );
}

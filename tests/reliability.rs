//! Reliability under real processes: nothing is ever lost.
//!
//! - N processes x M read-modify-write increments of one counter, async and sync callers
//!   mixed (and two tasks or threads per process sharing one handle): the count is exact.
//! - Every hold is logged with a machine-wide monotonic clock: no two exclusive holds
//!   overlap, and no shared hold overlaps an exclusive one.
//! - Shared readers never see a half-written file while writers rewrite it.
//! - A holder killed with SIGKILL mid-hold: the waiter already waiting gets the lock.
//!
//! The larger counter run is ignored by default:
//! `cargo test --test reliability -- --ignored`.
#![cfg(unix)]

mod common;

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::flavor;
use common::workload::{self, ACQUIRE_WAIT, CounterRun};
use tokio_filelock::{FileLock, LockGuard};

#[test]
fn child_entry() {
    common::child_entry(run_role);
}

fn run_role(role: &str, args: &[String]) {
    match role {
        "count" => workload::count_role(args),
        "read" => workload::read_role(args),
        "rewrite" => rewrite_role(args),
        "verify" => verify_role(args),
        "hold" => hold_role(args),
        "wait" => wait_role(args),
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn the_counter_stays_exact_4_processes_x_500() {
    let count = CounterRun::new().run(4, 500, 0, 0);
    assert_eq!(count, 4 * 500, "increments were lost");
}

/// The larger run: `cargo test --test reliability -- --ignored`.
#[test]
#[ignore = "larger run (8 x 2000), a few seconds; run with --ignored"]
fn the_counter_stays_exact_8_processes_x_2000() {
    let count = CounterRun::new().run(8, 2000, 0, 0);
    assert_eq!(count, 8 * 2000, "increments were lost");
}

#[test]
fn no_two_exclusive_holds_overlap() {
    const PROCESSES: usize = 4;
    const PER_PROCESS: usize = 200;
    const READERS: usize = 2;
    const READS: usize = 100;
    let run = CounterRun::new().logging_holds();
    let count = run.run(PROCESSES, PER_PROCESS, READERS, READS);

    let holds = workload::read_intervals(run.log.as_deref().unwrap());
    let exclusive = holds.iter().filter(|h| h.exclusive).count();
    assert_eq!(
        exclusive,
        PROCESSES * PER_PROCESS,
        "every exclusive hold logged"
    );
    assert_eq!(
        holds.len() - exclusive,
        READERS * READS,
        "every shared hold logged"
    );
    let pids: HashSet<u32> = holds.iter().map(|h| h.pid).collect();
    assert_eq!(pids.len(), PROCESSES + READERS, "holds from every process");

    // The processes ran at the same time, their holds interleaved, not one after another.
    let mut by_start = holds.clone();
    by_start.sort_by_key(|h| h.start);
    let switches = by_start.windows(2).filter(|w| w[0].pid != w[1].pid).count();
    eprintln!(
        "{} holds, {switches} hand-offs between processes",
        holds.len()
    );
    assert!(
        switches > 2 * pids.len(),
        "only {switches} hand-offs: no contention"
    );

    let conflicts = workload::conflicting_overlaps(&holds);
    assert!(
        conflicts.is_empty(),
        "{} pairs of holds overlap although one is exclusive; first ones: {:#?}",
        conflicts.len(),
        &conflicts[..conflicts.len().min(3)]
    );
    assert_eq!(
        count,
        (PROCESSES * PER_PROCESS) as u64,
        "increments were lost"
    );
}

// ---- Shared readers never see a half-written file ----

/// The data file is `CHUNKS` lines of `CHUNK` bytes, each naming its generation and index,
/// written by `CHUNKS` separate `write` calls.
const CHUNKS: usize = 8;
const CHUNK: usize = 1024;
/// Rewrites per writer process.
const GENERATIONS: usize = 60;

fn chunk(generation: u64, index: usize) -> Vec<u8> {
    let mut line = format!("gen {generation:010} chunk {index:02} ").into_bytes();
    let fill = b'a' + (generation % 26) as u8;
    line.resize(CHUNK - 1, fill);
    line.push(b'\n');
    line
}

/// The generation of a complete, consistent data file; otherwise what is wrong with it.
fn check_data(data: &[u8]) -> Result<u64, String> {
    if data.len() != CHUNKS * CHUNK {
        return Err(format!(
            "{} bytes instead of {}",
            data.len(),
            CHUNKS * CHUNK
        ));
    }
    let head = std::str::from_utf8(&data[4..14]).map_err(|e| e.to_string())?;
    let generation: u64 = head.parse().map_err(|_| format!("bad header {head:?}"))?;
    for index in 0..CHUNKS {
        if data[index * CHUNK..(index + 1) * CHUNK] != chunk(generation, index)[..] {
            return Err(format!("chunk {index} is not of generation {generation}"));
        }
    }
    Ok(generation)
}

fn write_data(file: &File, generation: u64, pause: Duration) {
    file.set_len(0).unwrap();
    for index in 0..CHUNKS {
        file.write_all_at(&chunk(generation, index), (index * CHUNK) as u64)
            .unwrap();
        // Widen the window in which the file is half written.
        std::thread::sleep(pause);
    }
}

fn read_data(path: &Path) -> Result<u64, String> {
    check_data(&std::fs::read(path).unwrap())
}

/// args: flavor, lock, data. `GENERATIONS` times, under the exclusive lock: read the
/// generation, rewrite the file as the next one, chunk by chunk.
fn rewrite_role(args: &[String]) {
    let [flavor, lock, data] = args else {
        panic!("rewrite: bad arguments {args:?}")
    };
    let lock = FileLock::new(lock);
    let file = File::options().read(true).write(true).open(data).unwrap();
    let rewrite = |guard: LockGuard| {
        let generation = read_data(Path::new(data)).unwrap_or_else(|e| panic!("writer saw {e}"));
        write_data(&file, generation + 1, Duration::from_micros(200));
        guard.release().unwrap();
    };
    let runtime = common::runtime();
    common::ready_steady_go();
    for _ in 0..GENERATIONS {
        let guard = match flavor.as_str() {
            "async" => runtime.block_on(lock.acquire_timeout(ACQUIRE_WAIT)),
            _ => lock.blocking_acquire_timeout(ACQUIRE_WAIT),
        };
        rewrite(guard.unwrap());
    }
    common::say(format!("done {GENERATIONS}"));
}

/// args: flavor, lock, data. Reads the data file under the shared lock, again and again,
/// until its stdin closes (or a line comes); says `torn <what>` at the first inconsistent
/// read, else `ok <reads> <distinct generations>`.
fn verify_role(args: &[String]) {
    let [flavor, lock, data] = args else {
        panic!("verify: bad arguments {args:?}")
    };
    let lock = FileLock::new(lock);
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = stop.clone();
    let runtime = common::runtime();
    let read_once = || -> Result<u64, String> {
        let guard = match flavor.as_str() {
            "async" => runtime.block_on(async {
                // In a task: the task is the owner.
                let lock = lock.clone();
                tokio::spawn(async move { lock.acquire_shared_timeout(ACQUIRE_WAIT).await })
                    .await
                    .unwrap()
            }),
            _ => lock.blocking_acquire_shared_timeout(ACQUIRE_WAIT),
        }
        .unwrap();
        let seen = read_data(Path::new(data));
        guard.release().unwrap();
        seen
    };
    let mut generations = HashSet::new();
    let mut reads = 0usize;
    match read_once() {
        Ok(generation) => generations.insert(generation),
        Err(e) => return common::say(format!("torn {e}")),
    };
    common::say("reading");
    std::thread::spawn(move || {
        let _ = common::hear();
        stopper.store(true, Ordering::SeqCst);
    });
    while !stop.load(Ordering::SeqCst) {
        match read_once() {
            Ok(generation) => generations.insert(generation),
            Err(e) => return common::say(format!("torn {e}")),
        };
        reads += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    common::say(format!("ok {reads} {}", generations.len()));
}

#[test]
fn shared_readers_never_see_a_half_written_file() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("data.lock");
    let data = dir.path().join("data");
    write_data(&File::create(&data).unwrap(), 0, Duration::ZERO);
    let (lock, data) = (lock.to_str().unwrap(), data.to_str().unwrap());

    let mut readers: Vec<_> = (0..2)
        .map(|i| common::spawn("verify", &[flavor(i), lock, data]))
        .collect();
    for reader in &mut readers {
        reader.expect("reading");
    }
    let mut writers: Vec<_> = (0..2)
        .map(|i| {
            (
                common::spawn("rewrite", &[flavor(i), lock, data]),
                GENERATIONS,
            )
        })
        .collect();
    workload::run_together(&mut writers);

    let mut generations_seen = 0;
    for reader in &mut readers {
        // Closing stdin tells it to stop (a reader that found a torn file has ended).
        reader.close_stdin();
        let said = reader.next_message();
        let fields: Vec<&str> = said.split(' ').collect();
        assert_eq!(fields[0], "ok", "reader {} said {said:?}", reader.id());
        let reads: usize = fields[1].parse().unwrap();
        assert!(reads > 0, "reader {} read nothing", reader.id());
        generations_seen += fields[2].parse::<usize>().unwrap();
        assert!(reader.wait_success());
    }
    // The readers did read while the writers wrote, not only before or after.
    assert!(
        generations_seen > 2,
        "readers saw only {generations_seen} generations"
    );
    // Every rewrite was complete, and none was lost.
    assert_eq!(read_data(Path::new(data)), Ok(2 * GENERATIONS as u64));
}

// ---- A holder killed mid-hold ----

/// The poll cap of the waiter (the default).
const POLL_CAP: Duration = Duration::from_millis(50);
/// Slack on top of the poll cap: generous, this is not a benchmark.
const KILL_SLACK: Duration = Duration::from_secs(10);

/// args: lock. Holds the exclusive lock until killed (or stdin closes).
fn hold_role(args: &[String]) {
    let lock = FileLock::new(&args[0]);
    let _guard = lock.blocking_acquire_timeout(ACQUIRE_WAIT).unwrap();
    common::say("acquired");
    let _ = common::hear();
}

/// args: flavor, lock. Checks the lock is held, says `waiting`, then waits at most
/// `POLL_CAP + KILL_SLACK` for it; says `acquired <monotonic ns>` or `error <error>`.
fn wait_role(args: &[String]) {
    let [flavor, path] = args else {
        panic!("wait: bad arguments {args:?}")
    };
    let lock = FileLock::builder(path).poll_interval(POLL_CAP).build();
    assert!(lock.blocking_try_acquire().unwrap().is_none(), "not held");
    common::say("waiting");
    let bound = POLL_CAP + KILL_SLACK;
    let got = match flavor.as_str() {
        "async" => common::runtime().block_on(async {
            let lock = lock.clone();
            tokio::spawn(async move { lock.acquire_timeout(bound).await })
                .await
                .unwrap()
        }),
        _ => lock.blocking_acquire_timeout(bound),
    };
    match got {
        Ok(_guard) => common::say(format!("acquired {}", common::monotonic_ns())),
        Err(e) => common::say(format!("error {e}")),
    }
}

#[test]
fn a_waiter_gets_the_lock_of_a_holder_killed_mid_hold() {
    for flavor in ["async", "sync"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("killed.lock");
        let path = path.to_str().unwrap();
        let mut holder = common::spawn("hold", &[path]);
        holder.expect("acquired");
        let mut waiter = common::spawn("wait", &[flavor, path]);
        waiter.expect("waiting");
        // Let the waiter's backoff reach its cap, the slowest case. Correctness does not
        // depend on this pause; the waiter's own bound is what is asserted.
        std::thread::sleep(POLL_CAP * 4);
        let killed_at = common::monotonic_ns();
        holder.kill();
        let said = waiter.next_message_within(POLL_CAP + KILL_SLACK + common::CHILD_WAIT);
        let said = said.unwrap_or_else(|| panic!("{flavor} waiter said nothing"));
        let acquired_at: u64 = said
            .strip_prefix("acquired ")
            .unwrap_or_else(|| panic!("{flavor} waiter: {said}"))
            .parse()
            .unwrap();
        let latency = Duration::from_nanos(acquired_at.saturating_sub(killed_at));
        eprintln!("{flavor} waiter acquired {latency:?} after the holder was killed");
        assert!(
            latency <= POLL_CAP + KILL_SLACK,
            "{flavor}: took {latency:?}"
        );
        assert!(waiter.wait_success());
    }
}

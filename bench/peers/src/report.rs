//! Runs every measurement of every row and writes the section (Markdown) and the data file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::cycle;
use crate::handoff::{self, Release};
use crate::probes::{self, Cancelled};
use crate::rows::{Flavor, Row};
use crate::stats::{fmt_us, percentile};

/// Everything measured for one row.
pub struct RowResult {
    row: Row,
    cycle_us: f64,
    /// Sorted hand-off latencies (µs), holder releasing by close.
    handoff: Vec<f64>,
    /// Sorted hand-off latencies (µs), holder unlocking and keeping its descriptor open
    /// (the baseline and this crate's rows only).
    unlock_only: Option<Vec<f64>>,
    /// Worst ticker lag (µs) with the ticker alone, then while waiting (async rows).
    stall_us: Option<(f64, f64)>,
    /// What a cancelled wait leaves (async rows).
    cancel: Option<Cancelled>,
}

/// Numbers of the run (for the text).
pub struct Results {
    rows: Vec<RowResult>,
    samples: usize,
}

pub fn measure(dir: &Path, quick: bool) -> Results {
    let (batches, per_batch, samples) = if quick { (5, 50, 10) } else { (30, 200, 100) };
    let paths: Vec<(Row, PathBuf)> = Row::ALL
        .into_iter()
        .map(|row| {
            let path = dir.join(format!("{}.lock", row.id()));
            std::fs::write(&path, b"").unwrap();
            (row, path)
        })
        .collect();
    eprintln!("peers: cycles");
    let cycles = cycle::cycles_us(&paths, batches, per_batch);
    let mut rows = Vec::new();
    for ((row, path), cycle_us) in paths.into_iter().zip(cycles) {
        eprintln!("peers: {}", row.id());
        let handoff = handoff::samples(row, &path, Release::Close, samples);
        let unlock_only = (row == Row::Raw || row.is_ours())
            .then(|| handoff::samples(row, &path, Release::UnlockKeepOpen, samples));
        let is_async = row.flavor() != Flavor::Sync;
        let stall_us = is_async.then(|| probes::run_stall(row, &path));
        let cancel = is_async.then(|| probes::run_cancel(row, &path));
        rows.push(RowResult {
            row,
            cycle_us,
            handoff,
            unlock_only,
            stall_us,
            cancel,
        });
    }
    Results { rows, samples }
}

fn ratio(value: f64, base: f64) -> String {
    format!("{} ({:.1}x)", fmt_us(value), value / base)
}

/// A stall is a worst lag while waiting 2 ms or more above the ticker-alone lag.
fn stalls((alone, waiting): (f64, f64)) -> bool {
    waiting - alone >= 2000.0
}

fn stall_cell(stall_us: Option<(f64, f64)>) -> String {
    match stall_us {
        None => "—".into(),
        Some(lags) if !stalls(lags) => {
            format!("no ({} lag; alone {})", fmt_us(lags.1), fmt_us(lags.0))
        }
        Some(lags) => format!(
            "**yes, {} stall** (alone {})",
            fmt_us(lags.1),
            fmt_us(lags.0)
        ),
    }
}

fn cancel_cells(cancel: &Option<Cancelled>) -> (String, String) {
    match cancel {
        None => ("—".into(), "—".into()),
        Some(Cancelled::CouldNotFire(ms)) => (
            format!("timeout cannot fire (returned after {ms} ms)"),
            "—".into(),
        ),
        Some(Cancelled::Dropped {
            threads_in_flock,
            free_after,
        }) => (
            if *threads_in_flock == 0 {
                "no".into()
            } else {
                format!("**yes** ({threads_in_flock})")
            },
            if *free_after {
                "yes".into()
            } else {
                "**no**".into()
            },
        ),
    }
}

fn verdict(met: bool, how: String) -> String {
    format!("**{}** ({how})", if met { "met" } else { "missed" })
}

pub fn markdown(results: &Results, quick: bool) -> String {
    let rows = &results.rows;
    let get = |row: Row| rows.iter().find(|r| r.row == row).unwrap();
    let raw = get(Row::Raw);
    let (raw_cycle, raw_p50) = (raw.cycle_us, percentile(&raw.handoff, 50.0));
    let mut s = String::new();
    let _ = writeln!(s, "## Peers: every Rust file lock, side by side\n");
    let _ = writeln!(
        s,
        "Each crate as a user would call it, against the raw `std::fs::File::lock` baseline \
         measured in the same run (`cargo run --release -p tokio-filelock-peers`). *Cycle*: \
         open + lock + unlock + close of an existing lock file, nobody else on it (median of \
         {} rounds in which every row runs one batch in turn); this crate's rows reuse one `FileLock` handle, as a program would. \
         *Hand-off*: this process holds the lock with a raw `flock`, a waiter of the row in \
         another process waits (5-20 ms already), the holder unlocks and closes at a recorded \
         CLOCK_MONOTONIC time and the waiter records when its acquire returns ({} hand-offs \
         per row). Async peers run in a spawned task of a 2-worker runtime. *Waiting blocks a \
         Tokio worker*: the worst lag of a 1 ms ticker on the same 1-worker runtime while the \
         row waits 300 ms, against the same ticker alone for 300 ms just before; each the \
         best of 5 tries (a stall shows in every try, a busy moment of the machine in one); \
         \"yes\" from 2 ms above the ticker alone. *Cancelled wait*: `tokio::time::timeout(50 ms)` \
         around the acquire while the lock is held 300 ms; then the threads of the process \
         found in the `flock` system call (`/proc/self/task/*/syscall`), and whether the lock \
         is free 50 ms after the holder lets go. The probes run in a fresh process each. A \
         row whose acquire hops to another thread (`spawn_blocking`: this crate's async rows, \
         fs4 tokio's `open`, async-fd-lock) pays a thread wake-up per hop; on a busy machine \
         (see the load average above) a wake-up waits for a CPU, so those rows vary most \
         from run to run.\n",
        if quick { 5 } else { 30 },
        results.samples
    );
    let _ = writeln!(
        s,
        "| crate, call | cycle (x raw) | hand-off p50 (x raw) | hand-off p99 | waiting blocks a \
         Tokio worker | cancelled wait leaves a thread in `flock` | lock free 50 ms after the \
         holder lets go |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for r in rows {
        let (thread, free) = cancel_cells(&r.cancel);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {thread} | {free} |",
            r.row.name(),
            ratio(r.cycle_us, raw_cycle),
            ratio(percentile(&r.handoff, 50.0), raw_p50),
            fmt_us(percentile(&r.handoff, 99.0)),
            stall_cell(r.stall_us),
        );
    }
    let _ = writeln!(s);

    // The holder that unlocks without closing.
    let unlock_base = percentile(raw.unlock_only.as_deref().unwrap(), 50.0);
    let _ = writeln!(
        s,
        "### A holder that unlocks with `LOCK_UN` and keeps its descriptor open\n\n\
         What std's `File::unlock`, fd-lock's guard and many programs do. The same hand-off, \
         except that the holder's descriptor stays open until the waiter has the lock. Ratios \
         to the raw waiter of this table and to the close hand-off of the table above.\n"
    );
    let _ = writeln!(
        s,
        "| waiter | p50 | p99 | x raw (unlock only) | x raw (close) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    for r in rows {
        if let Some(v) = &r.unlock_only {
            let p50 = percentile(v, 50.0);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.1}x | {:.1}x |",
                r.row.name(),
                fmt_us(p50),
                fmt_us(percentile(v, 99.0)),
                p50 / unlock_base,
                p50 / raw_p50
            );
        }
    }
    let _ = writeln!(
        s,
        "\nWhy: Linux has no notification of an unlock. inotify reports a close of a file \
         opened for writing (`IN_CLOSE_WRITE`), not `flock(LOCK_UN)`; a waiter that is \
         not itself blocked in `flock` learns of an unlock without a close only at its \
         next timed attempt, so the bound is the poll interval. FreeBSD's kqueue likewise \
         reports a close (`NOTE_CLOSE`), not the unlock, and Windows has no notification \
         of `UnlockFileEx`: there too the poll bounds it. macOS's kqueue does report an \
         `flock` unlock (`NOTE_FUNLOCK`, posted by XNU's `VNOP_ADVLOCK` on every `flock` \
         unlock), so there this crate's waiters wake at once. A waiter blocked in the \
         kernel (`flock` without `LOCK_NB`) is woken by the unlock itself.\n"
    );

    // Goals (issue 21).
    let filelock_async = get(Row::Filelock07Async).cycle_us;
    let task = get(Row::OursTask);
    let sync = get(Row::OursSync);
    let async_vs_filelock = task.cycle_us / filelock_async;
    let sync_vs_raw = sync.cycle_us / raw_cycle;
    let sync_handoff = percentile(&sync.handoff, 50.0) / raw_p50;
    let others: Vec<String> = rows
        .iter()
        .filter(|r| r.row.is_ours() && r.row != Row::OursSync)
        .map(|r| {
            let x = percentile(&r.handoff, 50.0) / raw_p50;
            format!(
                "{} {}",
                r.row.label(),
                verdict(x <= 2.0, format!("{x:.1}x"))
            )
        })
        .collect();
    let ours_stalls: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.row.is_ours())
        .filter_map(|r| r.stall_us)
        .collect();
    let worst_stall = ours_stalls.iter().map(|l| l.1 - l.0).fold(0.0, f64::max);
    let _ = writeln!(s, "Goals (issue 21), from this run:\n");
    let _ = writeln!(
        s,
        "- uncontended async cycle (in a task) ≤ 1.5x filelock 0.7's `lock_async`: {}",
        verdict(async_vs_filelock <= 1.5, format!("{async_vs_filelock:.2}x"))
    );
    let _ = writeln!(
        s,
        "- `blocking_acquire()` cycle ≤ 1.3x raw: {}",
        verdict(sync_vs_raw <= 1.3, format!("{sync_vs_raw:.2}x"))
    );
    let _ = writeln!(
        s,
        "- `blocking_acquire()` hand-off p50 ≤ 1.2x raw: {}",
        verdict(sync_handoff <= 1.2, format!("{sync_handoff:.2}x"))
    );
    let _ = writeln!(
        s,
        "- every other way of waiting, hand-off p50 ≤ 2x raw: {}",
        others.join("; ")
    );
    let _ = writeln!(
        s,
        "- no worker stall while waiting (ticker lag < 2 ms): {}",
        verdict(
            worst_stall < 2000.0,
            format!("worst {}", fmt_us(worst_stall))
        )
    );
    let ours_cancels: Vec<&RowResult> = rows
        .iter()
        .filter(|r| r.row.is_ours() && r.cancel.is_some())
        .collect();
    let clean = ours_cancels.iter().all(|r| {
        matches!(
            r.cancel,
            Some(Cancelled::Dropped {
                threads_in_flock: 0,
                free_after: true
            })
        )
    });
    let _ = writeln!(
        s,
        "- no thread left in `flock` after a cancelled wait, and the lock free 50 ms after \
         the holder lets go: {}\n",
        verdict(clean, format!("{} async rows", ours_cancels.len()))
    );
    s
}

/// One line per row, tab-separated: id, label, 1 for this crate's rows, cycle µs, hand-off
/// p50 µs, hand-off p50 µs with the unlock-only holder (or `-`).
pub fn data(results: &Results) -> String {
    let mut s = String::new();
    for r in &results.rows {
        let unlock = r
            .unlock_only
            .as_ref()
            .map_or("-".to_owned(), |v| format!("{:.2}", percentile(v, 50.0)));
        let _ = writeln!(
            s,
            "{}\t{}\t{}\t{:.3}\t{:.2}\t{unlock}",
            r.row.id(),
            r.row.label(),
            u8::from(r.row.is_ours()),
            r.cycle_us,
            percentile(&r.handoff, 50.0)
        );
    }
    s
}

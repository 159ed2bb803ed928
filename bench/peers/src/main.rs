//! The peers benchmark of tokio-filelock: every Rust crate a user could pick to lock a file,
//! against the raw `std::fs::File::lock` baseline, in one run on one machine. Prints the
//! "Peers" section of BENCHMARKS.md (Markdown) and, with `--data FILE`, the numbers the
//! pictures are drawn from. `scripts/bench.sh` (or `scripts/bench.sh peers`) runs it.
//!
//! ```text
//! cargo run --release -p tokio-filelock-peers -- [--quick] [--data target/bench-logs/peers.tsv]
//! ```
//!
//! Linux only: the hand-off compares CLOCK_MONOTONIC times taken in two processes, and the
//! cancel probe reads `/proc/self/task/*/syscall`.
#![allow(clippy::disallowed_methods)] // the baselines call the std lock methods themselves

mod child;
mod cycle;
mod handoff;
mod probes;
mod report;
mod rows;
mod runtime;
mod stats;

use std::path::Path;

use rows::Row;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        let (role, row, path) = (&args[1], Row::from_id(&args[2]), Path::new(&args[3]));
        match role.as_str() {
            "waiter" => handoff::waiter(row, path),
            "stall" => probes::stall(row, path),
            "cancel" => probes::cancel(row, path),
            other => panic!("unknown child role {other}"),
        }
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let data = args
        .iter()
        .position(|a| a == "--data")
        .map(|i| args[i + 1].clone());
    let dir = tempfile::tempdir().unwrap();
    let results = report::measure(dir.path(), quick);
    print!("{}", report::markdown(&results, quick));
    if let Some(data) = data {
        std::fs::write(data, report::data(&results)).unwrap();
    }
}

//! Several processes contend for one lock: each takes it in turn, increments a shared
//! counter file with a read-modify-write (which would lose updates without the lock), and
//! reports how long it waited.
//!
//! ```text
//! cargo run --example high_ground            # 4 processes x 5 rounds
//! cargo run --example high_ground -- 8 10    # 8 processes x 10 rounds
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use tokio_filelock::FileLock;

const HOLD: Duration = Duration::from_millis(20);

const USAGE: &str = "usage: high_ground [PROCESSES [ROUNDS]]  (positive numbers; default 4 5)";

/// The positive number at `args[index]`, or `default` when it is absent.
fn count(args: &[String], index: usize, default: usize) -> Result<usize, String> {
    match args.get(index) {
        None => Ok(default),
        Some(arg) => match arg.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("'{arg}' is not a positive number")),
        },
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--contender") {
        return match contender(&args[2..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("contender failed: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let (processes, rounds) = match (count(&args, 1, 4), count(&args, 2, 5)) {
        (Ok(processes), Ok(rounds)) if args.len() <= 3 => (processes, rounds),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("high_ground: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
        _ => {
            eprintln!("high_ground: too many arguments\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match coordinator(processes, rounds) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn coordinator(processes: usize, rounds: usize) -> std::io::Result<bool> {
    let dir = std::env::temp_dir().join(format!("high_ground.{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let counter = dir.join("high_ground.txt");
    std::fs::write(&counter, "0")?;
    let lock = dir.join("high_ground.txt.lock");
    println!(
        "{processes} processes x {rounds} rounds contend for {}",
        lock.display()
    );

    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let mut children = Vec::new();
    for id in 0..processes {
        children.push(
            Command::new(&exe)
                .arg("--contender")
                .arg(id.to_string())
                .arg(rounds.to_string())
                .arg(&lock)
                .arg(&counter)
                .spawn()?,
        );
    }
    let mut all_ok = true;
    for mut child in children {
        all_ok &= child.wait()?.success();
    }
    let total: usize = std::fs::read_to_string(&counter)?
        .trim()
        .parse()
        .unwrap_or(0);
    let expected = processes * rounds;
    println!(
        "counter = {total} (expected {expected}) after {:.2?}: {}",
        started.elapsed(),
        if total == expected && all_ok {
            "no update lost"
        } else {
            "UPDATES LOST"
        }
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(total == expected && all_ok)
}

/// One process: `rounds` times, take the lock, increment the counter slowly, release.
fn contender(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let [id, rounds, lock, counter] = args else {
        return Err("usage: --contender ID ROUNDS LOCK COUNTER".into());
    };
    let rounds: usize = rounds.parse()?;
    let counter = PathBuf::from(counter);
    // Any runtime will do: a waiter is woken by the crate's own watcher thread as soon as
    // another process lets the lock go (Linux, macOS, FreeBSD), with or without IO or time
    // enabled here.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let lock = FileLock::builder(lock)
            .timeout(Duration::from_secs(60))
            .build();
        for round in 0..rounds {
            let asked = Instant::now();
            let guard = lock.acquire().await?;
            let waited = asked.elapsed();
            let value = increment(&counter).await?;
            println!(
                "process {id} (pid {}) round {round}: took the high ground after waiting {waited:.1?}, counter -> {value}",
                std::process::id()
            );
            drop(guard);
            tokio::task::yield_now().await;
        }
        Ok(())
    })
}

/// Read, wait a little (to make a lost update likely without the lock), write back.
async fn increment(counter: &Path) -> std::io::Result<u64> {
    let value: u64 = tokio::fs::read_to_string(counter)
        .await?
        .trim()
        .parse()
        .map_err(std::io::Error::other)?;
    tokio::time::sleep(HOLD).await;
    tokio::fs::write(counter, (value + 1).to_string()).await?;
    Ok(value + 1)
}

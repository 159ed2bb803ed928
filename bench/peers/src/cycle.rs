//! Cycle time: open + lock + unlock + close of an existing lock file, nobody else on it.
//! Every row runs one batch in turn, round after round, so that a busy moment of the machine
//! falls on all rows alike rather than on one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_filelock::FileLock;

use crate::rows::{Flavor, Row, hold_async, hold_sync};
use crate::runtime;
use crate::stats::{percentile, sorted};

/// One row's cycles, with what it keeps between batches (its runtime, this crate's handle).
struct Cycler {
    row: Row,
    path: PathBuf,
    ours: FileLock,
    rt: Option<tokio::runtime::Runtime>,
}

impl Cycler {
    fn new(row: Row, path: &Path) -> Cycler {
        let flavor = row.flavor();
        Cycler {
            row,
            path: path.to_owned(),
            ours: FileLock::new(path),
            rt: (flavor != Flavor::Sync).then(|| runtime::for_flavor(flavor, 2)),
        }
    }

    /// The mean time (µs) of one cycle over a batch of `n`.
    fn batch(&self, n: u32) -> f64 {
        let took = match &self.rt {
            None => {
                let start = Instant::now();
                for _ in 0..n {
                    hold_sync(self.row, &self.path, &self.ours, || ());
                }
                start.elapsed()
            }
            Some(rt) => {
                let (row, ours, path) = (self.row, self.ours.clone(), self.path.clone());
                runtime::run(rt, row.flavor(), async move {
                    let start = Instant::now();
                    for _ in 0..n {
                        hold_async(row, &path, &ours, || ()).await;
                    }
                    start.elapsed()
                })
            }
        };
        took.as_secs_f64() * 1e6 / f64::from(n)
    }
}

/// The median cycle time (µs) of each row (in the order given, each on its own lock file
/// from `path_of`) over `rounds` rounds of one batch of `per_batch` cycles per row, after a
/// warm-up round.
pub fn cycles_us(rows: &[(Row, PathBuf)], rounds: usize, per_batch: u32) -> Vec<f64> {
    let cyclers: Vec<Cycler> = rows.iter().map(|(row, p)| Cycler::new(*row, p)).collect();
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); rows.len()];
    for round in 0..=rounds {
        for (cycler, samples) in cyclers.iter().zip(&mut samples) {
            let us = cycler.batch(per_batch);
            if round > 0 {
                samples.push(us);
            }
        }
    }
    // Let a runtime's blocking threads finish before the next section starts.
    for cycler in cyclers {
        if let Some(rt) = cycler.rt {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
    samples
        .into_iter()
        .map(|s| percentile(&sorted(s), 50.0))
        .collect()
}

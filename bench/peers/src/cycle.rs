//! Cycle time: open + lock + unlock + close of an existing lock file, nobody else on it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_filelock::FileLock;

use crate::rows::{Flavor, Row, hold_async, hold_sync};
use crate::runtime;

/// The median time (µs) of one cycle of `row` over `batches` batches of `per_batch` cycles,
/// after a warm-up batch.
pub fn cycle_us(row: Row, path: &Path, batches: usize, per_batch: u32) -> f64 {
    let mut per_cycle: Vec<f64> = Vec::with_capacity(batches);
    let flavor = row.flavor();
    let ours = FileLock::new(path);
    if flavor == Flavor::Sync {
        for batch in 0..=batches {
            let start = Instant::now();
            for _ in 0..per_batch {
                hold_sync(row, path, &ours, || ());
            }
            if batch > 0 {
                per_cycle.push(start.elapsed().as_secs_f64() * 1e6 / f64::from(per_batch));
            }
        }
    } else {
        let rt = runtime::for_flavor(flavor, 2);
        for batch in 0..=batches {
            let (ours, path) = (ours.clone(), PathBuf::from(path));
            let took: Duration = runtime::run(&rt, flavor, async move {
                let start = Instant::now();
                for _ in 0..per_batch {
                    hold_async(row, &path, &ours, || ()).await;
                }
                start.elapsed()
            });
            if batch > 0 {
                per_cycle.push(took.as_secs_f64() * 1e6 / f64::from(per_batch));
            }
        }
    }
    crate::stats::percentile(&crate::stats::sorted(per_cycle), 50.0)
}

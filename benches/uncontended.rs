//! Uncontended acquire + release, against the raw system calls and a bare `spawn_blocking`
//! hop measured in the same run. `scripts/bench.sh` turns the results into BENCHMARKS.md.
//!
//! ```text
//! cargo bench --bench uncontended
//! ```
#![allow(missing_docs)] // `criterion_group!` defines an undocumented public function

use std::fs::OpenOptions;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tokio_filelock::{FileLock, Reentrancy};

/// Short runs: the whole benchmark script must stay within a few minutes.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

/// The work the library cannot avoid: open (with the library's flags) + try_lock + unlock +
/// close.
#[allow(clippy::disallowed_methods)] // the raw baseline calls the std lock methods itself
fn raw_cycle(path: &std::path::Path) {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK);
    }
    let file = options.open(path).unwrap();
    file.try_lock().unwrap();
    file.unlock().unwrap();
    drop(file);
}

#[cfg(unix)]
/// [`raw_cycle`] plus the check the library makes after winning: that the path still names
/// the locked file (`fstat` of the descriptor against `lstat` of the path).
#[allow(clippy::disallowed_methods)] // the raw baseline calls the std lock methods itself
fn raw_cycle_checked(path: &std::path::Path) {
    use std::os::unix::fs::MetadataExt;
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true);
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK);
    }
    let file = options.open(path).unwrap();
    file.try_lock().unwrap();
    let held = file.metadata().unwrap();
    let named = std::fs::symlink_metadata(path).unwrap();
    assert_eq!((held.dev(), held.ino()), (named.dev(), named.ino()));
    file.unlock().unwrap();
    drop(file);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `iters` rounds of `round` inside one spawned task (the usual place of an acquire)
/// and returns the time they took.
fn in_task<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, round: F) -> Duration
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    rt.block_on(rt.spawn(async move {
        let start = Instant::now();
        for _ in 0..iters {
            round().await;
        }
        start.elapsed()
    }))
    .unwrap()
}

fn uncontended(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.lock");
    let rt = runtime();
    let mut group = c.benchmark_group("uncontended");

    group.bench_function("raw_cycle", |b| b.iter(|| raw_cycle(&path)));
    #[cfg(unix)]
    group.bench_function("raw_cycle_checked", |b| b.iter(|| raw_cycle_checked(&path)));

    group.bench_function("spawn_blocking_hop", |b| {
        b.iter_custom(|iters| {
            in_task(&rt, iters, || async {
                tokio::task::spawn_blocking(|| ()).await.unwrap();
            })
        })
    });

    let lock = FileLock::new(&path);
    group.bench_function("async_acquire_release", |b| {
        b.iter_custom(|iters| {
            let lock = lock.clone();
            in_task(&rt, iters, move || {
                let lock = lock.clone();
                async move { drop(lock.acquire().await.unwrap()) }
            })
        })
    });

    group.bench_function("sync_acquire_release", |b| {
        b.iter(|| drop(lock.blocking_acquire().unwrap()))
    });

    group.bench_function("async_reentrant_reacquire", |b| {
        b.iter_custom(|iters| {
            // Re-entry is opt-in: every acquire is a hold of its own by default.
            let lock = FileLock::builder(&path)
                .reentrancy(Reentrancy::Owner)
                .build();
            rt.block_on(rt.spawn(async move {
                let outer = lock.acquire().await.unwrap();
                let start = Instant::now();
                for _ in 0..iters {
                    drop(lock.acquire().await.unwrap());
                }
                let took = start.elapsed();
                drop(outer);
                took
            }))
            .unwrap()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = uncontended
}
criterion_main!(benches);

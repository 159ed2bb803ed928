//! The runtimes an async row runs on, and running a future "as the row does".

use std::future::Future;

use crate::rows::Flavor;

/// A multi-thread runtime with `workers` workers and every driver.
pub fn multi_thread(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// The runtime of a flavor: 2 workers for a task or `block_on` (this machine's cores), a
/// current-thread runtime with time only for `NoIo`.
pub fn for_flavor(flavor: Flavor, workers: usize) -> tokio::runtime::Runtime {
    match flavor {
        Flavor::NoIo => tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap(),
        _ => multi_thread(workers),
    }
}

/// Runs `future` on `rt` where the flavor runs an acquire: in a spawned task for `Task`,
/// in `block_on` otherwise.
pub fn run<F>(rt: &tokio::runtime::Runtime, flavor: Flavor, future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match flavor {
        Flavor::Task => rt.block_on(rt.spawn(future)).unwrap(),
        _ => rt.block_on(future),
    }
}

//! Cancellation: race the acquire against a shutdown signal with `tokio::select!`.
//! Whichever way it ends, no lock and no descriptor is left behind.
//!
//! `cargo run --example select`

use std::time::Duration;

use tokio_filelock::FileLock;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("job.lock");
    let holder = FileLock::new(&path);
    let held = holder.acquire().await?;

    let lock = FileLock::new(&path);
    let shutdown = tokio::time::sleep(Duration::from_millis(100)); // stands in for Ctrl-C
    let waiter = lock.clone();
    let result = tokio::spawn(async move {
        tokio::select! {
            guard = waiter.acquire() => guard.map(|_| "ran the job"),
            _ = shutdown => Ok("shut down while waiting; nothing is held"),
        }
    })
    .await??;
    println!("{result}");

    drop(held);
    let guard = lock.try_acquire().await?;
    println!("after the cancel, the lock is free: {}", guard.is_some());
    Ok(())
}

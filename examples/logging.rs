//! Logging: the crate emits `tracing` events at DEBUG with target `tokio_filelock`.
//!
//! `cargo run --example logging`

use std::time::Duration;

use tokio_filelock::FileLock;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_target(true)
        .init();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("high_ground.txt.lock");
    let holder = FileLock::new(&path);
    let held = holder.acquire().await?;
    let lock = FileLock::new(&path);
    let _ = lock.acquire_timeout(Duration::from_millis(5)).await;
    drop(held);
    let _guard = lock.acquire().await?;
    Ok(())
}

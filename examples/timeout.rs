//! Timeouts: give up after a while with an error that says which lock.
//!
//! `cargo run --example timeout`

use std::time::Duration;

use tokio_filelock::{Error, FileLock};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("high_ground.txt.lock");
    let holder = FileLock::new(&path);
    let _held = holder.acquire().await?;

    let lock = FileLock::builder(&path)
        .timeout(Duration::from_millis(200))
        .build();
    match lock.acquire().await {
        Err(e @ Error::Timeout { .. }) => println!("{e}"),
        other => println!("unexpected: {other:?}"),
    }
    // Or per call:
    let err = lock
        .acquire_timeout(Duration::from_millis(50))
        .await
        .unwrap_err();
    println!("{err}");
    Ok(())
}

//! Explicit acquire and release: `release()` reports an error that `Drop` could only log.
//!
//! `cargo run --example acquire_release`

use tokio_filelock::FileLock;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let lock = FileLock::new(dir.path().join("high_ground.txt.lock"));
    let guard = lock.acquire().await?;
    println!("acquired {}", guard.path().display());
    guard.release()?;
    println!("released; is_locked = {}", lock.is_locked());
    Ok(())
}

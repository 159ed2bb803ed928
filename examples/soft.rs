//! SoftFileLock: the marker-file protocol, for file systems where `flock` does not work.
//! The marker records the holder as Python filelock's `SoftFileLock` writes it.
//!
//! `cargo run --example soft`

use std::time::Duration;

use tokio_filelock::SoftFileLock;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("nfs-share.lock");
    let lock = SoftFileLock::new(&path);
    let guard = lock.acquire_timeout(Duration::from_secs(5)).await?;
    print!("marker while held:\n{}", std::fs::read_to_string(&path)?);

    let other = SoftFileLock::new(&path);
    match other.acquire_timeout(Duration::from_millis(100)).await {
        Err(e) => println!("{e}"),
        Ok(_) => println!("unexpected: two holders"),
    }
    guard.release()?;
    println!("after release the marker exists: {}", path.exists());
    Ok(())
}

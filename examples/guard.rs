//! The guard: hold the lock while the guard lives; it is released when the guard drops.
//!
//! `cargo run --example guard`

use tokio_filelock::FileLock;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let lock = FileLock::new(dir.path().join("high_ground.txt.lock"));
    {
        let _guard = lock.acquire().await?;
        println!("inside: is_locked = {}", lock.is_locked());
        // ... work with the shared resource ...
    } // released here
    println!("outside: is_locked = {}", lock.is_locked());
    Ok(())
}

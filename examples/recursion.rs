//! Reentrancy (opt-in, `Reentrancy::Owner`, Python's recursive locks): the task (or thread)
//! that holds the lock may acquire it again; the file is unlocked when the last guard goes.
//! Another task sharing the same handle waits. (By default every acquire is a hold of its
//! own, and a second acquire by the same task waits too.)
//!
//! `cargo run --example recursion`

use std::time::Duration;

use tokio_filelock::{FileLock, Reentrancy};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let lock = FileLock::builder(dir.path().join("high_ground.txt.lock"))
        .reentrancy(Reentrancy::Owner)
        .build();

    let outer = lock.acquire().await?;
    let inner = lock.acquire().await?; // same owner: counts up, touches no file
    println!("lock_counter = {}", lock.lock_counter());

    // A different task using the very same handle is a different owner: it waits.
    let other = lock.clone();
    let attempt = tokio::spawn(async move { other.try_acquire().await.map(|g| g.is_some()) });
    println!("another task got it while held: {}", attempt.await??);

    drop(inner);
    println!("lock_counter = {}", lock.lock_counter());
    drop(outer);
    println!("lock_counter = {} (released)", lock.lock_counter());

    let other = lock.clone();
    let waited = tokio::spawn(async move { other.acquire_timeout(Duration::from_secs(1)).await });
    println!(
        "another task got it after release: {}",
        waited.await?.is_ok()
    );
    Ok(())
}

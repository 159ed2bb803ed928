//! Python decorates a function to run it under the lock; here a future or a closure runs
//! inside `with_lock` / `blocking_with_lock`.
//!
//! `cargo run --example scoped`

use tokio_filelock::FileLock;

async fn rebuild_cache() -> usize {
    // ... the work that must not run twice at once ...
    42
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let lock = FileLock::new(dir.path().join("cache.lock"));
    let entries = lock.with_lock(rebuild_cache()).await?;
    println!("rebuilt {entries} entries under the lock");

    let sync_lock = lock.clone();
    let n = tokio::task::spawn_blocking(move || sync_lock.blocking_with_lock(|| 7)).await??;
    println!("the sync closure returned {n}");
    Ok(())
}

//! A read-write lock for shared file systems, on disk Python filelock's
//! `SoftReadWriteLock`: readers share, a writer excludes them, and the writer's fencing
//! token (Python's `generation`) lets a resource reject a holder that lost the lock.
//!
//! `cargo run --example soft_rw -- /mnt/nfs/dataset.lock`

use std::time::Duration;

use tokio_filelock::SoftReadWriteLock;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), tokio_filelock::Error> {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        std::env::temp_dir()
            .join("dataset.lock")
            .display()
            .to_string()
    });
    let lock = SoftReadWriteLock::builder(&path)
        .heartbeat_interval(Duration::from_secs(2)) // stale after 6 s unchanged
        .on_compromise(|lost| eprintln!("compromised: {lost}"))
        .timeout(Duration::from_secs(30))
        .build();

    let readers = (lock.acquire_shared().await?, lock.acquire_shared().await?);
    println!("two readers hold {path} at once");
    assert!(
        lock.try_acquire().await?.is_none(),
        "a writer waits for the readers"
    );
    drop(readers);

    let writer = lock.acquire().await?;
    println!("writing, fencing token {:?}", writer.fencing_token());
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(100)) => println!("work done"),
        lost = writer.lost() => eprintln!("stopped: {lost}"),
    }
    writer.release()?;
    Ok(())
}

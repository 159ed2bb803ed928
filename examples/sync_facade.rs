//! The sync facade: the same lock without a runtime, for threads and plain `main`.
//!
//! `cargo run --example sync_facade`

use std::time::Duration;

use tokio_filelock::FileLock;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let lock = FileLock::new(dir.path().join("high_ground.txt.lock"));

    let guard = lock.blocking_acquire()?;
    let other = lock.clone();
    let thread = std::thread::spawn(move || {
        // Another thread is another owner: it waits for the first to let go.
        other
            .blocking_acquire_timeout(Duration::from_secs(5))
            .map(|_| "the second thread got it")
    });
    std::thread::sleep(Duration::from_millis(50));
    drop(guard);
    println!("{}", thread.join().map_err(|_| "thread panicked")??);
    println!("try: {:?}", lock.blocking_try_acquire()?.is_some());
    Ok(())
}

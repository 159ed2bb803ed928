//! Non-blocking: exactly one attempt. `try_acquire` says `None` when the lock is held;
//! a handle built with `blocking(false)` fails at once with `Error::Timeout`.
//!
//! `cargo run --example non_blocking`

use tokio_filelock::FileLock;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("high_ground.txt.lock");
    let holder = FileLock::new(&path);
    let _held = holder.acquire().await?;

    let lock = FileLock::new(&path);
    match lock.try_acquire().await? {
        Some(_guard) => println!("got it"),
        None => println!("held elsewhere; not waiting"),
    }

    let strict = FileLock::builder(&path).blocking(false).build();
    if let Err(e) = strict.acquire().await {
        println!("blocking(false): {e}");
    }
    Ok(())
}

//! Shared (read) locks: many readers at once, or one writer.
//!
//! `cargo run --example shared`

use tokio_filelock::{FileLock, LockMode};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("config.json.lock");
    let (reader_a, reader_b, writer) = (
        FileLock::new(&path),
        FileLock::new(&path),
        FileLock::new(&path),
    );

    let a = reader_a.acquire_shared().await?;
    let b = reader_b.acquire_shared().await?;
    println!("two readers hold it: {:?} and {:?}", a.mode(), b.mode());
    println!(
        "a writer gets in while they read: {}",
        writer.try_acquire().await?.is_some()
    );
    drop((a, b));

    let w = writer.acquire().await?;
    assert_eq!(w.mode(), LockMode::Exclusive);
    println!(
        "with the writer in, a reader gets in: {}",
        reader_a.try_acquire_shared().await?.is_some()
    );
    Ok(())
}

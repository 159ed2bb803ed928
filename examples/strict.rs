//! StrictSoftFileLock: Python filelock's fail-closed claim protocol, for shared file
//! systems (NFS, Lustre, FUSE). Shows the claims a hold publishes, a contender timing out
//! with the holder named, and the manual recovery of claims whose owner has exited.
//!
//! `cargo run --example strict`

use std::time::Duration;

use tokio_filelock::StrictSoftFileLock;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("nfs-share.lock");
    let lock = StrictSoftFileLock::new(&path);
    let guard = lock.acquire_timeout(Duration::from_secs(5)).await?;
    for claim in lock.claims().await? {
        println!("while held: {claim}");
    }

    let other = StrictSoftFileLock::new(&path);
    match other.acquire_timeout(Duration::from_millis(100)).await {
        Err(e) => println!("{e}"),
        Ok(_) => println!("unexpected: two holders"),
    }
    guard.release()?;
    println!("claims after release: {}", lock.claims().await?.len());

    // After a crash, the holder's claims stay (fail closed) until removed by hand, by
    // someone who knows the holder is gone:
    for claim in lock.claims().await? {
        if claim.owner_exited() {
            lock.force_break(claim.name()).await?;
        }
    }
    Ok(())
}

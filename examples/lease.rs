//! A lease on a shared file system: held while the work runs, given up at once if another
//! host took it over (this process was paused past the lease, say).
//!
//! `cargo run --example lease -- /shared/dir/job.lock`

use std::time::Duration;

use tokio_filelock::SoftFileLease;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), tokio_filelock::Error> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "job.lock".to_owned());
    let lease = SoftFileLease::builder(&path)
        .lease_duration(Duration::from_secs(30))
        .on_compromise(|lost| eprintln!("compromised: {lost}"))
        .build();
    let guard = lease.acquire_timeout(Duration::from_secs(60)).await?;
    println!("holding {path} (lease of 30 s, refreshed every 10 s)");
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(2)) => println!("work done"),
        lost = guard.lost() => println!("stopped: {lost}"),
    }
    guard.release()
}

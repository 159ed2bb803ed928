//! A job that must run once across a fleet: a PostgreSQL advisory lock, its fencing token,
//! and stopping when the lock is lost.
//!
//! ```text
//! cargo run --example postgres --features postgres -- 'postgres://app@db.internal/app?lock=nightly-report'
//! ```

use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), tokio_filelock::Error> {
    let spec = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "postgres://postgres@localhost/postgres?lock=nightly-report".into());
    // Any spec works here: a path, `soft:PATH`, or a `postgres://` URL with `lock=NAME`.
    let lock = tokio_filelock::open(&spec)?;
    let guard = match lock.acquire_timeout(Duration::from_secs(10)).await {
        Ok(guard) => guard,
        Err(err @ tokio_filelock::Error::Timeout { .. }) => {
            eprintln!("{err}"); // names the holder: host, pid, command
            return Ok(());
        }
        Err(err) => return Err(err),
    };
    println!(
        "holding {} (fencing token {:?})",
        lock.spec(),
        guard.fencing_token()
    );
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(5)) => println!("job done"),
        lost = guard.lost() => eprintln!("stopping: {lost}"),
    }
    guard.release()
}

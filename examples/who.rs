//! Who holds it: a waiting hook and a timeout error that name the holder (on Linux, from
//! `/proc/locks`). Here the holder is a child process: a copy of this example.
//!
//! `cargo run --example who`

use std::process::{Command, Stdio};
use std::time::Duration;

use tokio_filelock::{Error, FileLock};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() == Some("--hold") {
        // The child: hold the lock until stdin closes.
        let path = std::env::args().nth(2).ok_or("--hold PATH")?;
        let _guard = FileLock::new(path).blocking_acquire()?;
        println!("holding");
        std::io::stdin().read_line(&mut String::new())?;
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("build.lock");
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--hold")
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    // Wait until the child says it holds the lock.
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().ok_or("no stdout")?),
        &mut line,
    )?;

    let lock = FileLock::builder(&path)
        .on_wait(|event| match event.holder() {
            Some(holder) => eprintln!(
                "Blocking: waiting for file lock on {} (held by {holder})",
                event.path().display()
            ),
            None => eprintln!(
                "Blocking: waiting for file lock on {}",
                event.path().display()
            ),
        })
        .build();
    println!("holder: {:?}", lock.holder().await?.map(|h| h.to_string()));
    match lock.acquire_timeout(Duration::from_millis(200)).await {
        Err(e @ Error::Timeout { .. }) => println!("{e}"),
        other => println!("unexpected: {other:?}"),
    }
    drop(child.stdin.take()); // the child exits, releasing the lock
    child.wait()?;
    Ok(())
}

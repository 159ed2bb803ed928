//! Who holds it: a waiting hook and a timeout error that name the holder (on Linux, from
//! `/proc/locks`). Here the holder is a child process: a copy of this example.
//!
//! `cargo run --example who`

use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use tokio_filelock::{Error, FileLock};

const USAGE: &str = "usage: who            (starts a holder and shows who holds the lock)\n       who --hold PATH (holds PATH until stdin closes)";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let run = match args.as_slice() {
        [] => demo().await,
        [flag, path] if flag == "--hold" => hold(path).await,
        _ => {
            eprintln!("who: bad arguments\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("who: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The child: holds the lock until stdin closes.
async fn hold(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let _guard = FileLock::new(path).acquire().await?;
    println!("holding");
    std::io::stdin().read_line(&mut String::new())?;
    Ok(())
}

async fn demo() -> Result<(), Box<dyn std::error::Error>> {
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
                "Blocking: waiting for file lock on {}, held by {holder}",
                event.path().display()
            ),
            None => eprintln!(
                "Blocking: waiting for file lock on {}",
                event.path().display()
            ),
        })
        .build();
    // `Display` shows what the holder process wrote (its command line) escaped.
    match lock.holder().await? {
        Some(holder) => println!("held by {holder}"),
        None => println!("not held"),
    }
    match lock.acquire_timeout(Duration::from_millis(200)).await {
        Err(e @ Error::Timeout { .. }) => println!("{e}"),
        other => println!("unexpected: {other:?}"),
    }
    drop(child.stdin.take()); // the child exits, releasing the lock
    child.wait()?;
    Ok(())
}

//! `SoftFileLock`: racing breakers of one stale marker never strand a live marker.
//!
//! Deterministic: every breaker is a real process held at each of its atomic name
//! exchanges by an `LD_PRELOAD` shim (tests/gate/exchange_gate.c, compiled here with `cc`),
//! and the test releases the exchanges one by one in the order it wants. Nothing in the
//! library knows of the gate.
#![cfg(target_os = "linux")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use tokio_filelock::SoftFileLock;

#[test]
fn child_entry() {
    common::child_entry(run_role);
}

fn run_role(role: &str, args: &[String]) {
    match role {
        // Holds the soft lock on args[0] until stdin closes (then is killed by the test).
        "hold" => {
            let guard = SoftFileLock::new(&args[0]).blocking_acquire().unwrap();
            common::say(format!("acquired {}", std::process::id()));
            let _ = common::hear();
            drop(guard);
        }
        // One attempt at the soft lock on args[0]; reports `busy`, or `acquired` and then
        // holds it until told `release` (reports how the release went).
        "break" => {
            let lock = SoftFileLock::new(&args[0]);
            match lock.blocking_try_acquire() {
                Ok(None) => common::say("busy"),
                Ok(Some(guard)) => {
                    common::say("acquired");
                    while let Some(line) = common::hear() {
                        if line == "release" {
                            break;
                        }
                    }
                    match guard.release() {
                        Ok(()) => common::say("released"),
                        Err(e) => common::say(format!("release failed: {e}")),
                    }
                }
                Err(e) => common::say(format!("error: {e}")),
            }
            while common::hear().is_some() {}
        }
        other => panic!("unknown role {other}"),
    }
}

/// Compiles the exchange gate into `dir` and returns the shared object's path.
fn build_gate(dir: &Path) -> PathBuf {
    common::require_tool("cc", &["--version"], "install a C compiler (gcc or clang)");
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gate/exchange_gate.c");
    let object = dir.join("exchange_gate.so");
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&object)
        .arg(source)
        .arg("-ldl")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    object
}

/// A breaker process on `lock`, held at each exchange until told to go.
fn breaker(gate: &Path, lock: &Path) -> common::ChildProcess {
    common::spawn_with("break", &[lock.to_str().unwrap()], |command| {
        command.env("LD_PRELOAD", gate).env("TFL_GATE", "1");
    })
    .unwrap()
}

/// Lets the child's pending exchange `n` run and waits until it has run (successfully).
fn exchange(child: &mut common::ChildProcess, n: u32) {
    child.tell("go");
    child.expect(&format!("gate after {n} 0 0"));
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// B1, B2, B3 find the same stale marker. B2's exchange wins; B1 and B3 each exchange a
/// live marker aside (B1 takes B2's, B3 takes B1's); B1 puts back before B3. A single
/// exchange back would leave the lock path naming B1, a non-holder, and two `*.break.*`
/// files behind; B2's release would then fail with `MarkerReplaced`.
#[test]
fn three_breakers_putting_back_out_of_order_strand_no_live_marker() {
    let tools = tempfile::tempdir().unwrap();
    let gate = build_gate(tools.path());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("soft.lock");

    // A stale marker: its holder was killed.
    let mut dead = common::spawn("hold", &[path.to_str().unwrap()]);
    assert!(dead.next_message().starts_with("acquired "));
    dead.kill();

    let mut b1 = breaker(&gate, &path);
    let mut b2 = breaker(&gate, &path);
    let mut b3 = breaker(&gate, &path);
    // Each judged the marker stale and is about to exchange its own in for it.
    for b in [&mut b1, &mut b2, &mut b3] {
        b.expect("gate before 1");
    }
    // B2 wins.
    exchange(&mut b2, 1);
    b2.expect("acquired");
    // B1 exchanges B2's live marker aside, and comes back to put it back.
    exchange(&mut b1, 1);
    b1.expect("gate before 2");
    // B3 exchanges B1's marker aside, and comes back to put it back.
    exchange(&mut b3, 1);
    b3.expect("gate before 2");
    // B1 puts back first, then B3.
    exchange(&mut b1, 2);
    exchange(&mut b3, 2);
    // From here on the breakers exchange freely until they settle.
    b1.tell("free");
    b3.tell("free");
    let settled = |b: &mut common::ChildProcess| loop {
        let message = b.next_message();
        if !message.starts_with("gate ") {
            return message;
        }
    };
    assert_eq!(settled(&mut b1), "busy");
    assert_eq!(settled(&mut b3), "busy");

    let marker = std::fs::read(&path).unwrap();
    assert!(
        marker.starts_with(format!("{}\n", b2.id()).as_bytes()),
        "the lock path names B2, the holder: {:?}",
        String::from_utf8_lossy(&marker)
    );
    assert_eq!(
        names(dir.path()),
        ["soft.lock"],
        "no `.break.` file is left"
    );
    b2.tell("release");
    b2.expect("released");
    assert!(!path.exists(), "B2's release removed its marker");
}

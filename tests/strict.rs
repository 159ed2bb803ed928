//! `StrictSoftFileLock`: the sentinel and the claims byte for byte as Python filelock 4.3.1
//! writes them; exclusion with Python's `StrictSoftFileLock` both ways (a counter with Rust
//! and Python processes mixed stays exact); a SIGKILLed holder's claims, each way: they
//! stay (fail closed, as in Python), the contender times out naming the holder, and the
//! claims proven dead are removed by hand (`force_break`), after which the lock is taken;
//! bad input at the lock path, the coordination and claim directories and claim names:
//! typed errors at once, nothing followed or removed that is not ours.
#![cfg(unix)]

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tokio_filelock::{Error, Lost, NodeKind, Op, StrictSoftFileLock};

/// Python's strict sentinel.
const SENTINEL: &[u8] = b"1\nfilelock-strict-v1\x00\n0\n";

/// How long an acquire that must not time out may wait: an error that is not
/// `Error::Timeout` within it came at once, not by waiting the timeout out.
const LONG: Duration = Duration::from_secs(30);

#[test]
fn child_entry() {
    common::child_entry(run_role);
}

fn run_role(role: &str, args: &[String]) {
    match role {
        // args: path. Holds the lock until told (or killed), then releases.
        "hold" => {
            let guard = StrictSoftFileLock::new(&args[0])
                .blocking_acquire_timeout(LONG)
                .unwrap();
            common::say(format!("acquired {}", std::process::id()));
            let _ = common::hear();
            guard.release().unwrap();
            common::say("released");
        }
        // args: lock path, counter path, n.
        "count" => {
            let lock = StrictSoftFileLock::new(&args[0]);
            let n: u32 = args[2].parse().unwrap();
            common::ready_steady_go();
            for _ in 0..n {
                let guard = lock
                    .blocking_acquire_timeout(Duration::from_secs(120))
                    .unwrap();
                let value: u64 = fs::read_to_string(&args[1])
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap();
                fs::write(&args[1], (value + 1).to_string()).unwrap();
                guard.release().unwrap();
            }
            common::say("done");
        }
        // args: a directory this user may not write.
        "unwritable" => {
            check_unwritable(Path::new(&args[0]));
            common::say("checked");
        }
        other => panic!("unknown role {other}"),
    }
}

/// Python filelock's `StrictSoftFileLock` (tests/interop/py_strict.py); killed and reaped
/// on drop.
fn python(args: &[&str]) -> common::ChildProcess {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/py_strict.py");
    let mut command = Command::new(common::tools::python());
    command.arg(script).args(args);
    common::spawn_command(command)
}

fn lock_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("strict.lock")
}

fn claims_dir(lock: &Path) -> PathBuf {
    PathBuf::from(format!("{}.filelock/claims", lock.display()))
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn acquired_pid(message: &str) -> u32 {
    message
        .strip_prefix("acquired ")
        .unwrap_or_else(|| panic!("unexpected message {message:?}"))
        .parse()
        .unwrap()
}

/// The claims Python lists: (state, name, pid, host hex, start).
fn python_claims(lock: &Path) -> Vec<[String; 5]> {
    let mut child = python(&["claims", lock.to_str().unwrap()]);
    let mut claims = Vec::new();
    loop {
        let line = child.next_message();
        if line == "end" {
            break;
        }
        let fields: Vec<String> = line.split(' ').skip(1).map(str::to_owned).collect();
        claims.push(fields.try_into().unwrap());
    }
    assert!(child.wait_success());
    claims
}

// ---- the files -----------------------------------------------------------------------

#[tokio::test]
async fn our_files_are_byte_for_byte_pythons_and_python_reads_our_claims() {
    let dir = tempfile::tempdir().unwrap();
    let lock = lock_path(&dir);
    let guard = StrictSoftFileLock::new(&lock).acquire().await.unwrap();
    assert_eq!(fs::read(&lock).unwrap(), SENTINEL);
    let claims = claims_dir(&lock);
    let listed = names(&claims);
    let [held, intent] = listed.as_slice() else {
        panic!("expected two claims, found {listed:?}")
    };
    let token = intent
        .strip_prefix("intent-v1-")
        .and_then(|t| t.strip_suffix(".claim"))
        .unwrap();
    assert_eq!(held, &format!("held-v1-{token}.claim"));
    assert_eq!(
        fs::metadata(claims.join(held)).unwrap().ino(),
        fs::metadata(claims.join(intent)).unwrap().ino(),
        "the held claim is a hard link of the intent"
    );
    let record = String::from_utf8(fs::read(claims.join(held)).unwrap()).unwrap();
    let lines: Vec<&str> = record.split('\n').collect();
    assert_eq!(
        lines[..3],
        ["filelock-strict-v1", token, &std::process::id().to_string()]
    );
    assert_eq!(lines.len(), 6, "{record:?}");
    assert_eq!(lines[5], "");
    // Sticky directories with search bits, as Python makes them.
    for directory in [claims.parent().unwrap(), &claims] {
        let mode = fs::metadata(directory).unwrap().mode();
        assert_eq!(mode & 0o1000, 0o1000, "{} {mode:o}", directory.display());
        assert_eq!(mode & 0o100, 0o100, "{} {mode:o}", directory.display());
    }

    // Python parses them as the same owner.
    let seen = python_claims(&lock);
    let ours: Vec<_> = lock_claims(&lock);
    assert_eq!(seen.len(), 2);
    for (python, rust) in seen.iter().zip(&ours) {
        assert_eq!(python[1], rust.name());
        assert_eq!(python[2], rust.pid().to_string());
        assert_eq!(python[3], hex(rust.host()));
        assert_eq!(python[4], rust.start().unwrap_or("-"));
    }
    let start = if lines[4].is_empty() { "-" } else { lines[4] };
    assert_eq!(seen[0][4], start, "Python reads the start token we wrote");
    guard.release().unwrap();
    assert!(names(&claims).is_empty(), "release removes both claims");
    assert_eq!(fs::read(&lock).unwrap(), SENTINEL, "the sentinel stays");
}

fn lock_claims(lock: &Path) -> Vec<tokio_filelock::StrictClaim> {
    StrictSoftFileLock::new(lock).blocking_claims().unwrap()
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn we_read_pythons_claims_and_wait_for_its_holder() {
    let dir = tempfile::tempdir().unwrap();
    let lock = lock_path(&dir);
    let mut holder = python(&["hold", lock.to_str().unwrap()]);
    let pid = acquired_pid(&holder.next_message());
    assert_eq!(fs::read(&lock).unwrap(), SENTINEL);
    let ours = lock_claims(&lock);
    let pythons = python_claims(&lock);
    assert_eq!(ours.len(), 2);
    assert!(ours[0].is_held() && !ours[1].is_held());
    for (rust, python) in ours.iter().zip(&pythons) {
        assert_eq!(rust.pid(), pid);
        assert_eq!(rust.name(), python[1]);
        assert_eq!(hex(rust.host()), python[3]);
        assert_eq!(rust.start().unwrap_or("-"), python[4]);
        assert!(!rust.owner_exited(), "a live holder");
    }
    let contender = StrictSoftFileLock::new(&lock);
    match contender.acquire_timeout(Duration::from_millis(200)).await {
        Err(Error::Timeout {
            holder: Some(h), ..
        }) => assert_eq!(h.pid, pid),
        other => panic!("expected a timeout naming pid {pid}, got {other:?}"),
    }
    assert_eq!(
        lock_claims(&lock).len(),
        2,
        "a contender leaves no claim behind"
    );
    holder.tell("release");
    holder.expect("released");
    let guard = contender.acquire_timeout(LONG).await.unwrap();
    // And Python waits for us.
    let mut other = python(&["try", lock.to_str().unwrap(), "0.2"]);
    other.expect("timeout");
    assert!(other.wait_success());
    guard.release().unwrap();
    let mut other = python(&["try", lock.to_str().unwrap(), "5"]);
    assert!(other.next_message().starts_with("acquired "));
    assert!(other.wait_success());
    assert!(holder.wait_success());
}

// ---- exclusion ---------------------------------------------------------------------------

#[test]
fn a_counter_stays_exact_with_rust_and_python_processes_mixed() {
    const N: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let lock = lock_path(&dir);
    let counter = dir.path().join("counter");
    fs::write(&counter, "0").unwrap();
    let (lock_arg, counter_arg) = (lock.to_str().unwrap(), counter.to_str().unwrap());
    let n = N.to_string();
    let mut children = vec![
        common::spawn("count", &[lock_arg, counter_arg, &n]),
        common::spawn("count", &[lock_arg, counter_arg, &n]),
        python(&["count", lock_arg, counter_arg, &n]),
        python(&["count", lock_arg, counter_arg, &n]),
    ];
    common::start_together(&mut children, |c| c);
    for child in &mut children {
        child.expect_within("done", Duration::from_secs(240));
        assert!(child.wait_success());
    }
    let total: u64 = fs::read_to_string(&counter)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(total, 4 * N, "lost increments: two holders at once");
    assert!(names(&claims_dir(&lock)).is_empty(), "no claim left behind");
}

// ---- a SIGKILLed holder ------------------------------------------------------------------

#[tokio::test]
async fn a_sigkilled_python_holders_claims_stay_until_we_break_them() {
    let dir = tempfile::tempdir().unwrap();
    let lock = lock_path(&dir);
    let mut holder = python(&["hold", lock.to_str().unwrap()]);
    let pid = acquired_pid(&holder.next_message());
    holder.kill();
    let contender = StrictSoftFileLock::new(&lock);
    // Fail closed: a dead holder's claims are never removed by an acquire.
    match contender.acquire_timeout(Duration::from_millis(300)).await {
        Err(Error::Timeout {
            holder: Some(h), ..
        }) => assert_eq!(h.pid, pid),
        other => panic!("expected a timeout naming pid {pid}, got {other:?}"),
    }
    let claims = contender.claims().await.unwrap();
    assert_eq!(claims.len(), 2);
    for claim in &claims {
        assert_eq!(claim.pid(), pid);
        assert!(claim.owner_exited(), "{claim}");
        contender.force_break(claim.name()).await.unwrap();
    }
    let guard = contender.acquire_timeout(LONG).await.unwrap();
    let mut other = python(&["try", lock.to_str().unwrap(), "0.2"]);
    other.expect("timeout");
    assert!(other.wait_success());
    guard.release().unwrap();
}

#[test]
fn a_sigkilled_rust_holders_claims_stay_until_python_breaks_them() {
    let dir = tempfile::tempdir().unwrap();
    let lock = lock_path(&dir);
    let lock_arg = lock.to_str().unwrap();
    let mut holder = common::spawn("hold", &[lock_arg]);
    let pid = acquired_pid(&holder.next_message());
    holder.kill();
    let mut contender = python(&["try", lock_arg, "0.3"]);
    contender.expect("timeout");
    assert!(contender.wait_success());
    assert!(
        lock_claims(&lock)
            .iter()
            .all(|c| c.pid() == pid && c.owner_exited())
    );
    let mut breaker = python(&["break-dead", lock_arg]);
    breaker.expect("broke 2");
    assert!(breaker.wait_success());
    let mut contender = python(&["try", lock_arg, "5"]);
    assert!(contender.next_message().starts_with("acquired "));
    assert!(contender.wait_success());
    // And a Rust contender takes it after that Python holder's release.
    let guard = StrictSoftFileLock::new(&lock)
        .blocking_try_acquire()
        .unwrap();
    assert!(guard.is_some());
}

#[tokio::test]
async fn a_claim_removed_while_held_makes_the_guard_lost() {
    let dir = tempfile::tempdir().unwrap();
    let lock = StrictSoftFileLock::new(lock_path(&dir));
    let guard = lock.acquire().await.unwrap();
    assert!(!guard.is_lost());
    let claims = lock.claims().await.unwrap();
    let held = claims.iter().find(|c| c.is_held()).unwrap();
    lock.force_break(held.name()).await.unwrap();
    assert!(guard.is_lost());
    match tokio::time::timeout(Duration::from_secs(10), guard.lost()).await {
        Ok(Lost::ClaimRemoved { claim, path }) => {
            assert_eq!(claim, held.name());
            assert_eq!(path, lock.path());
        }
        other => panic!("expected the held claim reported removed, got {other:?}"),
    }
    guard.release().unwrap();
    assert!(
        lock.claims().await.unwrap().is_empty(),
        "release removes what is left of ours (the intent)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_wait_leaves_no_claim_behind() {
    let dir = tempfile::tempdir().unwrap();
    let lock = StrictSoftFileLock::new(lock_path(&dir));
    let guard = lock.acquire().await.unwrap();
    let ours: Vec<String> = lock
        .claims()
        .await
        .unwrap()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    let contender = StrictSoftFileLock::new(lock.path());
    // Dropped while it waits (after several contended attempts).
    // (With a finite wait: an infinite one by this same owner is `WouldDeadlock` at once.)
    let waiting = contender.acquire_timeout(Duration::from_secs(3600));
    let cancelled = tokio::time::timeout(Duration::from_secs(5), waiting).await;
    assert!(
        cancelled.is_err(),
        "still waiting when dropped: {cancelled:?}"
    );
    let after: Vec<String> = lock
        .claims()
        .await
        .unwrap()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    assert_eq!(after, ours, "only the holder's claims stand");
    guard.release().unwrap();
    assert!(contender.try_acquire().await.unwrap().is_some());
}

#[test]
fn force_break_takes_only_one_public_claim_name() {
    let dir = tempfile::tempdir().unwrap();
    let lock = StrictSoftFileLock::new(lock_path(&dir));
    let _guard = lock.blocking_acquire().unwrap();
    for bad in ["", ".hidden", "../strict.lock", "a/b", "."] {
        match lock.blocking_force_break(bad) {
            Err(e @ Error::Io { op: Op::Claim, .. }) => {
                assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{bad:?}");
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    match lock.blocking_force_break("held-v1-00000000000000000000000000000000.claim") {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
        Ok(()) => panic!("no such claim"),
    }
    assert_eq!(lock.blocking_claims().unwrap().len(), 2, "nothing removed");
}

// ---- bad input ---------------------------------------------------------------------------

/// Acquires `lock` (sync, with a long timeout) and returns the error, which must not be a
/// timeout: it came at once.
fn refused(lock: &Path) -> Error {
    match StrictSoftFileLock::new(lock).blocking_acquire_timeout(LONG) {
        Ok(_) => panic!("{} was acquired", lock.display()),
        Err(e) => {
            assert!(!e.is_timeout(), "{e}");
            assert_eq!(e.path(), lock, "{e}");
            e
        }
    }
}

fn assert_not_a_file(e: &Error, kind: NodeKind) {
    assert!(
        matches!(e, Error::NotAFile { kind: k, .. } if *k == kind),
        "{e:?}"
    );
}

fn protocol_reason(e: &Error) -> String {
    protocol_error(e).1.to_owned()
}

fn protocol_error(e: &Error) -> (Option<&str>, &str) {
    match e {
        Error::Protocol { entry, reason, .. } => (entry.as_deref(), reason),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn a_symlink_at_the_lock_path_is_refused_and_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let lock = lock_path(&dir);
    let target = dir.path().join("target");
    fs::write(&target, "precious\n").unwrap();
    symlink(&target, &lock).unwrap();
    let e = refused(&lock);
    assert_not_a_file(&e, NodeKind::Symlink);
    assert_eq!(fs::read(&target).unwrap(), b"precious\n");
    assert!(
        fs::symlink_metadata(&lock)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn a_directory_or_fifo_at_the_lock_path_is_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let lock = lock_path(&dir);
    fs::create_dir(&lock).unwrap();
    let e = refused(&lock);
    assert_not_a_file(&e, NodeKind::Directory);
    let fifo = dir.path().join("fifo.lock");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let e = refused(&fifo);
    assert_not_a_file(&e, NodeKind::Fifo);
}

#[test]
fn a_symlink_or_file_at_the_coordination_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lock = lock_path(&dir);
    let elsewhere = dir.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let coordination = PathBuf::from(format!("{}.filelock", lock.display()));
    symlink(&elsewhere, &coordination).unwrap();
    let reason = protocol_reason(&refused(&lock));
    assert!(reason.contains("not a real directory"), "{reason}");
    assert!(
        names(&elsewhere).is_empty(),
        "nothing made through the symlink"
    );
    fs::remove_file(&coordination).unwrap();
    fs::write(&coordination, "not a directory").unwrap();
    let reason = protocol_reason(&refused(&lock));
    assert!(reason.contains("not a real directory"), "{reason}");
    assert_eq!(fs::read(&coordination).unwrap(), b"not a directory");
}

#[test]
fn a_symlink_at_the_claim_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lock = lock_path(&dir);
    let elsewhere = dir.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let claims = claims_dir(&lock);
    fs::create_dir(claims.parent().unwrap()).unwrap();
    symlink(&elsewhere, &claims).unwrap();
    let reason = protocol_reason(&refused(&lock));
    // Python says it of the coordination directory, which holds a non-directory `claims`.
    assert!(
        reason.contains("entries that are not this lock's"),
        "{reason}"
    );
    assert!(
        names(&elsewhere).is_empty(),
        "nothing made through the symlink"
    );
}

#[test]
fn odd_nodes_at_claim_names_and_unknown_entries_are_refused_and_left_alone() {
    let token = "0123456789abcdef0123456789abcdef";
    let held = format!("held-v1-{token}.claim");
    type Plant = fn(&Path, &Path);
    let plants: [(&str, Plant); 4] = [
        ("symlink", |at, target| symlink(target, at).unwrap()),
        ("directory", |at, _| fs::create_dir(at).unwrap()),
        ("fifo", |at, _| {
            assert!(Command::new("mkfifo").arg(at).status().unwrap().success());
        }),
        ("malformed", |at, _| fs::write(at, "not a claim\n").unwrap()),
    ];
    for (what, plant) in plants {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_path(&dir);
        StrictSoftFileLock::new(&lock)
            .blocking_acquire()
            .unwrap()
            .release()
            .unwrap();
        let target = dir.path().join("target");
        fs::write(&target, "precious\n").unwrap();
        let at = claims_dir(&lock).join(&held);
        plant(&at, &target);
        let e = refused(&lock);
        let (entry, reason) = protocol_error(&e);
        assert_eq!(entry, Some(held.as_str()), "{what}: {e}");
        assert!(reason.contains("claim"), "{what}: {reason}");
        assert!(fs::symlink_metadata(&at).is_ok(), "{what}: left alone");
        assert_eq!(fs::read(&target).unwrap(), b"precious\n", "{what}");
    }
    let dir = tempfile::tempdir().unwrap();
    let lock = lock_path(&dir);
    StrictSoftFileLock::new(&lock)
        .blocking_acquire()
        .unwrap()
        .release()
        .unwrap();
    let stranger = claims_dir(&lock).join("notes.txt");
    fs::write(&stranger, "mine\n").unwrap();
    let e = refused(&lock);
    let (entry, reason) = protocol_error(&e);
    assert_eq!(entry, Some("notes.txt"), "{e}");
    assert!(reason.contains("unknown claim name"), "{reason}");
    assert_eq!(fs::read(&stranger).unwrap(), b"mine\n");
}

#[test]
fn a_soft_marker_of_an_exited_holder_at_the_lock_path_is_refused_not_broken() {
    let dir = tempfile::tempdir().unwrap();
    let lock = lock_path(&dir);
    // A legacy soft-lock marker of a process that has exited, on this host.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let host = tokio_filelock::SoftFileLock::new(dir.path().join("probe.lock"))
        .blocking_acquire()
        .map(|g| {
            let host = fs::read_to_string(dir.path().join("probe.lock")).unwrap();
            drop(g);
            host.lines().nth(1).unwrap().to_owned()
        })
        .unwrap();
    let marker = format!("{dead}\n{host}\n");
    fs::write(&lock, &marker).unwrap();
    let reason = protocol_reason(&refused(&lock));
    assert!(reason.contains("which has exited"), "{reason}");
    assert_eq!(fs::read_to_string(&lock).unwrap(), marker, "never broken");
}

/// The unprivileged user the permission check runs as when the tests run as root (root
/// bypasses permission bits), as in tests/bad_input.rs.
const NOBODY: u32 = 65534;

/// In `dir`, where this user may not write: the strict lock is refused at once with the
/// permission error, and nothing is made.
fn check_unwritable(dir: &Path) {
    let lock = dir.join("strict.lock");
    let e = refused(&lock);
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert!(names(dir).is_empty(), "nothing made");
}

#[test]
fn an_unwritable_directory_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("uid-probe");
    fs::write(&probe, b"").unwrap();
    let root = fs::metadata(&probe).unwrap().uid() == 0;
    fs::remove_file(&probe).unwrap();
    if !root {
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o555)).unwrap();
        check_unwritable(dir.path());
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        return;
    }
    // Root ignores permission bits: check in a child process running as `nobody`, in a
    // directory it may enter but not write.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let arg = dir.path().to_str().unwrap();
    let spawned = common::spawn_with("unwritable", &[arg], |command| {
        use std::os::unix::process::CommandExt;
        command.uid(NOBODY).gid(NOBODY);
    });
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            common::skipped(
                "an_unwritable_directory_is_refused_at_once",
                &format!("cannot start a child process as uid {NOBODY}: {e}"),
            );
            return;
        }
    };
    child.expect("checked");
    assert!(child.wait_success(), "the unprivileged child failed");
}

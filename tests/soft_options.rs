//! `SoftFileLock`'s last options, on a par with Python filelock 4.x: `lifetime` (a marker
//! older than it by mtime is expired and broken), `pid()` / `is_held_by_us()` /
//! `break_lock()`, and the recovery of the `.break.` / `.restore.` files that a breaker
//! killed mid-way leaves (Python's `_restore_stranded_marker`). Holders are real child
//! processes; a breaker killed mid-way is staged as the file names and contents its crash
//! leaves, since no test can kill a process between two given system calls.
//!
//! Breaking needs an atomic exchange of names: Linux and macOS.
#![cfg(any(target_os = "linux", target_os = "android", target_os = "macos"))]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio_filelock::{Error, Op, SoftFileLock};

#[test]
fn child_entry() {
    common::child_entry(run_role);
}

fn run_role(role: &str, args: &[String]) {
    match role {
        // Holds the soft lock on args[0] until told to release; reports how that went.
        "hold" => {
            let lock = SoftFileLock::new(&args[0]);
            let guard = lock.blocking_acquire().unwrap();
            common::say(format!("acquired {}", std::process::id()));
            let _ = common::hear();
            match guard.release() {
                Ok(()) => common::say("released"),
                Err(Error::MarkerReplaced { .. }) => common::say("marker replaced"),
                Err(e) => common::say(format!("release failed: {e}")),
            }
            let _ = common::hear();
        }
        other => panic!("unknown role {other}"),
    }
}

fn lock_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("soft.lock")
}

/// A child process holding the soft lock on `path`, and its PID.
fn holder(path: &Path) -> (common::ChildProcess, u32) {
    let mut child = common::spawn("hold", &[path.to_str().unwrap()]);
    let message = child.next_message();
    let pid = message
        .strip_prefix("acquired ")
        .unwrap_or_else(|| panic!("unexpected message {message:?}"))
        .parse()
        .unwrap();
    (child, pid)
}

/// Sets the mtime of the node at `path` to `ago` before now.
fn age(path: &Path, ago: Duration) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - ago).unwrap();
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The PID of a process that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// This host's line in a marker, as the crate (and Python) write it: read from a marker
/// of our own.
fn host_line(dir: &tempfile::TempDir) -> String {
    let probe = SoftFileLock::new(dir.path().join("host-probe.lock"));
    let guard = probe.blocking_try_acquire().unwrap().unwrap();
    let record = std::fs::read_to_string(probe.path()).unwrap();
    drop(guard);
    record.lines().nth(1).unwrap().to_owned()
}

fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).unwrap().ino()
}

// ---- lifetime ----------------------------------------------------------------------------

#[test]
fn lifetime_breaks_a_marker_older_than_it_even_a_live_holders() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let (mut child, child_pid) = holder(&path);
    let lifetime = Duration::from_secs(60);
    let aged = SoftFileLock::builder(&path).lifetime(lifetime).build();
    let plain = SoftFileLock::new(&path);

    // Younger than the lifetime: the live holder keeps it.
    age(&path, Duration::from_secs(30));
    assert!(aged.blocking_try_acquire().unwrap().is_none());
    // Older: without a lifetime a live holder's marker is never broken...
    age(&path, Duration::from_secs(120));
    assert!(plain.blocking_try_acquire().unwrap().is_none());
    assert_eq!(plain.blocking_pid(), Some(child_pid));
    // ...with one, it has expired, and is broken by exchange: ours is at the path.
    let guard = aged
        .blocking_try_acquire()
        .unwrap()
        .expect("an expired marker is broken");
    assert!(aged.blocking_is_held_by_us());
    assert_eq!(names(dir.path()), ["soft.lock"], "no aside left behind");
    // The live holder's release finds its marker replaced and leaves ours alone.
    child.tell("release");
    assert_eq!(child.next_message(), "marker replaced");
    assert!(aged.blocking_is_held_by_us());
    guard.release().unwrap();
}

#[test]
fn lifetime_expires_markers_that_are_never_broken_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let lock = SoftFileLock::builder(&path)
        .lifetime(Duration::from_secs(10))
        .build();
    // Another host's marker, and an empty one: never proven stale.
    for content in [&b"4242\nhost-elsewhere\n"[..], b""] {
        std::fs::write(&path, content).unwrap();
        age(&path, Duration::from_secs(5));
        assert!(
            lock.blocking_try_acquire().unwrap().is_none(),
            "{content:?}"
        );
        age(&path, Duration::from_secs(11));
        let guard = lock.blocking_try_acquire().unwrap().expect("expired");
        assert!(lock.blocking_is_held_by_us());
        guard.release().unwrap();
    }
}

// ---- pid, is_held_by_us, break_lock -------------------------------------------------------

#[test]
fn pid_and_is_held_by_us_read_the_marker() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let lock = SoftFileLock::new(&path);
    assert_eq!(lock.blocking_pid(), None);
    assert!(!lock.blocking_is_held_by_us());

    let guard = lock.blocking_acquire().unwrap();
    assert_eq!(lock.blocking_pid(), Some(std::process::id()));
    // Any handle of this process sees it, unlike `is_locked`.
    let other = SoftFileLock::new(&path);
    assert!(other.blocking_is_held_by_us());
    assert!(!other.is_locked());
    guard.release().unwrap();
    assert!(!lock.blocking_is_held_by_us());

    let (mut child, child_pid) = holder(&path);
    assert_eq!(lock.blocking_pid(), Some(child_pid));
    assert!(!lock.blocking_is_held_by_us());
    child.tell("release");
    assert_eq!(child.next_message(), "released");

    // Our PID and host with another start token: another process's marker.
    let host = host_line(&dir);
    std::fs::write(&path, format!("{}\n{host}\n1\n", std::process::id())).unwrap();
    assert_eq!(lock.blocking_pid(), Some(std::process::id()));
    assert!(!lock.blocking_is_held_by_us());
    // Without a start token, PID and host decide (as Python).
    std::fs::write(&path, format!("{}\n{host}\n", std::process::id())).unwrap();
    assert!(lock.blocking_is_held_by_us());
    // A protocol 2 record and a malformed marker name no PID (as Python's `pid`).
    std::fs::write(
        &path,
        format!(
            "filelock/2\npid={}\nhost={host}\nmode=exclusive\n",
            std::process::id()
        ),
    )
    .unwrap();
    assert_eq!(lock.blocking_pid(), None);
    std::fs::write(&path, "garbage").unwrap();
    assert_eq!(lock.blocking_pid(), None);
    assert!(!lock.blocking_is_held_by_us());
}

#[tokio::test]
async fn break_lock_removes_whatever_marker_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let lock = SoftFileLock::new(&path);
    assert!(!lock.break_lock().await.unwrap(), "nothing to remove");

    // A live holder's marker: removed; the lock is free; its holder finds out on release.
    let (mut child, child_pid) = holder(&path);
    assert_eq!(lock.pid().await.unwrap(), Some(child_pid));
    assert!(lock.try_acquire().await.unwrap().is_none());
    assert!(lock.break_lock().await.unwrap());
    assert!(std::fs::symlink_metadata(&path).is_err());
    let guard = lock
        .try_acquire()
        .await
        .unwrap()
        .expect("free after the break");
    assert!(lock.is_held_by_us().await.unwrap());
    child.tell("release");
    assert_eq!(child.next_message(), "marker replaced");
    guard.release().unwrap();

    // A symlink is removed, never followed.
    let target = dir.path().join("target");
    std::fs::write(&target, "keep me").unwrap();
    std::os::unix::fs::symlink(&target, &path).unwrap();
    assert!(lock.blocking_break_lock().unwrap());
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me");

    // A directory is not a marker: a typed error naming the path, nothing removed.
    std::fs::create_dir(&path).unwrap();
    match lock.blocking_break_lock() {
        Err(Error::Io {
            path: named,
            op: Op::BreakLock,
            ..
        }) => assert_eq!(named, path),
        other => panic!("{other:?}"),
    }
    assert!(path.is_dir());
}

// ---- recovery of a breaker killed mid-way --------------------------------------------------

const HEX: &str = "0123456789abcdef0123456789abcdef";

/// Stages what a breaker with PID `breaker` leaves when killed right after exchanging its
/// marker in for the node at `path`: that node under `<lock>.break.<breaker>.<hex>`, and
/// the breaker's own record at the path. Returns the aside's path.
fn strand(dir: &tempfile::TempDir, path: &Path, breaker: u32) -> PathBuf {
    let aside = dir.path().join(format!("soft.lock.break.{breaker}.{HEX}"));
    std::fs::rename(path, &aside).unwrap();
    std::fs::write(path, format!("{breaker}\n{}\n", host_line(dir))).unwrap();
    aside
}

#[test]
fn a_live_marker_stranded_by_a_killed_breaker_is_put_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let (mut child, child_pid) = holder(&path);
    let live = inode(&path);
    // A breaker, dead now, exchanged the live holder's marker aside (it had lost a race
    // with another breaker) and was killed before putting it back.
    strand(&dir, &path, dead_pid());
    assert_ne!(inode(&path), live);

    let lock = SoftFileLock::new(&path);
    // The dead breaker's marker at the path is stale; breaking it would make two holders.
    // The next attempt puts the live marker back instead, and finds the lock held.
    assert!(lock.blocking_try_acquire().unwrap().is_none());
    assert_eq!(inode(&path), live, "the live holder's marker is back");
    assert_eq!(lock.blocking_pid(), Some(child_pid));
    assert_eq!(
        names(dir.path()),
        ["soft.lock"],
        "no .break. or .restore. file left"
    );
    // The holder's release finds its own marker and removes it; the lock is then free.
    child.tell("release");
    assert_eq!(child.next_message(), "released");
    assert!(lock.blocking_try_acquire().unwrap().is_some());
}

#[test]
fn a_dead_marker_stranded_by_a_killed_breaker_is_removed_and_the_lock_taken() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    // A breaker exchanged a dead holder's marker aside and was killed before removing it.
    std::fs::write(&path, format!("{}\n{}\n", dead_pid(), host_line(&dir))).unwrap();
    strand(&dir, &path, dead_pid());
    let lock = SoftFileLock::new(&path);
    let guard = lock
        .blocking_try_acquire()
        .unwrap()
        .expect("nothing live was stranded: the dead breaker's marker is broken");
    assert!(lock.blocking_is_held_by_us());
    assert_eq!(
        names(dir.path()),
        ["soft.lock"],
        "the stranded marker is removed"
    );
    guard.release().unwrap();
}

#[test]
fn a_live_marker_stranded_by_a_killed_recoverer_is_put_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let (mut child, child_pid) = holder(&path);
    let live = inode(&path);
    let breaker = dead_pid();
    let aside = strand(&dir, &path, breaker);
    // A recoverer claimed the stranded marker (renamed it to its restore name) and was
    // killed before exchanging it back.
    let claimed = dir
        .path()
        .join(format!("soft.lock.restore.{}.{HEX}", dead_pid()));
    std::fs::rename(&aside, &claimed).unwrap();

    let lock = SoftFileLock::new(&path);
    assert!(lock.blocking_try_acquire().unwrap().is_none());
    assert_eq!(inode(&path), live, "the live holder's marker is back");
    assert_eq!(lock.blocking_pid(), Some(child_pid));
    assert_eq!(names(dir.path()), ["soft.lock"]);
    child.tell("release");
    assert_eq!(child.next_message(), "released");
}

#[test]
fn a_live_breaker_is_left_to_finish() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    // The marker at the path names a dead breaker, but a live process (the holder child,
    // as good as any live PID) has claimed the stranded marker for recovery: its claim is
    // its own to finish, so it is not taken from it, and the lock counts as held.
    let (mut child, _) = holder(&path);
    let live = inode(&path);
    let aside = strand(&dir, &path, dead_pid());
    let recoverer = child.id(); // alive: its claim is its own to finish
    let claimed = dir
        .path()
        .join(format!("soft.lock.restore.{recoverer}.{HEX}"));
    std::fs::rename(&aside, &claimed).unwrap();
    let lock = SoftFileLock::new(&path);
    assert!(lock.blocking_try_acquire().unwrap().is_none());
    assert_ne!(
        inode(&path),
        live,
        "a live recoverer's claim is not taken from it"
    );
    assert!(claimed.exists());
    child.tell("release");
}

// ---- SoftFileLease: the release-time check and a moved directory --------------------------

/// A lease on `path` with a 30 s duration refreshed every 10 s, counting `on_compromise`
/// calls.
async fn hold_lease(
    path: &Path,
) -> (
    tokio_filelock::LockGuard,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let guard = tokio_filelock::SoftFileLease::builder(path)
        .lease_duration(Duration::from_secs(30))
        .heartbeat_interval(Duration::from_secs(10))
        .on_compromise(move |_| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        })
        .build()
        .acquire()
        .await
        .unwrap();
    (guard, calls)
}

#[tokio::test(start_paused = true)]
async fn a_loss_the_heartbeat_has_not_seen_is_recorded_at_release() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let (guard, calls) = hold_lease(&path).await;
    let mut lost = tokio_test::task::spawn(guard.lost());
    tokio_test::assert_pending!(lost.poll());
    // A contender replaced the marker; no heartbeat has run since (time is paused).
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, "new holder\n").unwrap();
    let err = guard.release().unwrap_err();
    assert!(matches!(err, Error::MarkerReplaced { .. }), "{err:?}");
    // The pending `lost()` resolves with the reason at once (Python's
    // `_record_unreported_loss`); `on_compromise` is the heartbeat's alone.
    assert!(lost.is_woken());
    match tokio_test::assert_ready!(lost.poll()) {
        tokio_filelock::Lost::LeaseCompromised { reason, .. } => {
            assert_eq!(reason, tokio_filelock::CompromiseReason::OwnerChanged)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(std::fs::read(&path).unwrap(), b"new holder\n", "left alone");
}

#[tokio::test(start_paused = true)]
async fn a_marker_held_aside_by_a_breaker_is_no_loss_at_release() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let (guard, _) = hold_lease(&path).await;
    let mut lost = tokio_test::task::spawn(guard.lost());
    tokio_test::assert_pending!(lost.poll());
    // A contender is mid-exchange: our marker under its break name, its own at the path.
    let aside = dir.path().join(format!("soft.lock.break.1.{HEX}"));
    std::fs::rename(&path, &aside).unwrap();
    std::fs::write(&path, "breaker\n").unwrap();
    let _ = guard.release();
    tokio_test::assert_pending!(lost.poll());
}

#[tokio::test(start_paused = true)]
async fn the_heartbeat_keeps_refreshing_a_marker_whose_directory_moved() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("lease.lock");
    let (guard, calls) = hold_lease(&path).await;
    let moved_dir = dir.path().join("moved");
    std::fs::rename(dir.path().join("sub"), &moved_dir).unwrap();
    let moved = moved_dir.join("lease.lock");
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    for round in 0..3 {
        std::fs::File::options()
            .write(true)
            .open(&moved)
            .unwrap()
            .set_modified(old)
            .unwrap();
        tokio::time::advance(Duration::from_secs(10)).await;
        // The refresh runs on the blocking pool: wait for it (bounded, real clock).
        let start = std::time::Instant::now();
        while std::fs::metadata(&moved).unwrap().modified().unwrap() == old
            && start.elapsed() < Duration::from_secs(5)
        {
            tokio::task::yield_now().await;
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            std::fs::metadata(&moved).unwrap().modified().unwrap() > old,
            "round {round}: the moved marker is refreshed"
        );
        assert!(!guard.is_lost(), "round {round}: not reported missing");
    }
    let mut lost = tokio_test::task::spawn(guard.lost());
    let _ = guard.release();
    tokio_test::assert_pending!(lost.poll());
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 0);
}

// ---- the recovery against Python filelock 4.3.1 ----------------------------------------------

/// Python filelock's `SoftFileLock` (tests/interop/py_soft_lock.py); killed and reaped on drop.
fn python(args: &[&str]) -> common::ChildProcess {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/py_soft_lock.py");
    let mut command = std::process::Command::new(common::tools::python());
    command.arg(script).args(args);
    common::spawn_command(command)
}

#[test]
fn python_recovers_a_stranded_rust_marker_as_we_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let (mut child, child_pid) = holder(&path);
    let live = inode(&path);
    strand(&dir, &path, dead_pid());
    // One attempt of Python's SoftFileLock puts our live marker back and finds it held.
    let mut py = python(&["try", path.to_str().unwrap(), "0"]);
    assert_eq!(py.next_message(), "timeout");
    assert!(py.wait_success());
    assert_eq!(inode(&path), live);
    assert_eq!(SoftFileLock::new(&path).blocking_pid(), Some(child_pid));
    assert_eq!(names(dir.path()), ["soft.lock"]);
    child.tell("release");
    assert_eq!(child.next_message(), "released");
}

#[test]
fn we_recover_a_stranded_python_marker() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let mut py = python(&["hold", path.to_str().unwrap(), "60"]);
    let message = py.next_message();
    let py_pid: u32 = message.strip_prefix("acquired ").unwrap().parse().unwrap();
    let live = inode(&path);
    strand(&dir, &path, dead_pid());
    let lock = SoftFileLock::new(&path);
    assert!(lock.blocking_try_acquire().unwrap().is_none());
    assert_eq!(inode(&path), live, "Python's live marker is back");
    assert_eq!(lock.blocking_pid(), Some(py_pid));
    assert_eq!(names(dir.path()), ["soft.lock"]);
}

//! `SoftFileLock`: exclusion across tasks, threads and processes; stale markers (killed
//! holder, recycled PID, other host, malformed, non-regular nodes); release of a replaced
//! marker; interop with Python filelock's `SoftFileLock` in both directions.
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_filelock::{Error, Lock, NodeKind, Reentrancy, SoftFileLock};

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn child_entry() {
    common::child_entry(run_role);
}

fn run_role(role: &str, args: &[String]) {
    match role {
        // Holds the soft lock on args[0] until told to release (or stdin closes).
        "hold" => {
            let lock = SoftFileLock::new(&args[0]);
            let guard = lock.blocking_acquire().unwrap();
            common::say(format!("acquired {}", std::process::id()));
            let _ = common::hear();
            guard.release().unwrap();
            common::say("released");
        }
        // args: lock path, counter path, n. Read-modify-write the counter n times.
        "count" => {
            let lock = SoftFileLock::new(&args[0]);
            let n: u32 = args[2].parse().unwrap();
            common::ready_steady_go();
            for _ in 0..n {
                let _guard = lock.blocking_acquire().unwrap();
                let value: u64 = std::fs::read_to_string(&args[1])
                    .map(|s| s.trim().parse().unwrap())
                    .unwrap_or(0);
                std::fs::write(&args[1], (value + 1).to_string()).unwrap();
            }
            common::say("done");
        }
        // A live process that holds nothing.
        "idle" => {
            common::say("ready");
            let _ = common::hear();
        }
        other => panic!("unknown role {other}"),
    }
}

fn lock_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("soft.lock")
}

fn our_record_prefix() -> String {
    format!("{}\n", std::process::id())
}

fn content(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// The PID of a process that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// Python filelock's `SoftFileLock` (tests/interop/py_soft_lock.py); killed and reaped on drop.
fn python(args: &[&str]) -> common::ChildProcess {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/py_soft_lock.py");
    let mut command = Command::new(common::tools::python());
    command.arg(script).args(args);
    common::spawn_command(command)
}

/// The marker Python filelock writes for `pid` on this host, with `delta` added to its
/// start token.
fn python_marker(pid: u32, delta: i64) -> Vec<u8> {
    let mut py = python(&["marker", &pid.to_string(), &delta.to_string()]);
    let hex = py.next_message();
    assert!(py.wait_success());
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn pid_of(message: &str) -> u32 {
    message
        .strip_prefix("acquired ")
        .unwrap_or_else(|| panic!("unexpected message {message:?}"))
        .parse()
        .unwrap()
}

// ---- exclusion -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tasks_sharing_one_handle_exclude_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let lock = SoftFileLock::new(lock_path(&dir));
    let held = {
        let lock = lock.clone();
        tokio::spawn(async move { lock.acquire().await.unwrap() })
            .await
            .unwrap()
    };
    assert!(content(&lock_path(&dir)).starts_with(our_record_prefix().as_bytes()));
    let other = lock.clone();
    let busy = tokio::spawn(async move { other.try_acquire().await.unwrap().is_none() });
    assert!(busy.await.unwrap());
    drop(held);
    assert!(!exists(&lock_path(&dir)), "release unlinks the marker");
    let other = lock.clone();
    let won = tokio::spawn(async move { other.try_acquire().await.unwrap().is_some() });
    assert!(won.await.unwrap());
}

#[test]
fn two_threads_exclude_each_other_and_the_owner_reenters() {
    let dir = tempfile::tempdir().unwrap();
    let lock = SoftFileLock::builder(lock_path(&dir))
        .reentrancy(Reentrancy::Owner)
        .build();
    let first = lock.blocking_acquire().unwrap();
    let again = lock.blocking_acquire().unwrap(); // same thread: re-enters
    assert_eq!(lock.lock_counter(), 2);
    std::thread::scope(|s| {
        let busy = s.spawn(|| lock.blocking_try_acquire().unwrap().is_none());
        assert!(busy.join().unwrap());
    });
    drop(again);
    assert!(exists(&lock_path(&dir)), "still held once");
    drop(first);
    assert!(!exists(&lock_path(&dir)));
    std::thread::scope(|s| {
        let won = s.spawn(|| lock.blocking_try_acquire().unwrap().is_some());
        assert!(won.join().unwrap());
    });
}

#[test]
fn same_thread_other_handle_waiting_forever_is_would_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let _held = SoftFileLock::new(lock_path(&dir))
        .blocking_acquire()
        .unwrap();
    let err = SoftFileLock::new(lock_path(&dir))
        .blocking_acquire()
        .unwrap_err();
    assert!(matches!(err, Error::WouldDeadlock { .. }), "{err:?}");
}

#[test]
fn processes_exclude_each_other() {
    const PROCESSES: usize = 3;
    const EACH: u32 = 40;
    let dir = tempfile::tempdir().unwrap();
    let lock = lock_path(&dir);
    let counter = dir.path().join("counter");
    let (lock_s, counter_s) = (lock.to_str().unwrap(), counter.to_str().unwrap());
    let each = EACH.to_string();
    let mut children: Vec<_> = (0..PROCESSES)
        .map(|_| common::spawn("count", &[lock_s, counter_s, &each]))
        .collect();
    common::start_together(&mut children, |child| child);
    for child in &mut children {
        child.expect("done");
        assert!(child.wait_success());
    }
    let total: u64 = std::fs::read_to_string(&counter).unwrap().parse().unwrap();
    assert_eq!(total, PROCESSES as u64 * u64::from(EACH));
    assert!(!exists(&lock), "every marker was removed");
}

#[tokio::test]
async fn a_cancelled_acquire_leaves_no_marker() {
    let dir = tempfile::tempdir().unwrap();
    let holder = SoftFileLock::new(lock_path(&dir));
    let waiter = SoftFileLock::new(lock_path(&dir));
    let held = holder.acquire().await.unwrap();
    tokio::select! {
        r = waiter.acquire_timeout(10 * SECOND) => panic!("ended while held: {r:?}"),
        _ = tokio::time::sleep(Duration::from_millis(30)) => {}
    }
    assert_eq!(waiter.lock_counter(), 0);
    drop(held);
    assert!(!exists(&lock_path(&dir)));
    assert!(waiter.try_acquire().await.unwrap().is_some());
}

/// `SoftFileLock` has no shared acquires of its own; through the `Lock` trait they fail.
#[tokio::test]
async fn shared_through_the_lock_trait_is_a_typed_error_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let lock = SoftFileLock::new(lock_path(&dir));
    let err = Lock::acquire_shared(&lock).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert_eq!(err.path(), lock_path(&dir));
    assert!(!exists(&lock_path(&dir)), "no marker was created");
}

// ---- stale markers -----------------------------------------------------------------------

#[tokio::test]
async fn a_killed_holders_marker_is_broken_by_the_next_waiter() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let mut holder = common::spawn("hold", &[path.to_str().unwrap()]);
    let pid = pid_of(&holder.next_message());
    assert!(content(&path).starts_with(format!("{pid}\n").as_bytes()));
    let lock = SoftFileLock::new(&path);
    assert!(lock.try_acquire().await.unwrap().is_none(), "live holder");
    // A timeout names the holder from its marker.
    let err = lock
        .acquire_timeout(Duration::from_millis(20))
        .await
        .unwrap_err();
    match &err {
        Error::Timeout {
            holder: Some(h), ..
        } => {
            assert_eq!(h.pid, pid);
            assert!(h.host.is_some());
            assert!(
                err.to_string().contains(&format!("held by pid {pid} on ")),
                "{err}"
            );
        }
        other => panic!("{other:?}"),
    }
    holder.kill(); // SIGKILL: the marker stays
    assert!(content(&path).starts_with(format!("{pid}\n").as_bytes()));
    let guard = lock.acquire_timeout(10 * SECOND).await.unwrap();
    assert!(content(&path).starts_with(our_record_prefix().as_bytes()));
    drop(guard);
    assert!(!exists(&path));
    // No `.break.` file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn a_stale_marker_with_a_250_byte_name_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    // 250 bytes: `<name>.break.<pid>.<32 hex>` would pass NAME_MAX (255).
    let path = dir.path().join(format!("{}.lock", "n".repeat(245)));
    let mut holder = common::spawn("hold", &[path.to_str().unwrap()]);
    let pid = pid_of(&holder.next_message());
    holder.kill(); // SIGKILL: the marker stays
    assert!(content(&path).starts_with(format!("{pid}\n").as_bytes()));
    let guard = SoftFileLock::new(&path)
        .acquire_timeout(10 * SECOND)
        .await
        .unwrap();
    assert!(content(&path).starts_with(our_record_prefix().as_bytes()));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary name is left"
    );
    drop(guard);
    assert!(!exists(&path));
}

#[tokio::test(start_paused = true)]
async fn another_hosts_marker_is_never_broken() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    // A PID that is dead here: on this host the marker would be stale at once.
    let marker = format!("{}\nsome-other-host\n", dead_pid());
    std::fs::write(&path, &marker).unwrap();
    let err = SoftFileLock::new(&path)
        .acquire_timeout(10 * SECOND)
        .await
        .unwrap_err();
    match &err {
        Error::Timeout {
            holder: Some(h), ..
        } => assert_eq!(h.host.as_deref(), Some("some-other-host")),
        other => panic!("{other:?}"),
    }
    assert_eq!(content(&path), marker.as_bytes());
    // Control: the same dead PID with this host's name is broken at once.
    let ours = python_marker(std::process::id(), 0);
    let host_line = ours.split(|&b| b == b'\n').nth(1).unwrap().to_vec();
    let mut local = format!("{}\n", dead_pid()).into_bytes();
    local.extend_from_slice(&host_line);
    local.push(b'\n');
    std::fs::write(&path, &local).unwrap();
    assert!(
        SoftFileLock::new(&path)
            .try_acquire()
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_recycled_pid_is_broken_a_live_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let mut live = common::spawn("idle", &[]);
    live.expect("ready");
    let lock = SoftFileLock::new(&path);
    // The live process, with its real start token: held.
    std::fs::write(&path, python_marker(live.id(), 0)).unwrap();
    assert!(lock.try_acquire().await.unwrap().is_none());
    // The same PID with another start token: a recycled PID, broken.
    std::fs::write(&path, python_marker(live.id(), 1)).unwrap();
    let guard = lock
        .try_acquire()
        .await
        .unwrap()
        .expect("recycled PID broken");
    assert!(content(&path).starts_with(our_record_prefix().as_bytes()));
    drop(guard);
}

#[tokio::test(start_paused = true)]
async fn a_malformed_marker_is_broken_after_two_seconds_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    std::fs::write(&path, "hello").unwrap();
    let lock = SoftFileLock::new(&path);
    let start = Instant::now();
    // Young: left alone.
    let err = lock
        .acquire_timeout(1500 * Duration::from_millis(1))
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(content(&path), b"hello");
    // Old (2 s since first seen, whichever acquire saw it): broken and taken.
    let guard = lock.acquire_timeout(10 * SECOND).await.unwrap();
    let took = start.elapsed();
    assert!(took >= 2 * SECOND, "broken after {took:?}");
    assert!(
        took <= 2 * SECOND + Duration::from_millis(60),
        "broken after {took:?}"
    );
    assert!(content(&path).starts_with(our_record_prefix().as_bytes()));
    drop(guard);
}

#[tokio::test(start_paused = true)]
async fn an_empty_marker_is_never_broken() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    std::fs::write(&path, "").unwrap();
    let err = SoftFileLock::new(&path)
        .acquire_timeout(10 * SECOND)
        .await
        .unwrap_err();
    match &err {
        Error::Timeout {
            holder: None,
            empty_marker: true,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string().contains("its marker is empty"),
        "the timeout says why: {err}"
    );
    assert!(exists(&path));
    assert_eq!(content(&path), b"");
    // A marker naming a holder is not called empty.
    let mut holder = common::spawn("hold", &[dir.path().join("held.lock").to_str().unwrap()]);
    pid_of(&holder.next_message());
    let err = SoftFileLock::new(dir.path().join("held.lock"))
        .acquire_timeout(SECOND)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                empty_marker: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.to_string().contains("empty"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_symlink_at_the_path_is_replaced_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let target = dir.path().join("precious");
    std::fs::write(&target, "precious").unwrap();
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let lock = SoftFileLock::new(&path);
    let start = Instant::now();
    assert!(
        lock.try_acquire().await.unwrap().is_none(),
        "young: left alone"
    );
    let guard = lock.acquire_timeout(10 * SECOND).await.unwrap();
    assert!(start.elapsed() >= 2 * SECOND);
    assert_eq!(content(&target), b"precious", "the target is untouched");
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_file(), "our marker replaced the link");
    drop(guard);
    assert!(!exists(&path));
    assert_eq!(content(&target), b"precious");

    // A dangling symlink: its target is never created.
    let nowhere = dir.path().join("nowhere");
    std::os::unix::fs::symlink(&nowhere, &path).unwrap();
    let guard = lock.acquire_timeout(10 * SECOND).await.unwrap();
    assert!(!exists(&nowhere));
    drop(guard);
}

#[tokio::test(start_paused = true)]
async fn a_fifo_at_the_path_never_hangs_and_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    assert!(
        Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap()
            .success()
    );
    // Bound the first attempt in real time on another thread: a hang fails the test
    // instead of stalling it.
    let (tx, rx) = mpsc::channel();
    let probe = SoftFileLock::new(&path);
    std::thread::spawn(move || {
        let _ = tx.send(probe.blocking_try_acquire().map(|g| g.is_some()));
    });
    let first = rx
        .recv_timeout(common::CHILD_WAIT)
        .expect("an attempt on a FIFO hung");
    assert!(!first.unwrap(), "young FIFO: busy");
    let lock = SoftFileLock::new(&path);
    let guard = lock.acquire_timeout(10 * SECOND).await.unwrap();
    assert!(
        std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_file()
    );
    drop(guard);
    assert!(!exists(&path));
}

#[test]
fn a_directory_at_the_path_is_an_error_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    std::fs::create_dir(&path).unwrap();
    let err = SoftFileLock::new(&path).blocking_acquire().unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotAFile {
                kind: NodeKind::Directory,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(std::fs::symlink_metadata(&path).unwrap().is_dir());
}

#[test]
fn a_replaced_marker_is_reported_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let guard = SoftFileLock::new(&path).blocking_acquire().unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, "someone else\n").unwrap();
    let err = guard.release().unwrap_err();
    assert!(matches!(err, Error::MarkerReplaced { .. }), "{err:?}");
    assert_eq!(err.path(), path);
    assert_eq!(content(&path), b"someone else\n");
}

#[test]
fn missing_parents_are_created_and_mode_drops_group_write() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/soft.lock");
    let lock = SoftFileLock::builder(&path).mode(0o666).build();
    let guard = lock.blocking_acquire().unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    drop(guard);
}

// ---- interop with Python filelock ----------------------------------------------------------

#[test]
fn our_marker_is_byte_for_byte_pythons() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let mut holder = common::spawn("hold", &[path.to_str().unwrap()]);
    let pid = pid_of(&holder.next_message());
    assert_eq!(content(&path), python_marker(pid, 0));
    holder.tell("release");
    holder.expect("released");
}

#[tokio::test]
async fn python_holds_we_wait_and_we_break_its_stale_marker() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let mut py = python(&["hold", path.to_str().unwrap(), "60"]);
    let pid = pid_of(&py.next_message());
    assert_eq!(content(&path), python_marker(pid, 0));
    let lock = SoftFileLock::new(&path);
    let err = lock
        .acquire_timeout(Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "Python holds it: {err:?}");
    py.kill(); // SIGKILL: Python's marker stays
    assert!(exists(&path));
    let guard = lock.acquire_timeout(10 * SECOND).await.unwrap();
    assert!(content(&path).starts_with(our_record_prefix().as_bytes()));
    drop(guard);
    assert!(!exists(&path));
}

#[test]
fn we_hold_python_waits_and_python_breaks_our_stale_marker() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let path_s = path.to_str().unwrap();
    let mut holder = common::spawn("hold", &[path_s]);
    let pid = pid_of(&holder.next_message());
    let mut py = python(&["try", path_s, "0.3"]);
    assert_eq!(
        py.next_message(),
        "timeout",
        "we hold it: Python must time out"
    );
    assert!(py.wait_success());
    holder.kill(); // SIGKILL: our marker stays
    assert!(content(&path).starts_with(format!("{pid}\n").as_bytes()));
    let mut py = python(&["try", path_s, "10"]);
    let msg = py.next_message();
    assert!(
        msg.starts_with("acquired "),
        "Python broke our stale marker: {msg}"
    );
    assert!(py.wait_success());
    assert!(!exists(&path), "Python released its marker");
}

//! `SoftFileLease`: the lease marker byte for byte as Python filelock 4.3.1 writes it;
//! expiry on the contender's own clock and the heartbeat period (paused time); loss
//! reported through `LockGuard::lost()` and `on_compromise`; release leaving a new holder's
//! marker alone; bad input; interop with Python's `SoftFileLease` both ways (exclusion with
//! a shared counter, takeover of a SIGKILLed holder, takeover of a SIGSTOPped holder).
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio_filelock::{CompromiseReason, Error, Lost, NodeKind, SoftFileLease};

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn child_entry() {
    common::child_entry(run_role);
}

fn lease(path: &str, duration: &str, heartbeat: &str) -> SoftFileLease {
    SoftFileLease::builder(path)
        .lease_duration(Duration::from_secs_f64(duration.parse().unwrap()))
        .heartbeat_interval(Duration::from_secs_f64(heartbeat.parse().unwrap()))
        .build()
}

fn run_role(role: &str, args: &[String]) {
    match role {
        // args: path, duration, heartbeat. Holds a sync lease until told; on "report" says
        // whether it was lost (waiting up to 10 s for the heartbeat to notice), then
        // releases and says how the release went.
        "hold" => {
            let guard = lease(&args[0], &args[1], &args[2])
                .blocking_acquire()
                .unwrap();
            common::say(format!("acquired {}", std::process::id()));
            let _ = common::hear();
            let start = Instant::now();
            while !guard.is_lost() && start.elapsed() < 10 * SECOND {
                std::thread::sleep(Duration::from_millis(10));
            }
            let lost = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap()
                .block_on(async {
                    tokio::time::timeout(Duration::from_millis(10), guard.lost())
                        .await
                        .ok()
                });
            match lost {
                Some(Lost::LeaseCompromised { reason, .. }) => {
                    common::say(format!("lost {reason}"));
                }
                other => common::say(format!("not lost {other:?}")),
            }
            match guard.release() {
                Ok(()) => common::say("released ok"),
                Err(Error::MarkerReplaced { .. }) => common::say("released replaced"),
                Err(e) => common::say(format!("released error {e}")),
            }
        }
        // args: lock path, counter path, n, duration.
        "count" => {
            let lock = lease(&args[0], &args[3], "1");
            let n: u32 = args[2].parse().unwrap();
            common::ready_steady_go();
            for _ in 0..n {
                let _guard = lock.blocking_acquire().unwrap();
                let value: u64 = std::fs::read_to_string(&args[1])
                    .map(|s| s.trim().parse().unwrap_or(0))
                    .unwrap_or(0);
                std::fs::write(&args[1], (value + 1).to_string()).unwrap();
            }
            common::say("done");
        }
        other => panic!("unknown role {other}"),
    }
}

fn lock_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("lease.lock")
}

fn text(path: &Path) -> String {
    String::from_utf8(std::fs::read(path).unwrap()).unwrap()
}

fn field<'a>(record: &'a str, name: &str) -> &'a str {
    record
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {record:?}"))
}

/// Python filelock's `SoftFileLease` (tests/interop/py_lease.py); killed and reaped on drop.
fn python(args: &[&str]) -> common::ChildProcess {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/py_lease.py");
    let mut command = Command::new(common::tools::python());
    command.arg(script).args(args);
    common::spawn_command(command)
}

fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) with a PID of a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, signal) }, 0);
}

fn acquired_pid(message: &str) -> u32 {
    message
        .strip_prefix("acquired ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("unexpected message {message:?}"))
        .parse()
        .unwrap()
}

/// Sets the marker's times to long ago (as a stalled holder's would be).
fn age(path: &Path) {
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_times(
        std::fs::FileTimes::new()
            .set_accessed(old)
            .set_modified(old),
    )
    .unwrap();
}

// ---- the marker ------------------------------------------------------------------------

#[tokio::test]
async fn our_marker_is_byte_for_byte_pythons() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let guard = SoftFileLease::builder(&path)
        .lease_duration(Duration::from_millis(1500))
        .build()
        .acquire()
        .await
        .unwrap();
    let ours = text(&path);
    assert!(ours.starts_with("filelock/2\n"), "{ours:?}");
    let token = field(&ours, "token").to_owned();
    assert_eq!(token.len(), 32);
    let pid = std::process::id().to_string();
    let mut py = python(&["encode", &pid, &token, "1.5"]);
    let hex = py.next_message();
    assert!(py.wait_success());
    let theirs: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    assert_eq!(ours.as_bytes(), theirs, "{ours:?}");
    guard.release().unwrap();
    assert!(!path.exists());
}

// ---- expiry and heartbeat, on paused time ----------------------------------------------

/// A lease record of a live process (this one) that nobody refreshes.
fn unrefreshed_marker(path: &Path, duration: &str) {
    let record = format!(
        "filelock/2\npid={}\nhost=nobody-refreshes-this\nmode=lease\ntoken=00000000000000000000000000000001\nduration={duration}\n",
        std::process::id()
    );
    std::fs::write(path, record).unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_lease_expires_on_the_contenders_own_clock() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    unrefreshed_marker(&path, "30.0");
    // Its mtime says nothing: even an ancient one is not expired at first sight.
    age(&path);
    let lease = SoftFileLease::new(&path);
    assert!(lease.try_acquire().await.unwrap().is_none(), "first sight");
    tokio::time::advance(Duration::from_millis(29_900)).await;
    assert!(
        lease.try_acquire().await.unwrap().is_none(),
        "29.9 s unchanged: not yet"
    );
    tokio::time::advance(Duration::from_millis(100)).await;
    let guard = lease
        .try_acquire()
        .await
        .unwrap()
        .expect("30 s unchanged on our clock: taken over");
    assert!(text(&path).contains(&format!("pid={}\n", std::process::id())));
    assert!(!text(&path).contains("nobody-refreshes-this"));
    guard.release().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_change_restarts_the_contenders_clock() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    unrefreshed_marker(&path, "30.0");
    let lease = SoftFileLease::new(&path);
    assert!(lease.try_acquire().await.unwrap().is_none());
    tokio::time::advance(Duration::from_secs(20)).await;
    age(&path); // the holder refreshed (any change of mtime counts)
    assert!(lease.try_acquire().await.unwrap().is_none());
    tokio::time::advance(Duration::from_secs(20)).await;
    assert!(
        lease.try_acquire().await.unwrap().is_none(),
        "only 20 s since the change"
    );
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(lease.try_acquire().await.unwrap().is_some());
}

/// Waits (bounded, on the real clock) until `path`'s mtime is newer than `than`.
async fn refreshed_after(path: &Path, than: SystemTime) -> bool {
    let start = Instant::now();
    while start.elapsed() < 5 * SECOND {
        if std::fs::metadata(path).unwrap().modified().unwrap() > than {
            return true;
        }
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

#[tokio::test(start_paused = true)]
async fn the_heartbeat_refreshes_every_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let guard = SoftFileLease::builder(&path)
        .lease_duration(Duration::from_secs(30))
        .heartbeat_interval(Duration::from_secs(10))
        .build()
        .acquire()
        .await
        .unwrap();
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    for round in 0..3 {
        age(&path);
        tokio::time::advance(Duration::from_millis(9_990)).await;
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            old,
            "round {round}: no refresh before the interval"
        );
        tokio::time::advance(Duration::from_millis(20)).await;
        assert!(
            refreshed_after(&path, old).await,
            "round {round}: refreshed at the interval"
        );
    }
    assert!(!guard.is_lost());
    guard.release().unwrap();
    // Stopped with the guard: nothing touches the path afterwards.
    std::fs::write(&path, "someone else\n").unwrap();
    age(&path);
    tokio::time::advance(Duration::from_secs(30)).await;
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), old);
}

#[tokio::test(start_paused = true)]
async fn a_replaced_marker_is_reported_once_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hook = seen.clone();
    let guard = SoftFileLease::builder(&path)
        .lease_duration(Duration::from_secs(3))
        .heartbeat_interval(SECOND)
        .on_compromise(move |lost| hook.lock().unwrap().push(lost.clone()))
        .build()
        .acquire()
        .await
        .unwrap();
    let token = field(&text(&path), "token").to_owned();
    // A contender took it over: another marker at the path.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, "new holder\n").unwrap();
    let lost = tokio::time::timeout(10 * SECOND, guard.lost())
        .await
        .expect("lost within two heartbeats");
    match &lost {
        Lost::LeaseCompromised {
            path: p,
            token: t,
            reason,
            error,
        } => {
            assert_eq!(p, &path);
            assert_eq!(t, &token);
            assert_eq!(*reason, CompromiseReason::OwnerChanged);
            assert_eq!(*error, None);
        }
        other => panic!("{other:?}"),
    }
    assert!(lost.to_string().contains("(owner-changed)"), "{lost}");
    assert!(guard.is_lost());
    assert_eq!(
        *seen.lock().unwrap(),
        vec![lost.clone()],
        "hook called once"
    );
    let err = guard.release().unwrap_err();
    assert!(matches!(err, Error::MarkerReplaced { .. }), "{err:?}");
    assert_eq!(text(&path), "new holder\n", "the new marker is left alone");
}

#[tokio::test(start_paused = true)]
async fn a_removed_marker_is_reported_as_missing() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let guard = SoftFileLease::builder(&path)
        .lease_duration(Duration::from_secs(3))
        .heartbeat_interval(SECOND)
        .build()
        .acquire()
        .await
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let lost = tokio::time::timeout(10 * SECOND, guard.lost())
        .await
        .unwrap();
    assert!(
        matches!(
            lost,
            Lost::LeaseCompromised {
                reason: CompromiseReason::MarkerMissing,
                ..
            }
        ),
        "{lost:?}"
    );
    assert!(guard.release().is_err());
    assert!(!path.exists(), "nothing recreated");
}

#[test]
fn a_sync_hold_is_refreshed_by_the_crates_thread_and_stops_with_the_guard() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let guard = SoftFileLease::builder(&path)
        .lease_duration(Duration::from_millis(600))
        .heartbeat_interval(Duration::from_millis(50))
        .build()
        .blocking_acquire()
        .unwrap();
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    age(&path);
    let start = Instant::now();
    while std::fs::metadata(&path).unwrap().modified().unwrap() == old {
        assert!(start.elapsed() < 10 * SECOND, "never refreshed");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!guard.is_lost());
    drop(guard);
    assert!(!path.exists());
}

// ---- bad input -------------------------------------------------------------------------

#[tokio::test]
async fn bad_settings_and_bad_nodes_are_typed_errors_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    for (duration, heartbeat) in [(0, 0), (3, 3), (3, 5), (3, 0)] {
        let lease = SoftFileLease::builder(&path)
            .lease_duration(Duration::from_secs(duration))
            .heartbeat_interval(Duration::from_secs(heartbeat))
            .build();
        let err = lease.acquire().await.unwrap_err();
        assert!(matches!(err, Error::InvalidSetting { .. }), "{err:?}");
        assert!(matches!(
            lease.blocking_try_acquire(),
            Err(Error::InvalidSetting { .. })
        ));
    }
    assert!(!path.exists());
    // A lease of another duration at the path.
    std::fs::write(
        &path,
        format!(
            "filelock/2\npid={}\nhost=h\nmode=lease\ntoken=ab\nduration=30.0\n",
            std::process::id()
        ),
    )
    .unwrap();
    let other = SoftFileLease::builder(&path)
        .lease_duration(Duration::from_secs(60))
        .build();
    let err = other.acquire_timeout(10 * SECOND).await.unwrap_err();
    match &err {
        Error::LeaseMismatch { theirs, ours, .. } => {
            assert_eq!((theirs.as_str(), ours.as_str()), ("30.0", "60.0"));
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_file(&path).unwrap();
    // A directory at the path.
    std::fs::create_dir(&path).unwrap();
    let err = SoftFileLease::new(&path)
        .acquire_timeout(10 * SECOND)
        .await
        .unwrap_err();
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
    assert!(path.is_dir(), "left alone");
}

#[tokio::test]
async fn an_unwritable_directory_is_an_error_at_once() {
    use std::os::unix::fs::PermissionsExt;
    if unsafe_is_root() {
        common::skipped(
            "an_unwritable_directory_is_an_error_at_once",
            "root writes anywhere",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("ro");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    let err = SoftFileLease::new(locked.join("x.lock"))
        .acquire_timeout(10 * SECOND)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err:?}");
}

fn unsafe_is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[tokio::test]
async fn a_symlink_at_the_path_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let target = dir.path().join("target");
    std::fs::write(&target, "keep\n").unwrap();
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let lease = SoftFileLease::new(&path);
    assert!(lease.try_acquire().await.unwrap().is_none());
    assert_eq!(text(&target), "keep\n", "the symlink's target is untouched");
}

// ---- interop with Python filelock 4.3.1 -----------------------------------------------

#[test]
fn rust_and_python_processes_exclude_each_other() {
    const EACH: u32 = 25;
    let dir = tempfile::tempdir().unwrap();
    let lock = lock_path(&dir);
    let counter = dir.path().join("counter");
    let (lock_s, counter_s) = (lock.to_str().unwrap(), counter.to_str().unwrap());
    let each = EACH.to_string();
    let mut children = vec![
        common::spawn("count", &[lock_s, counter_s, &each, "30"]),
        python(&["count", lock_s, counter_s, &each, "30"]),
        common::spawn("count", &[lock_s, counter_s, &each, "30"]),
        python(&["count", lock_s, counter_s, &each, "30"]),
    ];
    common::start_together(&mut children, |child| child);
    for child in &mut children {
        child.expect("done");
        assert!(child.wait_success());
    }
    let total: u64 = std::fs::read_to_string(&counter).unwrap().parse().unwrap();
    assert_eq!(total, 4 * u64::from(EACH));
    assert!(!lock.exists());
}

#[tokio::test]
async fn we_take_over_a_sigkilled_python_holder() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let mut py = python(&["hold", path.to_str().unwrap(), "30", "10"]);
    let pid = acquired_pid(&py.next_message());
    assert!(text(&path).contains(&format!("pid={pid}\n")));
    let lease = SoftFileLease::new(&path);
    assert!(lease.try_acquire().await.unwrap().is_none(), "live holder");
    py.kill();
    // Its PID is gone: taken over at once, not after 30 s.
    let guard = lease.acquire_timeout(10 * SECOND).await.unwrap();
    assert!(text(&path).contains(&format!("pid={}\n", std::process::id())));
    guard.release().unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn python_takes_over_a_sigkilled_rust_holder() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let path_s = path.to_str().unwrap();
    let mut ours = common::spawn("hold", &[path_s, "30", "10"]);
    let pid = acquired_pid(&ours.next_message());
    assert!(text(&path).contains(&format!("pid={pid}\n")));
    ours.kill();
    let mut py = python(&["hold", path_s, "30", "10"]);
    let message = py.next_message();
    let py_pid = acquired_pid(&message);
    assert!(text(&path).contains(&format!("pid={py_pid}\n")));
    py.tell("release");
    py.expect("released");
}

#[test]
fn a_sigstopped_rust_holder_is_taken_over_by_python_and_learns_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let path_s = path.to_str().unwrap();
    let mut ours = common::spawn("hold", &[path_s, "1.0", "0.2"]);
    let pid = acquired_pid(&ours.next_message());
    signal(pid, libc::SIGSTOP);
    let started = Instant::now();
    let mut py = python(&["hold", path_s, "1.0", "0.2"]);
    let py_pid = acquired_pid(&py.next_message());
    assert!(
        started.elapsed() >= SECOND,
        "taken over only after a full lease"
    );
    let theirs = text(&path);
    assert!(theirs.contains(&format!("pid={py_pid}\n")), "{theirs}");
    signal(pid, libc::SIGCONT);
    ours.tell("report");
    ours.expect("lost owner-changed");
    ours.expect("released replaced");
    assert_eq!(text(&path), theirs, "the new holder's marker is left alone");
    py.tell("release");
    py.expect("released");
    assert!(!path.exists());
}

#[tokio::test]
async fn we_take_over_a_sigstopped_python_holder_which_learns_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let mut py = python(&["hold", path.to_str().unwrap(), "1.0", "0.2"]);
    let py_pid = acquired_pid(&py.next_message());
    signal(py_pid, libc::SIGSTOP);
    let lease = SoftFileLease::builder(&path)
        .lease_duration(SECOND)
        .heartbeat_interval(Duration::from_millis(200))
        .build();
    let started = Instant::now();
    let guard = lease.acquire_timeout(10 * SECOND).await.unwrap();
    assert!(started.elapsed() >= SECOND);
    let ours = text(&path);
    assert!(ours.contains(&format!("pid={}\n", std::process::id())));
    signal(py_pid, libc::SIGCONT);
    py.expect("compromised owner-changed");
    py.tell("release");
    py.expect("released");
    assert_eq!(text(&path), ours, "Python left our marker alone");
    assert!(!guard.is_lost());
    guard.release().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_soft_file_lock_never_breaks_a_live_lease_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    unrefreshed_marker(&path, "1.0");
    let soft = tokio_filelock::SoftFileLock::new(&path);
    assert!(soft.try_acquire().await.unwrap().is_none());
    tokio::time::advance(10 * SECOND).await;
    assert!(
        soft.try_acquire().await.unwrap().is_none(),
        "a live holder's protocol 2 marker is not malformed"
    );
    assert!(text(&path).contains("nobody-refreshes-this"));
}

//! `SoftReadWriteLock`: Python filelock 4.3.1's `SoftReadWriteLock` on disk. Interop with
//! Python processes both ways (readers share, writers exclude, a SIGKILLed holder is
//! recovered after the stale threshold, a SIGSTOPped holder is taken over and its
//! `lost()` resolves, a counter kept exact by mixed writers); writer preference and
//! cancellation; the heartbeat period and the stale threshold under paused time; bad input
//! returned at once.
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_filelock::{CompromiseReason, Error, Lost, SoftReadWriteLock};

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn child_entry() {
    common::child_entry(run_role);
}

fn lock(path: &str, heartbeat: &str, stale: &str) -> SoftReadWriteLock {
    SoftReadWriteLock::builder(path)
        .heartbeat_interval(Duration::from_secs_f64(heartbeat.parse().unwrap()))
        .stale_threshold(Duration::from_secs_f64(stale.parse().unwrap()))
        .poll_interval(Duration::from_millis(50))
        .build()
}

fn run_role(role: &str, args: &[String]) {
    match role {
        // args: path, read|write, heartbeat, stale. Holds (sync) until told; on a line,
        // says whether the hold was lost (waiting up to 10 s for the heartbeat to notice),
        // then releases and says how that went.
        "hold" => {
            let lock = lock(&args[0], &args[2], &args[3]);
            let guard = match args[1].as_str() {
                "read" => lock.blocking_acquire_shared(),
                _ => lock.blocking_acquire(),
            }
            .unwrap();
            common::say(format!(
                "acquired {} {}",
                std::process::id(),
                guard.fencing_token().unwrap()
            ));
            let _ = common::hear();
            let start = std::time::Instant::now();
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
                    common::say(format!("lost {reason}"))
                }
                other => common::say(format!("not lost {other:?}")),
            }
            match guard.release() {
                Ok(()) => common::say("released ok"),
                Err(e) => common::say(format!("released error {e}")),
            }
        }
        // args: lock path, counter path, n.
        "count" => {
            let lock = lock(&args[0], "1", "3");
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

/// Python filelock's `SoftReadWriteLock` (tests/interop/py_soft_rw.py); killed and reaped
/// on drop.
fn python(args: &[&str]) -> common::ChildProcess {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/py_soft_rw.py");
    let mut command = Command::new(common::tools::python());
    command.arg(script).args(args);
    common::spawn_command(command)
}

/// One non-blocking attempt by Python: `true` if it got the lock.
fn python_gets(path: &Path, mode: &str) -> bool {
    let mut child = python(&["try", path.to_str().unwrap(), mode]);
    let message = child.next_message();
    assert!(child.wait_success());
    match message.as_str() {
        "busy" => false,
        m if m.starts_with("got ") => true,
        m => panic!("unexpected {m:?}"),
    }
}

fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) with a PID of a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, signal) }, 0);
}

/// `(pid, generation)` from an "acquired <pid> <generation>" message.
fn acquired(message: &str) -> (u32, u64) {
    let mut words = message
        .strip_prefix("acquired ")
        .unwrap_or_else(|| panic!("unexpected message {message:?}"))
        .split(' ');
    let pid = words.next().unwrap().parse().unwrap();
    let generation = words.next().unwrap().parse().unwrap();
    (pid, generation)
}

fn lock_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("data.lock")
}

/// The protocol's directory, `<path>.rw`.
fn root(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.rw", path.display()))
}

/// The newest generation's record, as HEAD names it.
fn head(path: &Path) -> String {
    let text = std::fs::read_to_string(root(path).join("gen/HEAD")).unwrap();
    text.split_once('\n').unwrap().1.to_owned()
}

fn holders(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root(path).join("holders"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

// ---- interop: readers and writers of both languages ----------------------------------

#[tokio::test]
async fn rust_and_python_readers_share_and_exclude_writers_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let rust = lock(path.to_str().unwrap(), "1", "3");

    // A Python reader holds: a Rust reader joins it, a Rust writer is kept out.
    let mut py_reader = python(&["hold", path.to_str().unwrap(), "read", "1", "3"]);
    acquired(&py_reader.next_message());
    let rust_reader = rust
        .try_acquire_shared()
        .await
        .unwrap()
        .expect("readers share");
    assert!(
        rust.try_acquire().await.unwrap().is_none(),
        "Python's reader excludes a Rust writer"
    );
    assert!(!python_gets(&path, "write"), "and a Python writer");
    py_reader.tell("release");
    py_reader.expect("released");
    // The Rust reader alone still keeps a Python writer out; a Python reader joins it.
    assert!(
        !python_gets(&path, "write"),
        "a Rust reader excludes a Python writer"
    );
    assert!(
        python_gets(&path, "read"),
        "a Python reader joins a Rust reader"
    );
    rust_reader.release().unwrap();

    // A Rust writer holds: Python readers and writers are kept out.
    let writer = rust.acquire_timeout(10 * SECOND).await.unwrap();
    assert!(!python_gets(&path, "read"));
    assert!(!python_gets(&path, "write"));
    writer.release().unwrap();
    // A Python writer holds: Rust readers and writers are kept out.
    let mut py_writer = python(&["hold", path.to_str().unwrap(), "write", "1", "3"]);
    let (pid, generation) = acquired(&py_writer.next_message());
    let holder = rust
        .holder()
        .await
        .unwrap()
        .expect("the log names the writer");
    assert_eq!(
        (holder.pid, holder.mode),
        (pid, tokio_filelock::LockMode::Exclusive)
    );
    assert!(holder.host.is_some());
    let Err(Error::Timeout { holder, .. }) = rust
        .acquire_shared_timeout(Duration::from_millis(100))
        .await
    else {
        panic!("a reader waits for Python's writer");
    };
    assert_eq!(
        holder.map(|h| h.pid),
        Some(pid),
        "the timeout names the holder"
    );
    assert!(rust.try_acquire_shared().await.unwrap().is_none());
    assert!(rust.try_acquire().await.unwrap().is_none());
    py_writer.tell("release");
    py_writer.expect("released");
    assert_eq!(rust.blocking_holder().unwrap(), None);
    let next = rust.try_acquire().await.unwrap().expect("free again");
    assert!(
        next.fencing_token().unwrap() > generation,
        "generations increase across languages"
    );
    next.release().unwrap();
    let empty = format!("filelock-rw/1\ngeneration={}\n", head_generation(&path));
    assert_eq!(head(&path), empty, "the newest generation names nobody");
    assert!(
        holders(&path).is_empty(),
        "every record removed: {:?}",
        holders(&path)
    );
}

fn head_generation(path: &Path) -> u64 {
    head(path)
        .lines()
        .find_map(|l| l.strip_prefix("generation="))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_counter_stays_exact_under_mixed_rust_and_python_writers() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let counter = dir.path().join("counter");
    let (p, c) = (path.to_str().unwrap(), counter.to_str().unwrap());
    const N: usize = 15;
    let mut rust: Vec<_> = (0..2)
        .map(|_| common::spawn("count", &[p, c, &N.to_string()]))
        .collect();
    let mut py: Vec<_> = (0..2)
        .map(|_| python(&["count", p, c, &N.to_string()]))
        .collect();
    for child in rust.iter_mut().chain(py.iter_mut()) {
        child.expect("ready");
    }
    for child in rust.iter_mut().chain(py.iter_mut()) {
        child.tell("go");
    }
    for child in rust.iter_mut().chain(py.iter_mut()) {
        child.expect_within("done", Duration::from_secs(120));
    }
    let value: usize = std::fs::read_to_string(&counter)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(value, 4 * N);
}

// ---- recovery of dead and paused holders ------------------------------------------------

#[tokio::test]
async fn a_sigkilled_python_writer_is_evicted_after_the_stale_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let mut py = python(&["hold", path.to_str().unwrap(), "write", "0.2", "1.0"]);
    let (pid, generation) = acquired(&py.next_message());
    let dead = holders(&path);
    assert_eq!(dead.len(), 1);
    signal(pid, libc::SIGKILL);
    let _ = py.wait_status(10 * SECOND);
    let rust = lock(path.to_str().unwrap(), "0.2", "1.0");
    // A fresh observer has not yet seen the dead record unchanged for a threshold.
    assert!(rust.try_acquire().await.unwrap().is_none());
    let guard = rust.acquire_timeout(10 * SECOND).await.unwrap();
    assert!(guard.fencing_token().unwrap() > generation);
    assert!(
        !holders(&path).contains(&dead[0]),
        "the dead holder's record is removed"
    );
    assert!(
        !head(&path).contains(&dead[0]),
        "and its token is out of the log"
    );
    guard.release().unwrap();
}

#[test]
fn a_sigkilled_rust_writer_is_evicted_by_python() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let mut rust = common::spawn("hold", &[path.to_str().unwrap(), "write", "0.2", "1.0"]);
    let (pid, generation) = acquired(&rust.next_message());
    signal(pid, libc::SIGKILL);
    let _ = rust.wait_status(10 * SECOND);
    let mut py = python(&["hold", path.to_str().unwrap(), "write", "0.2", "1.0"]);
    let (_, taken) = acquired(&py.next_message());
    assert!(taken > generation);
    py.tell("release");
    py.expect("released");
    assert!(holders(&path).is_empty());
}

#[test]
fn a_sigstopped_rust_writer_is_taken_over_and_its_lost_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let mut rust = common::spawn("hold", &[path.to_str().unwrap(), "write", "0.2", "1.0"]);
    let (pid, generation) = acquired(&rust.next_message());
    signal(pid, libc::SIGSTOP);
    let mut py = python(&["hold", path.to_str().unwrap(), "write", "0.2", "1.0"]);
    let (_, taken) = acquired(&py.next_message());
    assert!(taken > generation, "the fencing token tells the two apart");
    signal(pid, libc::SIGCONT);
    rust.tell("report");
    rust.expect("lost evicted");
    rust.expect("released ok"); // releasing an evicted hold touches nobody else's
    assert!(!python_gets(&path, "read"), "Python's writer still holds");
    py.tell("release");
    py.expect("released");
}

#[tokio::test]
async fn a_sigstopped_python_reader_is_taken_over_and_told() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let mut py = python(&["hold", path.to_str().unwrap(), "read", "0.2", "1.0"]);
    let (pid, _) = acquired(&py.next_message());
    signal(pid, libc::SIGSTOP);
    let rust = lock(path.to_str().unwrap(), "0.2", "1.0");
    let guard = rust.acquire_timeout(10 * SECOND).await.unwrap();
    signal(pid, libc::SIGCONT);
    py.expect_within("compromised evicted", 10 * SECOND);
    guard.release().unwrap();
}

// ---- writer preference and cancellation (tasks of one process) -----------------------

/// Waits (bounded) until the newest generation satisfies `ready`.
async fn until_head(path: &Path, ready: impl Fn(&str) -> bool) {
    for _ in 0..1000 {
        if std::fs::read_to_string(root(path).join("gen/HEAD")).is_ok_and(|h| ready(&h)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the log never got there: {:?}", head(path));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_writer_shuts_out_arriving_readers() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let lock = lock(path.to_str().unwrap(), "10", "60");
    let first = lock.acquire_shared().await.unwrap();
    let writer = tokio::spawn(lock.acquire_timeout(30 * SECOND));
    until_head(&path, |h| h.contains("writer=")).await;
    assert!(
        lock.try_acquire_shared().await.unwrap().is_none(),
        "a reader arriving behind a queued writer waits"
    );
    assert!(!python_gets(&path, "read"), "a Python reader too");
    first.release().unwrap();
    let writer = writer.await.unwrap().unwrap();
    assert!(lock.try_acquire_shared().await.unwrap().is_none());
    writer.release().unwrap();
    assert!(lock.try_acquire_shared().await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_or_timed_out_writer_withdraws_from_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    // A queued writer left behind would shut readers out for the whole minute.
    let lock = lock(path.to_str().unwrap(), "20", "60");
    let reader = lock.acquire_shared().await.unwrap();

    let writer = tokio::spawn(lock.acquire());
    until_head(&path, |h| h.contains("writer=")).await;
    writer.abort();
    assert!(writer.await.unwrap_err().is_cancelled());
    until_head(&path, |h| !h.contains("writer=")).await;
    assert!(lock.try_acquire_shared().await.unwrap().is_some());

    let timed_out = lock.acquire_timeout(Duration::from_millis(200)).await;
    assert!(
        matches!(timed_out, Err(Error::Timeout { .. })),
        "{timed_out:?}"
    );
    assert!(!head(&path).contains("writer="));
    assert!(lock.try_acquire_shared().await.unwrap().is_some());
    // A failed try queues and withdraws at once, as Python's does.
    assert!(lock.try_acquire().await.unwrap().is_none());
    assert!(!head(&path).contains("writer="));
    assert_eq!(holders(&path).len(), 1, "only the reader's record is left");
    reader.release().unwrap();
}

#[test]
fn the_sync_facade_excludes_and_shares_like_the_async_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let lock = lock(path.to_str().unwrap(), "10", "60");
    let a = lock.blocking_acquire_shared().unwrap();
    let b = lock
        .blocking_try_acquire_shared()
        .unwrap()
        .expect("readers share");
    assert!(lock.blocking_try_acquire().unwrap().is_none());
    assert!(matches!(
        lock.blocking_acquire_timeout(Duration::from_millis(100)),
        Err(Error::Timeout { .. })
    ));
    drop((a, b));
    let w = lock.blocking_acquire().unwrap();
    assert!(lock.blocking_try_acquire_shared().unwrap().is_none());
    let token = w.fencing_token().unwrap();
    w.release().unwrap();
    let r = lock.blocking_acquire_shared_timeout(SECOND).unwrap();
    assert!(r.fencing_token().unwrap() > token);
}

// ---- timing under paused time ------------------------------------------------------------

fn nonce(path: &Path) -> String {
    let name = &holders(path)[0];
    let record = std::fs::read_to_string(root(path).join("holders").join(name)).unwrap();
    record
        .lines()
        .find_map(|l| l.strip_prefix("nonce="))
        .unwrap()
        .to_owned()
}

#[tokio::test(start_paused = true)]
async fn the_heartbeat_rewrites_the_record_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let guard = lock(path.to_str().unwrap(), "10", "30")
        .acquire()
        .await
        .unwrap();
    let first = nonce(&path);
    tokio::time::sleep(Duration::from_millis(9_900)).await;
    assert_eq!(nonce(&path), first, "no refresh before the interval");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = nonce(&path);
    assert_ne!(second, first, "refreshed at the interval");
    tokio::time::sleep(Duration::from_millis(9_800)).await; // 19.9 s
    assert_eq!(nonce(&path), second, "once per interval");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_ne!(nonce(&path), second);
    assert!(!guard.is_lost());
    guard.release().unwrap();
}

/// A log whose writer is `token`, whose record (with `lease=`) nobody refreshes.
fn plant_dead_writer(path: &Path, token: &str, lease: &str) {
    let root = root(path);
    std::fs::create_dir_all(root.join("gen")).unwrap();
    std::fs::create_dir_all(root.join("holders")).unwrap();
    std::fs::write(root.join("gen/epoch"), "0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::write(
        root.join("gen/00000000000000000001"),
        format!("filelock-rw/1\ngeneration=1\nwriter={token}\n"),
    )
    .unwrap();
    std::fs::write(
        root.join("holders").join(token),
        format!(
            "filelock-rw/1\ntoken={token}\npid=1\nhost=elsewhere\nlease={lease}\nnonce=00000000000000000000000000000000\n"
        ),
    )
    .unwrap();
}

const DEAD: &str = "deaddeaddeaddeaddeaddeaddeaddead";

#[tokio::test(start_paused = true)]
async fn a_dead_writer_is_evicted_once_seen_unchanged_for_the_stale_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    plant_dead_writer(&path, DEAD, "30.0");
    let lock = lock(path.to_str().unwrap(), "10", "30");
    let early = lock.acquire_timeout(Duration::from_millis(29_900)).await;
    assert!(matches!(early, Err(Error::Timeout { .. })), "{early:?}");
    let start = tokio::time::Instant::now();
    let guard = lock.acquire().await.unwrap();
    let waited = start.elapsed();
    assert!(waited >= 30 * SECOND, "evicted after {waited:?}");
    assert!(
        waited <= Duration::from_millis(30_300),
        "evicted after {waited:?}"
    );
    assert!(!holders(&path).contains(&DEAD.to_owned()));
    assert_eq!(
        guard.fencing_token(),
        Some(2),
        "eviction and grant in one commit"
    );
}

#[tokio::test(start_paused = true)]
async fn a_holder_with_a_longer_lease_is_given_its_own_lease() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    plant_dead_writer(&path, DEAD, "60.0");
    let lock = lock(path.to_str().unwrap(), "10", "30");
    let start = tokio::time::Instant::now();
    let guard = lock.acquire().await.unwrap();
    let waited = start.elapsed();
    assert!(
        (60 * SECOND..=Duration::from_millis(60_300)).contains(&waited),
        "evicted after {waited:?}"
    );
    guard.release().unwrap();
}

#[tokio::test]
async fn on_compromise_and_lost_report_an_eviction() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hook = seen.clone();
    let lock = SoftReadWriteLock::builder(&path)
        .heartbeat_interval(Duration::from_millis(50))
        .stale_threshold(SECOND)
        .on_compromise(move |lost| hook.lock().unwrap().push(lost.clone()))
        .build();
    let guard = lock.acquire().await.unwrap();
    // A peer evicts this hold: it commits a generation without it.
    let next = head_generation(&path) + 1;
    std::fs::write(
        root(&path).join(format!("gen/{next:020}")),
        format!("filelock-rw/1\ngeneration={next}\n"),
    )
    .unwrap();
    let lost = tokio::time::timeout(10 * SECOND, guard.lost())
        .await
        .unwrap();
    let Lost::LeaseCompromised {
        reason, path: at, ..
    } = &lost
    else {
        panic!("{lost:?}");
    };
    assert_eq!(*reason, CompromiseReason::Evicted);
    assert_eq!(at, lock.path());
    assert_eq!(
        lost.to_string(),
        format!("the lease '{}' was lost (evicted)", lock.path().display())
    );
    assert!(guard.is_lost());
    assert_eq!(*seen.lock().unwrap(), vec![lost]);
    guard.release().unwrap();
    assert!(holders(&path).is_empty());
}

// ---- bad input, at once ------------------------------------------------------------------

#[tokio::test]
async fn bad_settings_and_paths_fail_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let invalid = [
        SoftReadWriteLock::builder(&path)
            .heartbeat_interval(Duration::ZERO)
            .build(),
        SoftReadWriteLock::builder(&path)
            .heartbeat_interval(SECOND)
            .stale_threshold(SECOND)
            .build(),
        SoftReadWriteLock::builder(&path)
            .stale_threshold(SECOND)
            .heartbeat_interval(Duration::from_millis(100))
            .poll_interval(SECOND)
            .build(),
        SoftReadWriteLock::builder(&path)
            .poll_interval(Duration::ZERO)
            .build(),
    ];
    for lock in &invalid {
        assert!(
            matches!(lock.acquire().await, Err(Error::InvalidSetting { .. })),
            "{lock:?}"
        );
        assert!(matches!(
            lock.blocking_try_acquire_shared(),
            Err(Error::InvalidSetting { .. })
        ));
    }
    assert!(!root(&path).exists(), "nothing was created");
    assert!(matches!(
        SoftReadWriteLock::new("").acquire().await,
        Err(Error::InvalidPath { .. })
    ));
    // A parent that is a file: an I/O error at once, not a wait.
    std::fs::write(dir.path().join("file"), b"").unwrap();
    let under_file = SoftReadWriteLock::new(dir.path().join("file/x.lock"));
    let err = under_file.acquire().await.unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
}

#[tokio::test]
async fn a_malformed_log_or_a_symlinked_root_fails_closed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    plant_dead_writer(&path, DEAD, "30.0");
    std::fs::write(
        root(&path).join("gen/00000000000000000002"),
        "filelock-rw/1\ngeneration=7\n",
    )
    .unwrap();
    let lock = SoftReadWriteLock::new(&path);
    let err = tokio::time::timeout(10 * SECOND, lock.acquire_shared())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Protocol { reason, .. } if reason.contains("malformed generation record")),
        "{err:?}"
    );
    assert_eq!(err.path(), lock.path());

    let other = dir.path().join("other.lock");
    std::fs::create_dir(dir.path().join("elsewhere")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("elsewhere"), root(&other)).unwrap();
    let err = SoftReadWriteLock::new(&other)
        .blocking_acquire()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Protocol { reason, .. } if reason.contains("symlink")),
        "{err:?}"
    );
}

#[test]
fn specs_name_the_lock_and_bad_ones_are_refused() {
    let lock = tokio_filelock::open("softrw:/tmp/x.lock?heartbeat=2&stale=7").unwrap();
    assert_eq!(lock.spec(), "softrw:/tmp/x.lock?heartbeat=2&stale=7");
    assert_eq!(
        tokio_filelock::open("softrw:/tmp/x.lock").unwrap().spec(),
        "softrw:/tmp/x.lock?heartbeat=30&stale=90"
    );
    for bad in [
        "softrw:",
        "softrw:?stale=3",
        "softrw:/x?stale=0",
        "softrw:/x?ttl=3",
        "softrw:/x?stale",
    ] {
        assert!(
            matches!(tokio_filelock::open(bad), Err(Error::InvalidSpec { .. })),
            "{bad}"
        );
    }
}

#[test]
fn the_lock_its_builder_and_its_futures_can_move_anywhere() {
    fn send_sync_unpin_static<T: Send + Sync + Unpin + 'static>() {}
    fn send_static<T: Send + 'static>(_: &T) {}
    send_sync_unpin_static::<SoftReadWriteLock>();
    send_sync_unpin_static::<tokio_filelock::SoftReadWriteLockBuilder>();
    let lock = SoftReadWriteLock::new("/nonexistent/bounds.lock");
    let futures = (
        lock.acquire(),
        lock.acquire_timeout(SECOND),
        lock.try_acquire(),
        lock.acquire_shared(),
        lock.acquire_shared_timeout(SECOND),
        lock.try_acquire_shared(),
    );
    drop(lock); // `'static`: they do not borrow the handle
    send_static(&futures.0);
    send_static(&futures.1);
    send_static(&futures.2);
    send_static(&futures.3);
    send_static(&futures.4);
    send_static(&futures.5);
}

#[tokio::test]
async fn waiting_forever_for_a_hold_of_ones_own_is_would_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let lock = lock(path.to_str().unwrap(), "10", "60");
    let read = lock.acquire_shared().await.unwrap();
    let second = lock.acquire_shared().await.unwrap(); // no writer queued: readers share
    let err = tokio::time::timeout(10 * SECOND, lock.acquire())
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::WouldDeadlock { .. }), "{err:?}");
    assert!(
        !head(&path).contains("writer="),
        "the would-be writer withdrew"
    );
    assert!(matches!(
        lock.acquire_timeout(Duration::from_millis(100)).await,
        Err(Error::Timeout { .. })
    ));
    drop((read, second));
    let write = lock.acquire().await.unwrap();
    let err = tokio::time::timeout(10 * SECOND, lock.acquire_shared())
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::WouldDeadlock { .. }), "{err:?}");
    let other = lock.clone();
    let mut elsewhere = tokio::spawn(async move { other.acquire_shared().await });
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut elsewhere)
            .await
            .is_err(),
        "another task waits instead of failing"
    );
    write.release().unwrap();
    elsewhere
        .await
        .unwrap()
        .expect("another task just waits")
        .release()
        .unwrap();
}

//! A lock file renamed away or replaced while it is held and waited for (issue 16, item 2).
//!
//! `flock` locks a file (an inode), not a name. After `mv P P.old` a newcomer locks the new
//! file at `P`; a waiter that kept `P.old` open between attempts must not win on it when its
//! holder lets go: the path no longer names it. And a waiter must follow a file replaced by
//! rename-over to the new one, not stay loyal to the old inode.
//!
//! Each test stops the waiter inside its first wait (its `on_wait` hook blocks until the
//! test says go), so the rename, the newcomer and the release all happen, for real, between
//! the waiter's first attempt and its next one. Holders and newcomers are child processes.
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

use common::{CHILD_WAIT, ChildProcess};
use tokio_filelock::{Error, FileLock, LockGuard};

#[test]
fn child_entry() {
    common::child_entry(common::hold_role);
}

/// How the waiter acquires.
#[derive(Clone, Copy, Debug)]
enum Flavor {
    Async,
    Sync,
}

/// How long the waiter may wait once let go: it attempts at least once more in that time
/// (its next attempt is due 1 ms after the hook returns, and one is made at the deadline).
const WAIT: Duration = Duration::from_millis(300);

/// A waiter on `path` that is stopped in its first wait until [`Gate::go`].
struct Gate {
    waiting: mpsc::Receiver<()>,
    go: mpsc::Sender<()>,
    result: mpsc::Receiver<Result<LockGuard, Error>>,
}

impl Gate {
    /// Starts a waiter (in a thread of its own) that acquires `path` with a timeout of
    /// [`WAIT`], and returns once it has found the lock held and is waiting.
    fn start(path: &Path, flavor: Flavor) -> Gate {
        let (waiting_tx, waiting) = mpsc::channel();
        let (go, go_rx) = mpsc::channel::<()>();
        let hook = Mutex::new((waiting_tx, go_rx));
        let lock = FileLock::builder(path)
            .on_wait(move |_| {
                let hook = hook.lock().unwrap();
                let _ = hook.0.send(());
                let _ = hook.1.recv_timeout(CHILD_WAIT);
            })
            .build();
        let (result_tx, result) = mpsc::channel();
        std::thread::spawn(move || {
            let result = match flavor {
                Flavor::Sync => lock.blocking_acquire_timeout(WAIT),
                Flavor::Async => tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(lock.acquire_timeout(WAIT)),
            };
            let _ = result_tx.send(result);
        });
        waiting
            .recv_timeout(CHILD_WAIT)
            .expect("the waiter found the lock held");
        Gate {
            waiting,
            go,
            result,
        }
    }

    /// Lets the waiter go on, and returns what its acquire gave.
    fn go(self) -> Result<LockGuard, Error> {
        self.go.send(()).unwrap();
        let result = self
            .result
            .recv_timeout(CHILD_WAIT)
            .expect("the waiter ended");
        assert!(self.waiting.try_recv().is_err(), "the hook runs once");
        result
    }
}

fn holder(path: &Path) -> ChildProcess {
    let mut child = common::spawn("hold", &[path.to_str().unwrap()]);
    child.expect("acquired");
    child
}

/// Ends a holder child: it releases and exits (reaped, so the release has happened).
fn release(mut child: ChildProcess) {
    assert!(child.wait_status(CHILD_WAIT).success());
}

/// Whether one attempt through a new handle on `path` wins (and lets go at once).
fn free(path: &Path) -> bool {
    FileLock::new(path)
        .blocking_try_acquire()
        .unwrap()
        .is_some()
}

fn paths(dir: &tempfile::TempDir) -> (PathBuf, PathBuf) {
    (dir.path().join("p.lock"), dir.path().join("p.lock.old"))
}

/// On Linux the holder is named from /proc/locks: it must be the newcomer on the file at the
/// path, not the holder of the file renamed away.
fn assert_names_holder(err: &Error, pid: u32) {
    assert!(err.is_timeout(), "{err:?}");
    if cfg!(target_os = "linux") {
        let Error::Timeout { holder, .. } = err else {
            unreachable!()
        };
        assert_eq!(holder.as_ref().map(|h| h.pid), Some(pid), "{err}");
    }
}

/// H holds P, W waits (keeping P open), `mv P P.old`, N locks the new P, H releases.
/// W must not win on P.old while N holds P; it times out naming N.
fn renamed_away_then_released(flavor: Flavor) {
    let dir = tempfile::tempdir().unwrap();
    let (path, old) = paths(&dir);
    let h = holder(&path);
    let w = Gate::start(&path, flavor);
    std::fs::rename(&path, &old).unwrap();
    let n = holder(&path);
    release(h);
    let err = match w.go() {
        Ok(_guard) => panic!("won on the renamed-away file while the newcomer holds the path"),
        Err(err) => err,
    };
    assert_names_holder(&err, n.id());
    drop(n);
}

/// H holds P, W waits (keeping P open), H releases, and then, before W's next attempt,
/// `mv P P.old` and N locks the new P. The same outcome.
fn released_then_renamed_away(flavor: Flavor) {
    let dir = tempfile::tempdir().unwrap();
    let (path, old) = paths(&dir);
    let h = holder(&path);
    let w = Gate::start(&path, flavor);
    release(h);
    std::fs::rename(&path, &old).unwrap();
    let n = holder(&path);
    let err = match w.go() {
        Ok(_guard) => panic!("won on the renamed-away file while the newcomer holds the path"),
        Err(err) => err,
    };
    assert_names_holder(&err, n.id());
    drop(n);
}

#[test]
fn async_waiter_never_wins_on_a_file_renamed_away_before_its_holder_lets_go() {
    renamed_away_then_released(Flavor::Async);
}

#[test]
fn sync_waiter_never_wins_on_a_file_renamed_away_before_its_holder_lets_go() {
    renamed_away_then_released(Flavor::Sync);
}

#[test]
fn async_waiter_never_wins_on_a_file_renamed_away_after_its_holder_let_go() {
    released_then_renamed_away(Flavor::Async);
}

#[test]
fn sync_waiter_never_wins_on_a_file_renamed_away_after_its_holder_let_go() {
    released_then_renamed_away(Flavor::Sync);
}

/// H holds P, W waits, a new file is renamed over P (H keeps its lock on the old inode).
/// W must take the new file, which is free, not wait for the old one until it times out.
fn replaced_by_rename_over(flavor: Flavor) {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = paths(&dir);
    let h = holder(&path);
    let w = Gate::start(&path, flavor);
    let new = dir.path().join("p.lock.new");
    std::fs::write(&new, b"").unwrap();
    std::fs::rename(&new, &path).unwrap();
    let guard = w.go().expect("the file at the path is free");
    assert!(!free(&path), "the guard holds the file at the path");
    drop(guard);
    assert!(free(&path));
    drop(h);
}

#[test]
fn async_waiter_follows_a_file_replaced_by_rename_over() {
    replaced_by_rename_over(Flavor::Async);
}

#[test]
fn sync_waiter_follows_a_file_replaced_by_rename_over() {
    replaced_by_rename_over(Flavor::Sync);
}

/// H holds P, W waits, a new file is renamed over P and N locks it: W's timeout names N,
/// who holds the file at the path, not H, who holds the replaced one.
#[test]
fn the_timeout_names_the_holder_of_the_file_at_the_path_after_a_rename_over() {
    for flavor in [Flavor::Async, Flavor::Sync] {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = paths(&dir);
        let h = holder(&path);
        let w = Gate::start(&path, flavor);
        let new = dir.path().join("p.lock.new");
        std::fs::write(&new, b"").unwrap();
        std::fs::rename(&new, &path).unwrap();
        let n = holder(&path);
        let err = match w.go() {
            Ok(_guard) => panic!("{flavor:?}: won while the newcomer holds the path"),
            Err(err) => err,
        };
        assert_names_holder(&err, n.id());
        drop((h, n));
    }
}

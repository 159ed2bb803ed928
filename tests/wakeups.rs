//! Wake-ups: a release wakes waiters at once (in this process through the queue, across
//! processes through the file watch on Linux), in arrival order, without ever breaking
//! exclusion, and cancelled waiters leave no watch, queue entry or descriptor behind.
//!
//! "With the clock frozen": under paused time, Tokio's clock does not auto-advance while a
//! `spawn_blocking` task runs. These tests wait for the outcome inside one, so no backoff
//! timer can fire meanwhile: only a wake-up can end the wait. A lost wake-up fails the test
//! (after a bounded real wait) instead of being rescued by polling.

mod common;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_filelock::{FileLock, Lock, LockGuard, SoftFileLock};

#[test]
fn child_entry() {
    common::child_entry(run_role);
}

fn run_role(role: &str, args: &[String]) {
    match role {
        // Holds the lock on args[0] until told anything (or stdin closes).
        "hold" | "hold_kept" => common::hold_role(role, args),
        // Tries once on args[0] and reports.
        "try" => {
            let lock = FileLock::new(&args[0]);
            match lock.blocking_try_acquire().unwrap() {
                Some(_) => common::say("won"),
                None => common::say("busy"),
            }
        }
        // Counter workload with wake-ups: args = lock, counter, tasks, increments each.
        // Every task has its own handle, so tasks wait in this process's queue and the
        // process waits on the file watch.
        "count" => {
            let tasks: usize = args[2].parse().unwrap();
            let each: usize = args[3].parse().unwrap();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let (lock, counter) = (PathBuf::from(&args[0]), PathBuf::from(&args[1]));
            common::ready_steady_go();
            rt.block_on(async {
                let handles: Vec<_> = (0..tasks)
                    .map(|_| {
                        let lock = FileLock::new(&lock);
                        let counter = counter.clone();
                        tokio::spawn(async move {
                            for _ in 0..each {
                                let guard = lock.acquire().await.unwrap();
                                increment(&counter).await;
                                drop(guard);
                            }
                        })
                    })
                    .collect();
                for handle in handles {
                    handle.await.unwrap();
                }
            });
            common::say("done");
        }
        other => panic!("unknown role {other}"),
    }
}

/// Read, yield (so that an intruder would get in), write: loses counts without exclusion.
async fn increment(counter: &Path) {
    let value: u64 = std::fs::read_to_string(counter)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    tokio::task::yield_now().await;
    std::fs::write(counter, (value + 1).to_string()).unwrap();
}

fn lock_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("wake.lock")
}

/// Runs `until` on the blocking pool (freezing the paused clock) and returns its result.
async fn with_clock_frozen<T: Send + 'static>(until: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(until).await.unwrap()
}

/// A lock whose poll is so slow that only a wake-up can end a wait in these tests.
fn slow_poll(path: &Path) -> FileLock {
    FileLock::builder(path)
        .poll_interval(Duration::from_secs(3600))
        .build()
}

/// Spawns a task that acquires `lock`, reports `id` on `tx`, and releases at once.
fn waiter(
    lock: impl Lock + 'static,
    tx: mpsc::Sender<usize>,
    id: usize,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let guard = lock.acquire().await.unwrap();
        tx.send(id).unwrap();
        drop(guard);
    })
}

#[tokio::test(start_paused = true)]
async fn an_in_process_release_wakes_the_waiter_with_the_clock_frozen() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let guard = FileLock::new(&path).acquire().await.unwrap();
    let (tx, rx) = mpsc::channel();
    let task = waiter(slow_poll(&path), tx, 0);
    // Let the waiter fail, line up and back off far beyond any test's length.
    tokio::time::sleep(Duration::from_secs(600)).await;
    let got = with_clock_frozen(move || {
        drop(guard);
        rx.recv_timeout(common::CHILD_WAIT)
    })
    .await;
    assert_eq!(got, Ok(0), "the release did not wake the waiter");
    task.await.unwrap();
}

#[cfg(target_os = "linux")]
#[tokio::test(start_paused = true)]
async fn a_release_in_another_process_wakes_the_waiter_with_the_clock_frozen() {
    a_release_in_another_process_wakes_the_waiter("hold").await;
}

/// The holder's handle kept its lock file open between holds: its release still closes
/// it, since the waiter marked the file, and the close is what wakes a waiter in another
/// process (an unlock alone would not be seen).
#[cfg(target_os = "linux")]
#[tokio::test(start_paused = true)]
async fn a_release_through_a_kept_descriptor_in_another_process_wakes_the_waiter() {
    a_release_in_another_process_wakes_the_waiter("hold_kept").await;
}

/// A holder child of `role` releases while a waiter of this process, its next timed attempt
/// an hour away, waits with the clock frozen: only the file watch can wake it.
#[cfg(target_os = "linux")]
async fn a_release_in_another_process_wakes_the_waiter(role: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let mut holder = common::spawn(role, &[path.to_str().unwrap()]);
    holder.expect("acquired");
    let (tx, rx) = mpsc::channel();
    let task = waiter(slow_poll(&path), tx, 0);
    tokio::time::sleep(Duration::from_secs(600)).await;
    let got = with_clock_frozen(move || {
        holder.tell("release");
        rx.recv_timeout(common::CHILD_WAIT)
    })
    .await;
    assert_eq!(got, Ok(0), "the release did not wake the waiter");
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn waiters_in_this_process_are_woken_in_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let guard = FileLock::new(&path).acquire().await.unwrap();
    let locks = (0..4).map(|_| slow_poll(&path)).collect();
    assert_eq!(order_after_release(guard, locks).await, vec![0, 1, 2, 3]);
}

/// Starts one waiter per lock of `locks`, in order, each given time to line up; then
/// releases `guard` with the clock frozen, and returns the order in which they got the
/// lock.
async fn order_after_release<L: Lock + 'static>(guard: LockGuard, locks: Vec<L>) -> Vec<usize> {
    let (tx, rx) = mpsc::channel();
    let count = locks.len();
    let mut tasks = Vec::new();
    for (id, lock) in locks.into_iter().enumerate() {
        tasks.push(waiter(lock, tx.clone(), id));
        tokio::time::sleep(Duration::from_secs(60)).await; // it has lined up
    }
    let order = with_clock_frozen(move || {
        drop(guard);
        (0..count)
            .map(|_| rx.recv_timeout(common::CHILD_WAIT))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .expect("every waiter gets the lock, woken with the clock frozen");
    for task in tasks {
        task.await.unwrap();
    }
    order
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_head_hands_its_turn_to_the_next_waiter() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let guard = FileLock::new(&path).acquire().await.unwrap();
    let (tx, rx) = mpsc::channel();
    let head = waiter(slow_poll(&path), tx.clone(), 0);
    tokio::time::sleep(Duration::from_secs(60)).await;
    let next = waiter(slow_poll(&path), tx, 1);
    tokio::time::sleep(Duration::from_secs(60)).await;
    head.abort();
    assert!(head.await.unwrap_err().is_cancelled());
    let got = with_clock_frozen(move || {
        drop(guard);
        rx.recv_timeout(common::CHILD_WAIT)
    })
    .await;
    assert_eq!(got, Ok(1));
    next.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn wake_ups_never_let_two_tasks_in() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let inside = Arc::new(Mutex::new(false));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let lock = FileLock::new(&path);
            let inside = inside.clone();
            tokio::spawn(async move {
                for round in 0..10 {
                    let guard = lock.acquire().await.unwrap();
                    assert!(!std::mem::replace(&mut *inside.lock().unwrap(), true));
                    tokio::time::sleep(Duration::from_micros(100 + (i * 37 + round) % 500)).await;
                    *inside.lock().unwrap() = false;
                    drop(guard);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

#[test]
fn wake_ups_never_break_exclusion_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let counter = dir.path().join("counter");
    std::fs::write(&counter, "0").unwrap();
    let (procs, tasks, each) = (3, 3, 30);
    let args = [
        path.to_str().unwrap(),
        counter.to_str().unwrap(),
        &tasks.to_string(),
        &each.to_string(),
    ];
    let mut children: Vec<_> = (0..procs).map(|_| common::spawn("count", &args)).collect();
    common::start_together(&mut children, |child| child);
    for child in &mut children {
        child.expect("done");
        assert!(child.wait_success());
    }
    let total: usize = std::fs::read_to_string(&counter)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(total, procs * tasks * each);
}

/// Descriptors of this process open on `path`.
#[cfg(target_os = "linux")]
fn descriptors_on(path: &Path) -> usize {
    let target = std::fs::canonicalize(path).unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|link| *link == target)
        .count()
}

/// inotify watches of this process on the inode of `path` (from /proc/self/fdinfo).
#[cfg(target_os = "linux")]
fn watches_on(path: &Path) -> usize {
    use std::os::unix::fs::MetadataExt;
    let ino = format!("ino:{:x} ", std::fs::metadata(path).unwrap().ino());
    std::fs::read_dir("/proc/self/fdinfo")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .flat_map(|info| {
            info.lines()
                .filter(|l| l.starts_with("inotify wd:") && l.contains(&ino))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .count()
}

#[cfg(target_os = "linux")]
#[tokio::test(start_paused = true)]
async fn cancelled_waiters_leave_no_watch_queue_entry_or_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let mut holder = common::spawn("hold", &[path.to_str().unwrap()]);
    holder.expect("acquired");
    let lock = slow_poll(&path);
    // Cancel waiters in every way while they wait with their watch armed: timeout,
    // select!, abort.
    let mut waiting = Vec::new();
    for _ in 0..8 {
        let lock = lock.clone();
        waiting.push(tokio::spawn(async move { lock.acquire().await.map(drop) }));
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
    // The head keeps its descriptor open between attempts (and the watcher thread a copy
    // of it for its retry); a waiter that lined up behind it before its own first attempt
    // has none yet (how many did depends on timing).
    let open = descriptors_on(&path);
    assert!((2..=9).contains(&open), "{open} descriptors open");
    assert_eq!(watches_on(&path), 1, "only the head watches the file");
    let timed_out = lock.acquire_timeout(Duration::from_secs(30)).await;
    assert!(timed_out.is_err());
    tokio::select! {
        _ = lock.acquire() => panic!("the lock is held elsewhere"),
        _ = tokio::time::sleep(Duration::from_secs(30)) => {}
    }
    for task in &waiting {
        task.abort();
    }
    for task in waiting {
        assert!(task.await.unwrap_err().is_cancelled());
    }
    assert_eq!(descriptors_on(&path), 0);
    // The file's watch stays, idle, for the next waiter on it (it goes at the file's next
    // event): one at most, however many waiters were cancelled.
    assert!(watches_on(&path) <= 1);
    // Nothing of them lingers in the queue: a new waiter is the head, armed and woken by
    // the release with the clock frozen.
    let (tx, rx) = mpsc::channel();
    let task = waiter(slow_poll(&path), tx, 7);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(watches_on(&path), 1);
    let got = with_clock_frozen(move || {
        holder.tell("release");
        rx.recv_timeout(common::CHILD_WAIT)
    })
    .await;
    assert_eq!(got, Ok(7));
    task.await.unwrap();
    assert_eq!(descriptors_on(&path), 0);
    assert!(watches_on(&path) <= 1);
    // And the lock is free for anyone.
    let mut other = common::spawn("try", &[path.to_str().unwrap()]);
    other.expect("won");
}

#[cfg(target_os = "linux")]
#[tokio::test(start_paused = true)]
async fn a_crowd_behind_a_waiter_makes_no_attempt_of_its_own_until_its_turn() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let guard = FileLock::new(&path).acquire().await.unwrap();
    let (tx, rx) = mpsc::channel();
    let first = waiter(slow_poll(&path), tx.clone(), 0);
    tokio::time::sleep(Duration::from_secs(60)).await;
    // The first waiter's, and the watcher thread's copy of it for its retry.
    let first_waiters = 2;
    assert_eq!(
        descriptors_on(&path),
        1 + first_waiters,
        "the holder's and the first waiter's"
    );
    let crowd: Vec<_> = (1..=8)
        .map(|id| waiter(slow_poll(&path), tx.clone(), id))
        .collect();
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(
        descriptors_on(&path),
        1 + first_waiters,
        "the crowd lines up without opening the file"
    );
    let order = with_clock_frozen(move || {
        drop(guard);
        (0..9)
            .map(|_| rx.recv_timeout(common::CHILD_WAIT))
            .collect::<Result<Vec<_>, _>>()
    })
    .await;
    assert_eq!(order, Ok((0..9).collect::<Vec<_>>()));
    first.await.unwrap();
    for task in crowd {
        task.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn soft_lock_waiters_are_woken_in_order_though_each_hold_is_a_new_marker() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let soft = |path: &Path| {
        SoftFileLock::builder(path)
            .poll_interval(Duration::from_secs(3600))
            .build()
    };
    let guard = soft(&path).acquire().await.unwrap();
    let locks = (0..3).map(|_| soft(&path)).collect();
    assert_eq!(order_after_release(guard, locks).await, vec![0, 1, 2]);
}

/// A follower that skips its timed attempts (the head of the queue attempts for it) must
/// still notice when its own owner comes to hold the file through another handle: an
/// endless wait is then `WouldDeadlock`, as for a waiter that attempts itself.
#[tokio::test(start_paused = true)]
async fn a_follower_whose_owner_came_to_hold_the_file_gets_would_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let first = FileLock::new(&path).acquire().await.unwrap();
    let ms = Duration::from_millis;

    // The queue, in arrival order: t2, o1 (owner O, handle 1), t3, o2 (owner O, handle 2).
    let t2_lock = FileLock::new(&path);
    let t2 = tokio::spawn(async move { drop(t2_lock.acquire().await.unwrap()) });
    tokio::time::sleep(ms(1)).await;
    let (o1_lock, o2_lock) = (FileLock::new(&path), FileLock::new(&path));
    let owner = tokio::spawn(async move {
        let (held, second) = tokio::join!(o1_lock.acquire(), async {
            tokio::time::sleep(ms(10)).await;
            o2_lock.acquire().await
        });
        (held.map(drop), second.map(drop))
    });
    tokio::time::sleep(ms(1)).await;
    let t3_lock = FileLock::new(&path);
    let t3 = tokio::spawn(async move { t3_lock.acquire().await.map(drop) });
    tokio::time::sleep(ms(20)).await;

    // t2 takes it and lets go; o1 takes it and keeps it (its task waits for o2); t3 is now
    // the head and waits on its schedule for ever; o2 follows t3.
    drop(first);
    t2.await.unwrap();
    let (held, second) = tokio::time::timeout(Duration::from_secs(60), owner)
        .await
        .expect("o2 must not wait for ever behind t3")
        .unwrap();
    assert!(held.is_ok());
    assert!(
        matches!(second, Err(tokio_filelock::Error::WouldDeadlock { .. })),
        "{second:?}"
    );
    // With o1's guard gone, t3 gets the lock.
    tokio::time::timeout(Duration::from_secs(60), t3)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// Issue 16, item 5: the waiting hook runs once for every acquire that is going to wait,
/// also for one that lines up behind another waiter of this process without an attempt of
/// its own (it used to wait, skip its attempts and time out without a word). And it names
/// the holder the queue waits for.
#[tokio::test(start_paused = true)]
async fn the_waiting_hook_runs_once_for_a_waiter_that_lines_up_behind_another() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    // Held by another task: this test's body is the waiters' owner, and an owner never
    // lines up behind a hold of its own.
    let holder = FileLock::new(&path);
    let _guard = tokio::spawn(async move { holder.acquire().await.unwrap() })
        .await
        .unwrap();
    let hooked = |calls: &Arc<Mutex<Vec<Option<u32>>>>| {
        let calls = calls.clone();
        FileLock::builder(&path)
            .on_wait(move |event| calls.lock().unwrap().push(event.holder().map(|h| h.pid)))
            .build()
    };
    let _sub = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_test_writer()
            .finish(),
    );
    let first_calls = Arc::new(Mutex::new(Vec::new()));
    let first = hooked(&first_calls);
    let head = tokio::spawn(async move { first.acquire_timeout(Duration::from_secs(3600)).await });
    tokio::time::sleep(Duration::from_secs(60)).await; // the head waits in the queue
    assert_eq!(first_calls.lock().unwrap().len(), 1);

    let second_calls = Arc::new(Mutex::new(Vec::new()));
    let second = hooked(&second_calls);
    let err = second
        .acquire_timeout(Duration::from_millis(800))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    let calls = second_calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "the follower's hook runs once: {calls:?}");
    if cfg!(target_os = "linux") {
        assert_eq!(calls[0], Some(std::process::id()), "it names the holder");
    }
    assert_eq!(first_calls.lock().unwrap().len(), 1, "the head's ran once");
    head.abort();
}

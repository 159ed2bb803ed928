//! The rows of the peers table: each crate and call a user could pick to lock a file, and how
//! one hold is taken with it (open the existing lock file, lock, run `held`, unlock, close).

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::Duration;

use tokio_filelock::FileLock;

/// Where an async acquire runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Flavor {
    /// A synchronous call.
    Sync,
    /// In a task spawned on a multi-thread runtime (the usual place: a server's handler).
    Task,
    /// In the future a multi-thread runtime's `block_on` drives (a `#[tokio::main]` body).
    BlockOn,
    /// In `block_on` of a current-thread runtime with only time enabled (no IO driver).
    NoIo,
}

/// One way of taking the lock.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Row {
    Raw,
    OursTask,
    OursBlockOn,
    OursNoIo,
    OursSync,
    OursSyncTimeout,
    Fs4Sync,
    Fs4Tokio,
    FdLock,
    AsyncFdLockAsync,
    AsyncFdLockSync,
    Filelock07Sync,
    Filelock07Async,
    Fslock,
    NamedLock,
}

/// The timeout of the `blocking_acquire_timeout` row: long enough never to expire here.
const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

impl Row {
    pub const ALL: [Row; 15] = [
        Row::Raw,
        Row::OursTask,
        Row::OursBlockOn,
        Row::OursNoIo,
        Row::OursSync,
        Row::OursSyncTimeout,
        Row::Fs4Sync,
        Row::Fs4Tokio,
        Row::FdLock,
        Row::AsyncFdLockAsync,
        Row::AsyncFdLockSync,
        Row::Filelock07Sync,
        Row::Filelock07Async,
        Row::Fslock,
        Row::NamedLock,
    ];

    /// The name on the command line of a child.
    pub fn id(self) -> &'static str {
        match self {
            Row::Raw => "raw",
            Row::OursTask => "ours-task",
            Row::OursBlockOn => "ours-block-on",
            Row::OursNoIo => "ours-no-io",
            Row::OursSync => "ours-sync",
            Row::OursSyncTimeout => "ours-sync-timeout",
            Row::Fs4Sync => "fs4-sync",
            Row::Fs4Tokio => "fs4-tokio",
            Row::FdLock => "fd-lock",
            Row::AsyncFdLockAsync => "async-fd-lock-async",
            Row::AsyncFdLockSync => "async-fd-lock-sync",
            Row::Filelock07Sync => "filelock-sync",
            Row::Filelock07Async => "filelock-async",
            Row::Fslock => "fslock",
            Row::NamedLock => "named-lock",
        }
    }

    pub fn from_id(id: &str) -> Row {
        Row::ALL
            .into_iter()
            .find(|row| row.id() == id)
            .unwrap_or_else(|| panic!("unknown row {id}"))
    }

    /// The row's name in the table (Markdown).
    pub fn name(self) -> &'static str {
        match self {
            Row::Raw => "raw std `File::lock` (baseline)",
            Row::OursTask => "**tokio-filelock `acquire().await`, in a spawned task**",
            Row::OursBlockOn => "**tokio-filelock `acquire().await`, in `block_on`**",
            Row::OursNoIo => "**tokio-filelock `acquire().await`, runtime without IO**",
            Row::OursSync => "**tokio-filelock `blocking_acquire()`**",
            Row::OursSyncTimeout => "**tokio-filelock `blocking_acquire_timeout(10 s)`**",
            Row::Fs4Sync => "fs4 1.1 `FileExt::lock`",
            Row::Fs4Tokio => "fs4 1.1 tokio `AsyncFileExt::lock`",
            Row::FdLock => "fd-lock 4 `RwLock::write`",
            Row::AsyncFdLockAsync => "async-fd-lock 0.2 `lock_write().await`",
            Row::AsyncFdLockSync => "async-fd-lock 0.2 `blocking::LockWrite::lock_write`",
            Row::Filelock07Sync => "filelock 0.7 `lock()`",
            Row::Filelock07Async => "filelock 0.7 `lock_async().await`",
            Row::Fslock => "fslock 0.2 `LockFile::lock`",
            Row::NamedLock => "named-lock 0.4 `NamedLock::lock`",
        }
    }

    /// A short label (for the pictures).
    pub fn label(self) -> &'static str {
        match self {
            Row::Raw => "raw std File::lock",
            Row::OursTask => "ours, async in a task",
            Row::OursBlockOn => "ours, async in block_on",
            Row::OursNoIo => "ours, async without IO",
            Row::OursSync => "ours, blocking_acquire",
            Row::OursSyncTimeout => "ours, blocking_acquire_timeout",
            Row::Fs4Sync => "fs4 sync",
            Row::Fs4Tokio => "fs4 tokio",
            Row::FdLock => "fd-lock",
            Row::AsyncFdLockAsync => "async-fd-lock async",
            Row::AsyncFdLockSync => "async-fd-lock sync",
            Row::Filelock07Sync => "filelock 0.7 sync",
            Row::Filelock07Async => "filelock 0.7 lock_async",
            Row::Fslock => "fslock",
            Row::NamedLock => "named-lock",
        }
    }

    pub fn flavor(self) -> Flavor {
        match self {
            Row::OursTask | Row::Fs4Tokio | Row::AsyncFdLockAsync | Row::Filelock07Async => {
                Flavor::Task
            }
            Row::OursBlockOn => Flavor::BlockOn,
            Row::OursNoIo => Flavor::NoIo,
            _ => Flavor::Sync,
        }
    }

    pub fn is_ours(self) -> bool {
        matches!(
            self,
            Row::OursTask | Row::OursBlockOn | Row::OursNoIo | Row::OursSync | Row::OursSyncTimeout
        )
    }
}

/// Opens the existing lock file for reading and writing (what the raw baseline and the peers
/// that take a `File` are given).
pub fn open(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap()
}

/// One hold with a synchronous row: acquire, `held()`, release (the descriptor closed).
/// `ours` is the handle the `tokio-filelock` rows use (made once, as a program would).
pub fn hold_sync(row: Row, path: &Path, ours: &FileLock, held: impl FnOnce()) {
    match row {
        Row::Raw => {
            let file = open(path);
            file.lock().unwrap();
            held();
            file.unlock().unwrap();
        }
        Row::OursSync => {
            let guard = ours.blocking_acquire().unwrap();
            held();
            drop(guard);
        }
        Row::OursSyncTimeout => {
            let guard = ours.blocking_acquire_timeout(SYNC_TIMEOUT).unwrap();
            held();
            drop(guard);
        }
        Row::Fs4Sync => {
            let file = open(path);
            fs4::FileExt::lock(&file).unwrap();
            held();
            fs4::FileExt::unlock(&file).unwrap();
        }
        Row::FdLock => {
            let mut lock = fd_lock::RwLock::new(open(path));
            let guard = lock.write().unwrap();
            held();
            drop(guard);
        }
        Row::AsyncFdLockSync => {
            use async_fd_lock::blocking::LockWrite;
            let guard = open(path).lock_write().map_err(|e| e.error).unwrap();
            held();
            drop(guard);
        }
        Row::Filelock07Sync => {
            let guard = filelock::new(path).unwrap().lock_owned().unwrap();
            held();
            drop(guard);
        }
        Row::Fslock => {
            let mut file = fslock::LockFile::open(path).unwrap();
            file.lock().unwrap();
            held();
            file.unlock().unwrap();
        }
        Row::NamedLock => {
            let lock = named_lock::NamedLock::with_path(path).unwrap();
            let guard = lock.lock().unwrap();
            held();
            drop(guard);
        }
        other => panic!("{other:?} is not synchronous"),
    }
}

/// One hold with an async row, as [`hold_sync`].
pub async fn hold_async(row: Row, path: &Path, ours: &FileLock, held: impl FnOnce()) {
    match row {
        Row::OursTask | Row::OursBlockOn | Row::OursNoIo => {
            let guard = ours.acquire().await.unwrap();
            held();
            drop(guard);
        }
        Row::Fs4Tokio => {
            let file = tokio::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .await
                .unwrap();
            fs4::tokio::AsyncFileExt::lock(&file).unwrap();
            held();
            fs4::tokio::AsyncFileExt::unlock_async(&file).await.unwrap();
        }
        Row::AsyncFdLockAsync => {
            use async_fd_lock::LockWrite;
            let file = tokio::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .await
                .unwrap();
            let guard = file.lock_write().await.map_err(|e| e.error).unwrap();
            held();
            drop(guard);
        }
        Row::Filelock07Async => {
            let guard = filelock::new(path)
                .unwrap()
                .lock_owned_async()
                .await
                .unwrap();
            held();
            drop(guard);
        }
        other => panic!("{other:?} is not async"),
    }
}

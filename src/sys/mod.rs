//! Every operating-system call the crate makes on a lock file lives under this module.
//!
//! The platform modules expose the same small surface (`open`, `inspect`, `release`, ...)
//! so that the portable layers above have no `cfg` noise. `clippy.toml` forbids the std
//! lock methods everywhere else.

use std::fs::{File, TryLockError};
use std::io;

use crate::{LockMode, NodeKind};

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::{FileId, inspect, open, path_id, release, set_permissions};
mod local_fs;
pub(crate) use local_fs::is_local;
#[cfg(any(unix, windows))]
mod marker_node;
#[cfg(any(unix, windows))]
pub(crate) mod rw_records;
#[cfg(unix)]
pub(crate) mod unix_soft;
#[cfg(unix)]
pub(crate) use unix_soft as soft_calls;
#[cfg(unix)]
pub(crate) mod unix_strict;
#[cfg(unix)]
pub(crate) use unix_strict as strict_calls;

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) mod procfs;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use procfs::{cmdline, lock_holder};
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use unix::{AtPath, at_path};

/// `true` while `path` still names the file `id` (not unlinked, renamed away or replaced):
/// one `lstat`. For [`LockGuard::lost`](crate::LockGuard::lost) of file locks.
#[cfg(any(unix, windows))]
pub(crate) fn still_names(path: &std::path::Path, id: FileId) -> io::Result<bool> {
    match soft_calls::lstat(path) {
        Ok(node) => Ok(id.is(&node)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// A wait's timeout for `ppoll`/`kevent` (seconds capped at `i32::MAX`).
#[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
fn timespec(timeout: std::time::Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    }
}

/// What a release does to the lock file, so what a file watch waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Release {
    /// OS lock: the holder unlocks and closes its descriptor. (Waiters keep theirs open, so
    /// their attempts close nothing.)
    Close,
    /// Soft lock: the holder unlinks its marker. (Waiters open and close the marker to read
    /// it, so closes must not count.)
    Unlink,
}

/// One event of the watcher's change notification, for the watch `wd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WatchEvent {
    pub(crate) wd: i32,
    /// An OS lock's release: the file was closed by someone (Linux, FreeBSD), or an `flock`
    /// lock on it was unlocked (macOS).
    pub(crate) closed: bool,
    /// Its links or attributes changed, or it was deleted or moved (a marker's release, or
    /// the lock file replaced).
    pub(crate) replaced: bool,
    /// The watch is gone (file deleted, file system unmounted, watch removed).
    pub(crate) dead: bool,
}

#[cfg(target_os = "linux")]
mod linux_watch;
#[cfg(target_os = "linux")]
pub(crate) mod queue_file;
#[cfg(target_os = "linux")]
pub(crate) mod waiting_mark;
#[cfg(target_os = "linux")]
pub(crate) use linux_watch::Notifier;
#[cfg(any(target_os = "macos", target_os = "freebsd"))]
mod kqueue_watch;
#[cfg(any(target_os = "macos", target_os = "freebsd"))]
pub(crate) use kqueue_watch::Notifier;
#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "freebsd")))]
mod no_watch;
#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "freebsd")))]
pub(crate) use no_watch::Notifier;

/// Whether [`Notifier::add_watch`] can watch a file here (inotify on Linux, kqueue on macOS
/// and FreeBSD); elsewhere waiters rely on in-process wake-ups and their timers.
pub(crate) const FILE_WATCH: bool = cfg!(any(
    target_os = "linux",
    target_os = "macos",
    target_os = "freebsd"
));

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::{FileId, inspect, open, path_id, release, set_permissions};
#[cfg(windows)]
pub(crate) mod windows_soft;
#[cfg(windows)]
pub(crate) use windows_soft as soft_calls;

/// Who holds the OS lock: not known on this platform.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn lock_holder(_id: FileId, _wanted: LockMode) -> Option<LockEntry> {
    None
}

/// A held OS lock as the system lists it: who took it, and how.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LockEntry {
    pub(crate) pid: u32,
    pub(crate) mode: LockMode,
}

/// The size of an open file and how long ago it was last modified (zero if in the future).
pub(crate) fn len_and_age(file: &File) -> io::Result<(u64, std::time::Duration)> {
    let meta = file.metadata()?;
    let age = meta
        .modified()?
        .elapsed()
        .unwrap_or(std::time::Duration::ZERO);
    Ok((meta.len(), age))
}

/// Whether an open may create the lock file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Create {
    /// Only open an existing file (a missing one is `OpenFailure::MissingParent`).
    Never,
    /// Only create a new file (`O_EXCL`): an existing one is `OpenFailure::Exists`.
    New,
    /// Open it, creating it if missing (`O_CREAT`).
    IfMissing,
}

/// Why opening the lock file failed, as far as the attempt layer needs to know.
#[derive(Debug)]
pub(crate) enum OpenFailure {
    /// Try the same open again right away (interrupted, or the file vanished in a race).
    #[cfg_attr(windows, allow(dead_code))] // EINTR is a Unix thing
    Again,
    /// Asked to create a new file, and one exists: open the existing one.
    Exists,
    /// A directory on the way is missing: create the parents, then open again.
    MissingParent,
    /// Another process holds the file in a way that only time resolves (Windows: sharing
    /// violation, delete pending). Counts as contention.
    #[cfg_attr(unix, allow(dead_code))] // only Windows has such opens
    Busy,
    /// Something other than a regular file is at the path: a permanent error.
    NotAFile(NodeKind),
    /// The open failed for good: a permanent error.
    Failed(io::Error),
    /// The file opened, but asking what it is failed (Windows): a permanent error.
    #[cfg_attr(unix, allow(dead_code))] // only Windows asks at open
    InspectFailed(io::Error),
}

/// What one `fstat` of the opened lock file says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts {
    /// `None` for a regular file, else what is there instead.
    pub(crate) not_a_file: Option<NodeKind>,
    /// The file's identity (device and inode, or volume and file index).
    pub(crate) id: FileId,
    /// `false` once the file has been unlinked: a lock on it protects nothing.
    pub(crate) linked: bool,
    /// The permission bits, where the platform has them.
    pub(crate) permissions: Option<u32>,
}

/// Outcome of one non-blocking lock call.
pub(crate) enum TryLock {
    Acquired,
    Contended,
    /// `flock` is not supported on this file system (`ENOSYS`, `EOPNOTSUPP`, ...).
    Unsupported(io::Error),
    Failed(io::Error),
}

/// One non-blocking whole-file lock call, exactly as `std::fs::File::try_lock` makes it,
/// so that this crate, cargo, uv, Python `filelock` and `flock(1)` exclude each other.
#[expect(
    clippy::disallowed_methods,
    reason = "src/sys is the one place that makes the OS lock calls"
)]
pub(crate) fn try_lock(file: &File, mode: LockMode) -> TryLock {
    #[cfg(test)]
    if FLOCK_UNSUPPORTED.get() {
        return TryLock::Unsupported(io::Error::from(io::ErrorKind::Unsupported));
    }
    loop {
        let result = match mode {
            LockMode::Exclusive => file.try_lock(),
            LockMode::Shared => file.try_lock_shared(),
        };
        return match result {
            Ok(()) => TryLock::Acquired,
            Err(TryLockError::WouldBlock) => TryLock::Contended,
            Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(TryLockError::Error(e)) if is_unsupported(&e) => TryLock::Unsupported(e),
            Err(TryLockError::Error(e)) => TryLock::Failed(e),
        };
    }
}

#[cfg(test)]
thread_local! {
    /// Tests: make every `try_lock` on this thread report an unsupported `flock`, as on a
    /// file system without it (none can be mounted on a test machine without privileges).
    static FLOCK_UNSUPPORTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Tests: while a value lives, every `try_lock` on this thread reports an unsupported
/// `flock` (see `FLOCK_UNSUPPORTED`). The tests that use it are Unix-only.
#[cfg(all(test, unix))]
pub(crate) struct FlockUnsupported;

#[cfg(all(test, unix))]
impl FlockUnsupported {
    pub(crate) fn on() -> Self {
        FLOCK_UNSUPPORTED.set(true);
        FlockUnsupported
    }
}

#[cfg(all(test, unix))]
impl Drop for FlockUnsupported {
    fn drop(&mut self) {
        FLOCK_UNSUPPORTED.set(false);
    }
}

/// Releases the OS lock held through `file` (std's `unlock`). Callers close the file after.
#[cfg(unix)]
#[expect(
    clippy::disallowed_methods,
    reason = "src/sys is the one place that makes the OS lock calls"
)]
pub(crate) fn unlock(file: &File) -> io::Result<()> {
    file.unlock()
}

fn is_unsupported(e: &io::Error) -> bool {
    if e.kind() == io::ErrorKind::Unsupported {
        return true;
    }
    #[cfg(unix)]
    {
        matches!(
            e.raw_os_error(),
            Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP)
        )
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// Whether a contended attempt keeps its descriptor for the next one. On Windows it does
/// not: an open handle keeps a deleted (delete-pending) lock file alive and blocks the
/// holder's best-effort delete.
pub(crate) const KEEP_OPEN_WHILE_WAITING: bool = cfg!(unix);

//! The crate's error type: every variant names the lock path.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Holder;

/// Why a lock could not be acquired or released.
///
/// Every variant names the lock path. Permanent problems (a directory or a symlink at the
/// path, missing permission, a read-only file system, ...) are returned at once, never by
/// waiting out the timeout; only contention is retried. See the crate documentation for the
/// full table.
///
/// Messages follow `std`'s style: lowercase, no full stop, the cause not repeated (an
/// [`Error::Io`] returns the operating system's error from
/// [`source()`](std::error::Error::source) rather than printing it, so `anyhow`'s `{:#}`
/// shows it once). Text another process wrote (a holder's host or command line) is shown
/// escaped; see [`Holder`].
///
/// `Error` converts into [`std::io::Error`] (keeping the [`io::ErrorKind`]), so `?` works in
/// functions that return `io::Result`. An [`Error::Io`] caused by an operating-system error
/// converts into that very `io::Error`, so [`raw_os_error`](io::Error::raw_os_error) still
/// gives the code (its message then does not name the path: keep the `Error` where you
/// need it); every other error is wrapped, its message kept.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("app.lock");
/// let lock = tokio_filelock::FileLock::new(&path);
/// let _held = lock.blocking_acquire()?; // `?` turns `Error` into `io::Error`
///
/// let other = tokio_filelock::FileLock::new(&path);
/// let err = other.blocking_acquire_timeout(std::time::Duration::ZERO).unwrap_err();
/// assert!(matches!(err, tokio_filelock::Error::Timeout { .. }));
/// assert!(err.to_string().starts_with("the file lock '"));
/// assert_eq!(err.path(), path);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The lock is held elsewhere and the configured wait ran out (or only one attempt was
    /// allowed).
    ///
    /// Displays as `the file lock '<path>' could not be acquired: held by pid 4242 (cargo
    /// build); waited 10.000s` (Python `filelock`'s `The file lock '<path>' could not be
    /// acquired.`, in `std`'s style, with what is known after it).
    #[error(
        "the file lock '{}' could not be acquired: {}",
        path.display(),
        Waited(*waited, holder.as_deref(), *empty_marker)
    )]
    #[non_exhaustive]
    Timeout {
        /// The lock file.
        path: PathBuf,
        /// How long this acquire waited before giving up (zero for a single attempt).
        waited: Duration,
        /// Who held the lock when the acquire gave up, when that can be found (see
        /// [`Holder`]). A single attempt (`Duration::ZERO`, `blocking(false)`) on the OS
        /// lock does not look for it: on Linux that costs milliseconds, more than the
        /// attempt; ask [`FileLock::holder`](crate::FileLock::holder) when you need it.
        /// Boxed: it keeps `Error` small (clippy's `result_large_err`) on every platform.
        holder: Option<Box<Holder>>,
        /// `true` when the soft lock's marker was found **empty**. An empty marker is never
        /// broken, as in Python filelock: it is what a holder leaves between creating the
        /// marker and writing its record, and nothing tells one about to write from one
        /// killed in between. A marker that stays empty was left by such a killed holder;
        /// remove it by hand once no process can be holding the lock.
        empty_marker: bool,
    },

    /// The acquire's [`CancelToken`](crate::CancelToken) was cancelled while it waited (Python
    /// filelock's `cancel_check`). The lock was not taken.
    #[error(
        "the wait for the lock '{}' was cancelled after {waited:?}",
        path.display()
    )]
    Cancelled {
        /// The lock file.
        path: PathBuf,
        /// How long the acquire had waited.
        waited: Duration,
    },

    /// The current owner (task, or thread outside a task) holds this lock file already,
    /// through this handle or another, and asked to wait forever: that wait could never end.
    ///
    /// A guard moved to another task or thread still counts as its acquirer's hold (Rust
    /// cannot see a move), so after a move this fires although the wait would end when the
    /// guard's new keeper lets go. Then acquire with a timeout; to re-enter a hold of your
    /// own instead of waiting for it, build the handle with
    /// [`Reentrancy::Owner`](crate::Reentrancy::Owner).
    #[error(
        "the file lock '{}' is already held by this task or thread; waiting for it without a \
         timeout would never end (if the guard was moved to another task or thread, acquire \
         with a timeout; to re-enter your own hold, use Reentrancy::Owner)",
        path.display()
    )]
    WouldDeadlock {
        /// The lock file.
        path: PathBuf,
    },

    /// The current owner holds a shared lock on this handle and asked for an exclusive one:
    /// waiting would block on its own shared lock. Release the shared guard first.
    #[error(
        "the file lock '{}' is held shared by this task or thread; it cannot be upgraded to \
         exclusive in place (release the shared guard first)",
        path.display()
    )]
    UpgradeNotSupported {
        /// The lock file.
        path: PathBuf,
    },

    /// The path can never name a lock file (empty, or contains a NUL byte).
    #[error("invalid lock path '{}': {reason}", path.display())]
    InvalidPath {
        /// The path as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// Something other than a regular file is at the lock path.
    #[error("the lock path '{}' is a {kind}, not a regular file", path.display())]
    NotAFile {
        /// The lock file.
        path: PathBuf,
        /// What was found there instead.
        kind: NodeKind,
    },

    /// An operating-system call failed for a reason that waiting would not cure
    /// (permission, read-only file system, name too long, parent is a file, ...).
    #[error("could not {op} the lock file '{}'", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What was being done.
        op: Op,
        /// The operating system's error; its [`io::ErrorKind`] is preserved. Returned by
        /// [`source()`](std::error::Error::source), not repeated in the message.
        #[source]
        source: io::Error,
    },

    /// What was asked cannot be done here: `flock` is not supported on the lock file's
    /// file system and the fallback to the soft protocol is disabled
    /// ([`FileLockBuilder::fallback_to_soft`](crate::FileLockBuilder::fallback_to_soft)),
    /// a shared lock was asked of the soft protocol (it is exclusive only), or the soft
    /// protocol is not available on this platform.
    #[error("the file lock '{}' cannot be taken: {reason}", path.display())]
    Unsupported {
        /// The lock file.
        path: PathBuf,
        /// What is not supported.
        reason: &'static str,
        /// The operating system's error, when one said so.
        #[source]
        source: Option<io::Error>,
    },

    /// Releasing a soft lock found that its marker had been removed or replaced by someone
    /// else while it was held (by hand, or by a process that judged it stale). The node at
    /// the path was left alone; the lock may have been held by two processes.
    #[error(
        "the soft lock marker '{}' was removed or replaced by someone else while held; it was left alone",
        path.display()
    )]
    MarkerReplaced {
        /// The lock file.
        path: PathBuf,
    },

    /// A [`SoftFileLease`](crate::SoftFileLease) found a lease marker written with another
    /// lease duration than its own (Python filelock's `LeaseSettingsMismatch`): every
    /// contender for a path must agree on it, or one would take over a live holder. Returned
    /// at once.
    #[error(
        "the lease '{}' is held with a lease duration of {theirs} s, but this contender's is {ours} s; every contender for a path must agree on it",
        path.display()
    )]
    LeaseMismatch {
        /// The lock file.
        path: PathBuf,
        /// The holder's duration in seconds, as its marker spells it.
        theirs: String,
        /// This lock's duration in seconds, spelt the same way.
        ours: String,
    },

    /// A setting of the lock can never work (a lease duration of zero, a heartbeat interval
    /// not below the lease duration). Returned at once by every acquire.
    #[error("the lock '{}' is misconfigured: {reason}", path.display())]
    InvalidSetting {
        /// The lock file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },

    /// The files of a [`StrictSoftFileLock`](crate::StrictSoftFileLock) or a
    /// [`SoftReadWriteLock`](crate::SoftReadWriteLock) are not as their protocol needs them,
    /// and waiting would not change that (Python filelock's `SoftFileLockProtocolError`).
    /// Returned at once: the lock fails closed, and nothing is removed; inspect the entry
    /// before removing it by hand.
    ///
    /// Strict lock: an entry in its claim directory that is no claim of this protocol
    /// version, a malformed claim record, a coordination directory that is not a real
    /// directory or belongs to another account, a soft-lock marker at the lock path whose
    /// holder has exited, a file system without hard links. Read-write lock: a malformed
    /// generation record, a log with no readable snapshot or too many names, or a hold that
    /// could not withdraw from its log before its stale threshold.
    #[error(
        "the lock '{}' cannot be used: {reason}{}",
        path.display(),
        entry.as_ref().map(|e| format!(" (entry '{e}')")).unwrap_or_default()
    )]
    Protocol {
        /// The lock path (the protocol's files are under `<path>.filelock/` for the strict
        /// lock, `<path>.rw/` for the read-write lock).
        path: PathBuf,
        /// The entry at fault, if one is (escaped for display).
        entry: Option<String>,
        /// What is wrong.
        reason: String,
    },

    /// A lock spec ([`open`](crate::open), the CLI) or a lock name that can never name a
    /// lock: empty, an unknown scheme, a `postgres://` URL without `lock=` or that does not
    /// parse, a backend this build does not include.
    #[error("invalid lock spec '{}': {reason}", path.display())]
    InvalidSpec {
        /// The spec (or the lock name) as given, any password removed.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The `on_acquired` hook (for example
    /// [`FileLockBuilder::on_acquired`](crate::FileLockBuilder::on_acquired)) failed: the
    /// hold it was called for has been released, and the acquire fails with the hook's
    /// error as the source.
    #[error("the on_acquired hook of the lock '{}' failed: {source}", path.display())]
    OnAcquired {
        /// The lock file.
        path: PathBuf,
        /// What the hook returned.
        #[source]
        source: HookError,
    },

    /// The lock server ([`PgLock`](crate::postgres::PgLock)) could not be used: it cannot
    /// be reached, refused the login, has no such database, failed a query, or the session
    /// broke while acquiring. Returned at once, never by waiting out the timeout.
    #[error("the lock '{}' {what}: {source}", path.display())]
    Server {
        /// The lock, as `postgres://host:port/db?lock=NAME` (no password).
        path: PathBuf,
        /// What went wrong, by kind.
        what: ServerError,
        /// The client library's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// What an `on_acquired` hook returns on failure: any error, kept as the source of
/// [`Error::OnAcquired`].
pub type HookError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong with a lock server, in [`Error::Server`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerError {
    /// The server could not be reached (refused, no route, connect timeout, DNS).
    Unreachable,
    /// The server refused the login (wrong password, no such role, pg_hba rejection).
    AuthenticationFailed,
    /// The database named in the connection string does not exist.
    DatabaseMissing,
    /// The session broke (terminated, connection cut, server restarted) before the lock
    /// was won.
    SessionLost,
    /// The session is behind a pooler in transaction mode (PgBouncer): session locks would
    /// not hold there.
    Pooled,
    /// A query failed (permissions on the fencing table, ...).
    Query,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerError::Unreachable => "cannot reach its server",
            ServerError::AuthenticationFailed => "was refused by its server (authentication)",
            ServerError::DatabaseMissing => "names a database that does not exist",
            ServerError::SessionLost => "lost its server session",
            ServerError::Pooled => {
                "runs through a transaction pooler, where session locks do not hold"
            }
            ServerError::Query => "failed a query",
        })
    }
}

impl Error {
    /// The lock path this error is about.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            Error::Timeout { path, .. }
            | Error::Cancelled { path, .. }
            | Error::WouldDeadlock { path }
            | Error::UpgradeNotSupported { path }
            | Error::InvalidPath { path, .. }
            | Error::NotAFile { path, .. }
            | Error::Io { path, .. }
            | Error::Unsupported { path, .. }
            | Error::MarkerReplaced { path }
            | Error::InvalidSpec { path, .. }
            | Error::LeaseMismatch { path, .. }
            | Error::InvalidSetting { path, .. }
            | Error::Protocol { path, .. }
            | Error::OnAcquired { path, .. }
            | Error::Server { path, .. } => path,
        }
    }

    /// `true` for [`Error::Timeout`]: the lock is held elsewhere, trying later may succeed.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// The [`io::ErrorKind`] that best describes this error.
    #[must_use]
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Error::Timeout { .. } => io::ErrorKind::TimedOut,
            Error::WouldDeadlock { .. } | Error::UpgradeNotSupported { .. } => {
                io::ErrorKind::Deadlock
            }
            Error::InvalidPath { .. } => io::ErrorKind::InvalidInput,
            Error::NotAFile { kind, .. } => match kind {
                NodeKind::Directory => io::ErrorKind::IsADirectory,
                _ => io::ErrorKind::InvalidInput,
            },
            Error::Io { source, .. } => source.kind(),
            Error::Unsupported { .. } => io::ErrorKind::Unsupported,
            Error::MarkerReplaced { .. } | Error::OnAcquired { .. } => io::ErrorKind::Other,
            Error::Cancelled { .. } => io::ErrorKind::Other,
            Error::Protocol { .. } => io::ErrorKind::InvalidData,
            Error::InvalidSpec { .. }
            | Error::InvalidSetting { .. }
            | Error::LeaseMismatch { .. } => io::ErrorKind::InvalidInput,
            Error::Server { what, .. } => match what {
                ServerError::Unreachable => io::ErrorKind::ConnectionRefused,
                ServerError::AuthenticationFailed => io::ErrorKind::PermissionDenied,
                ServerError::DatabaseMissing => io::ErrorKind::NotFound,
                ServerError::SessionLost => io::ErrorKind::ConnectionAborted,
                ServerError::Pooled => io::ErrorKind::Unsupported,
                ServerError::Query => io::ErrorKind::Other,
            },
        }
    }

    pub(crate) fn io(path: &Path, op: Op, source: io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    }
}

impl From<Error> for io::Error {
    /// An [`Error::Io`] caused by an operating-system error becomes that `io::Error` (its
    /// [`raw_os_error`](io::Error::raw_os_error) kept); any other error is wrapped with its
    /// [`kind`](Error::kind).
    fn from(err: Error) -> Self {
        match err {
            Error::Io { source, .. } if source.raw_os_error().is_some() => source,
            err => io::Error::new(err.kind(), err),
        }
    }
}

/// The operation that failed, in [`Error::Io`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Opening (or creating) the lock file.
    Open,
    /// Creating the lock file's parent directories.
    CreateParent,
    /// Reading the lock file's metadata.
    Inspect,
    /// The non-blocking lock call itself.
    Lock,
    /// Releasing the lock.
    Unlock,
    /// Running an attempt on Tokio's blocking pool: there is no Tokio runtime, or it is
    /// shutting down.
    Spawn,
    /// Writing this process's record into a soft lock marker.
    WriteMarker,
    /// Breaking a stale soft lock marker.
    BreakStale,
    /// Publishing, listing or removing a strict lock's claims (or making their
    /// directories).
    Claim,
    /// Reading a [`SoftReadWriteLock`](crate::SoftReadWriteLock)'s generation log or
    /// holder records.
    ReadLog,
    /// Committing a generation to a [`SoftReadWriteLock`](crate::SoftReadWriteLock)'s log.
    Commit,
    /// Writing (creating, refreshing, removing) a
    /// [`SoftReadWriteLock`](crate::SoftReadWriteLock) holder record.
    WriteRecord,
    /// Removing a soft lock's marker by force
    /// ([`SoftFileLock::break_lock`](crate::SoftFileLock::break_lock)).
    BreakLock,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Open => "open",
            Op::CreateParent => "create the parent directory of",
            Op::Inspect => "inspect",
            Op::Lock => "lock",
            Op::Unlock => "unlock",
            Op::Spawn => "run an attempt for",
            Op::WriteMarker => "write the marker into",
            Op::BreakStale => "break the stale marker of",
            Op::Claim => "publish or remove the strict claims of",
            Op::ReadLog => "read the generation log of",
            Op::Commit => "commit a generation of",
            Op::WriteRecord => "write the holder record of",
            Op::BreakLock => "remove by force the marker of",
        })
    }
}

/// What was found at a lock path instead of a regular file, in [`Error::NotAFile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeKind {
    /// A directory.
    Directory,
    /// A symbolic link (never followed: it could point anywhere).
    Symlink,
    /// A named pipe.
    Fifo,
    /// A Unix domain socket.
    Socket,
    /// A block device.
    BlockDevice,
    /// A character device.
    CharDevice,
    /// Anything else that is not a regular file.
    Other,
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeKind::Directory => "directory",
            NodeKind::Symlink => "symbolic link",
            NodeKind::Fifo => "named pipe (FIFO)",
            NodeKind::Socket => "socket",
            NodeKind::BlockDevice => "block device",
            NodeKind::CharDevice => "character device",
            NodeKind::Other => "special file",
        })
    }
}

/// Formats the "what is known" tail of a timeout message: waited time, holder, and whether
/// the soft marker was empty.
struct Waited<'a>(Duration, Option<&'a Holder>, bool);

impl fmt::Display for Waited<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.2, self.1) {
            (true, _) => f.write_str(
                "its marker is empty, and an empty marker is never broken (a holder killed \
                 between creating and writing it leaves it so): remove it by hand if no \
                 process holds the lock",
            )?,
            (false, Some(holder)) => write!(f, "held by {holder}")?,
            (false, None) => f.write_str("held elsewhere")?,
        }
        if self.0.is_zero() {
            f.write_str("; one attempt, no wait")
        } else {
            write!(f, "; waited {:.3?}", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    fn missing() -> Error {
        let source = io::Error::from_raw_os_error(ENOENT);
        Error::io(Path::new("x.lock"), Op::Open, source)
    }

    /// "No such file": `ENOENT` on Unix, `ERROR_FILE_NOT_FOUND` on Windows.
    const ENOENT: i32 = 2;

    #[test]
    fn an_io_error_names_its_cause_once() {
        let err = missing();
        assert_eq!(err.to_string(), "could not open the lock file 'x.lock'");
        let cause = err
            .source()
            .expect("the OS error is the source")
            .to_string();
        assert!(!err.to_string().contains(&cause), "{err} repeats {cause}");
        // Each message in the chain differs from the one below it.
        let mut below = err.source();
        let mut above = err.to_string();
        while let Some(next) = below {
            assert!(!above.contains(&next.to_string()), "{above} / {next}");
            above = next.to_string();
            below = next.source();
        }
    }

    #[test]
    fn into_io_error_keeps_the_os_error() {
        let code = missing().kind();
        assert_eq!(code, io::ErrorKind::NotFound);
        let io = io::Error::from(missing());
        assert_eq!(io.raw_os_error(), Some(ENOENT));
        assert_eq!(io.kind(), io::ErrorKind::NotFound);
        // Errors without an OS error keep their message and kind.
        let timeout = io::Error::from(Error::Timeout {
            path: "t.lock".into(),
            waited: Duration::ZERO,
            holder: None,
            empty_marker: false,
        });
        assert_eq!(timeout.kind(), io::ErrorKind::TimedOut);
        assert_eq!(
            timeout.to_string(),
            "the file lock 't.lock' could not be acquired: held elsewhere; one attempt, no wait"
        );
    }

    #[test]
    fn messages_are_lowercase_without_a_full_stop() {
        let path = PathBuf::from("m.lock");
        let holder = Holder::new(4242, crate::LockMode::Exclusive);
        let errors = [
            missing(),
            Error::Timeout {
                path: path.clone(),
                waited: Duration::from_millis(1500),
                holder: Some(Box::new(holder.clone())),
                empty_marker: false,
            },
            Error::Timeout {
                path: path.clone(),
                waited: Duration::ZERO,
                holder: Some(Box::new(holder)),
                empty_marker: false,
            },
            Error::WouldDeadlock { path: path.clone() },
            Error::UpgradeNotSupported { path: path.clone() },
            Error::InvalidPath {
                path: path.clone(),
                reason: "empty",
            },
            Error::NotAFile {
                path: path.clone(),
                kind: NodeKind::Fifo,
            },
            Error::Unsupported {
                path: path.clone(),
                reason: "no",
                source: None,
            },
            Error::MarkerReplaced { path },
        ];
        for err in errors {
            let text = err.to_string();
            let first = text.chars().next().unwrap();
            assert!(first.is_lowercase(), "{text}");
            assert!(!text.ends_with('.'), "{text}");
        }
    }

    #[test]
    fn a_timeout_says_what_is_known() {
        let err = Error::Timeout {
            path: "m.lock".into(),
            waited: Duration::from_millis(1500),
            holder: Some(Box::new(Holder::new(4242, crate::LockMode::Exclusive))),
            empty_marker: false,
        };
        assert_eq!(
            err.to_string(),
            "the file lock 'm.lock' could not be acquired: held by pid 4242; waited 1.500s"
        );
    }
}

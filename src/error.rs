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
/// `Error` converts into [`std::io::Error`] (keeping the [`io::ErrorKind`]), so `?` works in
/// functions that return `io::Result`.
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
/// assert!(err.to_string().starts_with("The file lock '"));
/// assert_eq!(err.path(), path);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The lock is held elsewhere and the configured wait ran out (or only one attempt was
    /// allowed).
    #[error(
        "The file lock '{}' could not be acquired.{}",
        path.display(),
        Waited(*waited, holder.as_ref(), *empty_marker)
    )]
    #[non_exhaustive]
    Timeout {
        /// The lock file.
        path: PathBuf,
        /// How long this acquire waited before giving up (zero for a single attempt).
        waited: Duration,
        /// Who held the lock when the acquire gave up, when that can be found (see
        /// [`Holder`]).
        holder: Option<Holder>,
        /// `true` when the soft lock's marker was found **empty**. An empty marker is never
        /// broken, as in Python filelock: it is what a holder leaves between creating the
        /// marker and writing its record, and nothing tells one about to write from one
        /// killed in between. A marker that stays empty was left by such a killed holder;
        /// remove it by hand once no process can be holding the lock.
        empty_marker: bool,
    },

    /// The current owner (task, or thread outside a task) already holds this lock file
    /// through another handle, and asked to wait forever: that wait could never end.
    #[error(
        "The file lock '{}' is already held by this task or thread through another handle; \
         waiting for it without a timeout would never end",
        path.display()
    )]
    WouldDeadlock {
        /// The lock file.
        path: PathBuf,
    },

    /// The current owner holds a shared lock on this handle and asked for an exclusive one:
    /// waiting would block on its own shared lock. Release the shared guard first.
    #[error(
        "The file lock '{}' is held shared by this task or thread; it cannot be upgraded to \
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
    #[error("could not {op} the lock file '{}': {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What was being done.
        op: Op,
        /// The operating system's error; its [`io::ErrorKind`] is preserved.
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
    pub fn path(&self) -> &Path {
        match self {
            Error::Timeout { path, .. }
            | Error::WouldDeadlock { path }
            | Error::UpgradeNotSupported { path }
            | Error::InvalidPath { path, .. }
            | Error::NotAFile { path, .. }
            | Error::Io { path, .. }
            | Error::Unsupported { path, .. }
            | Error::MarkerReplaced { path }
            | Error::InvalidSpec { path, .. }
            | Error::Server { path, .. } => path,
        }
    }

    /// `true` for [`Error::Timeout`]: the lock is held elsewhere, trying later may succeed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// The [`io::ErrorKind`] that best describes this error.
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
            Error::MarkerReplaced { .. } => io::ErrorKind::Other,
            Error::InvalidSpec { .. } => io::ErrorKind::InvalidInput,
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
    fn from(err: Error) -> Self {
        io::Error::new(err.kind(), err)
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
        if self.2 {
            if !self.0.is_zero() {
                write!(f, " Waited {:.3?}.", self.0)?;
            }
            return f.write_str(
                " Its marker is empty, and an empty marker is never broken: a holder killed \
                 between creating and writing it leaves it so. Remove it by hand if no process \
                 holds the lock.",
            );
        }
        if let Some(holder) = self.1 {
            return if self.0.is_zero() {
                write!(f, " Held by {holder} (one attempt, no wait).")
            } else {
                write!(f, " Held by {holder}; waited {:.3?}.", self.0)
            };
        }
        if self.0.is_zero() {
            f.write_str(" It is held elsewhere (one attempt, no wait).")
        } else {
            write!(f, " Waited {:.3?}; it is still held elsewhere.", self.0)
        }
    }
}

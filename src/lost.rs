//! Why a hold can no longer be trusted ([`LockGuard::lost`](crate::LockGuard::lost)), and
//! what a guard needs from a hold kept on a lock server.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use crate::Error;

/// How often a waiting [`LockGuard::lost`](crate::LockGuard::lost) of a file lock checks
/// that the path still names the locked file (one `lstat`).
pub(crate) const FILE_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Why a hold can no longer be trusted: what [`LockGuard::lost`](crate::LockGuard::lost)
/// resolves with. Every variant names the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lost {
    /// The lock file (or a soft lock's marker) was unlinked, renamed away or replaced while
    /// held: another process locking the path now locks another file, so two processes may
    /// hold "the" lock (Python filelock #574).
    FileReplaced {
        /// The lock path.
        path: PathBuf,
    },
    /// A [`StrictSoftFileLock`](crate::StrictSoftFileLock)'s claim was removed while held
    /// (by hand, with `force_break`): the next contender may enter while this holder
    /// still runs.
    ClaimRemoved {
        /// The lock path.
        path: PathBuf,
        /// The file name of the claim that is gone.
        claim: String,
    },
    /// The server session that held the lock ended or broke (terminated by an
    /// administrator, connection cut, server restarted): the server released the lock, and
    /// someone else may hold it now.
    SessionEnded {
        /// The lock, as [`Error::path`] names it.
        path: PathBuf,
        /// What the client saw.
        reason: String,
    },
    /// A [`SoftFileLease`](crate::SoftFileLease)'s heartbeat found its claim gone: the
    /// marker was removed, another marker replaced it (a contender took the lease over, for
    /// example after this process was paused past the lease duration), or refreshing it
    /// kept failing until the lease could expire. Or a
    /// [`SoftReadWriteLock`](crate::SoftReadWriteLock)'s heartbeat found the hold evicted
    /// (its record judged stale by a peer, for example after this process was paused past
    /// the stale threshold), or refreshing its record kept failing. The lock's
    /// `on_compromise` hook got the same value.
    LeaseCompromised {
        /// The lock file.
        path: PathBuf,
        /// The claim token of the lost hold (a lease marker's `token=`; a read-write
        /// hold's record name).
        token: String,
        /// What took the claim away.
        reason: CompromiseReason,
        /// The error that ended the refresh, for [`CompromiseReason::RefreshFailed`].
        error: Option<String>,
    },
}

/// Why a lease's claim was lost, in [`Lost::LeaseCompromised`]; displayed as Python
/// filelock spells it (`marker-missing`, `owner-changed`, `refresh-failed`, `evicted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompromiseReason {
    /// The marker is no longer at the lock path.
    MarkerMissing,
    /// Another marker is at the lock path.
    OwnerChanged,
    /// Refreshing the marker failed for longer than the lease allows.
    RefreshFailed,
    /// A [`SoftReadWriteLock`](crate::SoftReadWriteLock) hold was evicted: a peer judged
    /// its record stale and committed a generation without it.
    Evicted,
}

impl fmt::Display for CompromiseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CompromiseReason::MarkerMissing => "marker-missing",
            CompromiseReason::OwnerChanged => "owner-changed",
            CompromiseReason::RefreshFailed => "refresh-failed",
            CompromiseReason::Evicted => "evicted",
        })
    }
}

impl Lost {
    /// The lock this is about.
    pub fn path(&self) -> &Path {
        match self {
            Lost::FileReplaced { path }
            | Lost::ClaimRemoved { path, .. }
            | Lost::SessionEnded { path, .. }
            | Lost::LeaseCompromised { path, .. } => path,
        }
    }
}

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lost::FileReplaced { path } => write!(
                f,
                "the lock file '{}' was removed or replaced while held",
                path.display()
            ),
            Lost::ClaimRemoved { path, claim } => write!(
                f,
                "the strict lock '{}' lost its claim {claim}: it was removed while held",
                path.display()
            ),
            Lost::SessionEnded { path, reason } => write!(
                f,
                "the session holding the lock '{}' ended: {reason}",
                path.display()
            ),
            Lost::LeaseCompromised {
                path,
                reason,
                error,
                ..
            } => {
                write!(f, "the lease '{}' was lost ({reason})", path.display())?;
                match error {
                    Some(error) => write!(f, ": {error}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// A future resolving with the reason a hold was lost.
pub(crate) type LostFuture = Pin<Box<dyn Future<Output = Lost> + Send + 'static>>;

/// A hold kept by a lock server (PostgreSQL): what the guard asks of it.
pub(crate) trait Remote: Send + Sync + fmt::Debug {
    /// Releases the hold now.
    fn release(&mut self) -> Result<(), Error>;
    /// Resolves once the hold can no longer be trusted.
    fn lost(&self) -> LostFuture;
    /// `Some` once the hold is known to be lost.
    fn is_lost(&self) -> Option<Lost>;
    /// The fencing token of this hold, if the backend hands one out.
    fn fencing_token(&self) -> Option<u64>;
}

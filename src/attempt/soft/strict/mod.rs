//! The strict soft lock (`StrictSoftFileLock`): Python filelock 4.3.1's fail-closed claim
//! protocol, byte for byte, for shared file systems (NFS, Lustre, FUSE) where neither
//! `flock` nor an atomic rename-exchange can be trusted. Only hard links are needed.
//!
//! - [`names`]: the directory and file names; [`record`]: the claim record and sentinel.
//! - [`directories`]: `<lock>.filelock/claims/`, made and checked.
//! - [`publish`]: a record published by a hard link from a private name.
//! - [`reclaim`]: leftovers of crashed publishers removed.
//! - [`sentinel`]: the fixed record at the lock path.
//! - [`scan`]: the claims standing.
//! - [`attempt`]: one attempt, the release, inspection and manual recovery.
//!
//! Unix only; on other platforms every attempt reports `Error::Unsupported`.

#[cfg(unix)]
use std::path::Path;

#[cfg(unix)]
use crate::Error;

#[cfg(unix)]
mod attempt;
#[cfg(unix)]
mod directories;
#[cfg(unix)]
mod names;
#[cfg(unix)]
mod publish;
#[cfg(unix)]
mod reclaim;
#[cfg(unix)]
mod record;
#[cfg(unix)]
mod scan;
#[cfg(unix)]
mod sentinel;

#[cfg(unix)]
pub(crate) use attempt::{
    Claims, StrictOutcome, attempt, claims, force_break, found, missing, release,
};

#[cfg(all(test, unix))]
mod no_exchange_tests;
#[cfg(not(unix))]
mod unsupported;
#[cfg(not(unix))]
pub(crate) use unsupported::{
    Claims, StrictOutcome, attempt, claims, force_break, found, missing, release,
};

/// What a claim says: an intent competes for the lock, a held claim records the winner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(unix), allow(dead_code))] // no claim is read where the protocol is not
pub(crate) enum ClaimState {
    Intent,
    Held,
}

/// One published claim, as an inspection lists it.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    /// Its file name in the claim directory.
    pub(crate) name: String,
    pub(crate) state: ClaimState,
    pub(crate) token: String,
    pub(crate) pid: u32,
    pub(crate) host: String,
    /// The writer's start token, in decimal.
    pub(crate) start: Option<String>,
    /// Proven gone when listed: same host, PID gone or now another process.
    pub(crate) owner_exited: bool,
}

/// A protocol error (Python's `SoftFileLockProtocolError`): the lock's files are not as
/// the protocol needs them, and waiting will not change that.
#[cfg(unix)]
pub(super) fn protocol(lock: &Path, entry: Option<&str>, reason: impl Into<String>) -> Error {
    Error::Protocol {
        path: lock.to_path_buf(),
        entry: entry.map(|e| shown(e.as_bytes())),
        reason: reason.into(),
    }
}

/// Text another process wrote (a file name, a host), escaped and bounded for messages.
#[cfg(unix)]
pub(super) fn shown(bytes: &[u8]) -> String {
    crate::display_text::Untrusted::new(bytes, crate::display_text::MAX_HOST).to_string()
}

/// The protocol error for a file system without hard links.
#[cfg(unix)]
fn hard_links_unsupported(lock: &Path, error: std::io::Error) -> Error {
    tracing::debug!(target: "tokio_filelock", path = %lock.display(), %error, "no hard links here");
    protocol(
        lock,
        None,
        "filesystem does not support atomic no-replace hard-link publication",
    )
}

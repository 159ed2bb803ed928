//! The soft lock: a marker file protocol compatible with Python `filelock`'s
//! `SoftFileLock`, for file systems where `flock` does not work.
//!
//! - [`marker`]: the record `<pid>\n<host>\n<start token>\n`, formatted and parsed.
//! - [`identity`]: this process's PID, host name and start token; other processes' tokens.
//! - [`stale`]: when a marker may be broken.
//! - [`attempt`]: one attempt (create, or read and maybe break) and the release.
//! - `take_over` (Windows): breaking a stale marker without an atomic exchange.
//! - [`record`]: Python 4.x's protocol 2 owner record (`filelock/2`, leases).
//! - [`lease`]: what a lease writes, when a contender takes a lease over, and the holder's
//!   refresh.
//! - [`strict`]: the strict protocol (`StrictSoftFileLock`): claims published by hard
//!   link under `<lock>.filelock/claims/`.
//! - [`rw`]: the read-write protocol (`SoftReadWriteLock`): a generation log and holder
//!   records under `<lock>.rw/`.
//!
//! Unix and Windows only: elsewhere every soft attempt reports `Error::Unsupported`.

/// How long a malformed marker (or a non-regular node) must be seen unchanged before it is
/// broken: Python filelock's `MALFORMED_LOCK_AGE_THRESHOLD`. A writer that has created its
/// marker and not yet written it is given this long.
pub(crate) const MALFORMED_AGE: std::time::Duration = std::time::Duration::from_secs(2);

/// What a soft attempt writes, and how it judges the markers it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavour {
    /// `SoftFileLock`: the legacy record `<pid>\n<host>\n<start token>\n`.
    Legacy,
    /// `SoftFileLease`: a protocol 2 lease record, refreshed by its holder and taken over
    /// once seen unchanged for the lease duration.
    Lease(LeaseTerms),
}

/// A lease's terms: how long a contender must see its marker unchanged before taking it
/// over, and how often the holder refreshes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaseTerms {
    pub(crate) duration: std::time::Duration,
    pub(crate) heartbeat: std::time::Duration,
}

#[cfg(any(unix, windows))]
mod attempt;
#[cfg(any(unix, windows))]
mod claim;
#[cfg(any(unix, windows))]
mod identity;
#[cfg(any(unix, windows))]
pub(crate) mod lease;
#[cfg(any(unix, windows))]
mod marker;
#[cfg(any(unix, windows))]
mod operator;
#[cfg(any(unix, windows))]
mod record;
#[cfg(unix)]
mod recovery;
#[cfg(any(unix, windows))]
pub(crate) mod rw;
#[cfg(any(unix, windows))]
mod seen;
#[cfg(any(unix, windows))]
mod stale;
pub(crate) mod strict;
#[cfg(windows)]
mod take_over;

#[cfg(any(unix, windows))]
pub(crate) use attempt::{SoftOutcome, adopt, attempt_as, found, holder, release};
#[cfg(any(unix, windows))]
pub(crate) use identity::host_name;
#[cfg(any(unix, windows))]
pub(crate) use operator::{break_marker, names_us, recorded_pid};

#[cfg(not(any(unix, windows)))]
mod unsupported;
#[cfg(not(any(unix, windows)))]
pub(crate) use unsupported::{
    SoftOutcome, adopt, attempt_as, break_marker, found, holder, names_us, recorded_pid, release,
};

#[cfg(all(test, unix))]
mod fallback_tests;

//! The soft lock: a marker file protocol compatible with Python `filelock`'s
//! `SoftFileLock`, for file systems where `flock` does not work.
//!
//! - [`marker`]: the record `<pid>\n<host>\n<start token>\n`, formatted and parsed.
//! - [`identity`]: this process's PID, host name and start token; other processes' tokens.
//! - [`stale`]: when a marker may be broken.
//! - [`attempt`]: one attempt (create, or read and maybe break) and the release.
//!
//! Unix only for now: elsewhere every soft attempt reports `Error::Unsupported`.

#[cfg(unix)]
mod attempt;
#[cfg(unix)]
mod identity;
#[cfg(unix)]
mod marker;
#[cfg(unix)]
mod stale;

#[cfg(unix)]
pub(crate) use attempt::{SoftOutcome, adopt, attempt, holder, release};

#[cfg(not(unix))]
mod unsupported;
#[cfg(not(unix))]
pub(crate) use unsupported::{SoftOutcome, adopt, attempt, holder, release};

#[cfg(all(test, unix))]
mod fallback_tests;

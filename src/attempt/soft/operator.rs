//! What can be asked of a soft lock's marker without taking the lock, as Python
//! `SoftFileLock`'s `pid`, `is_lock_held_by_us` and `break_lock` answer it: the PID its
//! record names, whether that record names this process, and removing it by force.

use std::io;
use std::path::Path;

use super::identity;
use super::marker::Content;
use super::seen::{Seen, read};
use crate::sys::soft_calls as sys;
use crate::{Error, Op};

/// The holder a legacy record (`<pid>\n<host>\n<start token>\n`) at `path` names, as
/// Python's `parse_lock_holder` reads it; `None` for no marker, an unreadable or
/// malformed one, an empty one, the strict sentinel, or a protocol 2 record (Python's
/// `SoftFileLock.pid` reads those as no PID either). Blocking: one read, never following a
/// symlink nor opening a non-regular node.
fn recorded_holder(path: &Path) -> Option<super::marker::Holder> {
    match sys::lstat(path) {
        Ok(node) if node.regular => {}
        _ => return None,
    }
    match read(path).ok().flatten() {
        Some((_, Seen::Legacy(Content::Holder(holder)), _)) => Some(holder),
        _ => None,
    }
}

/// The PID the marker at `path` records (Python's `SoftFileLock.pid`).
pub(crate) fn recorded_pid(path: &Path) -> Option<u32> {
    recorded_holder(path).map(|holder| holder.pid)
}

/// Whether the marker at `path` names this process: its PID and host, and its start token
/// when it records one (Python's `is_lock_held_by_us`, `owner_is_current_process`).
pub(crate) fn names_us(path: &Path) -> bool {
    let Some(holder) = recorded_holder(path) else {
        return false;
    };
    let ours = identity::ours();
    holder.pid == ours.pid
        && holder.host == ours.host
        && holder.token.is_none_or(|token| Some(token) == ours.token)
}

/// Removes whatever node is at `path`, whoever holds it (Python's `break_lock`): `true`
/// when one was removed, `false` when there was none. A symlink is removed, never
/// followed; a directory is an error.
pub(crate) fn break_marker(path: &Path) -> Result<bool, Error> {
    match sys::unlink(path) {
        Ok(()) => {
            super::stale::forget(path);
            tracing::debug!(target: "tokio_filelock", path = %path.display(), "broke the soft lock by force");
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(path, Op::BreakLock, e)),
    }
}

//! Breaking a stale marker where names cannot be exchanged atomically (Windows), as Python
//! filelock does there: move the marker aside, check that what moved is the node judged
//! stale (same file, unmodified) and delete it; if another marker moved (it was replaced
//! meanwhile), link it back under the lock path. Then create ours at the path like any
//! attempt: whoever creates first wins.
//!
//! Weaker than the exchange: between the move and the link back the lock path is empty, so
//! a third process may create a marker there, and a wrongly moved marker then cannot be
//! put back (its holder finds it replaced on release: `Error::MarkerReplaced`). Python
//! filelock has the same window on Windows.

use std::fs::File;
use std::io;
use std::path::Path;

use super::claim::{aside_name, create_mode, publish, still};
use crate::sys::soft_calls::{self as sys, Node};
use crate::{Error, Op};

/// Breaks the stale node `seen` at `path` and creates our marker there. `Some` with our
/// marker's handle when we now hold the lock; `None` when the node changed meanwhile, could
/// not be moved (a live process has it open without sharing delete), or another process
/// created its marker first.
pub(super) fn take_over(
    path: &Path,
    seen: &Node,
    permissions: Option<u32>,
    record: &[u8],
    // Python recovers stranded markers only where it exchanges; nothing is stranded here.
    _breaker: Option<u32>,
) -> Result<Option<File>, Error> {
    if !still(path, seen) {
        return Ok(None);
    }
    let aside = aside_name(path);
    if let Err(e) = sys::rename(path, &aside) {
        tracing::debug!(
            target: "tokio_filelock",
            path = %path.display(),
            error = %e,
            "could not move a stale soft lock marker aside"
        );
        return match e.kind() {
            // Gone (the next attempt creates), or open elsewhere: not broken this time.
            io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => Ok(None),
            _ if sys::is_sharing_violation(&e) => Ok(None),
            _ => Err(Error::io(path, Op::BreakStale, e)),
        };
    }
    if !sys::lstat(&aside).is_ok_and(|moved| moved.same_version(seen)) {
        // Another marker was moved: put it back, unless the path was taken meanwhile (then
        // it stays aside, and its holder will find it replaced).
        match sys::hard_link(&aside, path) {
            Ok(()) => {
                let _ = sys::unlink(&aside);
            }
            Err(e) => tracing::warn!(
                target: "tokio_filelock",
                path = %path.display(),
                aside = %aside.display(),
                error = %e,
                "could not put back a marker moved while breaking a stale lock"
            ),
        }
        return Ok(None);
    }
    if let Err(e) = sys::unlink(&aside) {
        tracing::warn!(target: "tokio_filelock", path = %aside.display(), error = %e, "could not remove a broken stale marker");
    }
    match sys::create_new(path, create_mode(permissions)) {
        Ok(file) => publish(file, path, permissions, record).map(Some),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(Error::io(path, Op::BreakStale, e)),
    }
}

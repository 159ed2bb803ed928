//! When a marker may be broken: only on proof that its holder is gone, or when it is
//! malformed and has been seen unchanged for [`MALFORMED_AGE`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tokio::time::Instant;

use super::identity::{self, NAMESPACE_MARK};
use super::marker::Holder;
use crate::sys::soft_calls::{self as sys, Node};

pub(crate) use super::MALFORMED_AGE;

/// `true` only on proof that `holder` no longer holds its marker: same host, and its PID
/// is gone or belongs to a process that started at another time. A marker from another
/// host (or another PID namespace) is never stale.
pub(crate) fn holder_is_stale(holder: &Holder) -> bool {
    if holder.host != identity::host_name() {
        return false;
    }
    if sys::process_alive(holder.pid) {
        let recycled = match (holder.token, identity::start_token(holder.pid)) {
            (Some(recorded), Some(current)) => !current.same_start(&recorded),
            _ => false, // nothing to compare: a live PID is taken as the holder
        };
        if !recycled {
            return false;
        }
    }
    holder.host.contains(NAMESPACE_MARK)
        || !identity::owner_runs_elsewhere(holder.pid, holder.token)
}

/// What a malformed node was seen as: changes to any of these restart its clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sighting {
    mtime_ns: i128,
    ino: u64,
    ctime_ns: i128,
}

/// When each malformed node (or lease marker) was first seen in this process, by lock path. Process-wide
/// (Python keeps it per lock object) so that repeated `try_acquire`s see it age too.
static SIGHTINGS: Mutex<Option<HashMap<PathBuf, (Sighting, Instant)>>> = Mutex::new(None);

/// Records a sighting of the malformed `node` at `path`; `true` once the same node has been
/// seen for at least [`MALFORMED_AGE`]. Uses Tokio's clock (paused in tests; std's clock
/// outside a runtime).
pub(crate) fn malformed_is_old(path: &Path, node: &Node) -> bool {
    unchanged_for(path, node) >= MALFORMED_AGE
}

/// Records a sighting of `node` at `path` and says how long this process has seen it
/// unchanged (same mtime, inode and ctime), on its own monotonic clock: Tokio's (paused in
/// tests; std's outside a runtime). Zero at the first sighting, as Python filelock's
/// `_marker_unchanged_for`. No wall clock, so hosts need no shared time.
pub(crate) fn unchanged_for(path: &Path, node: &Node) -> std::time::Duration {
    let seen = Sighting {
        mtime_ns: node.mtime_ns,
        ino: node.ino,
        ctime_ns: node.ctime_ns,
    };
    let now = Instant::now();
    let mut guard = crate::sync::lock(&SIGHTINGS);
    let map = guard.get_or_insert_with(HashMap::new);
    match map.get(path) {
        Some((old, since)) if *old == seen => now.saturating_duration_since(*since),
        _ => {
            map.insert(path.to_path_buf(), (seen, now));
            std::time::Duration::ZERO
        }
    }
}

/// Forgets the sighting at `path` (the node is gone or well-formed).
pub(crate) fn forget(path: &Path) {
    let mut guard = crate::sync::lock(&SIGHTINGS);
    if let Some(map) = guard.as_mut() {
        map.remove(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attempt::soft::marker::Token;

    fn holder(pid: u32, host: &str, token: Option<Token>) -> Holder {
        Holder {
            pid,
            host: host.to_owned(),
            token,
        }
    }

    #[test]
    fn another_host_is_never_stale() {
        // A PID that cannot exist, on another host: still not stale.
        assert!(!holder_is_stale(&holder(
            i32::MAX as u32,
            "elsewhere",
            None
        )));
    }

    #[test]
    fn a_live_pid_is_stale_only_with_another_start() {
        let me = identity::ours().clone();
        assert!(!holder_is_stale(&me));
        assert!(!holder_is_stale(&holder(me.pid, &me.host, None)));
        if let Some(token) = me.token {
            let recycled = Token {
                high: token.high,
                low: token.low + 1,
            };
            assert!(holder_is_stale(&holder(me.pid, &me.host, Some(recycled))));
        }
    }

    #[test]
    fn a_dead_pid_is_stale() {
        let me = identity::ours();
        assert!(holder_is_stale(&holder(i32::MAX as u32, &me.host, None)));
    }
}

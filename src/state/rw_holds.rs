//! Which [`SoftReadWriteLock`](crate::SoftReadWriteLock) paths this process holds, and by
//! whom: an owner that holds one and waits forever for another hold of the same path can
//! only wait for itself (`Error::WouldDeadlock`). A read hold blocks its own write, a write
//! hold its own read, and a read hold its own second read once a writer has queued behind
//! it.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::owner::Owner;

/// Few entries (one per live hold): a vector beats a map here.
static HELD: Mutex<Vec<(Arc<Path>, Owner, u64)>> = Mutex::new(Vec::new());

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A live hold of `path` by `owner`, recorded until dropped.
#[derive(Debug)]
pub(crate) struct Ticket(u64);

/// Records that `owner` holds `path`.
pub(crate) fn add(path: &Arc<Path>, owner: Owner) -> Ticket {
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    crate::sync::lock(&HELD).push((path.clone(), owner, id));
    Ticket(id)
}

/// `true` while `owner` holds `path`.
pub(crate) fn holds(path: &Path, owner: Owner) -> bool {
    crate::sync::lock(&HELD)
        .iter()
        .any(|(p, o, _)| **p == *path && *o == owner)
}

impl Drop for Ticket {
    fn drop(&mut self) {
        crate::sync::lock(&HELD).retain(|(_, _, id)| *id != self.0);
    }
}

//! Which lock files this process holds, by whom and through which handle: what it takes to
//! see that a wait could never end (`Error::WouldDeadlock`).

use std::sync::{Mutex, MutexGuard};

use super::owner::Owner;
use crate::LockMode;
use crate::sys::FileId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    file: FileId,
    owner: Owner,
    handle: u64,
    mode: LockMode,
}

/// Few entries (one per held lock file and holder): a vector beats a map here.
static HELD: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

fn held() -> MutexGuard<'static, Vec<Entry>> {
    // Nothing panics while holding this mutex; recover the data if something ever did.
    crate::sync::lock(&HELD)
}

/// Records that `owner` holds `file` through handle `handle` (once per holding it has a
/// guard of).
pub(crate) fn add(file: FileId, owner: Owner, handle: u64, mode: LockMode) {
    held().push(Entry {
        file,
        owner,
        handle,
        mode,
    });
}

/// Forgets the record made by [`add`] with the same arguments.
pub(crate) fn remove(file: FileId, owner: Owner, handle: u64, mode: LockMode) {
    let entry = Entry {
        file,
        owner,
        handle,
        mode,
    };
    let mut held = held();
    if let Some(i) = held.iter().position(|e| *e == entry) {
        held.swap_remove(i);
    }
}

/// `true` when `owner` holds `file` (through any handle) in a mode that conflicts with
/// `mode`: waiting for `file` would then wait for the waiter itself. (A hold that the
/// acquire could re-enter was re-entered before it got here.)
pub(crate) fn blocks_itself(file: FileId, owner: Owner, mode: LockMode) -> bool {
    held().iter().any(|e| {
        e.file == file
            && e.owner == owner
            && (e.mode == LockMode::Exclusive || mode == LockMode::Exclusive)
    })
}

//! The lock file a handle keeps open between its holds (Linux, on a file system known to be
//! local): a re-acquire is then one lock call on a descriptor the handle already holds
//! (DESIGN semantics 4), not an open, a lock and a close.
//!
//! A hold puts its descriptor back here on release, unlocked, unless a waiter of this crate
//! marked the file (`sys::waiting_mark`): that waiter, in another process, is woken by the
//! close, so the holder closes then. At most [`MAX_KEPT`] descriptors are kept in a process,
//! one per handle; past that, releases close as before. A descriptor kept here is never
//! handed to the user (`LockGuard::raw_fd` marks its hold as not to be kept: a copy in a
//! child would share its lock), and a process forked from the one that kept it does not use
//! it: the two would share one open file description, so one lock.

use std::fs::File;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::sys::FileId;

/// How many descriptors the handles of one process keep open at most.
pub(crate) const MAX_KEPT: usize = 64;

/// Descriptors kept now, in all handles of this process.
static KEPT_FILES: AtomicUsize = AtomicUsize::new(0);

/// One handle's kept lock file, if any.
#[derive(Debug, Default)]
pub(crate) struct Kept {
    slot: Mutex<Option<KeptFile>>,
}

#[derive(Debug)]
struct KeptFile {
    file: File,
    id: FileId,
    /// The process that kept it (after a `fork`, the child must not lock through it).
    pid: u32,
}

impl Kept {
    /// Takes the kept file and its identity, if there is one that this process kept.
    pub(crate) fn take(&self) -> Option<(File, FileId)> {
        let kept = crate::sync::lock(&self.slot).take()?;
        KEPT_FILES.fetch_sub(1, Ordering::Relaxed);
        if kept.pid != std::process::id() {
            // Inherited across a fork: closing this copy leaves the parent's alone.
            return None;
        }
        Some((kept.file, kept.id))
    }

    /// Keeps `file` (unlocked, identity `id`) for the next acquire; gives it back when
    /// the slot is taken or the process keeps [`MAX_KEPT`] already (close it then).
    pub(crate) fn put(&self, file: File, id: FileId) -> Option<File> {
        if KEPT_FILES.fetch_add(1, Ordering::Relaxed) >= MAX_KEPT {
            KEPT_FILES.fetch_sub(1, Ordering::Relaxed);
            return Some(file);
        }
        let mut slot = crate::sync::lock(&self.slot);
        if slot.is_some() {
            KEPT_FILES.fetch_sub(1, Ordering::Relaxed);
            return Some(file);
        }
        *slot = Some(KeptFile {
            file,
            id,
            pid: std::process::id(),
        });
        None
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        if crate::sync::lock(&self.slot).take().is_some() {
            KEPT_FILES.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
impl Kept {
    /// Whether a file is kept now.
    pub(crate) fn holds_file(&self) -> bool {
        crate::sync::lock(&self.slot).is_some()
    }
}

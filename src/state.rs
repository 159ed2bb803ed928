//! Lock state of one handle: who holds it, how many times, in which mode.
//!
//! Clones of a `FileLock` (and singleton handles of one path) share one `State`. A holder is
//! keyed by its owner (task or thread), or by the handle itself when the handle was built
//! with [`Reentrancy::Handle`](crate::Reentrancy::Handle). Only the first acquire of a
//! holder touches the file; later ones count up, and the OS lock is released when the count
//! returns to zero.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::attempt::Held;
use crate::owner::Owner;
use crate::{Error, LockMode, Reentrancy, registry};

/// Who a hold belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Owner(Owner),
    Handle,
}

impl Key {
    /// The key of `owner`'s holds under `reentrancy`.
    pub(crate) fn of(reentrancy: Reentrancy, owner: Owner) -> Self {
        match reentrancy {
            Reentrancy::Owner => Key::Owner(owner),
            Reentrancy::Handle => Key::Handle,
        }
    }
}

#[derive(Debug)]
struct Holding {
    key: Key,
    count: usize,
    mode: LockMode,
    /// The owner that won the OS lock (for the deadlock registry).
    owner: Owner,
    held: Held,
}

/// Shared by every clone of one handle.
#[derive(Debug)]
pub(crate) struct State {
    id: u64,
    path: Arc<Path>,
    /// One entry per holder: a handful at most, so a vector (no hashing on the hot path).
    holdings: Mutex<Vec<Holding>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl State {
    pub(crate) fn new(path: Arc<Path>) -> Self {
        State {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            path,
            holdings: Mutex::new(Vec::new()),
        }
    }

    /// The lock id used in log events.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn path(&self) -> &Arc<Path> {
        &self.path
    }

    fn holdings(&self) -> MutexGuard<'_, Vec<Holding>> {
        // Nothing panics while holding this mutex; recover the data if something ever did.
        self.holdings.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// If `key` holds the lock already, counts one more hold (touching no file) and returns
    /// the mode it holds. A shared holder asking for exclusive gets an error: it would wait
    /// for its own shared lock.
    pub(crate) fn reenter(&self, key: Key, mode: LockMode) -> Result<Option<LockMode>, Error> {
        let mut holdings = self.holdings();
        let Some(holding) = holdings.iter_mut().find(|h| h.key == key) else {
            return Ok(None);
        };
        if holding.mode == LockMode::Shared && mode == LockMode::Exclusive {
            return Err(Error::UpgradeNotSupported {
                path: self.path.to_path_buf(),
            });
        }
        holding.count += 1;
        Ok(Some(holding.mode))
    }

    /// Records a won OS lock for `key`. If `key` won another one meanwhile (two shared
    /// attempts of one owner racing), counts one more hold on that and releases this one.
    pub(crate) fn insert(&self, key: Key, owner: Owner, mode: LockMode, held: Held) -> LockMode {
        let surplus;
        let mode = {
            let mut holdings = self.holdings();
            match holdings.iter_mut().find(|h| h.key == key) {
                Some(holding) => {
                    holding.count += 1;
                    surplus = Some(held);
                    holding.mode
                }
                None => {
                    registry::add(held.id(), owner, self.id, mode);
                    holdings.push(Holding {
                        key,
                        count: 1,
                        mode,
                        owner,
                        held,
                    });
                    surplus = None;
                    mode
                }
            }
        };
        drop(surplus); // closes outside the mutex
        mode
    }

    /// Drops one hold of `key`; the last one releases the OS lock.
    pub(crate) fn release(&self, key: Key) -> Result<(), Error> {
        let last = {
            let mut holdings = self.holdings();
            match holdings.iter().position(|h| h.key == key) {
                Some(i) if holdings[i].count > 1 => {
                    holdings[i].count -= 1;
                    None
                }
                Some(i) => Some(holdings.swap_remove(i)),
                None => None,
            }
        };
        let Some(holding) = last else {
            return Ok(());
        };
        registry::remove(holding.held.id(), holding.owner, self.id, holding.mode);
        tracing::debug!(target: "tokio_filelock", lock = self.id, path = %self.path.display(), "released");
        holding.held.release()
    }

    /// The descriptor through which `key` holds the OS lock (`None` for a soft lock, or when
    /// `key` holds nothing).
    #[cfg(unix)]
    pub(crate) fn raw_fd(&self, key: Key) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.holdings()
            .iter()
            .find(|h| h.key == key)
            .and_then(|h| h.held.os_file())
            .map(AsRawFd::as_raw_fd)
    }

    /// The identity of the file (or marker) `key` holds, if it holds one.
    pub(crate) fn held_id(&self, key: Key) -> Option<crate::sys::FileId> {
        self.holdings()
            .iter()
            .find(|h| h.key == key)
            .map(|h| h.held.id())
    }

    /// How many holds `key` has (0 when it holds none).
    pub(crate) fn count(&self, key: Key) -> usize {
        self.holdings()
            .iter()
            .find(|h| h.key == key)
            .map_or(0, |h| h.count)
    }
}

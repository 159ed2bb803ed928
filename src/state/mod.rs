//! Lock state of one handle: who holds it, how many times, in which mode.
//!
//! Clones of a `FileLock` (and singleton handles of one path) share one `State`. A hold is
//! keyed by the acquire itself (the default, [`Reentrancy::Off`]: every acquire is a hold
//! of its own), by its owner (task or thread, [`Reentrancy::Owner`]), or by the handle
//! ([`Reentrancy::Handle`]). Only the first acquire of a key touches the file; later ones
//! count up, and the OS lock is released when the count returns to zero.
//!
//! The deadlock registry is told who holds now: every owner with a live guard of a
//! holding, counted, not only the owner that took it first.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub(crate) mod deadlock;
pub(crate) mod owner;
pub(crate) mod rw_holds;
pub(crate) mod singletons;

use crate::attempt::Held;
use crate::{Error, LockMode, Reentrancy};
use owner::Owner;

/// Who a hold belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    /// One acquire's own hold ([`Reentrancy::Off`]): no other acquire has this key.
    Hold(u64),
    Owner(Owner),
    Handle,
}

/// The source of [`Key::Hold`] numbers.
static NEXT_HOLD: AtomicU64 = AtomicU64::new(1);

impl Key {
    /// The key of an acquire by `owner` under `reentrancy` (a new one for every acquire
    /// under [`Reentrancy::Off`]).
    pub(crate) fn of(reentrancy: Reentrancy, owner: Owner) -> Self {
        match reentrancy {
            Reentrancy::Off => Key::Hold(NEXT_HOLD.fetch_add(1, Ordering::Relaxed)),
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
    /// Who holds it now, with how many guards each (for the deadlock registry): one owner
    /// unless several share a handle ([`Reentrancy::Handle`]).
    holders: Vec<(Owner, usize)>,
    held: Held,
}

impl Holding {
    /// One more guard, acquired by `owner`, on this holding of handle `handle`.
    fn count_up(&mut self, owner: Owner, handle: u64) {
        self.count += 1;
        match self.holders.iter_mut().find(|(o, _)| *o == owner) {
            Some((_, n)) => *n += 1,
            None => {
                deadlock::add(self.held.id(), owner, handle, self.mode);
                self.holders.push((owner, 1));
            }
        }
    }

    /// One guard fewer, acquired by `owner`; the registry forgets an owner with none left.
    fn count_down(&mut self, owner: Owner, handle: u64) {
        self.count -= 1;
        if let Some(i) = self.holders.iter().position(|(o, _)| *o == owner) {
            self.holders[i].1 -= 1;
            if self.holders[i].1 == 0 {
                self.holders.swap_remove(i);
                deadlock::remove(self.held.id(), owner, handle, self.mode);
            }
        }
    }
}

/// Shared by every clone of one handle.
#[derive(Debug)]
pub(crate) struct State {
    id: u64,
    path: Arc<Path>,
    /// One entry per holder: a handful at most, so a vector (no hashing on the hot path).
    holdings: Mutex<Vec<Holding>>,
    /// An OS-lock acquire found `flock` unsupported and fell back to the soft protocol:
    /// later acquires go straight to it (as Python filelock remembers).
    fell_back_to_soft: AtomicBool,
    /// Whether the lock file's file system is known to be local (see [`Locality`]), asked
    /// once per handle.
    locality: AtomicU8,
    /// The lock file kept open between holds (see `attempt::Kept`).
    kept: Arc<crate::attempt::Kept>,
}

/// What a handle knows of its lock file's file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Locality {
    /// Not asked yet (or the answer could not be had: the directory was missing).
    Unknown,
    /// Local: a non-blocking attempt waits on no one and may run inline.
    Local,
    /// Network, FUSE or not known: every attempt takes the hop.
    Remote,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl State {
    pub(crate) fn new(path: Arc<Path>) -> Self {
        State {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            path,
            holdings: Mutex::new(Vec::new()),
            fell_back_to_soft: AtomicBool::new(false),
            locality: AtomicU8::new(0),
            kept: Arc::default(),
        }
    }

    /// The lock id used in log events.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn path(&self) -> &Arc<Path> {
        &self.path
    }

    /// Whether an acquire of this lock fell back to the soft protocol.
    pub(crate) fn fell_back_to_soft(&self) -> bool {
        self.fell_back_to_soft.load(Ordering::Relaxed)
    }

    /// What is known of the lock file's file system.
    pub(crate) fn locality(&self) -> Locality {
        match self.locality.load(Ordering::Relaxed) {
            1 => Locality::Local,
            2 => Locality::Remote,
            _ => Locality::Unknown,
        }
    }

    /// Records whether the lock file's file system is local (`None`: could not be told).
    pub(crate) fn set_locality(&self, local: Option<bool>) {
        let value = match local {
            Some(true) => 1,
            Some(false) => 2,
            None => 0,
        };
        self.locality.store(value, Ordering::Relaxed);
    }

    /// Where this handle keeps its lock file open between holds.
    pub(crate) fn kept(&self) -> &Arc<crate::attempt::Kept> {
        &self.kept
    }

    /// Remembers that an acquire of this lock fell back to the soft protocol.
    pub(crate) fn remember_fallback_to_soft(&self) {
        self.fell_back_to_soft.store(true, Ordering::Relaxed);
    }

    fn holdings(&self) -> MutexGuard<'_, Vec<Holding>> {
        // Nothing panics while holding this mutex; recover the data if something ever did.
        crate::sync::lock(&self.holdings)
    }

    /// If `key` holds the lock already, counts one more hold by `owner` (touching no file)
    /// and returns the mode it holds. A shared holder asking for exclusive gets an error: it
    /// would wait for its own shared lock.
    pub(crate) fn reenter(
        &self,
        key: Key,
        owner: Owner,
        mode: LockMode,
    ) -> Result<Option<LockMode>, Error> {
        let mut holdings = self.holdings();
        let Some(holding) = holdings.iter_mut().find(|h| h.key == key) else {
            return Ok(None);
        };
        if holding.mode == LockMode::Shared && mode == LockMode::Exclusive {
            return Err(Error::UpgradeNotSupported {
                path: self.path.to_path_buf(),
            });
        }
        holding.count_up(owner, self.id);
        Ok(Some(holding.mode))
    }

    /// Records a won OS lock for `key`, acquired by `owner`. If `key` won another one
    /// meanwhile (two shared attempts of one owner racing), counts one more hold on that and
    /// releases this one.
    pub(crate) fn insert(&self, key: Key, owner: Owner, mode: LockMode, held: Held) -> LockMode {
        let surplus;
        let mode = {
            let mut holdings = self.holdings();
            match holdings.iter_mut().find(|h| h.key == key) {
                Some(holding) => {
                    holding.count_up(owner, self.id);
                    surplus = Some(held);
                    holding.mode
                }
                None => {
                    deadlock::add(held.id(), owner, self.id, mode);
                    holdings.push(Holding {
                        key,
                        count: 1,
                        mode,
                        holders: vec![(owner, 1)],
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

    /// Drops one hold of `key`, acquired by `owner`; the last one releases the OS lock.
    pub(crate) fn release(&self, key: Key, owner: Owner) -> Result<(), Error> {
        let last = {
            let mut holdings = self.holdings();
            match holdings.iter().position(|h| h.key == key) {
                Some(i) => {
                    holdings[i].count_down(owner, self.id);
                    (holdings[i].count == 0).then(|| holdings.swap_remove(i))
                }
                None => None,
            }
        };
        let Some(holding) = last else {
            return Ok(());
        };
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

    /// What tells whether the hold of `key` is still in place, if it holds one.
    pub(crate) fn held_watch(&self, key: Key) -> Option<crate::attempt::Watch> {
        self.holdings()
            .iter()
            .find(|h| h.key == key)
            .map(|h| h.held.watch())
    }

    /// The identity of the file (or marker) `key` holds, if it holds one.
    pub(crate) fn held_id(&self, key: Key) -> Option<crate::sys::FileId> {
        self.holdings()
            .iter()
            .find(|h| h.key == key)
            .map(|h| h.held.id())
    }

    /// How many holds `owner` has under `reentrancy` (0 when it holds none): with
    /// [`Reentrancy::Off`], the holds it acquired (each counts one, wherever its guard went);
    /// with [`Reentrancy::Owner`], its count; with [`Reentrancy::Handle`], the handle's.
    pub(crate) fn count(&self, reentrancy: Reentrancy, owner: Owner) -> usize {
        let holdings = self.holdings();
        match reentrancy {
            Reentrancy::Off => holdings
                .iter()
                .filter(|h| matches!(h.key, Key::Hold(_)))
                .flat_map(|h| h.holders.iter())
                .filter(|(o, _)| *o == owner)
                .map(|(_, n)| n)
                .sum(),
            Reentrancy::Owner | Reentrancy::Handle => {
                let key = Key::of(reentrancy, owner);
                holdings
                    .iter()
                    .find(|h| h.key == key)
                    .map_or(0, |h| h.count)
            }
        }
    }
}

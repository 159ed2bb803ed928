//! One non-blocking attempt at the lock: the only layer that touches the file system.
//!
//! An attempt opens the lock file (creating it and its parents if needed), makes one
//! non-blocking lock call, and classifies the result: won, contended (retry later), or a
//! permanent error (return now). It never waits for another process. Drivers run it on
//! Tokio's blocking pool or on the calling thread.

use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

#[cfg(target_os = "linux")]
mod kept;
mod probe;
pub(crate) mod soft;

#[cfg(target_os = "linux")]
pub(crate) use kept::Kept;
/// Elsewhere no lock file is kept between holds (waiters have no mark a holder could see).
#[cfg(not(target_os = "linux"))]
#[derive(Debug, Default)]
pub(crate) struct Kept;

pub(crate) use probe::{Found, Probe};

#[cfg(all(test, unix))]
mod parity_tests;

use crate::sys::{self, Create, FileId, OpenFailure, TryLock};
use crate::{Error, LockMode, Op};
use soft::SoftOutcome;
use soft::strict::StrictOutcome;

/// How many times one attempt re-opens after a race (lock file replaced, renamed away or
/// deleted under us, directory removed between creating it and opening the file) before
/// it gives up: as contention for a replaced lock file, else with the error.
const MAX_RACES: usize = 8;

/// The mode passed to `open(2)` when none is configured: `0o666`, reduced by the umask.
const DEFAULT_CREATE_MODE: u32 = 0o666;

/// Which protocol the attempts speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// The OS lock (`flock`, `LockFileEx`); where `flock` is unsupported, the soft protocol
    /// if `fallback_to_soft`, else `Error::Unsupported`.
    Os { fallback_to_soft: bool },
    /// The marker file protocol (`SoftFileLock`).
    Soft,
    /// The marker file protocol with a lease record (`SoftFileLease`).
    Lease(soft::LeaseTerms),
    /// The claim protocol of `StrictSoftFileLock`.
    Strict,
}

impl Protocol {
    /// The soft protocol's flavour, if this is a marker file protocol.
    pub(crate) fn soft_flavour(self) -> Option<soft::Flavour> {
        match self {
            Protocol::Soft => Some(soft::Flavour::Legacy),
            Protocol::Lease(terms) => Some(soft::Flavour::Lease(terms)),
            Protocol::Os { .. } | Protocol::Strict => None,
        }
    }
}

/// What an attempt needs to know, and the lock file it keeps open between attempts.
#[derive(Debug)]
pub(crate) struct Attempt {
    path: Arc<Path>,
    mode: LockMode,
    permissions: Option<u32>,
    preserve_lock_file: bool,
    /// Called with the file's identity once a won lock is released: how the layer above
    /// hears of releases (the driver passes the wake-up engine's), without this layer
    /// knowing it.
    on_release: fn(FileId),
    /// Which protocol the next attempt speaks (OS lock turns soft on a fallback).
    protocol: Protocol,
    /// The file opened by an earlier contended attempt: kept open while waiting so that a
    /// retry is one lock call, not an open, a lock and a close.
    open: Option<Opened>,
    /// Soft protocol: a marker older than this (by mtime) is expired and broken.
    lifetime: Option<Duration>,
    /// An `on_acquired` hook is set: no fallback to the soft protocol (as Python filelock).
    hooked: bool,
    /// The handle's lock file kept open between holds (see `kept.rs`): taken by the first
    /// attempt, and where a won hold goes back on release.
    kept: Option<Arc<Kept>>,
    /// The acquire may wait (not a single attempt).
    may_wait: bool,
    /// A contended attempt marks the file it keeps open as waited for
    /// (`sys::waiting_mark`), so that a holder closes on release, which wakes this waiter.
    mark_waiting: bool,
}

/// A lock file this acquire opened.
#[derive(Debug)]
struct Opened {
    file: File,
    /// Known once inspected.
    id: Option<FileId>,
    /// This acquire created the file: it may set the configured permissions.
    created: bool,
    /// Marked as waited for (`sys::waiting_mark`).
    marked: bool,
}

/// What [`Attempt::run_inline`] did.
#[derive(Debug)]
pub(crate) enum Inline {
    /// The attempt was made.
    Done(Outcome),
    /// Not made: it needs a call that may wait; run it where that is allowed.
    Hop(Attempt),
}

/// What one attempt found.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The lock is ours.
    Won(Held),
    /// Someone else holds it. `id` is the file's identity when it could be opened.
    Busy {
        attempt: Attempt,
        id: Option<FileId>,
    },
}

impl Attempt {
    /// Checks the path (no file system call) and prepares the first attempt.
    pub(crate) fn new(
        path: Arc<Path>,
        mode: LockMode,
        permissions: Option<u32>,
        preserve_lock_file: bool,
        on_release: fn(FileId),
    ) -> Result<Self, Error> {
        validate(&path)?;
        Ok(Attempt {
            path,
            mode,
            permissions,
            preserve_lock_file,
            on_release,
            protocol: Protocol::Os {
                fallback_to_soft: true,
            },
            open: None,
            lifetime: None,
            hooked: false,
            kept: None,
            may_wait: true,
            mark_waiting: false,
        })
    }

    /// Whether the acquire may wait (`false`: a single attempt, which marks nothing).
    pub(crate) fn with_waiting(mut self, may_wait: bool) -> Self {
        self.may_wait = may_wait;
        self
    }

    /// Keeps the won lock file open in `kept` between holds (the handle's, given once its
    /// file system is known to be local; `None`: close it on release), and then, if this
    /// acquire may wait, marks the file as waited for. The OS lock only (Linux), and not
    /// with an `on_acquired` hook (the hook gets the file: its offset must start at 0
    /// every hold).
    pub(crate) fn with_kept(mut self, kept: Option<Arc<Kept>>) -> Self {
        let os_lock = matches!(self.protocol, Protocol::Os { .. });
        let kept = kept.filter(|_| cfg!(target_os = "linux") && os_lock && !self.hooked);
        self.mark_waiting = kept.is_some() && self.may_wait;
        self.kept = kept;
        self
    }

    /// Takes the handle's kept lock file as this attempt's open file, if there is one and
    /// this attempt has none.
    fn take_kept(&mut self) {
        #[cfg(target_os = "linux")]
        if self.open.is_none()
            && !self.is_soft()
            && let Some((file, id)) = self.kept.as_ref().and_then(|kept| kept.take())
        {
            self.open = Some(Opened {
                file,
                id: Some(id),
                created: false,
                marked: false,
            });
        }
    }

    /// The descriptor this attempt keeps open while its acquire waits, and its identity,
    /// when it waits for the OS lock exclusively: a lock call on a duplicate of it (the
    /// watcher thread's retry, `wake::Retry`) wins the lock for this attempt's next one.
    pub(crate) fn waiting_file(&self) -> Option<(&File, FileId)> {
        let exclusive_os_lock =
            matches!(self.protocol, Protocol::Os { .. }) && self.mode == LockMode::Exclusive;
        let opened = self.open.as_ref().filter(|_| exclusive_os_lock)?;
        Some((&opened.file, opened.id?))
    }

    /// Whether no other waiter of this crate, in any process, waits for the lock (none
    /// marked the file): then the line has nobody to let go first. One `F_OFD_GETLK` on
    /// the handle's kept lock file; `false` whenever that cannot be told.
    pub(crate) fn nobody_else_waits(&mut self) -> bool {
        #[cfg(target_os = "linux")]
        {
            if !self.mark_waiting {
                return false;
            }
            self.take_kept();
            self.open.as_ref().is_some_and(|opened| {
                opened.id.is_some()
                    && matches!(
                        sys::waiting_mark::marked_by_another(&opened.file),
                        Ok(false)
                    )
            })
        }
        #[cfg(not(target_os = "linux"))]
        false
    }

    /// Soft protocol: a marker older than `lifetime` by its mtime is expired, and broken
    /// whoever holds it (`SoftFileLockBuilder::lifetime`).
    pub(crate) fn with_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// An `on_acquired` hook is set: an unsupported `flock` is `Error::Unsupported`, never
    /// a fallback to the soft protocol, as in Python filelock (the hook expects the locked
    /// file, and a marker's file is its record).
    pub(crate) fn with_hook(mut self, hooked: bool) -> Self {
        self.hooked = hooked;
        self
    }

    /// Whether the next attempt speaks the soft (marker file) protocol (what a file watch
    /// should wait for: a marker is unlinked on release, a locked file is closed).
    pub(crate) fn is_soft(&self) -> bool {
        self.protocol.soft_flavour().is_some() || self.protocol == Protocol::Strict
    }

    /// Sets the protocol. The soft protocol is exclusive only: a shared request is
    /// `Error::Unsupported`, at once.
    pub(crate) fn with_protocol(mut self, protocol: Protocol) -> Result<Self, Error> {
        let soft = protocol.soft_flavour().is_some() || protocol == Protocol::Strict;
        if soft && self.mode == LockMode::Shared {
            return Err(Error::Unsupported {
                path: self.path.to_path_buf(),
                reason: "a soft lock is exclusive only; shared locks need the OS lock",
                source: None,
            });
        }
        self.protocol = protocol;
        Ok(self)
    }

    /// Makes one non-blocking attempt where waiting is not allowed (a Tokio worker), on a
    /// file system known to be local: the OS lock only, on the file this acquire keeps open
    /// or else an existing lock file (no file or directory is created). `Inline::Hop` gives
    /// the attempt back, untried, when it needs more (creating the file, the soft protocol):
    /// run it with [`Attempt::run`] where waiting is allowed.
    pub(crate) fn run_inline(mut self) -> Result<Inline, Error> {
        if self.is_soft() {
            return Ok(Inline::Hop(self));
        }
        self.take_kept();
        if self.open.is_none() {
            let create_mode = self.permissions.unwrap_or(DEFAULT_CREATE_MODE);
            match sys::open(&self.path, create_mode, Create::Never) {
                Ok(file) => {
                    self.open = Some(Opened {
                        file,
                        id: None,
                        created: false,
                        marked: false,
                    });
                }
                Err(OpenFailure::MissingParent | OpenFailure::Again | OpenFailure::Busy) => {
                    return Ok(Inline::Hop(self));
                }
                Err(failure) => return Err(self.open_error(failure)),
            }
        }
        self.run().map(Inline::Done)
    }

    /// Whether the lock file's directory is on a file system known to be local (see
    /// `sys::is_local`); `None` when that cannot be told (the directory is missing). May
    /// wait on a network file system: call it where waiting is allowed.
    pub(crate) fn file_system_is_local(&self) -> Option<bool> {
        let dir = self.path.parent()?;
        sys::is_local(dir).ok()
    }

    /// Makes one non-blocking attempt.
    pub(crate) fn run(mut self) -> Result<Outcome, Error> {
        if self.protocol.soft_flavour().is_some() {
            return self.run_soft();
        }
        if self.protocol == Protocol::Strict {
            return self.run_strict();
        }
        self.take_kept();
        for _ in 0..MAX_RACES {
            let (opened, kept) = match self.open.take() {
                // Opened by an earlier, contended attempt (which learnt its identity), or
                // just now by `run_inline`.
                Some(opened) => {
                    let kept = opened.id.is_some();
                    (opened, kept)
                }
                None => match self.open_file()? {
                    Some(opened) => (opened, false),
                    None => {
                        return Ok(Outcome::Busy {
                            attempt: self,
                            id: None,
                        });
                    }
                },
            };
            let Opened {
                file,
                id,
                created,
                marked,
            } = opened;
            match sys::try_lock(&file, self.mode) {
                TryLock::Acquired => {
                    let (id, permissions) = match id {
                        // Open since its identity was learnt: the inode cannot have been
                        // freed and its number reused, so the path naming that identity
                        // (below) says all that `fstat` would.
                        Some(id) if !created => (id, None),
                        _ => {
                            let facts = self.inspect(&file)?;
                            if !facts.linked {
                                self.replaced(facts.id);
                                continue;
                            }
                            (facts.id, facts.permissions)
                        }
                    };
                    if !self.path_names(id)? {
                        // Deleted (or delete-pending), renamed away or replaced since it was
                        // opened: a lock on it protects nothing, as a newcomer locks the
                        // file at the path. Let go (closing unlocks) and try that one.
                        self.replaced(id);
                        continue;
                    }
                    if created {
                        self.apply_permissions(&file, permissions);
                    }
                    return Ok(Outcome::Won(Held {
                        file: Some(file),
                        id,
                        path: self.path,
                        preserve_lock_file: self.preserve_lock_file,
                        soft: false,
                        strict: None,
                        on_release: self.on_release,
                        keep_in: self.kept,
                        keep: AtomicBool::new(true),
                        marked,
                    }));
                }
                TryLock::Contended => {
                    let id = match id {
                        Some(id) => id,
                        None => self.inspect(&file)?.id,
                    };
                    if kept && !self.path_names(id)? {
                        // The file this waiter kept open is no longer the one at the path:
                        // no loyalty to an old inode. Close it and try the file there now.
                        self.replaced(id);
                        continue;
                    }
                    if sys::KEEP_OPEN_WHILE_WAITING {
                        let marked = marked || mark(self.mark_waiting, &file);
                        self.open = Some(Opened {
                            file,
                            id: Some(id),
                            created,
                            marked,
                        });
                    }
                    return Ok(Outcome::Busy {
                        attempt: self,
                        id: Some(id),
                    });
                }
                TryLock::Unsupported(e) => return self.fall_back(file, created, e),
                TryLock::Failed(e) => {
                    return Err(Error::io(&self.path, Op::Lock, e));
                }
            }
        }
        // The lock file kept being replaced under this attempt: contention, retried on the
        // schedule.
        Ok(Outcome::Busy {
            attempt: self,
            id: None,
        })
    }

    /// One attempt only if nobody holds the lock: an exclusive attempt first, which wins
    /// only on a free lock and is let go at once, then the attempt in this acquire's own
    /// mode; while someone holds the lock, contention without the second call. For a
    /// shared acquire behind an exclusive waiter (writer preference), so that it never
    /// joins shared holders while that waiter waits for them.
    pub(crate) fn run_if_free(mut self) -> Result<Outcome, Error> {
        let wanted = self.mode;
        if wanted == LockMode::Exclusive || self.is_soft() {
            return self.run();
        }
        let again = Attempt {
            path: self.path.clone(),
            mode: wanted,
            permissions: self.permissions,
            preserve_lock_file: self.preserve_lock_file,
            on_release: self.on_release,
            protocol: self.protocol,
            open: None,
            lifetime: self.lifetime,
            hooked: self.hooked,
            kept: self.kept.clone(),
            may_wait: self.may_wait,
            mark_waiting: self.mark_waiting,
        };
        self.mode = LockMode::Exclusive;
        match self.run()? {
            Outcome::Won(free) => {
                drop(free);
                again.run()
            }
            Outcome::Busy { mut attempt, id } => {
                attempt.mode = wanted;
                Ok(Outcome::Busy { attempt, id })
            }
        }
    }

    /// Makes no lock call this time (an earlier waiter goes first): contention, on the file
    /// this acquire keeps open, or else the one at the path now.
    pub(crate) fn deferred(mut self) -> Result<Outcome, Error> {
        // A waiter that lets an earlier one go first waits as well: it keeps the file open,
        // marked as waited for, so that a holder's release wakes it too.
        self.take_kept();
        if self.mark_waiting && self.open.is_none() {
            let create_mode = self.permissions.unwrap_or(DEFAULT_CREATE_MODE);
            if let Ok(file) = sys::open(&self.path, create_mode, Create::Never) {
                let id = self.inspect(&file)?.id;
                self.open = Some(Opened {
                    file,
                    id: Some(id),
                    created: false,
                    marked: false,
                });
            }
        }
        let mark_waiting = self.mark_waiting;
        if let Some(opened) = self.open.as_mut().filter(|opened| !opened.marked) {
            opened.marked = mark(mark_waiting, &opened.file);
        }
        let id = match self.open.as_ref().and_then(|opened| opened.id) {
            Some(id) => Some(id),
            None => sys::path_id(&self.path).map_err(|e| Error::io(&self.path, Op::Inspect, e))?,
        };
        Ok(Outcome::Busy { attempt: self, id })
    }

    /// Whether the path still names the file `id` (the lock file opened).
    fn path_names(&self, id: FileId) -> Result<bool, Error> {
        let now = sys::path_id(&self.path).map_err(|e| Error::io(&self.path, Op::Inspect, e))?;
        Ok(now == Some(id))
    }

    /// Logs that the file `old`, opened by this attempt, is no longer the one at the path.
    fn replaced(&self, old: FileId) {
        tracing::debug!(
            target: "tokio_filelock",
            path = %self.path.display(),
            file = ?old,
            "the lock file was replaced, renamed away or deleted; trying the one at the path"
        );
    }

    /// How to find who holds the lock, after this attempt found it busy with `id` there.
    pub(crate) fn probe(&self, id: Option<FileId>) -> Option<Probe> {
        match self.protocol {
            Protocol::Soft | Protocol::Lease(_) => Some(Probe::Soft {
                marker: self.path.clone(),
            }),
            Protocol::Strict => Some(Probe::Strict {
                lock: self.path.clone(),
            }),
            Protocol::Os { .. } => id.map(|id| Probe::Os {
                id,
                wanted: self.mode,
            }),
        }
    }

    /// `flock` is not supported on this file system: continue with the soft protocol if
    /// allowed (a file this acquire created becomes its marker, as in Python filelock), else
    /// `Error::Unsupported`.
    fn fall_back(mut self, file: File, created: bool, error: io::Error) -> Result<Outcome, Error> {
        let reason = match self.protocol {
            Protocol::Os {
                fallback_to_soft: true,
            } if self.hooked => Some(
                "flock is not supported on its file system, and on_acquired is set: the soft \
                 lock it would fall back to has no locked file to hand the hook (Python \
                 filelock refuses the fallback then too)",
            ),
            // The soft lock deletes its marker on release: the file would not stay, so fail
            // closed, as Python filelock does.
            Protocol::Os {
                fallback_to_soft: true,
            } if self.preserve_lock_file => Some(
                "flock is not supported on its file system, and the soft lock it would fall \
                 back to deletes its file on release, which preserve_lock_file forbids",
            ),
            Protocol::Os {
                fallback_to_soft: true,
            } if self.mode == LockMode::Exclusive => None,
            Protocol::Os {
                fallback_to_soft: true,
            } => Some(
                "flock is not supported on its file system, and the soft lock is exclusive only",
            ),
            _ => Some(
                "flock is not supported on its file system, and the fallback to the soft lock is disabled",
            ),
        };
        if let Some(reason) = reason {
            return Err(Error::Unsupported {
                path: self.path.to_path_buf(),
                reason,
                source: Some(error),
            });
        }
        tracing::debug!(
            target: "tokio_filelock",
            path = %self.path.display(),
            %error,
            "flock is not supported here; falling back to the soft lock"
        );
        self.protocol = Protocol::Soft;
        if created {
            let file = soft::adopt(file, &self.path, self.permissions)?;
            return self.won_soft(file);
        }
        // An empty file that has stood for a while is no soft marker (a marker gets its
        // record right after creation) but a lock file of an flock user (cargo, flock(1),
        // Python's FileLock, this crate with the fallback off): the soft protocol would
        // wait for it forever, so say so now.
        let (len, age) =
            sys::len_and_age(&file).map_err(|e| Error::io(&self.path, Op::Inspect, e))?;
        if len == 0 && age >= soft::MALFORMED_AGE {
            return Err(Error::Unsupported {
                path: self.path.to_path_buf(),
                reason: "flock is not supported on its file system, and an empty lock file of \
                         an flock user is at the path, so the soft lock cannot use it: remove \
                         it, or lock another path",
                source: Some(error),
            });
        }
        drop(file);
        self.run_soft()
    }

    /// One attempt of the soft (marker file) protocol.
    fn run_soft(self) -> Result<Outcome, Error> {
        for _ in 0..MAX_RACES {
            let flavour = self
                .protocol
                .soft_flavour()
                .unwrap_or(soft::Flavour::Legacy);
            match soft::attempt_as(&self.path, self.permissions, flavour, self.lifetime)? {
                SoftOutcome::Won(file) => return self.won_soft(file),
                SoftOutcome::Busy(id) => return Ok(Outcome::Busy { attempt: self, id }),
                SoftOutcome::MissingParent => self.create_parent()?,
            }
        }
        Err(self.parent_kept_disappearing())
    }

    fn won_soft(self, marker: File) -> Result<Outcome, Error> {
        let id = self.inspect(&marker)?.id;
        Ok(Outcome::Won(Held {
            file: Some(marker),
            id,
            path: self.path,
            preserve_lock_file: false,
            soft: true,
            strict: None,
            on_release: self.on_release,
            keep_in: None,
            keep: AtomicBool::new(false),
            marked: false,
        }))
    }

    /// One attempt of the strict (claim) protocol. Contention names the sentinel's
    /// identity, so that a release in this process wakes its waiters.
    fn run_strict(self) -> Result<Outcome, Error> {
        for _ in 0..MAX_RACES {
            match soft::strict::attempt(&self.path, self.permissions)? {
                StrictOutcome::Won(sentinel, claims) => {
                    let id = self.inspect(&sentinel)?.id;
                    return Ok(Outcome::Won(Held {
                        file: Some(sentinel),
                        id,
                        path: self.path,
                        preserve_lock_file: true,
                        soft: true,
                        strict: Some(claims),
                        on_release: self.on_release,
                        keep_in: None,
                        keep: AtomicBool::new(false),
                        marked: false,
                    }));
                }
                StrictOutcome::Busy => {
                    let id = sys::path_id(&self.path).ok().flatten();
                    return Ok(Outcome::Busy { attempt: self, id });
                }
                StrictOutcome::MissingParent => self.create_parent()?,
            }
        }
        Err(self.parent_kept_disappearing())
    }

    /// Opens the file, creating it and missing parents. `Ok(None)` means "busy" (Windows).
    fn open_file(&self) -> Result<Option<Opened>, Error> {
        let create_mode = self.permissions.unwrap_or(DEFAULT_CREATE_MODE);
        // To know whether this acquire created the file (for `mode`, and for adopting a new
        // file as a soft marker), open an existing file first and create with `O_EXCL` only
        // if there is none: one open when the file exists, the common case.
        let must_know = self.permissions.is_some()
            || self.protocol
                == (Protocol::Os {
                    fallback_to_soft: true,
                });
        let mut create = if must_know {
            Create::Never
        } else {
            Create::IfMissing
        };
        for _ in 0..MAX_RACES {
            match sys::open(&self.path, create_mode, create) {
                Ok(file) => {
                    return Ok(Some(Opened {
                        file,
                        id: None,
                        created: create == Create::New,
                        marked: false,
                    }));
                }
                Err(OpenFailure::Exists) => create = Create::Never,
                Err(OpenFailure::MissingParent) if create == Create::Never => create = Create::New,
                Err(OpenFailure::MissingParent) => self.create_parent()?,
                Err(OpenFailure::Again) => continue,
                Err(OpenFailure::Busy) => return Ok(None),
                Err(failure) => return Err(self.open_error(failure)),
            }
        }
        Err(self.parent_kept_disappearing())
    }

    /// The error for an open that failed for good.
    fn open_error(&self, failure: OpenFailure) -> Error {
        match failure {
            OpenFailure::NotAFile(kind) => Error::NotAFile {
                path: self.path.to_path_buf(),
                kind,
            },
            OpenFailure::InspectFailed(e) => Error::io(&self.path, Op::Inspect, e),
            OpenFailure::Failed(e) => Error::io(&self.path, Op::Open, e),
            OpenFailure::Again | OpenFailure::Busy | OpenFailure::Exists => Error::io(
                &self.path,
                Op::Open,
                io::Error::other("the open kept racing"),
            ),
            OpenFailure::MissingParent => Error::io(
                &self.path,
                Op::Open,
                io::Error::from(io::ErrorKind::NotFound),
            ),
        }
    }

    fn parent_kept_disappearing(&self) -> Error {
        Error::io(
            &self.path,
            Op::Open,
            io::Error::new(
                io::ErrorKind::NotFound,
                "the lock file's directory kept disappearing while it was being created",
            ),
        )
    }

    fn create_parent(&self) -> Result<(), Error> {
        let parent = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            // No parent to create: the ENOENT was about the file itself, so report it.
            _ => {
                return Err(Error::io(
                    &self.path,
                    Op::Open,
                    io::Error::from(io::ErrorKind::NotFound),
                ));
            }
        };
        fs::create_dir_all(parent).map_err(|e| Error::io(&self.path, Op::CreateParent, e))
    }

    /// One `fstat`; anything but a regular file is a permanent error.
    fn inspect(&self, file: &File) -> Result<sys::Facts, Error> {
        let facts = sys::inspect(file).map_err(|e| Error::io(&self.path, Op::Inspect, e))?;
        match facts.not_a_file {
            Some(kind) => Err(Error::NotAFile {
                path: self.path.to_path_buf(),
                kind,
            }),
            None => Ok(facts),
        }
    }

    /// After the lock is won (never before), on a file this acquire created: give it the
    /// configured permission bits exactly (the umask reduced them at creation). Best effort:
    /// the lock holds either way.
    fn apply_permissions(&self, file: &File, current: Option<u32>) {
        let Some(wanted) = self.permissions else {
            return;
        };
        if current.is_none_or(|bits| bits == wanted) {
            return;
        }
        if let Err(error) = sys::set_permissions(file, wanted) {
            tracing::debug!(
                target: "tokio_filelock",
                path = %self.path.display(),
                %error,
                "could not set the lock file's permissions; keeping them"
            );
        }
    }
}

/// Marks `file` as waited for, if `mark_waiting`; whether it is marked.
fn mark(mark_waiting: bool, file: &File) -> bool {
    #[cfg(target_os = "linux")]
    if mark_waiting {
        return sys::waiting_mark::mark(file).unwrap_or(false);
    }
    let _ = (mark_waiting, file);
    false
}

/// Withdraws `file`'s mark; whether it is gone.
#[cfg(target_os = "linux")]
fn unmark(file: &File) -> bool {
    sys::waiting_mark::unmark(file).is_ok()
}

/// Rejects paths that can never name a lock file, before any system call.
fn validate(path: &Path) -> Result<(), Error> {
    let invalid = |reason| {
        Err(Error::InvalidPath {
            path: path.to_path_buf(),
            reason,
        })
    };
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.is_empty() {
        return invalid("the path is empty");
    }
    if bytes.contains(&0) {
        return invalid("the path contains a NUL byte");
    }
    Ok(())
}

/// A won lock (OS lock or soft marker). Dropping it releases the lock (so an attempt that wins after its caller
/// went away releases at once); [`Held::release`] does the same and reports errors.
#[derive(Debug)]
pub(crate) struct Held {
    file: Option<File>,
    id: FileId,
    path: Arc<Path>,
    preserve_lock_file: bool,
    /// A soft marker (or a strict lock's sentinel): released by an identity-checked unlink
    /// (a strict lock by removing its claims).
    soft: bool,
    /// A strict lock's claims, removed on release.
    strict: Option<soft::strict::Claims>,
    /// Told of the release (see `Attempt::on_release`).
    on_release: fn(FileId),
    /// Where the file goes on release, unlocked, if nobody waits (the handle's; see
    /// `kept.rs`).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    keep_in: Option<Arc<Kept>>,
    /// The file may be kept (cleared when its descriptor is handed out: a copy elsewhere
    /// would share its lock).
    #[cfg_attr(not(unix), allow(dead_code))]
    keep: AtomicBool,
    /// Won by a waiter whose file still bears its waiting mark: withdrawn at release if the
    /// file is kept (a close drops it anyway), not on the hand-off path. (The mark of a
    /// description does not count in its own `F_OFD_GETLK`, and a holder is waited for,
    /// not waiting: a newcomer that sees the mark only looks at the line first.)
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    marked: bool,
}

/// What to look at to tell whether a hold is still in place (see [`Held::watch`]): taken
/// from the hold, checked without it.
#[derive(Debug, Clone)]
pub(crate) enum Watch {
    /// The lock file (or marker) must still be at the path.
    File { path: Arc<Path>, id: FileId },
    /// A strict lock's claims must still stand.
    Claims(soft::strict::Claims),
}

/// How a hold was found gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Gone {
    /// The lock file (or marker) was unlinked, renamed away or replaced.
    File,
    /// This claim of a strict lock was removed (its file name).
    Claim(String),
}

impl Watch {
    /// `Some` when the hold is proven gone (one or two `lstat`s); an I/O error other than
    /// "not found" proves nothing.
    pub(crate) fn gone(&self) -> Option<Gone> {
        match self {
            Watch::File { path, id } => match sys::still_names(path, *id) {
                Ok(false) => Some(Gone::File),
                Ok(true) | Err(_) => None,
            },
            Watch::Claims(claims) => soft::strict::missing(claims).map(Gone::Claim),
        }
    }
}

impl Held {
    pub(crate) fn id(&self) -> FileId {
        self.id
    }

    /// What tells whether this hold is still in place.
    pub(crate) fn watch(&self) -> Watch {
        match &self.strict {
            Some(claims) => Watch::Claims(claims.clone()),
            None => Watch::File {
                path: self.path.clone(),
                id: self.id,
            },
        }
    }

    /// A soft marker (won by the soft protocol, or after a fallback to it).
    pub(crate) fn is_soft(&self) -> bool {
        self.soft
    }

    /// The lock file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The locked file of an OS lock (`None` for a soft marker, whose file is its record).
    pub(crate) fn lock_file(&self) -> Option<&File> {
        self.file.as_ref().filter(|_| !self.soft)
    }

    /// The locked file of an OS lock (`None` for a soft marker), to hand out: it is
    /// closed at release, never kept for the next hold.
    #[cfg(unix)]
    pub(crate) fn os_file(&self) -> Option<&File> {
        self.keep.store(false, std::sync::atomic::Ordering::Relaxed);
        self.file.as_ref().filter(|_| !self.soft)
    }

    /// Unlocks and closes the file.
    pub(crate) fn release(mut self) -> Result<(), Error> {
        match self.file.take() {
            Some(file) => self.release_file(file),
            None => Ok(()),
        }
    }

    fn release_file(&mut self, file: File) -> Result<(), Error> {
        if let Some(claims) = self.strict.take() {
            return soft::strict::release(file, claims, &self.path);
        }
        if self.soft {
            return soft::release(file, &self.path);
        }
        #[cfg(target_os = "linux")]
        if let Some(kept) = self.keep_in.take()
            && self.keep.load(std::sync::atomic::Ordering::Relaxed)
        {
            return self.release_keeping(file, &kept);
        }
        sys::release(file, &self.path, self.preserve_lock_file)
            .map_err(|e| Error::io(&self.path, Op::Unlock, e))
    }

    /// Unlocks, then keeps the file for the handle's next acquire if no waiter of this
    /// crate marked it; else closes it (the close is what wakes such a waiter). The mark
    /// is looked at after the unlock: a waiter that marks later made its failed attempt
    /// before the unlock, so its next attempt, after it armed its watch, finds the lock
    /// free.
    #[cfg(target_os = "linux")]
    fn release_keeping(&self, file: File, kept: &Kept) -> Result<(), Error> {
        if let Err(e) = sys::unlock(&file) {
            drop(file); // closing releases the lock even if `unlock` failed
            return Err(Error::io(&self.path, Op::Unlock, e));
        }
        if matches!(
            sys::waiting_mark::marked_by_another_process(&file),
            Ok(false)
        ) && (!self.marked || unmark(&file))
        {
            drop(kept.put(file, self.id));
        }
        Ok(())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(file) = self.file.take()
            && let Err(error) = self.release_file(file)
        {
            tracing::warn!(
                target: "tokio_filelock",
                path = %self.path.display(),
                %error,
                "releasing the lock failed; its descriptor was closed"
            );
        }
        // Released (by `release` or here): tell the layer above (which wakes this process's
        // next waiter on the file).
        (self.on_release)(self.id);
    }
}

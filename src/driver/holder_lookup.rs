//! Naming the holder: after a contended attempt, when the waiting hook is due or the wait
//! ran out, find who holds the lock. The lookup reads files, so the drivers run it where
//! they run attempts: the async driver on the blocking pool, the sync one on its thread.

use std::path::Path;
use std::sync::Arc;

use super::schedule::Wait;
use super::{Acquisition, Step};
use crate::WaitEvent;
use crate::attempt::{Attempt, Found, Probe, Protocol, soft};
use crate::driver::WaitHook;
use crate::sys;
use crate::sys::FileId;
use crate::{Error, Holder, LockMode, Op};

/// How an acquire was asked for: how long it may wait, and whether a failure names the
/// holder.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request {
    pub(crate) wait: Wait,
    pub(crate) name_holder: bool,
}

impl Request {
    /// One attempt whose failure is not an error (`try_*` returns `None`): finding the
    /// holder would be wasted work on every busy try.
    pub(crate) const TRY: Request = Request {
        wait: Wait::Once,
        name_holder: false,
    };
}

impl From<Wait> for Request {
    fn from(wait: Wait) -> Self {
        Request {
            wait,
            name_holder: true,
        }
    }
}

/// A step, as it is or with a lookup to run first.
pub(crate) enum Described {
    Ready(Result<Step, Error>),
    Lookup(Lookup),
}

impl Described {
    /// The step, running the lookup (if any) on this thread. For the sync driver.
    pub(crate) fn here(self) -> Result<Step, Error> {
        match self {
            Described::Ready(step) => step,
            Described::Lookup(lookup) => lookup.run(),
        }
    }
}

/// A step waiting for its holder: the waiting hook to call, or the timeout to fill in.
pub(crate) struct Lookup {
    step: Result<Step, Error>,
    announce: Announce,
}

impl Lookup {
    /// Finds the holder, then calls the hook or names the holder in the timeout. Blocking.
    pub(crate) fn run(self) -> Result<Step, Error> {
        let found = self.announce.run();
        name_holder(self.step, found)
    }
}

/// A holder lookup, and the waiting hook to call with its answer (if the hook is due).
pub(crate) struct Announce {
    /// `None` when the contended attempt could not even open the file (Windows: sharing
    /// violation): the hook then hears of no holder.
    find: Option<FindHolder>,
    hook: Option<WaitHook>,
    path: Arc<Path>,
    mode: LockMode,
}

impl Announce {
    /// Finds the holder and calls the hook, if any, with it. Blocking.
    pub(crate) fn run(self) -> Found {
        let found = self.find.map(FindHolder::run).unwrap_or_default();
        if let Some(hook) = &self.hook {
            hook.call(&WaitEvent::new(
                &self.path,
                self.mode,
                found.holder.as_ref(),
            ));
        }
        found
    }
}

/// Names `found` as the holder if `step` is a timeout.
fn name_holder(mut step: Result<Step, Error>, found: Found) -> Result<Step, Error> {
    if let Err(Error::Timeout {
        holder,
        empty_marker,
        ..
    }) = &mut step
    {
        *holder = found.holder.map(Box::new);
        *empty_marker = found.empty_marker;
    }
    step
}

/// One holder lookup, logged. Run when a lookup is due, or ahead, at the start of the
/// final sleep, so that naming the holder does not delay the timeout: on Linux reading
/// `/proc/locks` waits for an RCU grace period, several milliseconds, and holds up every
/// `flock` call meanwhile. The holder named is then the one seen at most one sleep before
/// the final attempt.
pub(crate) struct FindHolder {
    probe: Probe,
}

impl FindHolder {
    /// Finds the holder. Blocking: reads files.
    pub(crate) fn run(self) -> Found {
        let found = find(&self.probe);
        tracing::debug!(
            target: "tokio_filelock",
            holder = found.holder.as_ref().map(tracing::field::display),
            empty_marker = found.empty_marker,
            "holder"
        );
        found
    }
}

impl Acquisition {
    /// Before the sleep that ends at the deadline: the lookup to run meanwhile, if a
    /// timeout would name the holder. The driver hands its answer to
    /// [`prefetched`](Self::prefetched).
    pub(crate) fn holder_prefetch(&self) -> Option<FindHolder> {
        if !self.name_holder {
            return None;
        }
        self.lookup()
    }

    /// A lookup of the holder the last contended attempt found, if it can be looked up.
    fn lookup(&self) -> Option<FindHolder> {
        Some(FindHolder {
            probe: self.probe.clone()?,
        })
    }

    /// Before an acquire lines up behind this process's waiters on `file` without an
    /// attempt of its own (so it is going to wait): the waiting hook to call, if one is set,
    /// with a lookup of the holder they wait for. The hook runs once per acquire.
    pub(crate) fn following(&mut self, attempt: &Attempt, file: FileId) -> Option<Announce> {
        self.probe = attempt.probe(Some(file));
        let hook = self.on_wait.clone().filter(|_| !self.announced)?;
        self.announced = true;
        Some(self.announce(Some(hook)))
    }

    /// The answer of a [`FindHolder`]: a timeout names this holder without another lookup.
    pub(crate) fn prefetched(&mut self, holder: Found) {
        self.prefetched = Some(holder);
    }

    /// What `step` (from [`after`](Acquisition::after)) needs before the driver acts on it:
    /// a lookup when it is the first wait and a waiting hook is set, or when it is a timeout
    /// of an acquire that names the holder.
    pub(crate) fn describe(&mut self, step: Result<Step, Error>) -> Described {
        let first_wait = !self.announced && matches!(step, Ok(Step::Retry(..)));
        let hook = self.on_wait.clone().filter(|_| first_wait);
        self.announced |= hook.is_some();
        // A single attempt names only a holder that is cheap to find: reading /proc/locks
        // costs more than the attempt (BENCHMARKS.md, "One attempt on a held lock").
        let timeout = self.name_holder
            && matches!(step, Err(Error::Timeout { .. }))
            && (self.wait != Wait::Once || self.probe.as_ref().is_some_and(Probe::is_cheap));
        if let (true, Some(found)) = (timeout, self.prefetched.take()) {
            return Described::Ready(name_holder(step, found));
        }
        if hook.is_none() && !(timeout && self.probe.is_some()) {
            return Described::Ready(step);
        }
        Described::Lookup(Lookup {
            step,
            announce: self.announce(hook),
        })
    }

    /// A lookup of the holder (the probe is refreshed by every contended attempt), then
    /// `hook`.
    fn announce(&self, hook: Option<WaitHook>) -> Announce {
        Announce {
            find: self.lookup(),
            hook,
            path: self.state.path().clone(),
            mode: self.mode,
        }
    }
}

/// Who holds it, if that can be found. Blocking: reads files.
fn find(probe: &Probe) -> Found {
    match probe {
        Probe::Os { id, wanted } => Found {
            holder: os_lock_holder(*id, *wanted),
            empty_marker: false,
        },
        Probe::Soft { marker } => soft::found(marker),
        Probe::Strict { lock } => soft::strict::found(lock),
    }
}

/// The process holding the OS lock on the file `id` against a request in `wanted` mode, with
/// its command line when readable (Linux: from `/proc`). Blocking: reads files.
fn os_lock_holder(id: FileId, wanted: LockMode) -> Option<Holder> {
    let entry = sys::lock_holder(id, wanted)?;
    #[allow(unused_mut)] // only Linux reads a command line
    let mut holder = Holder::new(entry.pid, entry.mode);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Ok(raw) = sys::cmdline(entry.pid) {
        holder = holder.with_cmdline(&raw);
    }
    Some(holder)
}

/// Who holds the OS lock on the file at `path`, without opening it (so without creating it
/// or taking any lock): `None` when nobody does, or the file does not exist.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn os_path_holder(path: &Path) -> Result<Option<Holder>, Error> {
    match sys::at_path(path).map_err(|e| Error::io(path, Op::Inspect, e))? {
        sys::AtPath::Missing => Ok(None),
        sys::AtPath::NotAFile(kind) => Err(Error::NotAFile {
            path: path.to_path_buf(),
            kind,
        }),
        sys::AtPath::File(id) => Ok(os_lock_holder(id, LockMode::Exclusive)),
    }
}

/// Who holds the OS lock on the file at a path: not known on this platform.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn os_path_holder(path: &Path) -> Result<Option<Holder>, Error> {
    Err(Error::io(
        path,
        Op::Inspect,
        std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "who holds a lock can only be found on Linux (from /proc/locks)",
        ),
    ))
}

/// Who holds the lock at `path` under `protocol`. Blocking: reads files.
pub(crate) fn path_holder(path: &Path, protocol: Protocol) -> Result<Option<Holder>, Error> {
    match protocol {
        Protocol::Soft | Protocol::Lease(_) => Ok(soft::holder(path)),
        Protocol::Strict => Ok(soft::strict::found(path).holder),
        Protocol::Os { .. } => os_path_holder(path),
    }
}

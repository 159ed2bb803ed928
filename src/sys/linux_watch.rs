//! Linux: an inotify watch on the lock file, read through the Tokio reactor.
//!
//! A holder's release of an OS lock closes its descriptor (`flock` unlock, then `close`),
//! and a close makes inotify report `IN_CLOSE_WRITE` or `IN_CLOSE_NOWRITE` on the file. A
//! waiter that keeps its own descriptor open between attempts makes no close of its own,
//! so waiters do not wake each other. A soft lock's release unlinks the marker instead
//! (`IN_ATTRIB` for the link count, then `IN_DELETE_SELF`), and its waiters open and close
//! the marker to read it, so for a marker closes are not watched. `IN_ATTRIB`,
//! `IN_DELETE_SELF` and `IN_MOVE_SELF` always wake: the file may no longer be the lock file.
//! An event is only a hint to attempt again; the attempt decides.
//!
//! Closing an inotify instance waits for a kernel grace period (often 10 ms or more), so a
//! watch never closes its instance on the spot: it removes its watch (`inotify_rm_watch`,
//! which does not wait), reads what is queued, and returns the instance to a small pool for
//! the next watch while the process has waiters ([`keep_idle`]). Other instances, and the
//! pool's when the last waiter leaves, are closed on the blocking pool: no descriptor
//! outlives the waiting.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use super::Release;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// The events that may mean "the file changed under us" (or a marker was released).
const REPLACED: u32 = libc::IN_ATTRIB | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF;

/// The events of an OS lock's release.
const CLOSED: u32 = libc::IN_CLOSE_WRITE | libc::IN_CLOSE_NOWRITE;

/// The kernel dropped the watch: the file is gone (or its file system unmounted).
const DEAD: u32 = libc::IN_IGNORED | libc::IN_DELETE_SELF | libc::IN_UNMOUNT;

/// Size of an `inotify_event` without its name; the watch is on a file, so no names come.
const EVENT_HEADER: usize = 16;

/// Idle inotify instances, each with no watch, ready for the next [`Watch`].
static POOL: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// Whether idle instances are kept (this process has waiters): see [`keep_idle`].
static KEEP_IDLE: AtomicBool = AtomicBool::new(false);

/// Called with `true` when this process starts having waiters, with `false` when its last
/// waiter left: then the idle instances are closed (off the worker), so that no descriptor
/// stays open once nobody waits.
pub(crate) fn keep_idle(keep: bool) {
    KEEP_IDLE.store(keep, Ordering::SeqCst);
    if !keep {
        let idle = std::mem::take(&mut *crate::sync::lock(&POOL));
        idle.into_iter().for_each(close);
    }
}

/// Closes an instance where waiting for the kernel does not hold a worker: on the blocking
/// pool, or here when there is no runtime.
fn close(file: File) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => drop(handle.spawn_blocking(move || drop(file))),
        Err(_) => drop(file),
    }
}

/// How many idle instances the pool keeps. A hand-off passes one from the leaving head to
/// the next, so a few cover many files; each counts against the per-user inotify limit
/// (128 by default) and is one open descriptor of the process.
const POOL_SIZE: usize = 4;

/// Registers `file` with the current runtime's reactor.
fn register(file: File) -> io::Result<AsyncFd<File>> {
    // `with_interest` is deprecated in newer Tokio in favour of an `unsafe` constructor
    // whose contract (the descriptor stays open and the same for the `AsyncFd`'s whole
    // life) an owned `File` keeps by itself.
    #[allow(deprecated)]
    AsyncFd::with_interest(file, Interest::READABLE)
}

/// An idle instance from the pool, or a new one.
fn instance() -> io::Result<File> {
    let pooled = crate::sync::lock(&POOL).pop();
    if let Some(file) = pooled {
        return Ok(file);
    }
    // SAFETY: `inotify_init1` takes only flags and returns a new descriptor or -1.
    let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor just returned to us that nothing else owns.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(raw) }))
}

/// Returns an instance that has no watch left to the pool, or closes it off the worker.
fn recycle(file: File) {
    // Whatever is queued (at least the `IN_IGNORED` of the removed watch) is read now, so
    // the next watch starts with an empty queue.
    let _ = drain(&file);
    let mut pool = crate::sync::lock(&POOL);
    // Checked under the pool's lock, which `keep_idle(false)` takes to empty it.
    if KEEP_IDLE.load(Ordering::SeqCst) && pool.len() < POOL_SIZE {
        pool.push(file);
        return;
    }
    drop(pool);
    close(file);
}

/// One inotify instance watching one lock file, registered with the current runtime's
/// reactor. Dropping it closes the instance (which removes the watch).
#[derive(Debug)]
pub(crate) struct Watch {
    /// `None` only while dropping.
    fd: Option<AsyncFd<File>>,
    /// The watch descriptor: events of other (earlier) watches of a reused instance are
    /// ignored.
    wd: i32,
    alive: bool,
}

impl Watch {
    /// Watches `path` (never following a symlink). Looks up the path, so it runs where file
    /// system calls may run (the blocking pool); needs a runtime context (to register with
    /// the reactor), which blocking-pool threads have.
    pub(crate) fn new(path: &Path, release: Release) -> io::Result<Watch> {
        let events = match release {
            Release::Close => CLOSED | REPLACED,
            Release::Unlink => REPLACED,
        };
        let c_path = CString::new(path.as_os_str().as_bytes())?;
        if !super::runtime_io::has_io() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the Tokio runtime has no IO driver (enable_io) to watch the file with",
            ));
        }
        let file = instance()?;
        // SAFETY: `file` is an open inotify descriptor and `c_path` a NUL-terminated
        // string that outlives the call; the kernel copies the path.
        let wd = unsafe {
            libc::inotify_add_watch(
                file.as_raw_fd(),
                c_path.as_ptr(),
                events | libc::IN_DONT_FOLLOW,
            )
        };
        if wd < 0 {
            let error = io::Error::last_os_error();
            recycle(file);
            return Err(error);
        }
        let fd = register(file)?;
        Ok(Watch {
            fd: Some(fd),
            wd,
            alive: true,
        })
    }

    /// `false` once the kernel dropped the watch (or reading it failed): it will never fire
    /// again, and a new one is needed.
    pub(crate) fn is_alive(&self) -> bool {
        self.alive
    }

    /// Ready when events came since the last call (they are read and discarded), or when
    /// the watch died. Level-triggered: events that came while nobody polled (during an
    /// attempt) are reported at the next poll, so no wake-up is lost.
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(fd) = self.fd.as_ref().filter(|_| self.alive) else {
            return Poll::Pending;
        };
        loop {
            let mut guard = match fd.poll_read_ready(cx) {
                Poll::Ready(Ok(guard)) => guard,
                Poll::Ready(Err(_)) => {
                    self.alive = false;
                    return Poll::Ready(());
                }
                Poll::Pending => return Poll::Pending,
            };
            // `try_io` clears the readiness only when the read says `WouldBlock`.
            match guard.try_io(|fd| drain(fd.get_ref())) {
                Ok(Ok(events)) => {
                    let mask = mask_of(&events, self.wd);
                    if mask == 0 {
                        continue; // only events of an earlier watch of this instance
                    }
                    if mask & DEAD != 0 {
                        self.alive = false;
                    }
                    return Poll::Ready(());
                }
                Ok(Err(_)) => {
                    self.alive = false;
                    return Poll::Ready(());
                }
                Err(_would_block) => continue,
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let Some(fd) = self.fd.take() else { return };
        let file = fd.into_inner();
        if self.alive {
            // SAFETY: `file` is an open inotify descriptor; removing a watch that the kernel
            // already dropped fails harmlessly with EINVAL.
            unsafe { libc::inotify_rm_watch(file.as_raw_fd(), self.wd) };
        }
        recycle(file);
    }
}

/// Reads every queued event; returns their bytes, or `WouldBlock` if there was none.
fn drain(mut file: &File) -> io::Result<Vec<u8>> {
    let mut buf = [0u8; 4096];
    let mut events = Vec::new();
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => events.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    if events.is_empty() {
        Err(io::ErrorKind::WouldBlock.into())
    } else {
        Ok(events)
    }
}

/// The union of the masks of the `inotify_event`s in `buf` that belong to watch `wd`.
fn mask_of(buf: &[u8], wd: i32) -> u32 {
    let mut mask = 0;
    let mut at = 0;
    while let Some(header) = buf.get(at..at + EVENT_HEADER) {
        let field =
            |i: usize| u32::from_ne_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        if field(0) as i32 == wd {
            mask |= field(4);
        }
        at += EVENT_HEADER + field(12) as usize;
    }
    mask
}

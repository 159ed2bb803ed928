//! Linux: the change notification of the crate's watcher thread, one inotify instance and
//! one eventfd, waited on together with `ppoll(2)`.
//!
//! A holder's release of an OS lock closes its descriptor (`flock` unlock, then `close`),
//! and a close makes inotify report `IN_CLOSE_WRITE` or `IN_CLOSE_NOWRITE` on the file. A
//! waiter that keeps its own descriptor open between attempts makes no close of its own,
//! so waiters do not wake each other. A soft lock's release unlinks the marker instead
//! (`IN_ATTRIB` for the link count, then `IN_DELETE_SELF`). `IN_ATTRIB`, `IN_DELETE_SELF`
//! and `IN_MOVE_SELF` always matter: the file may no longer be the lock file. An event is
//! only a hint to attempt again; the attempt decides.
//!
//! One instance serves the whole process: a file is watched once (the kernel gives a second
//! `inotify_add_watch` of the same inode the same watch descriptor), and the layer above
//! counts its users. The instance lives as long as the watcher thread, which never closes
//! it (closing an inotify instance waits for a kernel grace period).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use super::WatchEvent;

/// The events that may mean "the file changed under us" (or a marker was released).
const REPLACED: u32 = libc::IN_ATTRIB | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF;

/// The events of an OS lock's release.
const CLOSED: u32 = libc::IN_CLOSE_WRITE | libc::IN_CLOSE_NOWRITE;

/// The kernel dropped the watch: the file is gone (or its file system unmounted).
const DEAD: u32 = libc::IN_IGNORED | libc::IN_DELETE_SELF | libc::IN_UNMOUNT;

/// Size of an `inotify_event` without its name; the watches are on files, so no names come.
const EVENT_HEADER: usize = 16;

/// One inotify instance (if the per-user limit allowed one) and an eventfd that cuts a wait
/// short.
#[derive(Debug)]
pub(crate) struct Notifier {
    inotify: Result<OwnedFd, io::ErrorKind>,
    wake: OwnedFd,
}

/// Makes a descriptor from a raw call's result.
fn owned(raw: libc::c_int) -> io::Result<OwnedFd> {
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor just returned to us that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

impl Notifier {
    /// An error only when the eventfd cannot be made; without inotify (its per-user limit
    /// reached) the notifier still times waits, and [`Notifier::add_watch`] fails.
    pub(crate) fn new() -> io::Result<Notifier> {
        // SAFETY: `eventfd` takes an initial value and flags, and returns a new descriptor
        // or -1.
        let wake = owned(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        // SAFETY: `inotify_init1` takes only flags and returns a new descriptor or -1.
        let inotify = owned(unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) })
            .map_err(|e| e.kind());
        Ok(Notifier { inotify, wake })
    }

    /// Watches the file at `path` (never following a symlink) for releases and
    /// replacement; returns its watch descriptor, the same for every watch of one file.
    pub(crate) fn add_watch(&self, path: &Path) -> io::Result<i32> {
        let inotify = self
            .inotify
            .as_ref()
            .map_err(|kind| io::Error::from(*kind))?;
        let c_path = CString::new(path.as_os_str().as_bytes())?;
        // SAFETY: `inotify` is an open inotify descriptor and `c_path` a NUL-terminated
        // string that outlives the call; the kernel copies the path.
        let wd = unsafe {
            libc::inotify_add_watch(
                inotify.as_raw_fd(),
                c_path.as_ptr(),
                CLOSED | REPLACED | libc::IN_DONT_FOLLOW,
            )
        };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(wd)
    }

    /// Stops watching `wd` (no wait for the kernel; a watch that it dropped already fails
    /// harmlessly).
    pub(crate) fn remove_watch(&self, wd: i32) {
        if let Ok(inotify) = &self.inotify {
            // SAFETY: `inotify` is an open inotify descriptor; removing a watch that the
            // kernel already dropped fails with EINVAL and changes nothing.
            unsafe { libc::inotify_rm_watch(inotify.as_raw_fd(), wd) };
        }
    }

    /// Ends the current (or the next) [`Notifier::wait`] early. Never blocks.
    pub(crate) fn interrupt(&self) {
        let one: u64 = 1;
        // SAFETY: `wake` is an open eventfd and `one` 8 readable bytes. A full counter
        // (EAGAIN) means a wake-up is pending already.
        unsafe {
            libc::write(
                self.wake.as_raw_fd(),
                (&raw const one).cast(),
                size_of::<u64>(),
            )
        };
    }

    /// Waits until an event comes, [`Notifier::interrupt`] is called, or `timeout` passes
    /// (`None`: no timeout); appends the events that came to `events`.
    pub(crate) fn wait(
        &self,
        timeout: Option<Duration>,
        events: &mut Vec<WatchEvent>,
    ) -> io::Result<()> {
        let mut fds = [
            libc::pollfd {
                fd: self.wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.inotify.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let spec = timeout.map(super::timespec);
        let spec_ptr = spec
            .as_ref()
            .map_or(std::ptr::null(), |s| s as *const libc::timespec);
        // SAFETY: `fds` is an array of two valid `pollfd`s (a negative fd is ignored),
        // `spec_ptr` is null or points to a `timespec` that outlives the call, and a null
        // signal mask leaves the thread's mask alone.
        let n = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, spec_ptr, std::ptr::null()) };
        if n < 0 {
            let error = io::Error::last_os_error();
            return match error.kind() {
                io::ErrorKind::Interrupted => Ok(()),
                _ => Err(error),
            };
        }
        if fds[0].revents != 0 {
            let mut count = 0u64;
            // SAFETY: `wake` is an open eventfd and `count` 8 writable bytes.
            unsafe {
                libc::read(
                    self.wake.as_raw_fd(),
                    (&raw mut count).cast(),
                    size_of::<u64>(),
                )
            };
        }
        if fds[1].revents != 0
            && let Ok(inotify) = &self.inotify
        {
            drain(inotify, events)?;
        }
        Ok(())
    }
}

/// Reads every queued event into `events`.
fn drain(inotify: &OwnedFd, events: &mut Vec<WatchEvent>) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: `inotify` is an open descriptor and `buf` `buf.len()` writable bytes.
        let n = unsafe { libc::read(inotify.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let error = io::Error::last_os_error();
            return match error.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => Ok(()),
                _ => Err(error),
            };
        }
        if n == 0 {
            return Ok(());
        }
        let n = n as usize;
        parse(&buf[..n], events);
        if n + EVENT_HEADER <= buf.len() {
            // The kernel fills the buffer while events fit (and these, on files, carry no
            // name): room for one more means the queue was empty. A later event makes the
            // descriptor readable again for the next wait: no read that can only say
            // EAGAIN on the hand-off path.
            return Ok(());
        }
    }
}

/// The `inotify_event`s in `buf`.
fn parse(buf: &[u8], events: &mut Vec<WatchEvent>) {
    let mut at = 0;
    while let Some(header) = buf.get(at..at + EVENT_HEADER) {
        let field =
            |i: usize| u32::from_ne_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let mask = field(4);
        events.push(WatchEvent {
            wd: field(0) as i32,
            closed: mask & CLOSED != 0,
            replaced: mask & REPLACED != 0,
            dead: mask & DEAD != 0,
        });
        at += EVENT_HEADER + field(12) as usize;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_a_close_of_a_watched_file_once_and_an_interrupt_ends_a_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watched");
        std::fs::write(&path, b"").unwrap();
        let notifier = Notifier::new().unwrap();
        let wd = notifier.add_watch(&path).unwrap();
        assert_eq!(notifier.add_watch(&path).unwrap(), wd, "one watch per file");
        drop(std::fs::File::open(&path).unwrap());
        let mut events = Vec::new();
        notifier
            .wait(Some(Duration::from_secs(30)), &mut events)
            .unwrap();
        assert!(events.iter().any(|e| e.wd == wd && e.closed), "{events:?}");
        events.clear();
        notifier.interrupt();
        notifier.wait(None, &mut events).unwrap(); // returns: the interrupt is pending
        assert!(events.is_empty());
        notifier.remove_watch(wd);
        notifier
            .wait(Some(Duration::from_secs(30)), &mut events)
            .unwrap();
        assert!(events.iter().all(|e| e.wd == wd && e.dead), "{events:?}");
    }
}

//! macOS and FreeBSD: the change notification of the crate's watcher thread, one kqueue with
//! an `EVFILT_VNODE` watch per lock file (on a descriptor of the notifier's own) and an
//! `EVFILT_USER` event that cuts a wait short (no pipe needed).
//!
//! What each system reports when a holder lets go (read in their sources):
//!
//! - **FreeBSD** (11.0 and later) posts `NOTE_CLOSE` / `NOTE_CLOSE_WRITE` when a descriptor
//!   of the file is closed (`vop_close_post`, `sys/kern/vfs_subr.c`: the last close of an
//!   open file description), so a holder's release (`flock(LOCK_UN)`, then `close`) is seen
//!   at its close. `flock(LOCK_UN)` without a close posts nothing: a holder that unlocks and
//!   keeps its descriptor open is seen at the waiter's next timed attempt, as on Linux.
//! - **macOS** (10.12 and later) has no close event, but posts `NOTE_FUNLOCK` whenever an
//!   `flock` lock is unlocked (`VNOP_ADVLOCK` in XNU's `bsd/vfs/kpi_vfs.c`, for every
//!   successful `F_UNLCK` with `F_FLOCK`): by `flock(LOCK_UN)` (`sys_flock`,
//!   `bsd/kern/kern_descrip.c`), even without a close, and by the last close of a
//!   description that held an `flock` lock (`vn_closefile`, `bsd/vfs/vfs_vnops.c`). A close
//!   of a descriptor that never held the lock posts nothing, nor does a failed `LOCK_NB`
//!   attempt (`sys_flock` marks a description as having locked only on success). A
//!   `LOCK_UN` by a descriptor that held nothing posts it too (`lf_advlock` succeeds on it).
//!
//! Either way the event maps onto [`WatchEvent::closed`], the release of an OS lock.
//! `NOTE_DELETE`, `NOTE_RENAME`, `NOTE_REVOKE`, `NOTE_LINK` and `NOTE_ATTRIB` are
//! [`WatchEvent::replaced`] (the path may no longer name the watched file, or a soft lock's
//! marker was removed); `NOTE_DELETE`, `NOTE_REVOKE` and `EV_EOF` (file system unmounted) are
//! [`WatchEvent::dead`]: the notifier then closes its descriptor and forgets the watch, as
//! the kernel drops an inotify watch, and the waiter arms a new one on whatever the path
//! names next.
//!
//! Any close counts on FreeBSD: a waiter's own open and close of the lock file (the first
//! open of an acquire that gives up, or another notifier's watch descriptor being closed)
//! fires `NOTE_CLOSE` as well, as it fires `IN_CLOSE_NOWRITE` on Linux. Wake-ups are only
//! hints (DESIGN semantics 11): that costs a spurious attempt, never exclusion. Waiters keep
//! their descriptor open between attempts (`KEEP_OPEN_WHILE_WAITING`), so they do not wake
//! each other while they wait.
//!
//! The watch descriptor is opened without following a symlink (`O_NOFOLLOW`), with
//! `O_NONBLOCK` (a FIFO at the path cannot hang the open) and close-on-exec; on macOS
//! `O_EVTONLY`, so that it does not keep the volume from being unmounted; on FreeBSD read
//! only, so a lock file its waiter cannot read is not watched (the waiter polls). A file
//! that cannot be opened is an error, as `inotify_add_watch` fails.
//!
//! A file is watched once per notifier: a second [`Notifier::add_watch`] of the same file
//! (device and inode) returns the same id without opening it again, and the layer above
//! counts its users, as for inotify. Ids come from a counter, not from the descriptor's
//! number: a descriptor number is reused by the next open as soon as it is closed, while the
//! layer above may still hold the id of a watch that died; an id is never reused (within
//! 2^31 watches).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use super::WatchEvent;

/// `NOTE_FUNLOCK` from XNU's `bsd/sys/event.h` ("vnode was unlocked by flock(2)"). The
/// `libc` crate exports it only in releases newer than this crate's floor (0.2.172).
#[cfg(target_os = "macos")]
const NOTE_FUNLOCK: u32 = 0x0000_0100;

/// The events of an OS lock's release.
#[cfg(target_os = "macos")]
const CLOSED: u32 = NOTE_FUNLOCK;
#[cfg(target_os = "freebsd")]
const CLOSED: u32 = libc::NOTE_CLOSE | libc::NOTE_CLOSE_WRITE;

/// The events that may mean "the file changed under us" (or a marker was released).
const REPLACED: u32 =
    libc::NOTE_DELETE | libc::NOTE_RENAME | libc::NOTE_REVOKE | libc::NOTE_LINK | libc::NOTE_ATTRIB;

/// The watch cannot see the file at the path any more: it was unlinked, or access to it was
/// revoked (file system unmounted).
const DEAD: u32 = libc::NOTE_DELETE | libc::NOTE_REVOKE;

/// How the watch descriptor is opened (std adds `O_CLOEXEC`).
#[cfg(target_os = "macos")]
const OPEN_FLAGS: libc::c_int = libc::O_EVTONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
#[cfg(target_os = "freebsd")]
const OPEN_FLAGS: libc::c_int = libc::O_NOFOLLOW | libc::O_NONBLOCK;

/// The `EVFILT_USER` event's identifier (the only one in the queue).
const INTERRUPT: usize = 0;

/// Events read per wait; more stay queued for the next one.
const BATCH: usize = 32;

/// One watched file.
#[derive(Debug)]
struct Watch {
    /// The descriptor the kqueue watches; closing it removes the watch.
    _file: File,
    dev: u64,
    ino: u64,
}

/// The watches by id, and the next id.
#[derive(Debug, Default)]
struct Watches {
    by_id: HashMap<i32, Watch>,
    next: i32,
}

impl Watches {
    fn find(&self, dev: u64, ino: u64) -> Option<i32> {
        self.by_id
            .iter()
            .find(|(_, w)| w.dev == dev && w.ino == ino)
            .map(|(id, _)| *id)
    }

    /// A fresh id: positive, never one in use.
    fn new_id(&mut self) -> i32 {
        loop {
            self.next = if self.next == i32::MAX {
                1
            } else {
                self.next + 1
            };
            if !self.by_id.contains_key(&self.next) {
                return self.next;
            }
        }
    }
}

/// One kqueue, with an `EVFILT_USER` event for [`Notifier::interrupt`], and the files it
/// watches.
#[derive(Debug)]
pub(crate) struct Notifier {
    kqueue: OwnedFd,
    watches: Mutex<Watches>,
}

/// A `kevent` with the given fields, the others zero.
fn event(ident: usize, filter: i16, flags: u16, fflags: u32, udata: usize) -> libc::kevent {
    // SAFETY: `kevent` is a plain C struct of integers and one pointer (plus reserved
    // integers on FreeBSD); all zeros is a valid value of each (a null `udata`).
    let mut ev: libc::kevent = unsafe { std::mem::zeroed() };
    ev.ident = ident;
    ev.filter = filter;
    ev.flags = flags;
    ev.fflags = fflags;
    // Only carried back to us, never dereferenced: the watch's id.
    ev.udata = udata as *mut libc::c_void;
    ev
}

impl Notifier {
    /// An error when the kqueue cannot be made or its interrupt event registered.
    pub(crate) fn new() -> io::Result<Notifier> {
        // SAFETY: `kqueue` takes no arguments and returns a new descriptor or -1.
        let raw = unsafe { libc::kqueue() };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor just returned to us that nothing else owns.
        let kqueue = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: `kqueue` is an open descriptor; `F_SETFD` only sets its flags. (A kqueue
        // is not inherited by `fork`; this keeps an `exec` without a fork from leaking it.)
        if unsafe { libc::fcntl(kqueue.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let notifier = Notifier {
            kqueue,
            watches: Mutex::default(),
        };
        notifier.change(event(
            INTERRUPT,
            libc::EVFILT_USER,
            libc::EV_ADD | libc::EV_CLEAR,
            0,
            0,
        ))?;
        Ok(notifier)
    }

    /// Registers one change with the kqueue (no events read).
    fn change(&self, change: libc::kevent) -> io::Result<()> {
        loop {
            // SAFETY: `kqueue` is an open kqueue, `change` one valid `kevent` that outlives
            // the call, and no event list is passed (null, 0) nor a timeout (null: an
            // empty event list returns at once).
            let n = unsafe {
                libc::kevent(
                    self.kqueue.as_raw_fd(),
                    &change,
                    1,
                    std::ptr::null_mut(),
                    0,
                    std::ptr::null(),
                )
            };
            if n >= 0 {
                return Ok(());
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }

    /// Watches the file at `path` (never following a symlink) for releases and
    /// replacement; returns its id, the same for every watch of one file.
    pub(crate) fn add_watch(&self, path: &Path) -> io::Result<i32> {
        // A file watched already is not opened again: on FreeBSD the close of a second
        // descriptor would fire the watch.
        if let Ok(meta) = std::fs::symlink_metadata(path)
            && let Some(id) = self.watches().find(meta.dev(), meta.ino())
        {
            return Ok(id);
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(OPEN_FLAGS)
            .open(path)?;
        let meta = file.metadata()?;
        let mut watches = self.watches();
        if let Some(id) = watches.find(meta.dev(), meta.ino()) {
            return Ok(id); // watched meanwhile by another thread
        }
        let id = watches.new_id();
        self.change(event(
            file.as_raw_fd() as usize,
            libc::EVFILT_VNODE,
            libc::EV_ADD | libc::EV_CLEAR,
            CLOSED | REPLACED,
            id as usize,
        ))?;
        watches.by_id.insert(
            id,
            Watch {
                _file: file,
                dev: meta.dev(),
                ino: meta.ino(),
            },
        );
        Ok(id)
    }

    /// Stops watching `id` (closes its descriptor, which removes it from the kqueue); a
    /// watch that died already is gone, and nothing happens.
    pub(crate) fn remove_watch(&self, id: i32) {
        let removed = self.watches().by_id.remove(&id);
        drop(removed);
    }

    /// Ends the current (or the next) [`Notifier::wait`] early. Never blocks.
    pub(crate) fn interrupt(&self) {
        // A failure (none is expected for a registered user event) leaves the waiter to its
        // timer.
        let _ = self.change(event(
            INTERRUPT,
            libc::EVFILT_USER,
            0,
            libc::NOTE_TRIGGER,
            0,
        ));
    }

    /// Waits until an event comes, [`Notifier::interrupt`] is called, or `timeout` passes
    /// (`None`: no timeout); appends the events that came to `events`.
    pub(crate) fn wait(
        &self,
        timeout: Option<Duration>,
        events: &mut Vec<WatchEvent>,
    ) -> io::Result<()> {
        let mut buf = [event(0, 0, 0, 0, 0); BATCH];
        let spec = timeout.map(super::timespec);
        let spec_ptr = spec
            .as_ref()
            .map_or(std::ptr::null(), |s| s as *const libc::timespec);
        // SAFETY: `kqueue` is an open kqueue, no changes are passed (null, 0), `buf` has room
        // for `BATCH` events, and `spec_ptr` is null or points to a `timespec` that
        // outlives the call.
        let n = unsafe {
            libc::kevent(
                self.kqueue.as_raw_fd(),
                std::ptr::null(),
                0,
                buf.as_mut_ptr(),
                BATCH as libc::c_int,
                spec_ptr,
            )
        };
        if n < 0 {
            let error = io::Error::last_os_error();
            return match error.kind() {
                io::ErrorKind::Interrupted => Ok(()),
                _ => Err(error),
            };
        }
        for ev in &buf[..n as usize] {
            if ev.filter != libc::EVFILT_VNODE {
                continue; // the interrupt: it only ends the wait
            }
            let id = ev.udata as usize as i32;
            let gone = ev.flags & libc::EV_EOF != 0;
            let event = WatchEvent {
                wd: id,
                closed: ev.fflags & CLOSED != 0,
                replaced: gone || ev.fflags & REPLACED != 0,
                dead: gone || ev.fflags & DEAD != 0,
            };
            if event.dead {
                self.remove_watch(id);
            }
            events.push(event);
        }
        Ok(())
    }

    fn watches(&self) -> std::sync::MutexGuard<'_, Watches> {
        crate::sync::lock(&self.watches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LockMode;
    use crate::sys::{TryLock, try_lock};

    /// Every event that came before the call: an event is queued by the system call that
    /// causes it, so after an interrupt one wait returns them all.
    fn pending(notifier: &Notifier) -> Vec<WatchEvent> {
        notifier.interrupt();
        let mut events = Vec::new();
        notifier
            .wait(Some(Duration::from_secs(30)), &mut events)
            .unwrap();
        events
    }

    fn watched(name: &str) -> (tempfile::TempDir, std::path::PathBuf, Notifier, i32) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, b"").unwrap();
        let notifier = Notifier::new().unwrap();
        let wd = notifier.add_watch(&path).unwrap();
        (dir, path, notifier, wd)
    }

    fn locked(path: &Path) -> File {
        let file = File::open(path).unwrap();
        assert!(matches!(
            try_lock(&file, LockMode::Exclusive),
            TryLock::Acquired
        ));
        file
    }

    #[test]
    fn an_interrupt_ends_a_wait() {
        let notifier = Notifier::new().unwrap();
        notifier.interrupt();
        let mut events = Vec::new();
        notifier.wait(None, &mut events).unwrap(); // returns: the interrupt is pending
        assert!(events.is_empty());
    }

    #[test]
    fn a_second_watch_of_one_file_has_the_same_id() {
        let (dir, path, notifier, wd) = watched("twice");
        assert_eq!(notifier.add_watch(&path).unwrap(), wd);
        assert_eq!(notifier.watches().by_id.len(), 1);
        let other = dir.path().join("other");
        std::fs::write(&other, b"").unwrap();
        assert_ne!(notifier.add_watch(&other).unwrap(), wd);
        notifier.remove_watch(wd);
        let again = notifier.add_watch(&path).unwrap();
        assert_ne!(again, wd, "ids are not reused");
    }

    /// FreeBSD reports the close of another descriptor of the file (a holder's release).
    #[cfg(target_os = "freebsd")]
    #[test]
    fn a_close_by_another_descriptor_wakes_a_wait_with_closed() {
        let (_dir, path, notifier, wd) = watched("closed");
        drop(File::open(&path).unwrap());
        let mut events = Vec::new();
        notifier
            .wait(Some(Duration::from_secs(30)), &mut events)
            .unwrap();
        assert!(events.iter().any(|e| e.wd == wd && e.closed), "{events:?}");
    }

    /// ... but not an unlock without a close.
    #[cfg(target_os = "freebsd")]
    #[test]
    fn an_unlock_without_a_close_is_not_reported() {
        let (_dir, path, notifier, wd) = watched("unlocked");
        let holder = locked(&path);
        crate::sys::unlock(&holder).unwrap();
        assert!(
            !pending(&notifier).iter().any(|e| e.wd == wd && e.closed),
            "FreeBSD posts no event for LOCK_UN"
        );
        drop(holder);
        assert!(pending(&notifier).iter().any(|e| e.wd == wd && e.closed));
    }

    /// macOS reports an `flock` unlock, even while the holder keeps its descriptor open.
    #[cfg(target_os = "macos")]
    #[test]
    fn an_flock_unlock_wakes_a_wait_with_closed() {
        let (_dir, path, notifier, wd) = watched("unlocked");
        let holder = locked(&path);
        crate::sys::unlock(&holder).unwrap();
        let mut events = Vec::new();
        notifier
            .wait(Some(Duration::from_secs(30)), &mut events)
            .unwrap();
        assert!(events.iter().any(|e| e.wd == wd && e.closed), "{events:?}");
        drop(holder);
    }

    /// ... and the close that releases a lock; a close of a descriptor that never held
    /// one, or a failed attempt, is not reported.
    #[cfg(target_os = "macos")]
    #[test]
    fn only_closes_that_release_a_lock_are_reported() {
        let (_dir, path, notifier, wd) = watched("released");
        let holder = locked(&path);
        let waiter = File::open(&path).unwrap();
        assert!(matches!(
            try_lock(&waiter, LockMode::Exclusive),
            TryLock::Contended
        ));
        drop(waiter);
        drop(File::open(&path).unwrap());
        assert!(
            !pending(&notifier).iter().any(|e| e.wd == wd && e.closed),
            "no lock was released"
        );
        drop(holder);
        assert!(pending(&notifier).iter().any(|e| e.wd == wd && e.closed));
    }

    #[test]
    fn a_rename_reports_replaced_and_keeps_the_watch() {
        let (dir, path, notifier, wd) = watched("renamed");
        std::fs::rename(&path, dir.path().join("elsewhere")).unwrap();
        let events = pending(&notifier);
        assert!(
            events.iter().any(|e| e.wd == wd && e.replaced && !e.dead),
            "{events:?}"
        );
        assert!(notifier.watches().by_id.contains_key(&wd));
    }

    /// An unlink (a soft lock's release) kills the watch: its descriptor is closed and its
    /// id forgotten, so removing it afterwards does nothing.
    #[test]
    fn an_unlink_reports_dead_and_forgets_the_watch() {
        let (_dir, path, notifier, wd) = watched("unlinked");
        std::fs::remove_file(&path).unwrap();
        let events = pending(&notifier);
        assert!(
            events.iter().any(|e| e.wd == wd && e.replaced && e.dead),
            "{events:?}"
        );
        assert!(notifier.watches().by_id.is_empty());
        notifier.remove_watch(wd);
    }

    #[test]
    fn a_symlink_is_not_followed() {
        let (dir, path, notifier, _wd) = watched("target");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(notifier.add_watch(&link).is_err());
    }
}

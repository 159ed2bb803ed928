//! Linux: the cross-process waiting line of a lock file, `<lock file>.queue`.
//!
//! A waiter takes a ticket: the end offset of an `O_APPEND` write of its record (atomic,
//! lock-free; the record is when it began waiting, [`RECORD_LEN`] bytes of text), and holds
//! an open-file-description byte-range lock (`F_OFD_SETLK`) on the byte at that offset while
//! it waits: a write lock for an exclusive waiter, a read lock for a shared one. Whether a
//! live earlier waiter exists is one `F_OFD_GETLK` over the bytes before its own: an
//! exclusive waiter asks about any lock there, a shared one about write locks only (writer
//! preference). A waiter that dies loses its byte lock with it; a waiter that wins or gives
//! up closes the descriptor, which drops it. OFD locks belong to the descriptor, not the
//! process, so waiters of one process line up with each other too.
//!
//! Byte 0 is the header: a ticket is taken under a read lock on it, and the file is
//! truncated (once it has grown past [`TRUNCATE_AT`]) only under a write lock on it and
//! when no ticket byte is locked, so no live ticket is ever cut off. The file is created on
//! first contention and never deleted. Nothing here decides who gets the lock: the lock
//! file's `flock` does; the line only tells this crate's waiters whom to let go first.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::LockMode;

/// Once the file is this long, the next ticket taker truncates it if nobody waits.
const TRUNCATE_AT: u64 = 4096;

/// Under lasting contention the line is never empty, so it is never truncated: then every
/// time it grows by this much, its blocks are freed (the content is never read; only the
/// offsets and the byte locks matter), so the disk space stays bounded.
const PUNCH_EVERY: u64 = 64 * 1024;

/// How many times a ticket taker retries the header's read lock while a truncation holds
/// its write lock (for a few microseconds), before it waits without a ticket.
const HEADER_TRIES: usize = 100;

/// The queue file of the lock file at `lock`.
pub(crate) fn queue_path(lock: &Path) -> PathBuf {
    let mut name = lock.as_os_str().to_owned();
    name.push(".queue");
    PathBuf::from(name)
}

/// A record: when its waiter began waiting, in nanoseconds of `CLOCK_MONOTONIC` (shared by
/// the processes of one boot), as 16 hex digits and a newline.
const RECORD_LEN: u64 = 17;

/// Now, in nanoseconds of `CLOCK_MONOTONIC`.
fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable `timespec`; `CLOCK_MONOTONIC` always exists on
    // Linux, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    (now.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(now.tv_nsec as u64)
}

fn record(ns: u64) -> [u8; RECORD_LEN as usize] {
    let mut record = [b'\n'; RECORD_LEN as usize];
    let digits = format!("{ns:016x}");
    record[..16].copy_from_slice(digits.as_bytes());
    record
}

/// The time in a record, if it is one (a record cut by a hole punched under lasting
/// contention reads as zeroes, which is none).
fn parse_record(bytes: &[u8]) -> Option<u64> {
    let (digits, end) = bytes.split_at_checked(16)?;
    if end != b"\n" {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

/// The earliest live waiter found by [`earliest_waiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Waiting {
    /// How long it has waited, if its record could be read.
    pub(crate) waited: Option<std::time::Duration>,
}

/// A waiter's place in the line. Dropping it (closing the descriptor) leaves the line.
#[derive(Debug)]
pub(crate) struct Ticket {
    file: File,
    /// The byte locked for this waiter.
    byte: u64,
}

fn flock_struct(kind: libc::c_int, start: u64, len: u64) -> libc::flock {
    // SAFETY: `flock` is plain data; all zeroes is a valid value (and `l_pid` must be 0
    // for the OFD commands).
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = start as libc::off_t;
    lock.l_len = len as libc::off_t;
    lock
}

/// `F_OFD_SETLK` (never waits): `Ok(false)` when another description holds a conflicting
/// lock.
pub(super) fn set(file: &File, kind: libc::c_int, start: u64, len: u64) -> io::Result<bool> {
    let lock = flock_struct(kind, start, len);
    loop {
        // SAFETY: `file` is open and `lock` a valid `struct flock` for the call.
        let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &lock) };
        if r == 0 {
            return Ok(true);
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) | Some(libc::EACCES) => return Ok(false),
            _ => return Err(error),
        }
    }
}

/// `F_OFD_GETLK`: `true` when another description holds a lock on `[start, start + len)`
/// (`len` 0: to the end of any file) that conflicts with a `kind` lock.
pub(super) fn conflicts(file: &File, kind: libc::c_int, start: u64, len: u64) -> io::Result<bool> {
    conflict_at(file, kind, start, len).map(|at| at.is_some())
}

/// `F_OFD_GETLK`: where a lock of another description that conflicts with a `kind` lock
/// on `[start, start + len)` begins (one of them, if several), `None` if none does.
pub(super) fn conflict_at(
    file: &File,
    kind: libc::c_int,
    start: u64,
    len: u64,
) -> io::Result<Option<u64>> {
    let mut lock = flock_struct(kind, start, len);
    // SAFETY: `file` is open and `lock` a valid, writable `struct flock` for the call.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut lock) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((lock.l_type != libc::F_UNLCK as libc::c_short).then_some(lock.l_start as u64))
}

fn probe_kind(mode: LockMode) -> libc::c_int {
    match mode {
        // Any earlier waiter goes first.
        LockMode::Exclusive => libc::F_WRLCK,
        // Only earlier exclusive waiters do (their bytes are write-locked).
        LockMode::Shared => libc::F_RDLCK,
    }
}

/// The earliest live waiter of this crate that `mode` must let go first on the lock file
/// at `lock` (for an acquire that has no ticket yet), and how long it has waited. `None`
/// when nobody waits or there is no queue file.
pub(crate) fn earliest_waiter(lock: &Path, mode: LockMode) -> io::Result<Option<Waiting>> {
    /// `F_OFD_GETLK` names one conflicting lock; the earliest is found by asking again
    /// before it. Tickets are locked in the order they are taken, which is the order Linux
    /// lists them in, so the first answer is the earliest but for a race: a few tries.
    const TRIES: usize = 8;
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(queue_path(lock))
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let kind = probe_kind(mode);
    let Some(mut earliest) = conflict_at(&file, kind, 1, 0)? else {
        return Ok(None);
    };
    for _ in 0..TRIES {
        match conflict_at(&file, kind, 1, earliest.saturating_sub(1))? {
            Some(before) if before < earliest => earliest = before,
            _ => break,
        }
    }
    Ok(Some(Waiting {
        waited: began_waiting(&file, earliest)
            .map(|since| std::time::Duration::from_nanos(monotonic_ns().saturating_sub(since))),
    }))
}

/// When the waiter whose ticket is `byte` began waiting, from its record.
fn began_waiting(file: &File, byte: u64) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let start = byte.checked_sub(RECORD_LEN)?;
    let mut bytes = [0; RECORD_LEN as usize];
    file.read_exact_at(&mut bytes, start).ok()?;
    parse_record(&bytes)
}

/// Takes a ticket in the line of the lock file at `lock` (creating the queue file with
/// `create_mode`, reduced by the umask, if needed). `Err(WouldBlock)` when a truncation
/// kept the header busy.
pub(crate) fn take_ticket(lock: &Path, mode: LockMode, create_mode: u32) -> io::Result<Ticket> {
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(create_mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(queue_path(lock))?;
    if file.metadata()?.len() >= TRUNCATE_AT && set(&file, libc::F_WRLCK, 0, 1)? {
        // Nobody waits (no ticket byte locked): start the line over. A taker between its
        // write and its byte lock holds the header's read lock, so it cannot be cut off.
        if !conflicts(&file, libc::F_WRLCK, 1, 0)? {
            file.set_len(0)?;
        }
        set(&file, libc::F_UNLCK, 0, 1)?;
    }
    let mut header = false;
    for _ in 0..HEADER_TRIES {
        if set(&file, libc::F_RDLCK, 0, 1)? {
            header = true;
            break;
        }
        std::thread::yield_now();
    }
    if !header {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    let taken = (|| {
        file.write_all(&record(monotonic_ns()))?;
        let byte = file.stream_position()?; // the end of the record written
        let kind = match mode {
            LockMode::Exclusive => libc::F_WRLCK,
            LockMode::Shared => libc::F_RDLCK,
        };
        if !set(&file, kind, byte, 1)? {
            return Err(io::Error::from(io::ErrorKind::WouldBlock));
        }
        Ok(byte)
    })();
    set(&file, libc::F_UNLCK, 0, 1)?;
    let byte = taken?;
    // The record crossed a multiple of `PUNCH_EVERY`: free all but the last `PUNCH_EVERY`
    // bytes before it (the records of any waiter but a stuck one are recent).
    let boundary = byte / PUNCH_EVERY * PUNCH_EVERY;
    if byte - RECORD_LEN < boundary && boundary > PUNCH_EVERY {
        // SAFETY: `file` is open for writing; the range is within the file. Failure (a file
        // system without hole punching) only leaves the blocks allocated.
        unsafe {
            libc::fallocate(
                file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                0,
                (boundary - PUNCH_EVERY) as libc::off_t,
            )
        };
    }
    Ok(Ticket { file, byte })
}

impl Ticket {
    /// Whether a live waiter that took its ticket before this one, and that `mode` lets go
    /// first, still waits.
    pub(crate) fn earlier_waiter(&self, mode: LockMode) -> io::Result<bool> {
        if self.byte <= 1 {
            return Ok(false);
        }
        conflicts(&self.file, probe_kind(mode), 1, self.byte - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const X: LockMode = LockMode::Exclusive;
    const S: LockMode = LockMode::Shared;

    #[test]
    fn tickets_line_up_and_leaving_lets_the_next_go_first() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("q.lock");
        assert!(
            earliest_waiter(&lock, X).unwrap().is_none(),
            "no queue file yet"
        );
        let first = take_ticket(&lock, X, 0o600).unwrap();
        let second = take_ticket(&lock, X, 0o600).unwrap();
        let reader = take_ticket(&lock, S, 0o600).unwrap();
        assert!(earliest_waiter(&lock, X).unwrap().is_some());
        assert!(!first.earlier_waiter(X).unwrap());
        assert!(second.earlier_waiter(X).unwrap());
        assert!(reader.earlier_waiter(S).unwrap(), "writers go first");
        drop(first);
        assert!(!second.earlier_waiter(X).unwrap(), "the first left");
        drop(second);
        assert!(!reader.earlier_waiter(S).unwrap());
        let late_writer = take_ticket(&lock, X, 0o600).unwrap();
        assert!(
            late_writer.earlier_waiter(X).unwrap(),
            "behind a reader too"
        );
        assert!(
            earliest_waiter(&lock, S).unwrap().is_some(),
            "a writer waits"
        );
        drop(late_writer);
        assert!(
            earliest_waiter(&lock, S).unwrap().is_none(),
            "only a reader waits"
        );
        assert!(earliest_waiter(&lock, X).unwrap().is_some());
        drop(reader);
        assert!(earliest_waiter(&lock, X).unwrap().is_none());
    }

    #[test]
    fn the_earliest_waiter_and_how_long_it_waited_are_read_from_its_record() {
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("e.lock");
        assert_eq!(
            earliest_waiter(&lock, X).unwrap(),
            None,
            "no queue file yet"
        );
        let before = Instant::now();
        let first = take_ticket(&lock, X, 0o600).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let second = take_ticket(&lock, X, 0o600).unwrap();
        let reader = take_ticket(&lock, S, 0o600).unwrap();
        let waited = |mode| {
            earliest_waiter(&lock, mode)
                .unwrap()
                .unwrap()
                .waited
                .unwrap()
        };
        let seen = waited(X);
        let upper = before.elapsed();
        assert!(
            seen >= Duration::from_millis(20) && seen <= upper,
            "the first ticket's wait: {seen:?} (at most {upper:?})"
        );
        drop(first);
        assert!(waited(X) < Duration::from_millis(20), "now the second's");
        drop(second);
        assert!(waited(X) < Duration::from_millis(20), "the reader's");
        assert_eq!(
            earliest_waiter(&lock, S).unwrap(),
            None,
            "a shared acquire lets only writers go first"
        );
        drop(reader);
        assert_eq!(earliest_waiter(&lock, X).unwrap(), None);
    }

    #[test]
    fn an_unreadable_record_is_no_time_at_all() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("z.lock");
        let ticket = take_ticket(&lock, X, 0o600).unwrap();
        // What a hole punched under lasting contention leaves (or another version's line).
        let queue = OpenOptions::new()
            .write(true)
            .open(queue_path(&lock))
            .unwrap();
        queue.write_all_at(&[0; RECORD_LEN as usize], 0).unwrap();
        assert_eq!(
            earliest_waiter(&lock, X).unwrap(),
            Some(Waiting { waited: None })
        );
        drop(ticket);
    }

    #[test]
    fn under_lasting_contention_holes_are_punched_behind_the_recent_records() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("p.lock");
        let keep = take_ticket(&lock, X, 0o600).unwrap();
        let takes = 3 * PUNCH_EVERY / RECORD_LEN;
        for _ in 0..takes {
            drop(take_ticket(&lock, X, 0o600).unwrap());
        }
        let meta = std::fs::metadata(queue_path(&lock)).unwrap();
        assert!(
            meta.len() >= 3 * PUNCH_EVERY,
            "never truncated: a ticket lives"
        );
        if meta.blocks() * 512 < meta.len() {
            // Punched: the first ticket's record is gone, and it reads as no time, not as
            // a waiter that just came.
            assert_eq!(
                earliest_waiter(&lock, X).unwrap(),
                Some(Waiting { waited: None })
            );
        }
        let recent = take_ticket(&lock, X, 0o600).unwrap();
        assert!(recent.earlier_waiter(X).unwrap());
        drop((keep, recent));
    }

    #[test]
    fn the_file_is_truncated_only_when_nobody_waits() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("t.lock");
        let keep = take_ticket(&lock, X, 0o600).unwrap();
        for _ in 0..TRUNCATE_AT + 10 {
            drop(take_ticket(&lock, X, 0o600).unwrap());
        }
        let len = || std::fs::metadata(queue_path(&lock)).unwrap().len();
        assert!(len() > TRUNCATE_AT, "a live ticket keeps the line");
        let later = take_ticket(&lock, X, 0o600).unwrap();
        assert!(later.earlier_waiter(X).unwrap());
        drop((keep, later));
        drop(take_ticket(&lock, X, 0o600).unwrap());
        assert_eq!(len(), RECORD_LEN, "started over");
    }
}

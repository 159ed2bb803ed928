//! One non-blocking attempt of the soft protocol, and its release.
//!
//! Acquire: create the marker with `O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC` and write our
//! record. If it exists, read it (never following a symlink, never opening a non-regular
//! node) and break it only on proof that its holder is gone, or when it is malformed and
//! has been seen unchanged for 2 s.
//!
//! Breaking is an atomic exchange, as Python filelock does it: our own marker is written to
//! `<lock>.break.<pid>.<32 hex>`, exchanged with the lock path (`renameat2(RENAME_EXCHANGE)`,
//! `renamex_np(RENAME_SWAP)`), and the node that came out is checked to be the stale one
//! seen (inode and mtime) before it is unlinked: the breaker holds the lock when it
//! succeeds. If another node came out (a racing breaker won first), it is put back by
//! exchanging until our own marker is aside (Python's `_exchange_until_aside`): breakers
//! that put back out of order would otherwise leave a non-holder's marker at the path. The
//! lock path always names some marker, so no third process can create one in a gap; a
//! plain rename-away could not undo a wrong move without such a gap. Where the file system
//! cannot exchange, stale markers are not broken (Python does the same).

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::Duration;

#[cfg(unix)]
use super::claim::remove_if_ours;
use super::claim::{GROUP_OTHER_WRITE, MAX_RACES, create_mode, publish};
#[cfg(unix)]
use super::claim::{create_aside, still};
use super::marker::Content;
#[cfg(unix)]
use super::recovery;
use super::seen::{Seen, read};
#[cfg(windows)]
use super::take_over::take_over;
use super::{Flavour, lease, stale};
use crate::attempt::Found;
#[cfg(unix)]
use crate::sys::soft_calls::Node;
use crate::sys::soft_calls::{self as sys};
use crate::sys::{self as os, FileId};
use crate::{Error, Holder, LockMode, NodeKind, Op};

/// What one soft attempt found.
#[derive(Debug)]
pub(crate) enum SoftOutcome {
    /// Our marker is at the lock path; this is its descriptor.
    Won(File),
    /// Someone holds it. The identity of their marker, when it is a regular file.
    Busy(Option<FileId>),
    /// The lock file's directory is missing: create it and attempt again.
    MissingParent,
}

/// Makes one attempt at the soft lock on `path`, writing and judging markers as `flavour`.
pub(crate) fn attempt_as(
    path: &Path,
    permissions: Option<u32>,
    flavour: Flavour,
    lifetime: Option<Duration>,
) -> Result<SoftOutcome, Error> {
    let record = flavour.record();
    for _ in 0..MAX_RACES {
        match sys::create_new(path, create_mode(permissions)) {
            Ok(file) => {
                stale::forget(path);
                return publish(file, path, permissions, &record).map(SoftOutcome::Won);
            }
            Err(e) => match e.kind() {
                io::ErrorKind::AlreadyExists => {
                    match contend(path, permissions, flavour, lifetime, &record)? {
                        Contended::Gone => continue,
                        Contended::Busy(id) => return Ok(SoftOutcome::Busy(id)),
                        Contended::Won(file) => return Ok(SoftOutcome::Won(file)),
                    }
                }
                io::ErrorKind::NotFound => return Ok(SoftOutcome::MissingParent),
                io::ErrorKind::Interrupted => continue,
                _ => return Err(Error::io(path, Op::Open, e)),
            },
        }
    }
    Ok(SoftOutcome::Busy(None))
}

/// Makes the file this process just created (`O_EXCL`) at `path` the soft marker: used when
/// `flock` turned out to be unsupported on a lock file this acquire created.
pub(crate) fn adopt(file: File, path: &Path, permissions: Option<u32>) -> Result<File, Error> {
    let file = publish(file, path, permissions, &Flavour::Legacy.record())?;
    // The OS-lock open may have given it group or other write access; a marker has none.
    // (No permission bits on Windows.)
    if let Some(mode) = os::inspect(&file).ok().and_then(|facts| facts.permissions)
        && mode & GROUP_OTHER_WRITE != 0
    {
        let _ = os::set_permissions(&file, mode & !GROUP_OTHER_WRITE);
    }
    Ok(file)
}

enum Contended {
    /// The marker vanished: create again now.
    Gone,
    Busy(Option<FileId>),
    /// We broke a stale marker and ours is in its place.
    Won(File),
}

/// Why an empty lock file that this user may not write is refused.
fn unwritable() -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        "an empty lock file this user may not write is at the path: no soft lock can be taken there",
    )
}

/// The marker exists: read it, and break it if it is provably stale (or, for a lease, has
/// expired on this process's clock), or older than `lifetime` by its mtime.
fn contend(
    path: &Path,
    permissions: Option<u32>,
    flavour: Flavour,
    lifetime: Option<Duration>,
    record: &[u8],
) -> Result<Contended, Error> {
    let node = match sys::lstat(path) {
        Ok(node) => node,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Contended::Gone),
        Err(e) => return Err(Error::io(path, Op::Inspect, e)),
    };
    if node.directory {
        return Err(Error::NotAFile {
            path: path.to_path_buf(),
            kind: NodeKind::Directory,
        });
    }
    let (node, content, id) = if node.regular {
        match read(path) {
            Ok(Some(read)) => read,
            Ok(None) => return Ok(Contended::Gone),
            // Unreadable (permission, or it changed kind after the lstat): nothing is proven.
            Err(_) => return Ok(Contended::Busy(None)),
        }
    } else {
        // A symlink, FIFO, socket or device is never opened: a malformed marker.
        (node, Seen::Legacy(Content::Malformed), None)
    };
    let expired = lifetime.is_some_and(|lifetime| node.modified_ago() >= lifetime);
    let breakable = match &content {
        // Older than the lifetime by its mtime, whatever it says (Python's
        // `_try_break_expired_lock`): even a live or foreign holder's.
        _ if expired => true,
        Seen::Owner(owner) => lease::may_break(path, &node, owner, flavour)?,
        // An empty file this user may not write is no marker in the making but a file it
        // can never take: say so now, as Python filelock does, rather than wait for ever.
        Seen::Legacy(Content::Empty) if !sys::may_write(path) => {
            return Err(Error::io(path, Op::Open, unwritable()));
        }
        Seen::Legacy(Content::Empty | Content::Unbreakable) => false,
        Seen::Legacy(Content::Holder(holder)) => {
            stale::forget(path);
            stale::holder_is_stale(holder)
        }
        Seen::Legacy(Content::Malformed) | Seen::Break(_) => stale::malformed_is_old(path, &node),
    };
    // Whose crash may have stranded a live marker next to the lock (see `recovery`): the
    // PID the marker names, as Python passes it (for an expired marker, a legacy record's
    // only; for a lease, only when its holder is provably gone, not when it expired).
    let breaker = match &content {
        Seen::Legacy(Content::Holder(holder)) => Some(holder.pid),
        Seen::Break(pid) if !expired => Some(*pid),
        Seen::Owner(owner) if !expired && lease::holder_gone(owner) => Some(owner.pid),
        _ => None,
    };
    if !breakable {
        return Ok(Contended::Busy(id));
    }
    tracing::debug!(
        target: "tokio_filelock",
        path = %path.display(),
        marker = ?content,
        expired,
        "breaking a stale soft lock marker"
    );
    match take_over(path, &node, permissions, record, breaker)? {
        Some(file) => {
            stale::forget(path);
            Ok(Contended::Won(file))
        }
        None => Ok(Contended::Busy(id)),
    }
}

/// Breaks the stale node `seen` at `path` by exchanging our own marker in for it. `Some`
/// with our marker's descriptor when we now hold the lock; `None` when the node changed
/// meanwhile or cannot be exchanged here (nothing is broken then).
///
/// When the stale marker names a PID (`breaker`), a live marker that this PID, as a
/// breaker killed mid-way, may have stranded next to the lock is put back first (see
/// `recovery`); the lock then counts as held.
#[cfg(unix)]
fn take_over(
    path: &Path,
    seen: &Node,
    permissions: Option<u32>,
    record: &[u8],
    breaker: Option<u32>,
) -> Result<Option<File>, Error> {
    if !still(path, seen) {
        return Ok(None);
    }
    if let Some(breaker) = breaker
        && recovery::restore_stranded(path, breaker, seen)
    {
        return Ok(None);
    }
    let (aside, file) = create_aside(path, permissions)?;
    let file = match publish(file, &aside, permissions, record) {
        Ok(file) => file,
        Err(Error::Io { source, .. }) => return Err(Error::io(path, Op::BreakStale, source)),
        Err(e) => return Err(e),
    };
    let abandon = |file: &File| remove_if_ours(file, &aside);
    if !still(path, seen) {
        abandon(&file);
        return Ok(None);
    }
    if let Err(e) = sys::exchange(&aside, path) {
        abandon(&file);
        if sys::exchange_unsupported(&e) {
            tracing::debug!(
                target: "tokio_filelock",
                path = %path.display(),
                error = %e,
                "this file system cannot exchange names atomically; stale soft lock markers are not broken"
            );
            return Ok(None);
        }
        if e.kind() == io::ErrorKind::NotFound {
            return Ok(None); // the marker vanished: the next attempt creates
        }
        return Err(Error::io(path, Op::BreakStale, e));
    }
    // What came out must be the node judged stale; otherwise put it back.
    if sys::lstat(&aside).is_ok_and(|out| out.same_version(seen)) {
        if let Err(e) = sys::unlink(&aside) {
            tracing::warn!(target: "tokio_filelock", path = %aside.display(), error = %e, "could not remove a broken stale marker");
        }
        return Ok(Some(file));
    }
    // Another breaker won first, and its live marker came out. Put it back; with several
    // breakers putting back out of order, one exchange may bring back someone else's
    // marker, so exchange until our own is aside.
    let own = match sys::fstat(&file) {
        Ok(own) => own,
        Err(e) => {
            let _ = sys::overwrite(&file, RELEASED);
            return Err(Error::io(path, Op::BreakStale, e));
        }
    };
    match exchange_until_aside(path, &aside, &own) {
        Ok(true) => {
            abandon(&file);
            Ok(None)
        }
        Ok(false) => {
            // Wherever our marker ends up, it must never pass for a live holder.
            let _ = sys::overwrite(&file, RELEASED);
            tracing::warn!(
                target: "tokio_filelock",
                path = %path.display(),
                aside = %aside.display(),
                "could not put back a marker moved while breaking a stale lock: the other breakers did not settle in time, or the aside was removed"
            );
            Ok(None)
        }
        Err(e) => {
            let _ = sys::overwrite(&file, RELEASED);
            tracing::warn!(
                target: "tokio_filelock",
                path = %path.display(),
                aside = %aside.display(),
                error = %e,
                "could not put back a marker moved while breaking a stale lock"
            );
            Err(Error::io(path, Op::BreakStale, e))
        }
    }
}

/// How long a breaker that exchanged a live marker aside keeps exchanging to put it back
/// before it gives up (Python filelock's limit): a paused or killed breaker must not hold
/// the others forever.
#[cfg(unix)]
const SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// How long the lock path must stay unchanged, while neither it nor our aside holds our
/// marker, before we exchange anyway: the other breakers get that long to unwind first.
#[cfg(unix)]
const SETTLE_STALL: std::time::Duration = std::time::Duration::from_millis(10);

/// The pause between two looks while other breakers unwind.
#[cfg(unix)]
const SETTLE_POLL: std::time::Duration = std::time::Duration::from_micros(500);

/// Exchanges `aside` and `path` until `aside` holds our marker `own` (as Python filelock's
/// `_exchange_until_aside`). `Ok(true)` once it does; `Ok(false)` after [`SETTLE_LIMIT`]
/// without our marker at the lock path, or when our aside was removed by someone else.
///
/// Every exchange swaps two names, so the markers of the breakers in flight and the one
/// marker that belongs at the lock path are only ever permuted, never lost, and the path
/// always names one of them. When the path holds our marker, one exchange settles us (and
/// hands back what our aside held). When it holds another breaker's, that breaker takes it
/// within a few system calls. When it stays unchanged for [`SETTLE_STALL`], it holds the
/// marker that belongs there while some breaker still waits for its own (it sits in our
/// aside or further along): exchanging feeds that breaker's marker to the path, and the
/// chain unwinds. Breakers settle one by one; the last one leaves the right marker at the
/// path. Blocking; runs only on the rare path where a racing breaker won first.
#[cfg(unix)]
fn exchange_until_aside(path: &Path, aside: &Path, own: &Node) -> io::Result<bool> {
    let start = std::time::Instant::now();
    // What the lock path held when we last looked, and since when.
    let mut seen: Option<(Node, std::time::Instant)> = None;
    loop {
        match sys::lstat(aside) {
            Ok(node) if node.same_file(own) => return Ok(true),
            Ok(_) => {}
            // Someone removed our aside: what it held is lost; we cannot settle.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        }
        let now = std::time::Instant::now();
        let at_path = sys::lstat(path).ok();
        let ours = at_path.is_some_and(|node| node.same_file(own));
        if !ours && now.duration_since(start) >= SETTLE_LIMIT {
            return Ok(false);
        }
        let stalled = match (seen, at_path) {
            (Some((before, since)), Some(node)) if before == node => {
                now.duration_since(since) >= SETTLE_STALL
            }
            _ => {
                seen = at_path.map(|node| (node, now));
                false
            }
        };
        if ours || stalled {
            match sys::exchange(aside, path) {
                Ok(()) => seen = None,
                // The lock path was released meanwhile (or our aside removed): look again.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        } else {
            std::thread::sleep(SETTLE_POLL);
        }
    }
}

/// Who the marker at `path` names, if it is well-formed. Blocking: reads the marker (never
/// following a symlink, never opening a non-regular node).
pub(crate) fn holder(path: &Path) -> Option<Holder> {
    found(path).holder
}

/// What the marker at `path` says for a timeout: who it names, if it is well-formed, or
/// that it is empty. Blocking, as [`holder`].
pub(crate) fn found(path: &Path) -> Found {
    let content = match sys::lstat(path) {
        Ok(node) if node.regular => read(path).ok().flatten().map(|(_, content, _)| content),
        _ => None,
    };
    match content {
        Some(Seen::Legacy(Content::Holder(h))) => Found {
            holder: Some(Holder::new(h.pid, LockMode::Exclusive).with_host(Some(h.host))),
            empty_marker: false,
        },
        Some(Seen::Owner(owner)) => Found {
            holder: Some(Holder::new(owner.pid, LockMode::Exclusive).with_host(Some(owner.host))),
            empty_marker: false,
        },
        Some(Seen::Legacy(Content::Empty)) => Found {
            holder: None,
            empty_marker: true,
        },
        _ => Found::default(),
    }
}

/// What a marker we held is overwritten with when it is no longer at the lock path: if it
/// comes back there, it is malformed (and broken 2 s later), never a live-looking record.
const RELEASED: &[u8] = b"filelock/released\n";

/// Releases a soft lock: unlinks the marker at `path` only if it is still ours (same inode
/// as `file`). A marker that is gone or replaced is left alone and reported.
pub(crate) fn release(file: File, path: &Path) -> Result<(), Error> {
    let ours = sys::fstat(&file).map_err(|e| Error::io(path, Op::Unlock, e))?;
    match sys::lstat(path) {
        Ok(there) if there.same_file(&ours) => {
            sys::unlink(path).map_err(|e| Error::io(path, Op::Unlock, e))
        }
        _ => {
            let _ = sys::overwrite(&file, RELEASED);
            tracing::warn!(
                target: "tokio_filelock",
                path = %path.display(),
                "the soft lock marker was removed or replaced while held; left alone"
            );
            Err(Error::MarkerReplaced {
                path: path.to_path_buf(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attempt::soft::identity;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn take_over_exchanges_only_the_node_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.lock");
        std::fs::write(&path, "stale\n").unwrap();
        let seen = sys::lstat(&path).unwrap();
        let record = identity::ours().to_bytes();
        let file = take_over(&path, &seen, None, &record, None)
            .unwrap()
            .expect("taken over");
        assert_eq!(std::fs::read(&path).unwrap(), identity::ours().to_bytes());
        assert!(
            sys::fstat(&file)
                .unwrap()
                .same_file(&sys::lstat(&path).unwrap())
        );
        assert_eq!(
            names(dir.path()),
            ["t.lock"],
            "the stale node and the aside are gone"
        );
    }

    #[cfg(any(target_os = "linux", target_os = "android", target_os = "macos"))]
    #[test]
    fn exchange_until_aside_puts_a_live_marker_back_and_takes_ours_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.lock");
        let aside = dir.path().join("t.lock.break.1.0");
        // After a lost race: our marker at the path, the winner's live one aside.
        std::fs::write(&path, "ours\n").unwrap();
        std::fs::write(&aside, "1\nlive\n").unwrap();
        let own = sys::lstat(&path).unwrap();
        assert!(exchange_until_aside(&path, &aside, &own).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"1\nlive\n");
        assert!(sys::lstat(&aside).unwrap().same_file(&own));
    }

    #[test]
    fn take_over_leaves_a_replaced_marker_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.lock");
        std::fs::write(&path, "stale\n").unwrap();
        let seen = sys::lstat(&path).unwrap();
        // Someone breaks it and takes the lock before us: another inode, alive. (A hard
        // link keeps the old inode alive so the new file cannot reuse its number.)
        let keep = dir.path().join("keep");
        std::fs::hard_link(&path, &keep).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "1\nlive\n").unwrap();
        let record = identity::ours().to_bytes();
        assert!(
            take_over(&path, &seen, None, &record, None)
                .unwrap()
                .is_none()
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"1\nlive\n");
        assert_eq!(
            names(dir.path()),
            ["keep", "t.lock"],
            "no aside left behind"
        );
    }
}

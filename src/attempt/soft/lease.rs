//! Leases (Python filelock 4.x's `SoftFileLease`), the protocol side: the record a lease
//! writes, when a contender may take a protocol 2 marker over, and the holder's refresh.
//!
//! A lease holder refreshes its marker's mtime every heartbeat interval (Python's `touch`:
//! `futimens` on the descriptor). A contender takes it over once it has itself seen the
//! marker unchanged (mtime, inode, ctime) for the lease duration on its own monotonic
//! clock; the marker's mtime is never compared with any clock, so hosts need no shared
//! time. A marker whose holder is provably gone (same host, PID dead or recycled) is taken
//! over at once, as for `SoftFileLock`.

use std::fs::File;
use std::io;
use std::path::Path;

use super::marker::Holder;
use super::record::{self, Mode, OwnerRecord};
use super::{Flavour, identity, stale};
use crate::Error;
use crate::sys::soft_calls as sys;
use crate::sys::{self as os, FileId};

impl Flavour {
    /// The record an attempt of this flavour writes into its marker: for a lease, with a
    /// fresh claim token.
    pub(super) fn record(&self) -> Vec<u8> {
        let ours = identity::ours();
        match self {
            Flavour::Legacy => ours.to_bytes(),
            Flavour::Lease(terms) => record::encode_lease(
                ours.pid,
                &ours.host,
                &super::claim::random_hex(),
                terms.duration,
                ours.token,
            ),
        }
    }
}

/// Whether the protocol 2 marker `owner`, seen as `node` at `path`, may be broken by a
/// contender of `flavour` (Python's `SoftFileLease._try_break_pinned_lock` and
/// `MarkerSoftFileLock._try_break_stale_lock`): its holder is provably gone; or it is a
/// lease, this contender is a lease of the same duration, and it has been seen unchanged
/// that long. A lease of another duration is [`Error::LeaseMismatch`]: every contender for
/// a path must agree on it. A mode of a newer protocol is never broken.
pub(super) fn may_break(
    path: &Path,
    node: &sys::Node,
    owner: &OwnerRecord,
    flavour: Flavour,
) -> Result<bool, Error> {
    if holder_gone(owner) {
        return Ok(true);
    }
    let (Mode::Lease, Flavour::Lease(terms)) = (owner.mode, flavour) else {
        return Ok(false);
    };
    let ours = terms.duration.as_secs_f64();
    if let Some(theirs) = owner.duration
        && theirs != ours
    {
        return Err(Error::LeaseMismatch {
            path: path.to_path_buf(),
            theirs: record::python_repr(theirs),
            ours: record::python_repr(ours),
        });
    }
    Ok(stale::unchanged_for(path, node) >= terms.duration)
}

/// Whether the holder of the protocol 2 marker `owner` is provably gone (same host, PID
/// dead or recycled); never for a mode of a newer protocol.
pub(super) fn holder_gone(owner: &OwnerRecord) -> bool {
    owner.mode != Mode::Unknown
        && stale::holder_is_stale(&Holder {
            pid: owner.pid,
            host: owner.host.clone(),
            token: owner.start,
        })
}

/// What one refresh of a held lease found (Python's `_RefreshLoop._refresh`).
#[derive(Debug)]
pub(crate) enum Refresh {
    /// The marker is ours and its mtime is now.
    Refreshed,
    /// The marker is gone from the lock path.
    MarkerMissing,
    /// Another node is at the lock path.
    OwnerChanged,
    /// A call failed; the marker may still be ours.
    Failed(io::Error),
    /// The read-write protocol's heartbeat: our record is gone or replaced, or the log no
    /// longer names us (a peer evicted this hold). Reported at once.
    Evicted,
}

/// Our lease marker at `path`, opened for refreshing, with its claim token: `None` when
/// the path names another node than the file `id` this hold created, or nothing.
pub(crate) fn open_own(path: &Path, id: FileId) -> io::Result<Option<(File, Option<String>)>> {
    let (file, content) = match sys::open_for_refresh(path, super::marker::MAX_MARKER_LEN as u64) {
        Ok(opened) => opened,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if os::inspect(&file)?.id != id {
        return Ok(None);
    }
    let token = record::parse(&content).and_then(|record| record.token);
    Ok(Some((file, token)))
}

/// Refreshes our lease marker `file` at `path`: checks that the path still names it, then
/// sets its times to now.
pub(crate) fn refresh(path: &Path, file: &File) -> Refresh {
    let at_path = match sys::lstat(path) {
        Ok(node) => node,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return refresh_unnamed(path, file),
        Err(e) => return Refresh::Failed(e),
    };
    match sys::fstat(file) {
        Ok(ours) if ours.same_file(&at_path) => {}
        Ok(_) => return Refresh::OwnerChanged,
        Err(e) => return Refresh::Failed(e),
    }
    touch(file)
}

/// Nothing is at the lock path (Python's `_refresh_unnamed`): our marker is missing,
/// unless its directory was moved (renamed) with it, which keeps it live under the new
/// name: then it is refreshed as usual. A marker unlinked everywhere (no link left) is
/// missing whatever happened to the directory.
fn refresh_unnamed(path: &Path, file: &File) -> Refresh {
    match os::inspect(file) {
        Ok(facts) if !facts.linked => return Refresh::MarkerMissing,
        Ok(_) => {}
        Err(e) => return Refresh::Failed(e),
    }
    match parent_is_missing(path) {
        Ok(true) => touch(file),
        Ok(false) => Refresh::MarkerMissing,
        Err(e) => Refresh::Failed(e),
    }
}

/// Whether the lock path's directory is gone (moved or removed).
fn parent_is_missing(path: &Path) -> io::Result<bool> {
    let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(false);
    };
    match sys::lstat(parent) {
        Ok(_) => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e),
    }
}

/// Releasing a held lease: a loss of its claim that the heartbeat has not reported yet
/// (Python's `_record_unreported_loss`). `None` when the path still names our marker, or
/// when it only looks lost: its directory was moved with it, or a contender holds it for
/// a moment under its `.break.` name (mid-exchange, to put it back). Best effort: a call
/// that fails reports nothing. Unix only, as in Python.
#[cfg(unix)]
pub(crate) fn loss_at_release(path: &Path, file: &File) -> Option<Refresh> {
    let ours = sys::fstat(file).ok()?;
    let loss = match sys::lstat(path) {
        Ok(there) if there.same_file(&ours) => return None,
        Ok(_) => Refresh::OwnerChanged,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Refresh::MarkerMissing,
        Err(_) => return None,
    };
    if os::inspect(file).ok()?.linked {
        let looks_lost_only = match loss {
            Refresh::MarkerMissing => parent_is_missing(path).ok()?,
            _ => under_break_name(path, &ours),
        };
        // An exchange or a directory rename may have been undone meanwhile.
        let back = sys::lstat(path).is_ok_and(|there| there.same_file(&ours));
        if looks_lost_only || back {
            return None;
        }
    }
    Some(loss)
}

#[cfg(not(unix))]
pub(crate) fn loss_at_release(_path: &Path, _file: &File) -> Option<Refresh> {
    None
}

/// Whether our marker `ours` is linked under a `<lock name>.break.` name next to `path`: a
/// contender that exchanged it aside keeps it there until it commits or puts it back.
#[cfg(unix)]
fn under_break_name(path: &Path, ours: &sys::Node) -> bool {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return false;
    };
    let mut prefix = name.to_os_string();
    prefix.push(".break.");
    let prefix = prefix.as_encoded_bytes();
    sys::names_in(dir).is_ok_and(|names| {
        names.iter().any(|entry| {
            entry.as_encoded_bytes().starts_with(prefix)
                && sys::lstat(&dir.join(entry)).is_ok_and(|node| node.same_file(ours))
        })
    })
}

/// Sets the times of our marker `file` to now (Python's `touch` on the descriptor).
fn touch(file: &File) -> Refresh {
    let now = std::time::SystemTime::now();
    match file.set_times(
        std::fs::FileTimes::new()
            .set_accessed(now)
            .set_modified(now),
    ) {
        Ok(()) => Refresh::Refreshed,
        Err(e) => Refresh::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attempt::soft::LeaseTerms;
    use std::time::Duration;

    fn terms(duration: Duration) -> Flavour {
        Flavour::Lease(LeaseTerms {
            duration,
            heartbeat: duration / 3,
        })
    }

    #[test]
    fn a_lease_record_is_ours_with_a_fresh_token() {
        let flavour = terms(Duration::from_secs(30));
        let (a, b) = (flavour.record(), flavour.record());
        let (ra, rb) = (record::parse(&a).unwrap(), record::parse(&b).unwrap());
        assert_eq!(ra.pid, std::process::id());
        assert_eq!(ra.mode, Mode::Lease);
        assert_eq!(ra.duration, Some(30.0));
        assert_eq!(ra.start, identity::ours().token);
        let token = ra.token.unwrap();
        assert_eq!(token.len(), 32);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(Some(token), rb.token, "each claim has its own token");
    }

    #[test]
    #[cfg_attr(
        windows,
        ignore = "an open marker can be neither removed nor replaced on Windows"
    )]
    fn refresh_reports_missing_and_changed_markers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.lock");
        std::fs::write(&path, b"x").unwrap();
        let id = os::inspect(&File::open(&path).unwrap()).unwrap().id;
        let (file, token) = open_own(&path, id).unwrap().unwrap();
        assert_eq!(token, None, "not a lease record");
        let old = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        file.set_modified(old).unwrap();
        assert!(matches!(refresh(&path, &file), Refresh::Refreshed));
        assert!(std::fs::metadata(&path).unwrap().modified().unwrap() > old);
        // Keep the old inode alive so the replacement gets another number.
        std::fs::hard_link(&path, dir.path().join("keep")).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(refresh(&path, &file), Refresh::MarkerMissing));
        std::fs::write(&path, b"y").unwrap();
        assert!(matches!(refresh(&path, &file), Refresh::OwnerChanged));
        assert!(open_own(&path, id).unwrap().is_none());
    }
}

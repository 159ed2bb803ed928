//! The sentinel at the lock path: a fixed record (`1\nfilelock-strict-v1\0\n0\n`) that makes
//! a legacy soft lock wait on the path forever, so that every contender goes through the
//! claim directory. Published once by a hard link (never replacing anything), then left in
//! place; each hold keeps it open. A soft-lock marker found at the path instead is waited
//! on while its holder lives, refused once its holder has exited (a strict lock never
//! breaks another protocol's marker), as Python filelock does.

use std::fs::File;
use std::io;
use std::path::Path;

use super::super::marker::{self, Content, Holder};
use super::super::{MALFORMED_AGE, record as soft_record, stale};
use super::publish::{Published, publish};
use super::record::{RECORD_LIMIT, SENTINEL};
use super::{hard_links_unsupported, names, protocol, reclaim};
use crate::sys::soft_calls as soft_sys;
use crate::sys::strict_calls as sys;
use crate::{Error, Op};

/// What is at the lock path.
pub(super) enum Sentinel {
    /// The sentinel, open.
    Open(File),
    /// Something that time may resolve: a live soft-lock marker, one being written, a
    /// sentinel being published.
    Busy,
    /// The lock file's directory is missing.
    MissingParent,
}

/// Opens the sentinel at `lock`, publishing it first if the path is free.
pub(super) fn open_or_create(lock: &Path, name: &str, mode: u32) -> Result<Sentinel, Error> {
    if let Some(found) = open(lock)? {
        return Ok(found);
    }
    let Some(parent) = lock.parent() else {
        return Ok(Sentinel::MissingParent);
    };
    match reclaim_leftovers(parent, name) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Sentinel::MissingParent),
        Err(e) => {
            return Err(protocol(
                lock,
                None,
                format!("cannot reclaim sentinel private records: {e}"),
            ));
        }
    }
    match publish(parent, name, SENTINEL, mode) {
        Ok(Published::Yes | Published::Exists) => {}
        Ok(Published::Reclaimed) => return Ok(Sentinel::Busy),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Sentinel::MissingParent),
        Err(e) if sys::links_unsupported(&e) => return Err(hard_links_unsupported(lock, e)),
        Err(e) => return Err(Error::io(lock, Op::Open, e)),
    }
    Ok(open(lock)?.unwrap_or(Sentinel::Busy))
}

/// What is at the lock path now: `None` if nothing.
fn open(lock: &Path) -> Result<Option<Sentinel>, Error> {
    let listed = match sys::lstat(lock) {
        Ok(listed) => listed,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(lock, Op::Inspect, e)),
    };
    if let Some(kind) = listed.kind {
        return Err(Error::NotAFile {
            path: lock.to_path_buf(),
            kind,
        });
    }
    let (file, node, bytes) = match soft_sys::read_marker(lock, RECORD_LIMIT as u64 + 1) {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        // Another account's marker, or one being moved: nothing is proven.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::PermissionDenied | io::ErrorKind::WouldBlock
            ) =>
        {
            return Ok(Some(Sentinel::Busy));
        }
        Err(e) => return Err(Error::io(lock, Op::Open, e)),
    };
    let opened = sys::fstat(&file).map_err(|e| Error::io(lock, Op::Inspect, e))?;
    if !opened.regular || !opened.same_file(&listed) {
        return Ok(Some(Sentinel::Busy)); // replaced between the lstat and the open
    }
    if bytes.len() > RECORD_LIMIT {
        return Err(expected(lock, "a file over 1024 bytes"));
    }
    if bytes == SENTINEL {
        stale::forget(lock);
        return Ok(Some(Sentinel::Open(file)));
    }
    let holder = match soft_record::parse(&bytes) {
        Some(owner) => Some(Holder {
            pid: owner.pid,
            host: owner.host,
            token: owner.start,
        }),
        None => match marker::parse(&bytes) {
            Content::Holder(holder) => Some(holder),
            _ => None,
        },
    };
    let Some(holder) = holder else {
        if stale::unchanged_for(lock, &node) < MALFORMED_AGE {
            return Ok(Some(Sentinel::Busy));
        }
        return Err(expected(
            lock,
            "a file that is neither the sentinel nor a soft-lock marker it can parse, unchanged for 2 seconds",
        ));
    };
    stale::forget(lock);
    if stale::holder_is_stale(&holder) {
        return Err(expected(
            lock,
            &format!(
                "a soft-lock marker left by pid {} on {}, which has exited",
                holder.pid,
                super::shown(holder.host.as_bytes())
            ),
        ));
    }
    Ok(Some(Sentinel::Busy))
}

fn expected(lock: &Path, found: &str) -> Error {
    protocol(
        lock,
        None,
        format!("expected the strict sentinel at the lock path, found {found}"),
    )
}

/// Removes the private sentinel records a crashed publisher left next to the lock file.
fn reclaim_leftovers(parent: &Path, name: &str) -> io::Result<()> {
    for entry in sys::list(parent, usize::MAX)? {
        if let Some(entry) = entry.to_str()
            && names::private_public_name(entry) == Some(name)
        {
            reclaim::private_record(parent, entry)?;
        }
    }
    Ok(())
}

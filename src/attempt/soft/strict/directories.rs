//! The coordination directory `<lock>.filelock` and its claim directory `claims`: made
//! (with the lock's mode plus search bits, and the sticky bit, as Python filelock does),
//! refused when they are not real directories, belong to another account under a sticky
//! parent, or hold entries that are not this lock's.

use std::io;
use std::path::Path;

use super::names::{self, CLAIMS_DIR};
use super::{protocol, reclaim};
use crate::sys::strict_calls::{self as sys, Meta};
use crate::{Error, Op};

/// At most this many entries are read from a claim directory (Python's `LIMITS.entries`).
pub(super) const ENTRY_LIMIT: usize = 16_384;

/// At most this many public claims may stand in a claim directory while one acquires
/// (Python's `LIMITS.claims`).
pub(super) const CLAIM_LIMIT: usize = 1024;

/// The sticky bit.
const STICKY: u32 = 0o1000;

/// What making the directories found.
pub(super) enum Ready {
    Yes,
    /// The lock file's directory is missing: create it and attempt again.
    MissingParent,
    /// Too many claims stand: contention, try later.
    Crowded,
}

/// Makes sure `coordination` and its `claims` directory exist and are this lock's.
pub(super) fn ensure(lock: &Path, coordination: &Path, mode: u32) -> Result<Ready, Error> {
    match ensure_one(lock, coordination, mode)? {
        Ready::Yes => {}
        other => return Ok(other),
    }
    ensure_one(lock, &coordination.join(CLAIMS_DIR), mode)
}

/// Makes (or checks) one protocol directory.
fn ensure_one(lock: &Path, directory: &Path, mode: u32) -> Result<Ready, Error> {
    match sys::mkdir(directory, mode) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let found = sys::lstat(directory).map_err(|e| {
                protocol_io(lock, &format!("cannot inspect {}", directory.display()), &e)
            })?;
            if !found.directory {
                return Err(protocol(
                    lock,
                    None,
                    format!("{} is not a real directory", directory.display()),
                ));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && !is_claims(directory) => {
            return Ok(Ready::MissingParent);
        }
        Err(e) => return Err(Error::io(lock, Op::Claim, e)),
    }
    let opened = sys::open_dir(directory)
        .map_err(|e| protocol_io(lock, &format!("cannot open {}", directory.display()), &e))?;
    let found = sys::fstat(&opened)
        .map_err(|e| protocol_io(lock, &format!("cannot open {}", directory.display()), &e))?;
    refuse_foreign(lock, directory, &found)?;
    let ready = if is_claims(directory) {
        refuse_unrelated_claims(lock, directory)?
    } else {
        refuse_unrelated_coordination(lock, directory)?;
        Ready::Yes
    };
    // Python's settled mode: the lock's bits the directory already has, plus sticky, so
    // that only a claim's owner can remove it where others may write.
    let settled = (found.mode & 0o7000) | (found.mode & mode & 0o777) | STICKY;
    if found.uid == sys::effective_uid() && settled != found.mode {
        sys::set_mode(&opened, settled).map_err(|e| {
            protocol_io(
                lock,
                &format!("cannot set the mode of {}", directory.display()),
                &e,
            )
        })?;
    }
    Ok(ready)
}

fn is_claims(directory: &Path) -> bool {
    directory.file_name().is_some_and(|n| n == CLAIMS_DIR)
}

/// Under a sticky parent, a directory (or sentinel) that belongs neither to this account
/// nor to the parent's owner could be replaced by its owner during a hold: refused (Python's
/// `foreign_owner`).
pub(super) fn refuse_foreign(lock: &Path, node: &Path, found: &Meta) -> Result<(), Error> {
    let Some(parent) = node.parent() else {
        return Ok(());
    };
    let parent = sys::lstat(parent)
        .map_err(|e| protocol_io(lock, &format!("cannot inspect {}", parent.display()), &e))?;
    if parent.mode & STICKY != 0 && found.uid != sys::effective_uid() && found.uid != parent.uid {
        return Err(protocol(
            lock,
            None,
            format!(
                "{} belongs to uid {}, not to this process's account or the parent's owner",
                node.display(),
                found.uid
            ),
        ));
    }
    Ok(())
}

/// The coordination directory holds nothing but `claims` (a real directory).
fn refuse_unrelated_coordination(lock: &Path, directory: &Path) -> Result<(), Error> {
    let names = sys::list(directory, 2)
        .map_err(|e| protocol_io(lock, &format!("cannot list {}", directory.display()), &e))?;
    let unrelated = match names.as_slice() {
        [] => false,
        [only] => {
            only != CLAIMS_DIR || !sys::lstat(&directory.join(only)).is_ok_and(|m| m.directory)
        }
        _ => true,
    };
    if unrelated {
        return Err(protocol(
            lock,
            None,
            format!(
                "{} holds entries that are not this lock's",
                directory.display()
            ),
        ));
    }
    Ok(())
}

/// The claim directory holds nothing but claims, their private records and probes (and
/// NFS placeholders), within the limits.
fn refuse_unrelated_claims(lock: &Path, directory: &Path) -> Result<Ready, Error> {
    let names = sys::list(directory, ENTRY_LIMIT + 1)
        .map_err(|e| protocol_io(lock, &format!("cannot list {}", directory.display()), &e))?;
    if let Some(foreign) = names
        .iter()
        .find(|n| !n.to_str().is_some_and(names::belongs_in_claims))
    {
        return Err(protocol(
            lock,
            Some(&foreign.to_string_lossy()),
            "unknown claim name or protocol version",
        ));
    }
    if names.len() > ENTRY_LIMIT {
        return Err(protocol(
            lock,
            None,
            format!(
                "{} exceeds the scan limit of {ENTRY_LIMIT} entries",
                directory.display()
            ),
        ));
    }
    let hidden: Vec<&str> = names
        .iter()
        .filter_map(|n| n.to_str())
        .filter(|n| n.starts_with('.'))
        .collect();
    if names.len() - hidden.len() > CLAIM_LIMIT {
        for name in hidden.iter().take(CLAIM_LIMIT) {
            if names::is_reclaimable(name) {
                reclaim::private_record(directory, name)
                    .map_err(|e| protocol_io(lock, "cannot reclaim private claim records", &e))?;
            }
        }
        return Ok(Ready::Crowded);
    }
    Ok(Ready::Yes)
}

/// A protocol error caused by an I/O error, named by `what`.
pub(super) fn protocol_io(lock: &Path, what: &str, e: &io::Error) -> Error {
    protocol(lock, None, format!("{what}: {e}"))
}

//! Reading the claims that stand in a claim directory, as Python filelock's
//! `read_existing_claims`: every public name must be a claim of this protocol version and
//! every record well-formed, or the lock fails closed with a protocol error. While
//! acquiring, leftovers of crashed publishers are reclaimed, and each claim is proven to be
//! still on the server by a hard link to it (NFS clients may cache a removed name).

use std::io;
use std::path::Path;

use super::ClaimState;
use super::directories::{CLAIM_LIMIT, ENTRY_LIMIT, protocol_io};
use super::names;
use super::record::{self, Owner, RECORD_LIMIT};
use super::{protocol, reclaim};
use crate::Error;
use crate::sys::soft_calls as soft_sys;
use crate::sys::strict_calls as sys;

/// One published claim, as read.
#[derive(Debug, Clone)]
pub(super) struct Standing {
    /// Its file name in the claim directory.
    pub(super) name: String,
    pub(super) state: ClaimState,
    pub(super) token: String,
    pub(super) owner: Owner,
}

/// What a scan found.
pub(super) enum Scan {
    /// The claims standing, sorted by name.
    Claims(Vec<Standing>),
    /// The directory could not be read reliably now (crowded, or a stale NFS handle): try
    /// again later.
    Retry,
}

/// Why a scan is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    /// Inspection only: nothing written or removed.
    Inspect,
    /// Part of an acquire: reclaims leftovers and proves each claim on the server.
    Acquire,
}

/// Reads the claims in `directory` (the claim directory of the lock `lock`).
pub(super) fn read_claims(lock: &Path, directory: &Path, purpose: Purpose) -> Result<Scan, Error> {
    let acquiring = purpose == Purpose::Acquire;
    match sys::open_dir(directory) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Scan::Claims(Vec::new())),
        Err(e) => return Err(protocol_io(lock, "cannot open claim directory", &e)),
    }
    let listed = match sys::list(directory, ENTRY_LIMIT + 1) {
        Ok(listed) => listed,
        Err(e) if acquiring && sys::is_stale_handle(&e) => return Ok(Scan::Retry),
        Err(e) => return Err(protocol_io(lock, "cannot list claim directory", &e)),
    };
    // Room for both our claims, a private record and a clock probe.
    if acquiring && listed.len() > ENTRY_LIMIT - 4 {
        return Err(protocol(
            lock,
            None,
            format!(
                "{} exceeds the scan limit of {} entries",
                directory.display(),
                ENTRY_LIMIT - 4
            ),
        ));
    }
    let mut public = Vec::new();
    let mut reclaims = 0;
    for name in &listed {
        let Some(name) = name.to_str() else {
            return Err(protocol(
                lock,
                Some(&name.to_string_lossy()),
                "unknown claim name or protocol version",
            ));
        };
        if !name.starts_with('.') {
            let Some((state, token)) = names::parse_claim_name(name) else {
                return Err(protocol(
                    lock,
                    Some(name),
                    "unknown claim name or protocol version",
                ));
            };
            public.push((name.to_owned(), state, token.to_owned()));
        } else if acquiring && reclaims < CLAIM_LIMIT && names::is_reclaimable(name) {
            reclaims += 1;
            reclaim::private_record(directory, name)
                .map_err(|e| protocol_io(lock, "cannot reclaim private claim records", &e))?;
        }
    }
    if acquiring && public.len() > CLAIM_LIMIT {
        return Ok(Scan::Retry);
    }
    public.sort_by(|a, b| a.0.cmp(&b.0));
    let mut claims = Vec::with_capacity(public.len());
    for (name, state, token) in public {
        let Some(owner) = read_one(lock, directory, &name, &token)? else {
            continue;
        };
        if acquiring && !still_on_server(lock, directory, &name)? {
            continue;
        }
        claims.push(Standing {
            name,
            state,
            token,
            owner,
        });
    }
    Ok(Scan::Claims(claims))
}

/// Reads and parses the claim `name`: `None` if it is gone.
fn read_one(
    lock: &Path,
    directory: &Path,
    name: &str,
    token: &str,
) -> Result<Option<Owner>, Error> {
    let path = directory.join(name);
    let cannot = |what: String| protocol(lock, Some(name), format!("cannot read claim: {what}"));
    let listed = match sys::lstat(&path) {
        Ok(listed) => listed,
        Err(e) if e.kind() == io::ErrorKind::NotFound || sys::is_stale_handle(&e) => {
            return Ok(None);
        }
        Err(e) => return Err(cannot(e.to_string())),
    };
    if !listed.regular {
        return Err(cannot(format!("{} is not a regular file", path.display())));
    }
    let (file, _, bytes) = match soft_sys::read_marker(&path, RECORD_LIMIT as u64 + 1) {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::NotFound || sys::is_stale_handle(&e) => {
            return Ok(None);
        }
        Err(e) => return Err(cannot(e.to_string())),
    };
    let opened = sys::fstat(&file).map_err(|e| cannot(e.to_string()))?;
    if !opened.regular || !opened.same_file(&listed) {
        return Err(cannot(format!("{} changed while opening", path.display())));
    }
    if bytes.len() > RECORD_LIMIT {
        return Err(cannot(format!(
            "{} exceeds {RECORD_LIMIT} bytes",
            path.display()
        )));
    }
    match record::parse(token, &bytes) {
        Some(owner) => Ok(Some(owner)),
        None => Err(protocol(lock, Some(name), "malformed claim record")),
    }
}

/// Whether the server still has the claim `name`: a hard link to it under a probe name
/// succeeds (then the probe is removed). Linux may refuse a link to another account's
/// file (`EPERM`): that claim counts as standing.
fn still_on_server(lock: &Path, directory: &Path, name: &str) -> Result<bool, Error> {
    let probe = directory.join(names::probe_name());
    match sys::hard_link(&directory.join(name), &probe) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound || sys::is_stale_handle(&e) => {
            return Ok(false);
        }
        Err(e) if sys::is_not_permitted(&e) => return Ok(true),
        Err(e) => {
            return Err(protocol(
                lock,
                Some(name),
                format!("cannot verify claim: {e}"),
            ));
        }
    }
    match soft_sys::unlink(&probe) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(protocol(
            lock,
            Some(name),
            format!("cannot remove claim probe: {e}"),
        )),
    }
}

//! One attempt at the strict lock, its release, and the manual recovery of a claim.
//!
//! An attempt (Python filelock 4.3.1's `_acquire`): make the directories, open (or
//! publish) the sentinel, and if no claim stands, publish an intent claim
//! `intent-v1-<token>.claim`; if it is then the least claim and none is held, link it to
//! `held-v1-<token>.claim`; if after that our token is still the least, the lock is ours.
//! Any other outcome withdraws our claims: contention, retried on the schedule. A claim is
//! only ever removed by its owner (release, withdrawal) or by hand ([`force_break`]): a
//! dead holder's claims stay until someone who knows it is gone removes them (fail
//! closed, as Python's strict lock).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::super::marker::Holder;
use super::super::stale;
use super::directories::{self, Ready};
use super::names::{self, CLAIMS_DIR, COORDINATION_SUFFIX};
use super::publish::{Published, link_no_replace, publish};
use super::record;
use super::scan::{Purpose, Scan, Standing, read_claims};
use super::sentinel::{self, Sentinel};
use super::{Claim, ClaimState, hard_links_unsupported};
use crate::LockMode;
use crate::attempt::Found;
use crate::sys::soft_calls as soft_sys;
use crate::sys::strict_calls as sys;
use crate::{Error, Op};

/// The mode files and directories are made with when none is configured (reduced by the
/// umask), as Python's `_open_mode`.
const DEFAULT_MODE: u32 = 0o666;

/// The claims of a won strict lock: what its release removes.
#[derive(Debug, Clone)]
pub(crate) struct Claims {
    held: PathBuf,
    intent: PathBuf,
}

/// What one strict attempt found.
#[derive(Debug)]
pub(crate) enum StrictOutcome {
    /// The lock is ours: the open sentinel and our claims.
    Won(File, Claims),
    /// Someone else holds it, or competes for it now.
    Busy,
    /// The lock file's directory is missing: create it and attempt again.
    MissingParent,
}

/// The claim directory of the lock at `lock`: `<lock>.filelock/claims`.
pub(crate) fn claim_directory(lock: &Path) -> PathBuf {
    coordination(lock).join(CLAIMS_DIR)
}

fn coordination(lock: &Path) -> PathBuf {
    let mut name = lock.as_os_str().to_owned();
    name.push(COORDINATION_SUFFIX);
    PathBuf::from(name)
}

/// The lock file's name, which the sentinel's private records are named after.
fn file_name(lock: &Path) -> Result<&str, Error> {
    lock.file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::InvalidPath {
            path: lock.to_path_buf(),
            reason: "a strict lock needs a file name in UTF-8 (its claim records are named after it)",
        })
}

/// Makes one attempt at the strict lock on `lock`.
pub(crate) fn attempt(lock: &Path, permissions: Option<u32>) -> Result<StrictOutcome, Error> {
    let name = file_name(lock)?;
    let mode = permissions.unwrap_or(DEFAULT_MODE);
    // Search permission wherever read permission is given, so readers can inspect claims.
    let directory_mode = mode | ((mode & 0o444) >> 2);
    match directories::ensure(lock, &coordination(lock), directory_mode)? {
        Ready::Yes => {}
        Ready::MissingParent => return Ok(StrictOutcome::MissingParent),
        Ready::Crowded => return Ok(StrictOutcome::Busy),
    }
    let sentinel = match sentinel::open_or_create(lock, name, mode)? {
        Sentinel::Open(file) => file,
        Sentinel::Busy => return Ok(StrictOutcome::Busy),
        Sentinel::MissingParent => return Ok(StrictOutcome::MissingParent),
    };
    let found = sys::fstat(&sentinel).map_err(|e| Error::io(lock, Op::Inspect, e))?;
    directories::refuse_foreign(lock, lock, &found)?;
    let directory = claim_directory(lock);
    match read_claims(lock, &directory, Purpose::Acquire)? {
        Scan::Claims(claims) if claims.is_empty() => {}
        _ => return Ok(StrictOutcome::Busy),
    }
    let token = names::new_token();
    let mut ours = Doorway {
        directory: &directory,
        published: Vec::new(),
    };
    match ours.compete(lock, &token, mode) {
        Ok(true) => {
            let mut published = std::mem::take(&mut ours.published);
            let held = published.pop();
            let intent = published.pop();
            match (held, intent) {
                (Some(held), Some(intent)) => {
                    tracing::debug!(target: "tokio_filelock", path = %lock.display(), token, "strict claims published");
                    Ok(StrictOutcome::Won(sentinel, Claims { held, intent }))
                }
                _ => Ok(StrictOutcome::Busy), // unreachable: a win publishes both
            }
        }
        Ok(false) => {
            ours.withdraw(lock)?;
            Ok(StrictOutcome::Busy)
        }
        Err(e) => {
            if let Err(withdrawal) = ours.withdraw(lock) {
                tracing::warn!(target: "tokio_filelock", path = %lock.display(), error = %withdrawal, "could not withdraw strict claims after an error");
            }
            Err(e)
        }
    }
}

/// The claims one attempt published, withdrawn unless it wins.
struct Doorway<'a> {
    directory: &'a Path,
    /// Intent first, then held.
    published: Vec<PathBuf>,
}

impl Doorway<'_> {
    /// Publishes our intent, then our held claim, checking the claims after each:
    /// `Ok(true)` when the lock is ours.
    fn compete(&mut self, lock: &Path, token: &str, mode: u32) -> Result<bool, Error> {
        let intent = names::claim_name(ClaimState::Intent, token);
        match publish(self.directory, &intent, &record::ours(token), mode) {
            Ok(Published::Yes) => self.published.push(self.directory.join(&intent)),
            Ok(Published::Exists | Published::Reclaimed) => return Ok(false),
            Err(e) if sys::links_unsupported(&e) => return Err(hard_links_unsupported(lock, e)),
            Err(e) => return Err(Error::io(lock, Op::Claim, e)),
        }
        let least_intent = match read_claims(lock, self.directory, Purpose::Acquire)? {
            Scan::Claims(claims) => {
                !claims.iter().any(|c| c.state == ClaimState::Held)
                    && claims.iter().map(|c| &c.name).min() == Some(&intent)
            }
            Scan::Retry => false,
        };
        if !least_intent {
            return Ok(false);
        }
        let held = names::claim_name(ClaimState::Held, token);
        match link_no_replace(self.directory, &intent, &held) {
            Ok(true) => self.published.push(self.directory.join(&held)),
            Ok(false) => return Ok(false),
            Err(e) if sys::links_unsupported(&e) => return Err(hard_links_unsupported(lock, e)),
            Err(e) => return Err(Error::io(lock, Op::Claim, e)),
        }
        // A scan may miss a held claim published meanwhile; the intent stays visible
        // throughout, so the least token decides.
        Ok(match read_claims(lock, self.directory, Purpose::Acquire)? {
            Scan::Claims(claims) => {
                let has = |name: &str| claims.iter().any(|c| c.name == name);
                has(&intent)
                    && has(&held)
                    && claims.iter().map(|c| c.token.as_str()).min() == Some(token)
            }
            Scan::Retry => false,
        })
    }

    /// Removes what this attempt published (held first).
    fn withdraw(&mut self, lock: &Path) -> Result<(), Error> {
        while let Some(path) = self.published.pop() {
            if let Err(e) = remove(&path) {
                self.published.push(path);
                return Err(Error::io(lock, Op::Unlock, e));
            }
        }
        Ok(())
    }
}

/// The file name of a claim of ours that is no longer there (removed by hand while
/// held), if one is not. An I/O error other than "not found" proves nothing.
pub(crate) fn missing(claims: &Claims) -> Option<String> {
    [&claims.held, &claims.intent]
        .into_iter()
        .find_map(|path| match sys::lstat(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Some(path.file_name()?.to_string_lossy().into_owned())
            }
            _ => None,
        })
}

/// Unlinks one of our claims; one already gone is fine.
fn remove(path: &Path) -> io::Result<()> {
    match soft_sys::unlink(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Releases a strict lock: removes our held claim, then our intent, then closes the
/// sentinel (which stays). A claim already gone (removed by hand with [`force_break`]) is
/// not an error: the lock is free either way.
pub(crate) fn release(sentinel: File, claims: Claims, lock: &Path) -> Result<(), Error> {
    let result = remove(&claims.held)
        .and_then(|()| remove(&claims.intent))
        .map_err(|e| Error::io(lock, Op::Unlock, e));
    drop(sentinel);
    result
}

/// The claims standing for the lock at `lock`, read without writing anything.
pub(crate) fn claims(lock: &Path) -> Result<Vec<Claim>, Error> {
    let standing = match read_claims(lock, &claim_directory(lock), Purpose::Inspect)? {
        Scan::Claims(claims) => claims,
        Scan::Retry => Vec::new(),
    };
    Ok(standing.into_iter().map(listed).collect())
}

fn listed(claim: Standing) -> Claim {
    let Standing {
        name,
        state,
        token,
        owner,
    } = claim;
    let owner_exited = stale::holder_is_stale(&Holder {
        pid: owner.pid,
        host: owner.host.clone(),
        token: owner.start,
    });
    Claim {
        name,
        state,
        token,
        pid: owner.pid,
        host: owner.host,
        start: owner.start.map(|t| t.to_string()),
        owner_exited,
    }
}

/// Who holds the strict lock at `lock`, for a timeout or the waiting hook: the owner of the
/// held claim, else of the least intent. Blocking: reads the claims.
pub(crate) fn found(lock: &Path) -> Found {
    let claims = claims(lock).unwrap_or_default();
    let named = claims
        .iter()
        .find(|c| c.state == ClaimState::Held)
        .or_else(|| claims.first());
    Found {
        holder: named.map(|c| {
            crate::Holder::new(c.pid, LockMode::Exclusive).with_host(Some(c.host.clone()))
        }),
        empty_marker: false,
    }
}

/// Removes the claim named `name` (a public claim file name, as [`claims`] lists it), as
/// Python's `force_break`: for recovering from a holder known to be gone. A holder still
/// alive then overlaps with the next one.
pub(crate) fn force_break(lock: &Path, name: &str) -> Result<(), Error> {
    let invalid = name.is_empty() || name.starts_with('.') || name.contains(['/', '\\', '\0']);
    if invalid {
        return Err(Error::io(
            lock,
            Op::Claim,
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a claim name is one public claim file name",
            ),
        ));
    }
    let directory = claim_directory(lock);
    let listed = sys::list(&directory, usize::MAX).map_err(|e| Error::io(lock, Op::Claim, e))?;
    if !listed.iter().any(|n| n == name) {
        return Err(Error::io(
            lock,
            Op::Claim,
            io::Error::new(io::ErrorKind::NotFound, format!("no claim named {name}")),
        ));
    }
    tracing::debug!(target: "tokio_filelock", path = %lock.display(), claim = name, "breaking a strict claim by hand");
    soft_sys::unlink(&directory.join(name)).map_err(|e| Error::io(lock, Op::Claim, e))
}

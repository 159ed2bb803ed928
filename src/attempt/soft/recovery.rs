//! Recovery of what a breaker killed mid-way leaves behind (Python filelock's
//! `_restore_stranded_marker`, `_soft/_exclusive/_recovery.py`).
//!
//! A breaker exchanges its own marker in for a stale one, leaving the node that came out
//! under `<lock>.break.<its pid>.<32 hex>`, and then either unlinks that node (it was the
//! stale one) or exchanges it back (a racing breaker's live marker came out). Killed
//! between the two steps, it leaves its own marker at the lock path, naming a dead
//! process, and the node that came out under its break name, which may be the live
//! holder's marker. Breaking the dead breaker's marker then would let two processes hold
//! the lock. So before breaking a stale marker whose record names PID `p`, a contender
//! looks for `<lock>.break.<p>.*` (and for `<lock>.restore.*` a recoverer killed mid-way
//! left): a live marker found there is put back at the lock path, by exchange, and the
//! lock counts as held; a dead one is removed, and the break goes on.
//!
//! A recoverer first claims a stranded file by renaming it to its own
//! `<lock>.restore.<pid>.<32 hex>`, so that recoverers never undo each other's exchange;
//! a claim it cannot complete is handed back under the breaker's break name for a later
//! attempt.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::claim::recovery_name;
use super::marker::{Content, Holder};
use super::seen::{Seen, read};
use super::{identity, stale};
use crate::sys::soft_calls::{self as sys, Node};

/// The stranded files of a crashed breaker `breaker` (or recoverer) next to `path`, handled
/// before the stale marker `seen` (naming `breaker`) is broken. `true` when the lock counts
/// as held (a live marker was put back, or a live breaker or recoverer is still at work):
/// do not break. `false`: nothing live was stranded, break as usual. Blocking.
pub(super) fn restore_stranded(path: &Path, breaker: u32, seen: &Node) -> bool {
    let Some(candidates) = stranded_candidates(path, breaker) else {
        return true;
    };
    candidates
        .into_iter()
        .any(|(stranded, ours)| recover_claimed(path, &stranded, breaker, seen, ours))
}

/// What a stranded file's name says, after `<lock name>.`: Python's
/// `(break|restore)\.[0-9]+\.[0-9a-f]{32}`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Stranded<'a> {
    pub(super) restore: bool,
    /// The PID as written (Python compares the break PID as text).
    pub(super) pid: &'a str,
}

pub(super) fn parse_name<'a>(lock_name: &str, name: &'a str) -> Option<Stranded<'a>> {
    let rest = name.strip_prefix(lock_name)?.strip_prefix('.')?;
    let (restore, rest) = if let Some(rest) = rest.strip_prefix("break.") {
        (false, rest)
    } else {
        (true, rest.strip_prefix("restore.")?)
    };
    let (pid, hex) = rest.split_once('.')?;
    let hex_ok = hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let pid_ok = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    (hex_ok && pid_ok).then_some(Stranded { restore, pid })
}

/// A PID in the range Python probes (1 to 2^31 - 1).
fn probe_pid(text: &str) -> Option<u32> {
    text.parse::<u32>()
        .ok()
        .filter(|pid| (1..=i32::MAX as u32).contains(pid))
}

/// Whether the process `pid` on this host is provably gone.
fn gone(pid: u32) -> bool {
    stale::holder_is_stale(&Holder {
        pid,
        host: identity::host_name().to_owned(),
        token: None,
    })
}

/// The stranded files to recover, sorted, each with whether it is this process's own
/// claim (to adopt rather than claim). `None` when a live breaker or recoverer may still
/// be at work, or the directory cannot be listed (Python then breaks nothing either): the
/// lock counts as held.
fn stranded_candidates(path: &Path, breaker: u32) -> Option<Vec<(PathBuf, bool)>> {
    let (Some(dir), Some(lock_name)) = (path.parent(), path.file_name().and_then(|n| n.to_str()))
    else {
        return Some(Vec::new());
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let names = sys::names_in(dir).ok()?;
    let mut candidates = Vec::new();
    for name in names.iter().filter_map(|n| n.to_str()) {
        let Some(stranded) = parse_name(lock_name, name) else {
            continue;
        };
        let candidate = dir.join(name);
        if !sys::lstat(&candidate).is_ok_and(|node| node.regular) {
            continue;
        }
        if !stranded.restore {
            if stranded.pid != breaker.to_string() {
                continue;
            }
            // The PID may now belong to another live breaker.
            if probe_pid(stranded.pid).is_some() && !gone(breaker) {
                return None;
            }
            candidates.push((candidate, false));
        } else if let Some(recoverer) = probe_pid(stranded.pid) {
            let ours = recoverer == std::process::id();
            if !ours && !gone(recoverer) {
                return None;
            }
            candidates.push((candidate, ours));
        }
    }
    candidates.sort();
    Some(candidates)
}

/// The stranded files this process is recovering now (by name): two threads never
/// recover the same one.
static CLAIMS: Mutex<Option<HashSet<OsString>>> = Mutex::new(None);

fn begin_claim(name: &Path) -> bool {
    let key = name.file_name().unwrap_or(name.as_os_str()).to_owned();
    crate::sync::lock(&CLAIMS)
        .get_or_insert_with(HashSet::new)
        .insert(key)
}

fn end_claim(name: &Path) {
    let key = name.file_name().unwrap_or(name.as_os_str());
    if let Some(claims) = crate::sync::lock(&CLAIMS).as_mut() {
        claims.remove(key);
    }
}

/// Claims `stranded` (renaming it to our own restore name, unless it is ours already) and
/// recovers it. `true`: the lock counts as held.
fn recover_claimed(path: &Path, stranded: &Path, breaker: u32, seen: &Node, ours: bool) -> bool {
    let own = if ours {
        stranded.to_path_buf()
    } else {
        recovery_name(path, "restore", std::process::id())
    };
    if !begin_claim(&own) {
        return true;
    }
    let held = if !ours && sys::rename(stranded, &own).is_err() {
        // A peer claimed it first: it holds the record now, so the lock counts as held.
        true
    } else {
        restore_claimed(path, &own, breaker, seen)
    };
    end_claim(&own);
    held
}

/// Puts the live marker in our claim `own` back at `path` (still the stale node `seen`), or
/// removes a dead one (`false`: go on breaking).
fn restore_claimed(path: &Path, own: &Path, breaker: u32, seen: &Node) -> bool {
    let content = match read(own) {
        Ok(Some((_, content, _))) => content,
        _ => {
            return_claim(path, own, breaker);
            return true;
        }
    };
    if !is_live(&content, breaker) {
        let _ = sys::unlink(own);
        return false;
    }
    let unchanged = sys::lstat(path).is_ok_and(|now| now.same_version(seen));
    if unchanged && sys::exchange(own, path).is_ok() {
        if sys::lstat(own).is_ok_and(|out| out.same_file(seen)) {
            let _ = sys::unlink(own);
            tracing::debug!(
                target: "tokio_filelock",
                path = %path.display(),
                "put back a live marker that a breaker killed mid-way had left aside"
            );
            return true;
        }
        // A replacement raced our check: exchange back before handing the claim back.
        let _ = sys::exchange(own, path);
    }
    return_claim(path, own, breaker);
    true
}

/// Hands a claim we could not complete back under the breaker's break name, for a later
/// attempt.
fn return_claim(path: &Path, own: &Path, breaker: u32) {
    let _ = sys::rename(own, &recovery_name(path, "break", breaker));
}

/// Whether a stranded marker may belong to a live holder (Python's `_marker_is_live`):
/// the strict sentinel and an empty marker always; a record naming another process than
/// the dead breaker, unless that one is provably gone. A protocol 2 record (a lease's),
/// which Python reads as no holder and removes, is kept here unless its holder is provably
/// gone: removing a live lease's marker would hand its lock to a second holder.
fn is_live(content: &Seen, breaker: u32) -> bool {
    let names_other = |pid: u32, host: &str| pid != breaker || host != identity::host_name();
    match content {
        Seen::Legacy(Content::Unbreakable | Content::Empty) => true,
        Seen::Legacy(Content::Holder(holder)) => {
            names_other(holder.pid, &holder.host) && !stale::holder_is_stale(holder)
        }
        Seen::Owner(owner) => {
            names_other(owner.pid, &owner.host)
                && !stale::holder_is_stale(&Holder {
                    pid: owner.pid,
                    host: owner.host.clone(),
                    token: owner.start,
                })
        }
        Seen::Legacy(Content::Malformed) | Seen::Break(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_pythons_pattern() {
        let hex = "0123456789abcdef0123456789abcdef";
        let name = format!("a.lock.break.42.{hex}");
        assert_eq!(
            parse_name("a.lock", &name),
            Some(Stranded {
                restore: false,
                pid: "42"
            })
        );
        let name = format!("a.lock.restore.7.{hex}");
        assert_eq!(
            parse_name("a.lock", &name),
            Some(Stranded {
                restore: true,
                pid: "7"
            })
        );
        for bad in [
            format!("b.lock.break.42.{hex}"),
            format!("a.lock.break.42.{}", hex.to_uppercase()),
            format!("a.lock.break.42.{hex}0"),
            format!("a.lock.break.x.{hex}"),
            format!("a.lock.break..{hex}"),
            format!("a.lock.shred.42.{hex}"),
            "a.lock".to_owned(),
        ] {
            assert_eq!(parse_name("a.lock", &bad), None, "{bad}");
        }
    }
}

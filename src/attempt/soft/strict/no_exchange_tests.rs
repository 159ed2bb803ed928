//! The strict lock on a file system that refuses `renameat2(RENAME_EXCHANGE)` (NFS): the
//! refusal is injected at the system call layer (`sys::soft_calls::ExchangeUnsupported`,
//! as `sys::FlockUnsupported` injects an unsupported `flock`), since no such mount can be
//! made on a test machine without privileges. There a `SoftFileLock` can never break a
//! dead holder's marker; the strict lock still recovers a dead holder, by removing its
//! claims (`force_break`, which needs no exchange) and acquiring.

use std::path::Path;

use super::super::Flavour;
use super::super::attempt::{SoftOutcome, attempt_as};
use super::ClaimState;
use super::names;
use super::{StrictOutcome, attempt, claims, force_break, release};
use crate::sys::soft_calls::ExchangeUnsupported;

/// The PID of a process that has exited (and been reaped).
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// Publishes the intent and held claims of `pid` on this host, as a holder killed while
/// holding leaves them.
fn plant_claims(lock: &Path, pid: u32) {
    let token = names::new_token();
    let host: String = super::super::identity::host_name()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    let record = format!("filelock-strict-v1\n{token}\n{pid}\n{host}\n\n");
    let claims = super::attempt::claim_directory(lock);
    let intent = claims.join(names::claim_name(ClaimState::Intent, &token));
    std::fs::write(&intent, record).unwrap();
    std::fs::hard_link(
        &intent,
        claims.join(names::claim_name(ClaimState::Held, &token)),
    )
    .unwrap();
}

#[test]
fn a_soft_lock_cannot_break_a_dead_holders_marker_there() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("soft.lock");
    let marker = format!("{}\n{}\n", dead_pid(), super::super::identity::host_name());
    std::fs::write(&lock, &marker).unwrap();
    let _refused = ExchangeUnsupported::on();
    let outcome = attempt_as(&lock, None, Flavour::Legacy, None).unwrap();
    assert!(matches!(outcome, SoftOutcome::Busy(_)), "{outcome:?}");
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap(),
        marker,
        "not broken"
    );
}

#[test]
fn the_strict_lock_recovers_a_dead_holder_without_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("strict.lock");
    let _refused = ExchangeUnsupported::on();
    // Make the directories and the sentinel, then leave a dead holder's claims.
    match attempt(&lock, None).unwrap() {
        StrictOutcome::Won(sentinel, ours) => release(sentinel, ours, &lock).unwrap(),
        other => panic!("{other:?}"),
    }
    let dead = dead_pid();
    plant_claims(&lock, dead);
    assert!(
        matches!(attempt(&lock, None).unwrap(), StrictOutcome::Busy),
        "fail closed: a dead holder's claims stand until removed"
    );
    let standing = claims(&lock).unwrap();
    assert_eq!(standing.len(), 2);
    for claim in &standing {
        assert_eq!(claim.pid, dead);
        assert!(claim.owner_exited, "{claim:?}");
        force_break(&lock, &claim.name).unwrap();
    }
    match attempt(&lock, None).unwrap() {
        StrictOutcome::Won(sentinel, ours) => {
            assert_eq!(claims(&lock).unwrap().len(), 2);
            release(sentinel, ours, &lock).unwrap();
        }
        other => panic!("the lock is free after the recovery: {other:?}"),
    }
    assert!(claims(&lock).unwrap().is_empty());
}

//! The names of the strict protocol, exactly as Python filelock 4.3.1 spells them:
//! `<lock>.filelock/claims/`, public claims `intent-v1-<token>.claim` and
//! `held-v1-<token>.claim`, private records `.<public>.private-v1-<32 hex>.tmp` (a record
//! before it is published by a hard link), and server probes `.probe-v1-<32 hex>.tmp`.
//! Pure: no system calls.

use super::super::claim::random_hex;
use super::ClaimState;

/// The coordination directory is the lock path with this suffix.
pub(super) const COORDINATION_SUFFIX: &str = ".filelock";

/// The directory of claims inside the coordination directory.
pub(super) const CLAIMS_DIR: &str = "claims";

/// Hex digits of a claim token (and of a private name's random part).
const TOKEN_LEN: usize = 32;

const PRIVATE_MARK: &str = ".private-v1-";
const PRIVATE_SUFFIX: &str = ".tmp";
const PROBE_PREFIX: &str = ".probe-v1-";

fn word(state: ClaimState) -> &'static str {
    match state {
        ClaimState::Intent => "intent",
        ClaimState::Held => "held",
    }
}

/// `<state>-v1-<token>.claim`.
pub(super) fn claim_name(state: ClaimState, token: &str) -> String {
    format!("{}-v1-{token}.claim", word(state))
}

/// A new random claim token: 32 lower-case hex digits.
pub(super) fn new_token() -> String {
    random_hex()
}

fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The state and token of a public claim name, or `None` for any other name (Python's
/// `parse_claim_name`).
pub(super) fn parse_claim_name(name: &str) -> Option<(ClaimState, &str)> {
    let stem = name.strip_suffix(".claim")?;
    let mut parts = stem.split('-');
    let (state, version, token) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || version != "v1" || !is_lower_hex(token, TOKEN_LEN) {
        return None;
    }
    let state = match state {
        "intent" => ClaimState::Intent,
        "held" => ClaimState::Held,
        _ => return None,
    };
    Some((state, token))
}

/// A fresh private name for a record to be published as `public`.
pub(super) fn private_name(public: &str) -> String {
    format!(".{public}{PRIVATE_MARK}{}{PRIVATE_SUFFIX}", random_hex())
}

/// The public name a private record is for, or `None` if `name` is no private record
/// (Python's `private_public_name`).
pub(super) fn private_public_name(name: &str) -> Option<&str> {
    let inner = name.strip_prefix('.')?.strip_suffix(PRIVATE_SUFFIX)?;
    let at = inner.rfind(PRIVATE_MARK)?;
    let (public, random) = (&inner[..at], &inner[at + PRIVATE_MARK.len()..]);
    is_lower_hex(random, TOKEN_LEN).then_some(public)
}

/// A fresh name for a server probe (a hard link that proves a claim is still there).
pub(super) fn probe_name() -> String {
    format!("{PROBE_PREFIX}{}{PRIVATE_SUFFIX}", random_hex())
}

fn is_probe_name(name: &str) -> bool {
    name.strip_prefix(PROBE_PREFIX)
        .and_then(|rest| rest.strip_suffix(PRIVATE_SUFFIX))
        .is_some_and(|hex| is_lower_hex(hex, TOKEN_LEN))
}

/// A hidden name in the claim directory that a crashed publisher may have left: a probe,
/// or a private record of a claim (Python's `is_reclaimable_private_name`).
pub(super) fn is_reclaimable(name: &str) -> bool {
    is_probe_name(name) || private_public_name(name).is_some_and(|p| parse_claim_name(p).is_some())
}

/// Whether `name` may stand in a claim directory: a claim, a reclaimable private name, or
/// an NFS client's `.nfs<hex>` placeholder of a file deleted while open.
pub(super) fn belongs_in_claims(name: &str) -> bool {
    parse_claim_name(name).is_some()
        || is_reclaimable(name)
        || name.strip_prefix(".nfs").is_some_and(|hex| {
            !hex.is_empty() && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn claim_names_round_trip_and_refuse_pythons_rejects() {
        assert_eq!(
            claim_name(ClaimState::Intent, T),
            format!("intent-v1-{T}.claim")
        );
        assert_eq!(
            parse_claim_name(&format!("held-v1-{T}.claim")),
            Some((ClaimState::Held, T))
        );
        for bad in [
            format!("held-v2-{T}.claim"),
            format!("held-v1-{}.claim", T.to_uppercase()),
            format!("held-v1-{T}-x.claim"),
            format!("lease-v1-{T}.claim"),
            format!("held-v1-{}.claim", &T[1..]),
            format!("held-v1-{T}.clam"),
        ] {
            assert_eq!(parse_claim_name(&bad), None, "{bad}");
        }
    }

    #[test]
    fn private_and_probe_names_are_recognised() {
        let public = format!("intent-v1-{T}.claim");
        let private = private_name(&public);
        assert_eq!(private_public_name(&private), Some(public.as_str()));
        assert!(is_reclaimable(&private));
        assert!(is_reclaimable(&probe_name()));
        assert!(!is_reclaimable(".private-v1-x.tmp"));
        assert!(belongs_in_claims(".nfs000000000001234"));
        assert!(!belongs_in_claims("notes.txt"));
        assert!(!belongs_in_claims(".nfs"));
    }
}

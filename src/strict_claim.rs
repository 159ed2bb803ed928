//! [`StrictClaim`]: one claim of a [`StrictSoftFileLock`](crate::StrictSoftFileLock), as
//! [`claims`](crate::StrictSoftFileLock::claims) lists it.

use std::fmt;

use crate::attempt::soft::strict::{Claim, ClaimState};
use crate::display_text::{MAX_HOST, Untrusted};

/// One published claim of a [`StrictSoftFileLock`](crate::StrictSoftFileLock) (Python's
/// `StrictSoftFileClaim`): who wrote it, and whether it is an intent (competing for the
/// lock) or a held claim (the holder's). A snapshot of what was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrictClaim {
    name: String,
    held: bool,
    token: String,
    pid: u32,
    host: String,
    start: Option<String>,
    owner_exited: bool,
}

impl StrictClaim {
    pub(crate) fn new(claim: Claim) -> Self {
        StrictClaim {
            name: claim.name,
            held: claim.state == ClaimState::Held,
            token: claim.token,
            pid: claim.pid,
            host: claim.host,
            start: claim.start,
            owner_exited: claim.owner_exited,
        }
    }

    /// Its file name in `<lock>.filelock/claims/`: what
    /// [`force_break`](crate::StrictSoftFileLock::force_break) takes.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `true` for a held claim (`held-v1-...`), `false` for an intent (`intent-v1-...`).
    #[must_use]
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// The claim's random token (32 lower-case hex digits), shared by an owner's intent and
    /// held claims.
    #[must_use]
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The writer's process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The writer's host name, as written (another process wrote it: display it with
    /// this type's `Display`, which escapes it).
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The writer's process start token (decimal), when its platform has one.
    #[must_use]
    pub fn start(&self) -> Option<&str> {
        self.start.as_deref()
    }

    /// `true` when this process proved, as it listed the claim, that its writer has
    /// exited: the claim was written on this host, and its PID is gone or now belongs to a
    /// process that started at another time. `false` proves nothing (another host, or
    /// alive). Such a claim is still never removed by an acquire; see
    /// [`force_break`](crate::StrictSoftFileLock::force_break).
    #[must_use]
    pub fn owner_exited(&self) -> bool {
        self.owner_exited
    }
}

impl fmt::Display for StrictClaim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} claim {} by pid {} on {}",
            if self.held { "held" } else { "intent" },
            self.name,
            self.pid,
            Untrusted::new(self.host.as_bytes(), MAX_HOST)
        )?;
        if self.owner_exited {
            f.write_str(" (exited)")?;
        }
        Ok(())
    }
}

//! Fair turns across processes: this crate's waiters on one lock file, in any process,
//! take the lock in about the order they began waiting, so a process that releases and
//! re-acquires at once lets those already waiting go first (and a shared acquire lets an
//! earlier exclusive one go first: writer preference).
//!
//! The line is `sys::queue_file` (Linux: `<lock file>.queue`, open-file-description byte
//! locks). Before an attempt, a waiter asks whether an earlier waiter it must let go first
//! is alive; if so it makes no lock call this time and waits for the next wake-up. That is
//! a hint only: the lock call decides, and processes that are not this crate (Python
//! filelock, `flock(1)`) bypass the line and are excluded exactly as before. To stay live,
//! a waiter defers only within [`GRACE`] of the last release it was woken by (or of its
//! arrival): an earlier waiter that does not take a free lock within that time (stopped,
//! swapped out) is passed by the next timed attempt.

// Elsewhere there is no line yet (no open-file-description locks): the type stays, idle.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::LockMode;

/// How long after a release (or its arrival) a waiter lets earlier waiters take the lock.
/// A woken waiter takes it within a hop (well under a millisecond); this leaves room for a
/// busy machine.
pub(crate) const GRACE: Duration = Duration::from_millis(20);

/// What an acquire does about its turn before an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Attempt.
    Go,
    /// Make no lock call this time: a live earlier waiter goes first.
    Wait,
    /// A shared acquire behind an earlier exclusive waiter whose grace ran out: attempt
    /// only if nobody holds the lock (the earlier waiter did not take a free lock: stuck);
    /// while someone holds it, the exclusive waiter waits for them, and this one with it.
    GoIfFree,
}

/// One acquire's place in the cross-process line.
#[derive(Debug)]
pub(crate) struct Fair {
    path: Arc<Path>,
    mode: LockMode,
    /// The mode a new queue file gets (reduced by the umask).
    create_mode: u32,
    #[cfg(target_os = "linux")]
    ticket: Option<crate::sys::queue_file::Ticket>,
    /// When this waiter arrived or was last woken by a release.
    since: Instant,
    /// No line for this acquire: not asked for, a single attempt, or the queue file cannot
    /// be used (no permission, name too long, no such platform support).
    off: bool,
    /// This acquire is behind another waiter of this process on the file: that one stands
    /// in the line for both (a release wakes only it), so this one holds no ticket.
    behind: bool,
}

impl Fair {
    /// `on`: the handle is fair and the acquire may wait.
    pub(crate) fn new(path: Arc<Path>, mode: LockMode, create_mode: u32, on: bool) -> Fair {
        Fair {
            path,
            mode,
            create_mode,
            #[cfg(target_os = "linux")]
            ticket: None,
            since: Instant::now(),
            off: !on || !cfg!(target_os = "linux"),
            behind: false,
        }
    }

    /// Whether another waiter of this process on the file is ahead of this one (see
    /// `behind`); a waiter that falls behind leaves the line.
    pub(crate) fn set_behind(&mut self, behind: bool) {
        self.behind = behind;
        if behind {
            self.won();
        }
    }

    /// Whether this waiter holds a place in the cross-process line.
    pub(crate) fn in_line(&self) -> bool {
        #[cfg(target_os = "linux")]
        return self.ticket.is_some();
        #[cfg(not(target_os = "linux"))]
        false
    }

    /// A release woke this waiter: earlier waiters get [`GRACE`] from now.
    pub(crate) fn woken(&mut self) {
        self.since = Instant::now();
    }

    /// Before an attempt (where file system calls may run): whether to make the lock call
    /// now ([`Turn`]), letting a live earlier waiter go first. An acquire that has no
    /// ticket yet and finds someone waiting takes one.
    #[cfg(target_os = "linux")]
    pub(crate) fn turn(&mut self, soft: bool) -> Turn {
        use crate::sys::queue_file;
        if self.off || soft {
            return Turn::Go;
        }
        let recent = self.since.elapsed() < GRACE;
        let earlier = match &self.ticket {
            Some(ticket) => ticket.earlier_waiter(self.mode),
            None => match queue_file::anyone_waiting(&self.path, self.mode) {
                Ok(true) if !self.behind => {
                    self.take();
                    Ok(self.ticket.is_some())
                }
                other => other,
            },
        };
        match earlier {
            Ok(true) if recent => Turn::Wait,
            // The grace ran out: the earlier waiter may be stuck, or still waiting for the
            // holders. A shared acquire would join shared holders it can never pass, so it
            // goes only if the lock is free (writer preference needs no clock).
            Ok(true) if self.mode == LockMode::Shared => Turn::GoIfFree,
            _ => Turn::Go,
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn turn(&mut self, _soft: bool) -> Turn {
        Turn::Go
    }

    /// After an attempt found the lock busy: takes a ticket, if this waiter has none.
    pub(crate) fn busy(&mut self, soft: bool) {
        #[cfg(target_os = "linux")]
        if !self.off && !soft && !self.behind && self.ticket.is_none() {
            self.take();
        }
        let _ = soft;
    }

    /// The lock is won: leaves the line at once.
    pub(crate) fn won(&mut self) {
        #[cfg(target_os = "linux")]
        {
            self.ticket = None;
        }
    }

    #[cfg(target_os = "linux")]
    fn take(&mut self) {
        match crate::sys::queue_file::take_ticket(&self.path, self.mode, self.create_mode) {
            Ok(ticket) => self.ticket = Some(ticket),
            // A truncation was under way: the next attempt tries again.
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) => {
                tracing::debug!(
                    target: "tokio_filelock",
                    path = %self.path.display(),
                    %error,
                    "no queue file; waiting without a place in the cross-process line"
                );
                self.off = true;
            }
        }
    }
}

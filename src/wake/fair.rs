//! Fair turns across processes: this crate's waiters on one lock file, in any process,
//! take the lock in about the order they began waiting, so a process that releases and
//! re-acquires at once lets those already waiting go first (and a shared acquire lets an
//! earlier exclusive one go first: writer preference).
//!
//! "Already waiting" means for [`OVERTAKE_FOR`] (5 ms): until the line's earliest waiter
//! has waited that long, an exclusive acquire that is not in the line may take a free lock
//! before it, as with raw `flock` (Go's `sync.Mutex` makes the same trade). Short holds so
//! keep most of raw `flock`'s throughput (a hand-off to a sleeping process is a wake-up,
//! which costs more than such a hold), a waiter is overtaken for 5 ms at most, and holds
//! longer than that hand over in line order every time.
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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::LockMode;
use crate::sync::lock;

/// How long after a release (or its arrival) a waiter lets earlier waiters take the lock.
/// A woken waiter takes it within a hop (well under a millisecond); this leaves room for a
/// busy machine.
pub(crate) const GRACE: Duration = Duration::from_millis(20);

/// How long the earliest waiter in the line must have waited before an acquire that is not
/// in the line yet (a newcomer, or a process re-acquiring what it just released) lets it go
/// first. Before that, the newcomer may take a free lock (a waiter woken by a release needs
/// a wake-up, tens to hundreds of microseconds on a busy machine; the releasing process has
/// the CPU). Waiters in the line always go in line order.
///
/// Chosen from the 8-process counter benchmark (`BENCHMARKS.md`): 1 ms gained nothing
/// there (eight hand-offs take longer than that on a loaded machine, so the earliest
/// waiter is always past it), 5 ms most of what raw `flock` does; and below half the
/// 10 ms hold of the fairness benchmark, whose hand-offs stay in line order.
pub(crate) const OVERTAKE_FOR: Duration = Duration::from_millis(5);

/// Whether a newcomer in `mode` lets the line's earliest waiter (`waiting`) go first: a
/// shared newcomer always does (writer preference: the earliest is an exclusive waiter, and
/// shared holds would keep it out); an exclusive one once that waiter has waited
/// [`OVERTAKE_FOR`], or when its record cannot be read.
#[cfg(target_os = "linux")]
fn goes_first(mode: LockMode, waiting: crate::sys::queue_file::Waiting) -> bool {
    mode == LockMode::Shared || waiting.waited.is_none_or(|waited| waited >= OVERTAKE_FOR)
}

/// The part of a place in the line that the watcher thread asks about ([`Fair::view`]).
#[derive(Debug)]
struct Line {
    mode: LockMode,
    /// The ticket, and when it was taken (when this waiter began waiting in the line), on
    /// Tokio's clock (the system's outside a paused test runtime).
    #[cfg(target_os = "linux")]
    ticket: Mutex<Option<(crate::sys::queue_file::Ticket, tokio::time::Instant)>>,
    /// When this waiter arrived or last saw a release (woken by it, or let sleep on by the
    /// gate).
    since: Mutex<Instant>,
}

impl Line {
    fn saw_release(&self) {
        *lock(&self.since) = Instant::now();
    }
}

/// What a waiter's place in the line says at a close of the lock file (asked on the
/// watcher thread: [`LineView::at_close`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AtClose {
    /// An earlier waiter goes first: no wake-up (the release counts as seen).
    Sleep,
    /// Its turn: its lock call may be made for it (`wake::retry`).
    Retry,
    /// Not in the line (yet): wake it; its attempt asks the line itself, and may let an
    /// earlier waiter go first, so no lock call may be made for it.
    Wake,
}

/// The watcher thread's view of a waiter's place in the line ([`Fair::view`]).
#[derive(Debug, Clone)]
pub(crate) struct LineView(Arc<Line>);

impl LineView {
    /// See [`AtClose`].
    pub(crate) fn at_close(&self) -> AtClose {
        #[cfg(target_os = "linux")]
        {
            let line = &self.0;
            let ticket = lock(&line.ticket);
            let Some((ticket, _)) = ticket.as_ref() else {
                return AtClose::Wake;
            };
            match ticket.earlier_waiter(line.mode) {
                Ok(true) => {
                    line.saw_release();
                    AtClose::Sleep
                }
                Ok(false) => AtClose::Retry,
                Err(_) => AtClose::Wake,
            }
        }
        #[cfg(not(target_os = "linux"))]
        AtClose::Retry
    }
}

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
    /// Shared with the watcher thread ([`Fair::view`]).
    line: Arc<Line>,
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
            line: Arc::new(Line {
                mode,
                #[cfg(target_os = "linux")]
                ticket: Mutex::new(None),
                since: Mutex::new(Instant::now()),
            }),
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
        return lock(&self.line.ticket).is_some();
        #[cfg(not(target_os = "linux"))]
        false
    }

    /// Whether a newcomer of this crate may still take the lock before this waiter (it has
    /// waited in the line less than [`OVERTAKE_FOR`]): a wake-up that finds the lock busy
    /// may have been a release all the same.
    pub(crate) fn may_be_overtaken(&self) -> bool {
        #[cfg(target_os = "linux")]
        return lock(&self.line.ticket)
            .as_ref()
            .is_some_and(|(_, since)| since.elapsed() < OVERTAKE_FOR);
        #[cfg(not(target_os = "linux"))]
        false
    }

    /// A release woke this waiter: earlier waiters get [`GRACE`] from now.
    pub(crate) fn woken(&mut self) {
        self.line.saw_release();
    }

    /// For this waiter's file watch, on the watcher thread: whether a close wakes it
    /// ([`LineView::at_close`]; a waiter behind an earlier one would only find that it is
    /// not its turn). `None` without a line: every attempt of its goes ahead.
    pub(crate) fn view(&self) -> Option<LineView> {
        (!self.off).then(|| LineView(self.line.clone()))
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
        let recent = lock(&self.line.since).elapsed() < GRACE;
        let in_line = lock(&self.line.ticket)
            .as_ref()
            .map(|(ticket, _)| ticket.earlier_waiter(self.mode));
        let earlier = match in_line {
            Some(earlier) => earlier,
            None => match queue_file::earliest_waiter(&self.path, self.mode) {
                Ok(Some(waiting)) if goes_first(self.mode, waiting) => {
                    if self.behind {
                        Ok(true)
                    } else {
                        self.take();
                        Ok(self.in_line())
                    }
                }
                Ok(_) => Ok(false),
                Err(error) => Err(error),
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
        if !self.off && !soft && !self.behind && !self.in_line() {
            self.take();
        }
        let _ = soft;
    }

    /// The lock is won: leaves the line at once.
    pub(crate) fn won(&mut self) {
        #[cfg(target_os = "linux")]
        {
            *lock(&self.line.ticket) = None;
        }
    }

    #[cfg(target_os = "linux")]
    fn take(&mut self) {
        match crate::sys::queue_file::take_ticket(&self.path, self.mode, self.create_mode) {
            Ok(ticket) => *lock(&self.line.ticket) = Some((ticket, tokio::time::Instant::now())),
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::sys::queue_file::Waiting;

    const X: LockMode = LockMode::Exclusive;
    const S: LockMode = LockMode::Shared;

    fn waited(ms: u64) -> Waiting {
        Waiting {
            waited: Some(Duration::from_millis(ms)),
        }
    }

    #[test]
    fn an_exclusive_newcomer_overtakes_only_a_waiter_that_just_came() {
        let young = OVERTAKE_FOR.as_millis() as u64 - 1;
        let old = OVERTAKE_FOR.as_millis() as u64;
        assert!(!goes_first(X, waited(young)));
        assert!(goes_first(X, waited(old)));
        assert!(
            goes_first(X, Waiting { waited: None }),
            "no record: let it go first"
        );
        assert!(goes_first(S, waited(0)), "writer preference needs no clock");
    }

    fn fair(path: &Path) -> Fair {
        Fair::new(Arc::from(path), X, 0o600, true)
    }

    #[test]
    fn a_newcomer_lets_a_waiter_of_5_ms_go_first_and_takes_a_ticket_behind_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.lock");
        let mut waiter = fair(&path);
        waiter.busy(false);
        assert!(waiter.in_line());
        std::thread::sleep(OVERTAKE_FOR);
        let mut newcomer = fair(&path);
        assert_eq!(newcomer.turn(false), Turn::Wait);
        assert!(newcomer.in_line(), "it lines up behind");
        assert_eq!(waiter.turn(false), Turn::Go, "the earliest goes");
        waiter.won();
        assert_eq!(newcomer.turn(false), Turn::Go, "then the next");
    }

    #[test]
    fn at_a_close_a_waiter_behind_an_earlier_one_sleeps_and_counts_the_release_as_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.lock");
        let mut early = fair(&path);
        early.busy(false);
        let mut late = fair(&path);
        late.busy(false);
        let reader = Fair::new(Arc::from(path.as_path()), S, 0o600, true);
        let view = late.view().unwrap();
        let seen = *lock(&late.line.since);
        std::thread::sleep(Duration::from_millis(1));
        assert_eq!(
            view.at_close(),
            AtClose::Sleep,
            "an earlier waiter goes first"
        );
        assert!(*lock(&late.line.since) > seen, "the release counts as seen");
        assert_eq!(early.view().unwrap().at_close(), AtClose::Retry, "its turn");
        assert_eq!(
            reader.view().unwrap().at_close(),
            AtClose::Wake,
            "no ticket yet: its attempt asks the line"
        );
        early.won();
        assert_eq!(view.at_close(), AtClose::Retry, "now the earliest");
        let mut off = Fair::new(Arc::from(path.as_path()), X, 0o600, false);
        off.busy(false);
        assert!(off.view().is_none(), "no line");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_may_be_overtaken_for_5_ms_of_its_wait_then_never() {
        let dir = tempfile::tempdir().unwrap();
        let mut waiter = fair(&dir.path().join("o.lock"));
        assert!(!waiter.may_be_overtaken(), "not in the line");
        waiter.busy(false);
        assert!(waiter.may_be_overtaken());
        tokio::time::advance(OVERTAKE_FOR).await;
        assert!(!waiter.may_be_overtaken());
        waiter.won();
        assert!(!waiter.may_be_overtaken());
    }
}

//! Wake-ups layered on the poll loop of the async driver.
//!
//! Polling alone hands a released lock over one sleep late (about 1 ms at best, since a
//! Tokio sleep is no shorter). Wake-ups make a waiter retry as soon as the lock may be free:
//!
//! - **In this process** ([`queue`]): waiters on one lock file (keyed by its identity, so
//!   two handles or paths of one file share a queue) line up in arrival order. A release
//!   wakes the head at once; only the head is woken, so one waiter at a time retries the
//!   OS. Waiters behind the head skip a timed attempt when another waiter of this process
//!   attempted in the same mode meanwhile (its answer would be theirs), so a thousand
//!   waiters on one file make about as many attempts as one.
//! - **Across processes, on Linux** (`sys::Watch`): the head watches the lock file with
//!   inotify through the Tokio reactor. The watch is armed before the attempt that follows
//!   (in the same blocking-pool job), so a release between a failed attempt and the wait is
//!   seen; events that come during an attempt are reported when the waiter next waits.
//!   A release closes the holder's descriptor, which inotify reports; waiters keep theirs
//!   open between attempts (`sys::KEEP_OPEN_WHILE_WAITING`), so they do not wake each other.
//!
//! A wake-up is only a hint to attempt now: the attempt (the OS) decides, so wake-ups can
//! never break exclusion. The poll loop stays underneath as the fallback and the
//! correctness path: holders that unlock without closing, file systems without inotify
//! events (NFS), other platforms, and waiters whose watch could not be created (the
//! per-user inotify limit) are all caught by the backoff timer.
//!
//! The timer under the poll loop is the crate's own thread ([`timer`]), so a contended
//! async acquire needs no time driver in the runtime; under Tokio's paused time it is
//! Tokio's.
//!
//! The sync facade (`blocking_*`) stays poll-only: a thread that sleeps cannot also wait for
//! a reactor event without parking on something else, and it needs no runtime.

mod queue;
mod timer;
mod waiter;

pub(crate) use queue::released;
pub(crate) use timer::sleep;
pub(crate) use waiter::{Waiter, Woke, arm};

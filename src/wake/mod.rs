//! The wake-up engine: one for every waiter, async (any runtime flavour) and sync alike.
//!
//! Polling alone hands a released lock over one sleep late. Wake-ups make a waiter retry as
//! soon as the lock may be free:
//!
//! - **In this process** ([`queue`]): waiters on one lock file (keyed by its identity, so
//!   two handles or paths of one file share a queue) line up in arrival order. A release
//!   wakes the head at once; only the head is woken, so one waiter at a time retries the
//!   OS. Waiters behind the head skip a timed attempt when another waiter of this process
//!   attempted in the same mode meanwhile (its answer would be theirs), so a thousand
//!   waiters on one file make about as many attempts as one.
//! - **Across processes** ([`watcher`]): one thread of the crate's own per process owns
//!   the platform's change notification (inotify on Linux, kqueue on macOS and FreeBSD;
//!   nothing elsewhere) and the timers of the async waits. The head of a queue subscribes
//!   to the watch of its lock file before the attempt that follows (in the same job), so a
//!   release between a failed attempt and the wait is seen. A release unlocks and closes
//!   the holder's descriptor: inotify and FreeBSD's kqueue report the close, macOS's kqueue
//!   the unlock. Waiters keep theirs open between attempts
//!   (`sys::KEEP_OPEN_WHILE_WAITING`), so they do not wake each other.
//!
//! - **Fair turns across processes** ([`fair`]): waiters of this crate in every process
//!   line up in `<lock file>.queue` (Linux), and let an earlier waiter go first.
//! - **Retries on the watcher thread** ([`retry`]): at an event, the watcher thread asks
//!   an async waiter's place in the line whether it is its turn and makes its lock call on
//!   a duplicate of its descriptor; the task is woken only when that call won the lock.
//!
//! A wake-up is only a hint to attempt now: the attempt (the OS) decides, so wake-ups can
//! never break exclusion. The timed schedule stays underneath as the fallback and the
//! correctness path: holders that unlock without closing (except on macOS), file systems
//! without change events (NFS), other platforms, and waiters whose watch could not be
//! created (the per-user inotify limit) are all caught by the backoff timer.
//!
//! An async waiter is woken through its task's waker; a sync one (`blocking_*`) parks its
//! thread, and the same wake-ups unpark it. No Tokio reactor is needed, and the crate
//! touches no process-wide state of its user's (no panic hook, no signal handler).

pub(crate) mod cancel;
mod fair;
mod own_watch;
mod queue;
mod retry;
mod unpark;
mod waiter;
pub(crate) mod watcher;

pub(crate) use cancel::Cancel;
pub(crate) use fair::{Fair, Turn};
pub(crate) use queue::released;
pub(crate) use waiter::{Waiter, Woke, arm};
pub(crate) use watcher::sleep;

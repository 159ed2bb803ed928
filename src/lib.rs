//! An async-first, cross-process file lock for Tokio, with a sync facade.
//!
//! Processes, threads and tasks that share a resource (a cache directory, a config file, a
//! job that must run once) take a [`FileLock`] on a lock file next to it:
//!
//! ```
//! use std::time::Duration;
//! use tokio_filelock::FileLock;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tokio_filelock::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! let lock = FileLock::builder(dir.path().join("high_ground.txt.lock"))
//!     .timeout(Duration::from_secs(10))
//!     .build();
//! let guard = lock.acquire().await?;
//! // ... only one process, thread or task at a time gets here ...
//! drop(guard);
//! # Ok(())
//! # }
//! ```
//!
//! # How it works
//!
//! One non-blocking **attempt** (open the lock file, then one non-blocking whole-file lock
//! call, `flock(LOCK_NB)` or `LockFileEx(FAIL_IMMEDIATELY)`) is the only thing that touches
//! the operating system. The async driver runs an attempt that may wait (creating the lock
//! file, a network or unknown file system, the soft protocols) on Tokio's blocking pool,
//! and one that cannot (on a file system known to be local: the open of an existing file
//! and `flock(LOCK_NB)`) inline on the worker, and it sleeps between attempts (on the crate's watcher thread, so a runtime without the
//! time driver works too; on Tokio's timer under paused time), with a backoff from 1 ms up
//! to the poll interval (default 50 ms), the last sleep clamped to the deadline. No thread is ever
//! parked in a blocking `flock`, so a timeout, `select!`, `abort` or runtime shutdown
//! cancels a wait at once and cleanly. The sync facade (`blocking_*`) runs the same
//! attempts and schedule on the calling thread, with no runtime.
//!
//! # Wake-ups
//!
//! A waiter (async or sync) does not wait for its next poll when the lock is released: a
//! release in the same process wakes that process's first waiter on the file at once
//! (waiters line up in arrival order, and one at a time retries), and the first waiter's
//! lock file is watched by the crate's watcher thread (one per process,
//! `tokio-filelock-watcher`, idle when nobody waits; inotify on Linux, kqueue on macOS and
//! FreeBSD), so a release in another process (which unlocks and closes its descriptor)
//! wakes it too, on any runtime flavour. Waiters keep their descriptor open between
//! attempts, so they do not wake each other; for an async waiter the watcher thread makes
//! the lock call on a duplicate of it and wakes the task only when it won the lock. A wake-up is only a reason to attempt now: the
//! lock call decides, so exclusion never depends on it, and the schedule stays underneath
//! for holders that unlock without closing (macOS reports those too), file systems without
//! change events (NFS) and other platforms (Windows). `BENCHMARKS.md` has the numbers.
//!
//! # Timeouts
//!
//! | setting | behaviour |
//! |---|---|
//! | no timeout (default) | waits until the lock is won |
//! | `timeout(Duration::ZERO)` | exactly one attempt |
//! | `timeout(d)` | attempts until `d` has passed, one final attempt at the deadline; returns late by one attempt plus the timer's lateness (async: Tokio's 1 ms resolution, so typically about 1 ms, more on a busy machine) |
//! | `blocking(false)` | exactly one attempt, whatever the timeout |
//!
//! # Errors: what is retried and what is returned at once
//!
//! | situation | result |
//! |---|---|
//! | lock held by another process, thread or task | retried until the timeout: [`Error::Timeout`] |
//! | this owner holds it through another handle, no timeout | [`Error::WouldDeadlock`], at once |
//! | this owner holds it shared and asks for exclusive | [`Error::UpgradeNotSupported`], at once |
//! | empty path, NUL byte in the path | [`Error::InvalidPath`], at once |
//! | symlink, directory, FIFO, socket or device at the path | [`Error::NotAFile`], at once (a symlink is never followed, its target never touched); a [`SoftFileLock`] treats all but a directory as a malformed marker, replaced once seen unchanged for 2 s, as Python `filelock` does |
//! | an existing lock file that cannot be opened for writing (no write permission, read-only file system) | opened read-only and locked: a lock needs no write access |
//! | no permission to create the file, name too long, parent is a file | [`Error::Io`] with the OS error's kind, at once |
//! | missing parent directories | created, then the attempt goes on |
//! | lock file deleted while being locked | opened again and retried |
//!
//! Every error names the lock path, and converts into [`std::io::Error`]. Text that other
//! processes wrote (a holder's host or command line) is shown escaped; see [`Holder`].
//!
//! # The sync facade
//!
//! The `blocking_*` methods block the calling thread while they wait, so they belong
//! outside the runtime or in `tokio::task::spawn_blocking`. In debug builds one that has to
//! wait on a thread that drives a Tokio runtime panics, as tokio's `blocking_lock` does.
//!
//! # Logging
//!
//! [`tracing`] events at DEBUG level with target `tokio_filelock` mark each attempt,
//! acquisition, start of waiting, timeout, re-entry and release. Each acquire runs in a
//! DEBUG span `acquire` with fields `lock` (an id per handle), `path` and `mode`, entered
//! around every step, on the blocking pool too, so every event inside an acquire (the
//! holder lookup's and the soft protocol's included) carries the lock id; a release, which
//! happens outside any acquire, has `lock` and `path` fields of its own. A failed release on
//! drop is logged at WARN.
//!
//! # Layers
//!
//! Inside, calls point down only (checked in CI by `scripts/check-layers.sh`):
//!
//! ```text
//! public types   FileLock  SoftFileLock  FileLockBuilder  LockGuard  Lock/open    (src/*.rs)
//!                   |  uses
//! driver/        Acquisition (decides), asynchronous, synchronous, schedule,
//!                   |        holder_lookup (builds Holder), config
//!                   |  wires: passes wake::released into each Attempt
//! state/ wake/   State, Key, owner, deadlock, singletons  |  queue, waiter, watcher
//!                   |
//! attempt/       Attempt, Outcome, Held (os lock, soft/: marker, claim, take_over, stale,
//!                   |        identity): turns OS answers into Error (path + Op)
//! sys/           the leaf: every OS call (try_lock/unlock, open, fstat, procfs, watch);
//!                io::Result and its own small enums; knows only LockMode and NodeKind
//! vocabulary     Error/Op/NodeKind, Holder/WaitEvent, LockMode, Reentrancy, sync (no layer)
//! ```
//!
//! # Lock files
//!
//! The lock file is created (with its parent directories) if missing, opened without
//! following a symlink and without blocking on a FIFO, and never truncated: it may be
//! shared with other programs. It is never deleted on Unix, because deleting a lock file
//! lets two holders exist at once; on Windows it is deleted on release, best effort, unless
//! [`FileLockBuilder::preserve_lock_file`] is set.
//!
//! On Linux, on a file system known to be local, a handle keeps its lock file open
//! between holds, unlocked (one descriptor per handle, 64 per process at most, closed with
//! the handle: its file system cannot be unmounted meanwhile), so that the next acquire
//! through it is one lock call: a release closes it
//! instead when a waiter of this crate in another process marked the file (an
//! open-file-description byte-range lock, which never conflicts with `flock` there), since
//! the close is what wakes that waiter. A hold whose descriptor was handed out
//! ([`LockGuard::raw_fd`]) is never kept, and a forked child never uses its parent's.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod acquire_family;
mod acquired;
mod attempt;
mod builder;
mod cancel_token;
mod display_text;
mod driver;
mod error;
mod file_lock;
mod guard;
mod holder;
mod lock_trait;
mod lost;
mod mode;
mod open;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
mod reentrancy;
mod soft_file_lease;
mod soft_file_lock;
mod soft_read_write_lock;
mod spec;
mod state;
mod strict_claim;
mod strict_soft_file_lock;
mod sync;
#[allow(unsafe_code)] // the one module that may: every block has a SAFETY comment
mod sys;
mod wake;

pub use acquired::Acquired;
pub use builder::FileLockBuilder;
pub use cancel_token::CancelToken;
pub use error::{Error, HookError, NodeKind, Op, ServerError};
pub use file_lock::FileLock;
pub use guard::LockGuard;
pub use holder::{Holder, HolderSession, WaitEvent};
pub use lock_trait::Lock;
pub use lost::{CompromiseReason, Lost};
pub use mode::LockMode;
pub use open::open;
pub use reentrancy::Reentrancy;
pub use soft_file_lease::{SoftFileLease, SoftFileLeaseBuilder};
pub use soft_file_lock::{SoftFileLock, SoftFileLockBuilder};
pub use soft_read_write_lock::{SoftReadWriteLock, SoftReadWriteLockBuilder};
pub use strict_claim::StrictClaim;
pub use strict_soft_file_lock::{StrictSoftFileLock, StrictSoftFileLockBuilder};

/// The README's code blocks compile (`cargo test` runs them as doc tests).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

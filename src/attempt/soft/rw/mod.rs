//! The read-write soft protocol of Python filelock 4.3.1's `SoftReadWriteLock`, byte for
//! byte, for shared and network file systems: a generation log of immutable snapshots
//! (`<lock>.rw/gen/`), published by no-replace hard links, and one heartbeat-refreshed
//! record per participant (`<lock>.rw/holders/`). The lock path itself is never touched.
//!
//! - [`snapshot`]: one generation (`filelock-rw/1`, `generation=`, `writer=`, `reader=`).
//! - [`record`]: a participant's holder record and tokens.
//! - [`files`]: the protocol's files, OS errors turned into `Error`s.
//! - [`log`]: finding the newest snapshot, committing its successor, compaction.
//! - [`sweep`]: staleness on the observer's own clock; removing abandoned files.
//! - [`participant`]: joining, being granted, evicting, refreshing, withdrawing.
//! - [`named`]: who holds it, as the log and the records say.
//!
//! `../../../../shared/reviews/soft-rw-protocol.md` (outside the crate) summarises it.

pub(crate) mod files;
mod log;
mod named;
pub(crate) mod participant;
mod record;
mod snapshot;
mod sweep;

pub(crate) use files::Files;
pub(crate) use named::holder;
pub(crate) use participant::{Beat, Participant};

/// Digits of a generation file's name (zero-padded).
const GENERATION_DIGITS: usize = 20;
/// Generations kept in the log.
const RETAINED: usize = 64;
/// Records longer than this are not read (a 1 MiB cap).
const MAX_RECORD_SIZE: usize = 1 << 20;
/// A directory listing longer than this is a protocol error.
const MAX_LISTED_NAMES: usize = 1 << 16;
/// Names removed per housekeeping pass.
const HOUSEKEEPING_BATCH: usize = 1 << 8;
/// Temporary files in `gen/`: `.commit-<token>`.
const TEMPORARY_PREFIX: &str = ".commit-";
/// The log's directory under the root.
const GENERATIONS: &str = "gen";
/// The records' directory under the root.
const HOLDERS: &str = "holders";

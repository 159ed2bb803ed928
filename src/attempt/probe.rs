//! What a contended attempt leaves for finding its holder, and what the lookup found. The
//! lookup itself is the driver's (`driver::holder_lookup`): it reads files.

use std::path::Path;
use std::sync::Arc;

use crate::sys::FileId;
use crate::{Holder, LockMode};

/// What a contended attempt leaves for finding its holder: one variant per protocol. The
/// lookup reads files, so it runs where attempts run (the blocking pool, or the calling
/// thread of the sync facade), never on a runtime worker.
///
/// A protocol plugs in with a variant here and a blocking function that answers it.
#[derive(Debug, Clone)]
pub(crate) enum Probe {
    /// The OS lock on the file with this identity, which an attempt in `wanted` mode found
    /// held.
    Os { id: FileId, wanted: LockMode },
    /// The soft lock's marker at this path.
    Soft { marker: Arc<Path> },
    /// The claims of the strict lock at this path.
    Strict { lock: Arc<Path> },
}

/// What a holder lookup found: the holder, if it can be named, and what else a timeout
/// should say.
#[derive(Debug, Clone, Default)]
pub(crate) struct Found {
    pub(crate) holder: Option<Holder>,
    /// The soft lock's marker was empty (never broken; see `Error::Timeout`).
    pub(crate) empty_marker: bool,
}

impl Probe {
    /// `true` when finding the holder costs about what an attempt costs (reading a soft
    /// marker), so that even a single attempt may name it. The OS lock's lookup reads
    /// `/proc/locks`, which can wait for an RCU grace period (milliseconds).
    pub(crate) fn is_cheap(&self) -> bool {
        matches!(self, Probe::Soft { .. } | Probe::Strict { .. })
    }
}

//! What the soft protocol knows of a marker's node, on every platform: its kind, identity
//! and times. Filled by `unix_soft` (`lstat`/`fstat`) or `windows_soft` (file handles).

/// A marker's node, as far as the soft protocol needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Node {
    /// `true` for a regular file.
    pub(crate) regular: bool,
    /// `true` for a directory (never a marker: a permanent error).
    pub(crate) directory: bool,
    /// Device (Unix) or volume serial number (Windows).
    pub(crate) dev: u64,
    /// Inode number (Unix) or file index (Windows).
    pub(crate) ino: u64,
    /// Modification time, nanoseconds since the platform's epoch.
    pub(crate) mtime_ns: i128,
    /// Status change time, nanoseconds since the platform's epoch.
    pub(crate) ctime_ns: i128,
}

impl Node {
    /// Same file (device and inode, or volume and index).
    pub(crate) fn same_file(&self, other: &Node) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }

    /// Same file, unmodified: what a breaker checks before and after moving a marker.
    /// (ctime is left out: a rename changes it.)
    pub(crate) fn same_version(&self, other: &Node) -> bool {
        self.same_file(other) && self.mtime_ns == other.mtime_ns
    }

    /// How long ago the node was last modified, by the wall clock (Python filelock's
    /// `time.time() - st_mtime`); zero for a modification time in the future.
    pub(crate) fn modified_ago(&self) -> std::time::Duration {
        /// Nanoseconds from the platform's epoch to the Unix epoch (1601 to 1970 on Windows).
        const EPOCH_TO_UNIX_NS: i128 = if cfg!(windows) {
            11_644_473_600 * 1_000_000_000
        } else {
            0
        };
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let ago = now_ns - (self.mtime_ns - EPOCH_TO_UNIX_NS);
        std::time::Duration::from_nanos(u64::try_from(ago.max(0)).unwrap_or(u64::MAX))
    }
}

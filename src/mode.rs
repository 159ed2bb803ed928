//! Exclusive or shared.

/// The kind of lock held or asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockMode {
    /// One holder at a time, excluding shared holders too (a write lock).
    Exclusive,
    /// Any number of shared holders at once; excludes exclusive holders (a read lock).
    Shared,
}

//! The watch table: one-shot data and child watches, persistent and persistent-recursive
//! watches, keyed by connection.

/// Counts for `wchs` and `mntr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WatchStats {
    /// Connections holding at least one watch.
    pub connections: usize,
    /// Distinct watched paths.
    pub paths: usize,
    /// Total (connection, path, kind) registrations.
    pub total: usize,
}

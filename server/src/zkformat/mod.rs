//! Apache ZooKeeper's on-disk files (3.5-3.9), read and written offline: `version-2/snapshot.*`
//! (`FileSnap`, `SnapStream`), `version-2/log.*` (`FileTxnLog`) and the epoch files, plus the
//! replay of logged txns onto a snapshot exactly as ZooKeeper's `FileTxnSnapLog.restore` does
//! (its snapshots are fuzzy: a txn may already be reflected in the snapshot it replays onto).
//!
//! - `snap` / `log` (in `ferrokeeper_proto::zkfile`): snapshot and log bytes ⇄ records.
//! - `replay.rs`: `DataTree.processTxn` semantics on a [`ZkState`].
//! - `import.rs`: `ferrokeeper import-zookeeper` (ZooKeeper dataDir → ferrokeeper dataDir).
//!
//! Nothing here panics on corrupt input: every read is bounds-checked and a bad file is
//! reported with its path and the byte offset where it stopped making sense.

pub mod export;
pub mod import;
pub mod replay;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;

// The pure byte formats live in the proto crate (fkload reads them too).
pub use ferrokeeper_proto::zkfile::{
    CONTAINER_OWNER, EXTENDED_MASK, PERMS_ALL, ZkNode, ZkState, adler32, child_path, log, open_acl_unsafe,
    snap, split_path, zxid_from_name,
};

/// A file that cannot be read as what its name says, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    pub file: PathBuf,
    /// Byte offset in the file (for a compressed snapshot: in its decompressed stream).
    pub offset: u64,
    pub reason: String,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: at offset {}: {}", self.file.display(), self.offset, self.reason)
    }
}

impl std::error::Error for FormatError {}

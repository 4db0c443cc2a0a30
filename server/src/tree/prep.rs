//! The pending-change overlay of prep: ZooKeeper's `outstandingChanges` / `ChangeRecord`.
//!
//! Prep validates a write against the tree as it will be once every prepped txn is applied,
//! so each prepped write leaves a record of what it changed here. Apply drops the records of
//! txns it has applied.

use std::collections::BTreeMap;

use bytes::Bytes;
use ferrokeeper_proto::{Acl, StatPersisted};

use super::SessionId;

/// A node as prep sees it: stored stat, child count, ACL and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PNode {
    pub(crate) stat: StatPersisted,
    pub(crate) child_count: i32,
    pub(crate) acl: Vec<Acl>,
    pub(crate) data: Option<Bytes>,
}

/// The latest pending change of one path: `node` is `None` for a pending delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) zxid: i64,
    pub(crate) node: Option<PNode>,
}

/// Pending changes keyed by path, plus pending session creations and closes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Overlay {
    pub(crate) changes: BTreeMap<String, Change>,
    /// Session → (zxid of the pending txn, whether the session is live after it).
    pub(crate) sessions: BTreeMap<SessionId, (i64, bool)>,
}

impl Overlay {
    pub(crate) fn put(&mut self, path: &str, zxid: i64, node: Option<PNode>) {
        self.changes.insert(path.to_owned(), Change { zxid, node });
    }

    /// Forgets every change made by txns up to `zxid` (they are now in the tree).
    pub(crate) fn applied(&mut self, zxid: i64) {
        self.changes.retain(|_, c| c.zxid > zxid);
        self.sessions.retain(|_, (z, _)| *z > zxid);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.sessions.is_empty()
    }
}

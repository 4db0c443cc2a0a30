//! The pending-change overlay of prep: ZooKeeper's `outstandingChanges` / `ChangeRecord`.
//!
//! Prep validates a write against the tree as it will be once every prepped txn is applied,
//! so each prepped write leaves a record of what it changed here. Apply drops the records of
//! txns it has applied.

use std::collections::{BTreeMap, VecDeque};

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
    /// Every record put, in zxid order: applying a txn drops only its own records (no walk
    /// of the whole overlay per applied txn, which grows with the writes in flight).
    order: VecDeque<(i64, Key)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Path(String),
    Session(SessionId),
}

impl Overlay {
    pub(crate) fn put(&mut self, path: &str, zxid: i64, node: Option<PNode>) {
        self.changes.insert(path.to_owned(), Change { zxid, node });
        self.order.push_back((zxid, Key::Path(path.to_owned())));
    }

    /// A pending session creation (`live`) or close.
    pub(crate) fn put_session(&mut self, session: SessionId, zxid: i64, live: bool) {
        self.sessions.insert(session, (zxid, live));
        self.order.push_back((zxid, Key::Session(session)));
    }

    /// Forgets every change made by txns up to `zxid` (they are now in the tree).
    pub(crate) fn applied(&mut self, zxid: i64) {
        while self.order.front().is_some_and(|(z, _)| *z <= zxid) {
            let Some((_, key)) = self.order.pop_front() else { break };
            // A later pending change of the same path or session stays.
            match key {
                Key::Path(path) => {
                    if self.changes.get(&path).is_some_and(|c| c.zxid <= zxid) {
                        self.changes.remove(&path);
                    }
                }
                Key::Session(session) => {
                    if self.sessions.get(&session).is_some_and(|(z, _)| *z <= zxid) {
                        self.sessions.remove(&session);
                    }
                }
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.sessions.is_empty()
    }
}

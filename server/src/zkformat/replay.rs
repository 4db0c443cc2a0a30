//! Replaying logged txns onto a ZooKeeper snapshot as ZooKeeper does on start-up
//! (`FileTxnSnapLog.processTransaction`, `DataTree.processTxn`, `createNode`, `deleteNode`,
//! `setData`, `setACL`, `killSession`, `setCversionPzxid`), including what makes a replay onto
//! a fuzzy snapshot converge:
//!
//! - a failing txn (NoNode, NodeExists) changes nothing else and replay goes on;
//! - a create (opcode 1, also inside a multi) that finds its node sets the existing node's ACL
//!   and then the parent's cversion/pzxid from the txn's parentCVersion when that is higher;
//! - a delete moves the parent's pzxid up even when the node is already gone, and never
//!   touches the parent's cversion;
//! - a multi with an error sub-txn applies nothing;
//! - closeSession removes the session and deletes the paths in the txn, then any other
//!   ephemeral of that session.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use ferrokeeper_proto::Acl;
use ferrokeeper_proto::op;
use ferrokeeper_proto::txn::{Txn, TxnHeader};

use super::{CONTAINER_OWNER, EXTENDED_MASK, ZkNode, ZkState, split_path};

/// Why a txn did not apply; replay ignores it, as ZooKeeper does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    NoNode,
    NodeExists,
    /// A path ZooKeeper itself could not split (no '/').
    BadPath,
}

/// Whether `owner` makes a node an ephemeral of a session (not a container or a TTL node).
pub fn is_session_owner(owner: i64) -> bool {
    owner != 0 && owner != CONTAINER_OWNER && owner & EXTENDED_MASK != EXTENDED_MASK
}

/// `EphemeralType.TTL.toEphemeralOwner`.
pub fn ttl_owner(ttl: i64) -> i64 {
    EXTENDED_MASK | (ttl & !EXTENDED_MASK)
}

/// A [`ZkState`] being replayed onto, with its session → ephemeral paths index.
pub struct Replay {
    pub state: ZkState,
    ephemerals: BTreeMap<i64, BTreeSet<String>>,
    /// Txns replayed, and those of them that failed (ignored).
    pub applied: u64,
    pub failed: u64,
}

impl Replay {
    pub fn new(state: ZkState) -> Replay {
        let mut ephemerals: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
        for (path, node) in &state.nodes {
            if is_session_owner(node.stat.ephemeral_owner) {
                ephemerals.entry(node.stat.ephemeral_owner).or_default().insert(path.clone());
            }
        }
        Replay { state, ephemerals, applied: 0, failed: 0 }
    }

    /// `FileTxnSnapLog.processTransaction` for one logged txn.
    pub fn apply(&mut self, header: &TxnHeader, txn: &Txn) {
        match txn {
            Txn::CreateSession(t) => {
                self.state.sessions.insert(header.client_id, t.time_out);
            }
            Txn::CloseSession(_) => {
                self.state.sessions.remove(&header.client_id);
            }
            _ => {}
        }
        self.applied += 1;
        if self.process(header, txn).is_err() {
            self.failed += 1;
        }
        self.state.zxid = self.state.zxid.max(header.zxid);
    }

    /// `ZooKeeperServer.loadData`: ephemerals of sessions no longer in the session table are
    /// deleted (at the last zxid, with no txn).
    pub fn kill_dead_sessions(&mut self) {
        let dead: Vec<i64> =
            self.ephemerals.keys().filter(|s| !self.state.sessions.contains_key(s)).copied().collect();
        let zxid = self.state.zxid;
        for session in dead {
            self.kill_session(session, zxid, None);
        }
    }

    /// `DataTree.processTxn` (with `isSubTxn` for a multi's parts).
    fn process(&mut self, header: &TxnHeader, txn: &Txn) -> Result<(), Failed> {
        let (zxid, time) = (header.zxid, header.time);
        let result = match txn {
            Txn::Create { txn: t, .. } => {
                let owner = if t.ephemeral { header.client_id } else { 0 };
                self.create(&t.path, &t.data, &t.acl, owner, t.parent_c_version, zxid, time)
            }
            Txn::CreateTtl(t) => {
                self.create(&t.path, &t.data, &t.acl, ttl_owner(t.ttl), t.parent_c_version, zxid, time)
            }
            Txn::CreateContainer(t) => {
                self.create(&t.path, &t.data, &t.acl, CONTAINER_OWNER, t.parent_c_version, zxid, time)
            }
            Txn::Delete { txn: t, .. } => self.delete(&t.path, zxid),
            Txn::SetData(t) => self.node_mut(&t.path).map(|node| {
                node.data = t.data.clone();
                node.stat.mtime = time;
                node.stat.mzxid = zxid;
                node.stat.version = t.version;
            }),
            Txn::SetAcl(t) => self.node_mut(&t.path).map(|node| {
                node.stat.aversion = t.version;
                node.acl = t.acl.clone();
            }),
            Txn::CloseSession(t) => {
                self.kill_session(header.client_id, zxid, Some(&t.paths_to_delete));
                Ok(())
            }
            Txn::Multi(parts) => {
                if parts.iter().any(|part| matches!(part, Txn::Error(_))) {
                    return Ok(());
                }
                for part in parts {
                    let sub = TxnHeader { txn_type: part.txn_type(), ..header.clone() };
                    // Each part's failure is the multi's; the others still apply.
                    let _ = self.process(&sub, part);
                }
                Ok(())
            }
            Txn::CreateSession(_) | Txn::Check(_) | Txn::Error(_) => Ok(()),
        };
        if result == Err(Failed::NodeExists)
            && header.txn_type == op::CREATE
            && let Txn::Create { txn: t, .. } = txn
            && let Some((parent, _)) = split_path(&t.path)
        {
            self.set_cversion_pzxid(parent, t.parent_c_version, zxid);
        }
        result
    }

    fn node_mut(&mut self, path: &str) -> Result<&mut ZkNode, Failed> {
        self.state.nodes.get_mut(path).ok_or(Failed::NoNode)
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        path: &str,
        data: &Option<Bytes>,
        acl: &[Acl],
        owner: i64,
        parent_cversion: i32,
        zxid: i64,
        time: i64,
    ) -> Result<(), Failed> {
        let (parent, name) = split_path(path).ok_or(Failed::BadPath)?;
        if !self.state.nodes.contains_key(parent) {
            return Err(Failed::NoNode);
        }
        if let Some(existing) = self.state.nodes.get_mut(path) {
            existing.acl = acl.to_vec();
            return Err(Failed::NodeExists);
        }
        let parent_node = self.state.nodes.get_mut(parent).ok_or(Failed::NoNode)?;
        let cversion = if parent_cversion == -1 { parent_node.stat.cversion + 1 } else { parent_cversion };
        if cversion > parent_node.stat.cversion {
            parent_node.stat.cversion = cversion;
            parent_node.stat.pzxid = zxid;
        }
        parent_node.children.insert(name.to_owned());
        let stat = crate::tree::new_stat(zxid, time, owner);
        let node = ZkNode { data: data.clone(), acl: acl.to_vec(), stat, children: BTreeSet::new() };
        self.state.nodes.insert(path.to_owned(), node);
        if is_session_owner(owner) {
            self.ephemerals.entry(owner).or_default().insert(path.to_owned());
        }
        Ok(())
    }

    fn delete(&mut self, path: &str, zxid: i64) -> Result<(), Failed> {
        let (parent, name) = split_path(path).ok_or(Failed::BadPath)?;
        let parent_node = self.state.nodes.get_mut(parent).ok_or(Failed::NoNode)?;
        parent_node.children.remove(name);
        if zxid > parent_node.stat.pzxid {
            parent_node.stat.pzxid = zxid;
        }
        let node = self.state.nodes.remove(path).ok_or(Failed::NoNode)?;
        let owner = node.stat.ephemeral_owner;
        if is_session_owner(owner)
            && let Some(paths) = self.ephemerals.get_mut(&owner)
        {
            paths.remove(path);
        }
        Ok(())
    }

    /// `DataTree.killSession`: the txn's paths first, then the session's other ephemerals.
    fn kill_session(&mut self, session: i64, zxid: i64, in_txn: Option<&[String]>) {
        let local = self.ephemerals.remove(&session).unwrap_or_default();
        let mut rest = local;
        if let Some(paths) = in_txn {
            for path in paths {
                let _ = self.delete(path, zxid);
                rest.remove(path);
            }
        }
        for path in rest {
            let _ = self.delete(&path, zxid);
        }
    }

    fn set_cversion_pzxid(&mut self, path: &str, cversion: i32, zxid: i64) {
        let path = if path.len() > 1 { path.strip_suffix('/').unwrap_or(path) } else { path };
        let Some(node) = self.state.nodes.get_mut(path) else { return };
        let cversion = if cversion == -1 { node.stat.cversion + 1 } else { cversion };
        if cversion > node.stat.cversion {
            node.stat.cversion = cversion;
            node.stat.pzxid = zxid;
        }
    }
}

//! `DataTree`: znodes, stats, ACL checks, ephemerals, session table, watches, prep and apply.

use std::collections::BTreeMap;

use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::response::Response;
use ferrokeeper_proto::{Code, SetWatches2, WatcherEvent};

use super::watch::WatchStats;
use super::{ApplyOutcome, Caller, ConnId, SessionId, TreeConfig, Txn, TxnHeader};

pub struct DataTree {
    config: TreeConfig,
    last_processed_zxid: i64,
    sessions: BTreeMap<SessionId, i32>,
}

impl DataTree {
    /// A tree holding `/`, `/zookeeper`, `/zookeeper/quota` and `/zookeeper/config` as a fresh
    /// ZooKeeper 3.9 has them (stats all zero, system nodes READ_ACL_UNSAFE... see reference).
    pub fn new(config: TreeConfig) -> DataTree {
        let _ = &config;
        todo!()
    }

    /// The zxid of the last applied txn.
    pub fn last_processed_zxid(&self) -> i64 {
        self.last_processed_zxid
    }

    /// Validates a write request (create*, delete, setData, setACL, multi, deleteContainer,
    /// closeSession) and returns the txn to log under `zxid`. Checks run against the tree as it
    /// will be after every txn prepped so far is applied. Failures become `Txn::Error` (or, for
    /// multi, `Txn::Multi` of error sub-txns per reference §1.7).
    pub fn prep(&mut self, caller: &Caller, request: &Request, zxid: i64, time_ms: i64) -> Txn {
        let _ = (caller, request, zxid, time_ms);
        todo!()
    }

    /// Applies one txn (zxids strictly increasing). Never fails for a txn prep produced;
    /// error txns only advance the zxid and produce the error reply.
    pub fn apply(&mut self, header: &TxnHeader, txn: &Txn) -> ApplyOutcome {
        let _ = (header, txn);
        todo!()
    }

    /// Serves a read-side request: exists, getData, getACL, getChildren, getChildren2,
    /// getAllChildrenNumber, getEphemerals, multiRead, addWatch, checkWatches, removeWatches.
    /// Registers watches for `caller.conn` where the request asks for one.
    pub fn read(&mut self, caller: &Caller, request: &Request) -> Result<Response, Code> {
        let _ = (caller, request);
        todo!()
    }

    /// Re-registers watches after a reconnect (setWatches / setWatches2) and returns the
    /// events that fire at once because the node changed after `relative_zxid`.
    pub fn set_watches(&mut self, conn: ConnId, watches: &SetWatches2) -> Vec<WatcherEvent> {
        let _ = (conn, watches);
        todo!()
    }

    /// Drops every watch a closed connection held.
    pub fn remove_connection(&mut self, conn: ConnId) {
        let _ = conn;
        todo!()
    }

    /// Live sessions and their negotiated timeouts (created/closed only by txns).
    pub fn sessions(&self) -> &BTreeMap<SessionId, i32> {
        &self.sessions
    }

    /// Ephemeral paths owned by each session, sorted.
    pub fn ephemerals(&self) -> BTreeMap<SessionId, Vec<String>> {
        todo!()
    }

    pub fn node_count(&self) -> usize {
        todo!()
    }

    /// Sum of path lengths and data lengths, as ZooKeeper's approximateDataSize.
    pub fn approximate_data_size(&self) -> u64 {
        todo!()
    }

    pub fn watch_stats(&self) -> WatchStats {
        todo!()
    }

    /// Watched paths per connection (wchc) and watching connections per path (wchp).
    pub fn watches_by_connection(&self) -> BTreeMap<ConnId, Vec<String>> {
        todo!()
    }

    pub fn watches_by_path(&self) -> BTreeMap<String, Vec<ConnId>> {
        todo!()
    }

    /// Containers and TTL nodes due for deletion at `now_ms` (ContainerManager rules), at most
    /// `limit` of them.
    pub fn reapable(&self, now_ms: i64, limit: usize) -> Vec<String> {
        let _ = (now_ms, limit);
        todo!()
    }

    /// A digest of the replicated state (paths, data, persisted stats, ACLs, sessions):
    /// equal trees at equal zxid have equal digests.
    pub fn digest(&self) -> u64 {
        todo!()
    }
}

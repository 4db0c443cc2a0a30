//! The commit pipeline: a prepped txn is stamped with the peer's next zxid and proposed; zab
//! persists it (the log), commits it (a quorum of durable acks; standalone, its own fsync), and
//! the core applies the committed txns in zxid order, answering whoever waits for each.

use bytes::Bytes;
use ferrokeeper_proto::Jute;
use ferrokeeper_proto::txn::TxnRecord;

use super::consensus::origin_conn;
use super::core::{Core, Origin, Pending};
use crate::metrics::STAGES;
use crate::tree::{Caller, Txn, TxnHeader};
use crate::zab::Input;

const STAGE_QUEUE: usize = 0;

const STAGE_LOG: usize = 1;

const STAGE_QUORUM_ACK: usize = 2;

const STAGE_APPLY: usize = 3;

const STAGE_END_TO_END: usize = 4;

impl Core {
    /// Leader: stamps a prepped txn with the peer's next zxid and the time, and proposes it
    /// (duty 4); it is applied, and its client answered, once committed.
    pub(crate) fn propose(&mut self, caller: &Caller, cxid: i32, txn: Txn, origin: Origin) {
        let Some(zxid) = self.prep_zxid() else {
            if let Some(conn) = origin_conn(&origin) {
                self.close_connection(conn);
            }
            return;
        };
        let header = TxnHeader {
            client_id: caller.session_id,
            cxid,
            zxid,
            time: self.io.wall_ms(),
            txn_type: txn.txn_type(),
        };
        let record = TxnRecord { header, txn };
        let payload = Bytes::from(record.encode_to_vec());
        if let Some(conn) = origin_conn(&origin) {
            self.hold_write(conn);
        }
        {
            let r = &mut self.replica;
            r.proposing.insert(zxid, (record, origin));
        }
        self.zab_step(Input::Propose { zxid, payload });
    }

    /// Zab committed everything up to `committed`: apply those txns in order, answer their
    /// clients, and run the requests that waited behind them.
    pub(crate) fn on_commit(&mut self, committed: i64) {
        let durable_at = self.io.now();
        // Standalone, the commit is the log's fsync; in an ensemble, the quorum's acks.
        let stage = if self.replica.standalone { STAGE_LOG } else { STAGE_QUORUM_ACK };
        while self.pending.front().is_some_and(|p| p.record.header.zxid <= committed) {
            let Some(entry) = self.pending.pop_front() else { break };
            let Pending { record, mut origin, proposed } = entry;
            let trace = origin.take_trace();
            let zxid = record.header.zxid;
            self.metrics.observe_stage(stage, durable_at.duration_since(proposed).as_secs_f64());
            if let Origin::Client { received, .. } | Origin::Close { received, .. } = &origin {
                let wait = proposed.duration_since(*received).as_secs_f64();
                self.metrics.observe_stage(STAGE_QUEUE, wait);
            }
            let client = match &origin {
                Origin::Client { received, .. } | Origin::Close { received, .. } => Some(*received),
                _ => None,
            };
            let traced_from = match &origin {
                Origin::Forwarded { received, .. } => Some(*received),
                _ => client,
            };
            let (header, conn) = (record.header.clone(), super::consensus::origin_conn(&origin));
            let err = self.apply(record, origin);
            self.txn_applied(&header, conn);
            let applied_at = self.io.now();
            self.metrics.observe_stage(STAGE_APPLY, applied_at.duration_since(durable_at).as_secs_f64());
            if let Some(received) = client {
                let total = applied_at.duration_since(received).as_secs_f64();
                self.metrics.observe_stage(STAGE_END_TO_END, total);
                tracing::trace!(
                target: super::core::TRACE_TARGET,
                        zxid = format_args!("0x{zxid:x}"),
                        queue_wait_us = proposed.duration_since(received).as_micros() as u64,
                        commit_us = durable_at.duration_since(proposed).as_micros() as u64,
                        apply_us = applied_at.duration_since(durable_at).as_micros() as u64,
                        "write applied"
                    );
            }
            if let (Some(trace), Some(tracer), Some(received)) = (trace, self.tracer.as_ref(), traced_from) {
                let stages = [
                    (STAGES[STAGE_QUEUE], received, proposed),
                    (STAGES[stage], proposed, durable_at),
                    (STAGES[STAGE_APPLY], durable_at, applied_at),
                ];
                trace.finish(tracer, &stages, applied_at, zxid, err);
            }
        }
    }

    /// Applies a txn and answers whoever waits for it; returns the reply's error code (0: ok).
    pub(crate) fn apply(&mut self, record: TxnRecord, origin: Origin) -> i32 {
        let zxid = record.header.zxid;
        if let Some(conn) = origin_conn(&origin) {
            self.complete_before_write(conn);
        }
        let outcome = self.tree.apply(&record.header, &record.txn);
        let err = outcome.reply.as_ref().err().map_or(0, |code| code.as_i32());
        self.txns_since_snapshot += 1;
        if self.txns_since_snapshot >= self.snapshot_after {
            self.take_snapshot();
        }
        for (conn, event, acl) in &outcome.events {
            // ZooKeeper sends a node's event only to connections allowed to READ the node.
            let allowed = self.connections.get(conn).is_some_and(|state| {
                self.tree.allows(acl, ferrokeeper_proto::op::perms::READ, &state.caller.auth)
            });
            if allowed {
                self.push_event(*conn, zxid, event);
            }
        }
        match origin {
            Origin::Client { conn, xid, op, received, .. } => {
                self.dequeue(conn);
                self.reply(conn, xid, zxid, outcome.reply, op, received);
            }
            Origin::Connect { conn, response } => {
                self.dequeue(conn);
                self.send_connect_response(conn, &response);
            }
            Origin::Close { conn, xid, op, received, .. } => {
                self.dequeue(conn);
                self.reply(conn, xid, zxid, outcome.reply, op, received);
                let session_id = record.header.client_id;
                if self.session_conn.get(&session_id) == Some(&conn) {
                    self.session_conn.remove(&session_id);
                }
                self.close_connection(conn);
            }
            // The follower that forwarded the write answers its client.
            Origin::Forwarded { .. } => {}
            Origin::Internal => {
                if let Err(code) = outcome.reply {
                    // A reaped node changed since reapable() looked; the next round sees it.
                    tracing::debug!(%code, zxid = format_args!("0x{zxid:x}"), "internal txn failed");
                }
            }
        }
        err
    }
}

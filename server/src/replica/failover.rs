//! Failover on the follower side: keeping client connections while the server has no leader.
//! Requests that arrive meanwhile are parked in arrival order; once the server serves again
//! (synced with the new leader), writes it had forwarded that the sync did not bring are
//! forwarded again in their original order (or proposed, if it now leads), syncs are asked
//! again, then the parked requests run. A connection kept longer than `2 * tickTime` (or half
//! its session timeout) without a leader is closed, so its client tries another server.

use std::time::Instant;

use bytes::Bytes;
use ferrokeeper_proto::request::Request;

use super::consensus::origin_conn;
use super::core::{Core, Origin};
use super::ordering::Held;
use crate::quorum::wire::PeerMessage;
use crate::tree::{ConnId, SessionId};
use crate::zab::Role;

/// A write this follower forwarded and has not yet seen as a proposal: enough to forward it
/// again (or propose it, as the new leader) if the leader changes before it is logged.
pub struct Awaiting {
    pub(crate) origin: Origin,
    pub(crate) op: i32,
    pub(crate) body: Bytes,
    pub(crate) seq: u64,
}

/// A client request that arrived while the server had no leader.
pub struct Parked {
    pub(crate) conn: ConnId,
    pub(crate) xid: i32,
    pub(crate) op: i32,
    pub(crate) request: Result<Request, ()>,
    pub(crate) received: Instant,
}

impl Core {
    /// Serving again after an election (synced with the new leader): writes forwarded to the
    /// old leader that the sync did not bring are not in the new history and never will be
    /// (a leader forgets forwards when it steps down): they go to the new leader again, in
    /// their original order (or are proposed here, if this server leads now), after the syncs
    /// are asked again. Then the requests parked meanwhile run.
    pub(crate) fn resume_after_election(&mut self) {
        let r = &mut self.replica;
        let mut lost: Vec<((SessionId, i32), Awaiting)> = r.awaiting.drain().collect();
        lost.sort_by_key(|(_, a)| a.seq);
        let leading = r.role == Role::Leading;
        // Every held sync is asked again, first: a point the old leader gave may not exist in
        // the new history, and a sync answered after a write of the same connection that
        // follows it would reach its client out of order.
        let last = self.replica.peer.last_zxid();
        let leader = self.replica.leader;
        let mut asks = Vec::new();
        for (conn, state) in self.connections.iter_mut() {
            let mut any = false;
            for held in state.held.iter_mut() {
                if let Held::Sync { xid, target, .. } = held {
                    *target = leading.then_some(last);
                    asks.push((*conn, state.caller.session_id, *xid));
                    any = true;
                }
            }
            if any && leading {
                self.replica.sync_waiters.insert(*conn);
            }
        }
        for (_, session, xid) in asks.iter().filter(|_| !leading) {
            if let Some(leader) = leader {
                let (session, cxid) = (*session, *xid);
                self.send_peer(leader, &PeerMessage::SyncRequest { session, cxid });
            }
        }
        if leading {
            let waiters: Vec<ConnId> = self.replica.sync_waiters.iter().copied().collect();
            for conn in waiters {
                self.drain_held(conn);
            }
        }
        for ((session, cxid), awaiting) in lost {
            let Some(conn) = origin_conn(&awaiting.origin) else { continue };
            if !self.connections.contains_key(&conn) {
                continue;
            }
            tracing::debug!(
                conn,
                session = format_args!("0x{session:x}"),
                cxid,
                leading,
                "write forwarded again"
            );
            if leading {
                self.propose_again(conn, cxid, awaiting);
            } else {
                self.forward_again(conn, session, cxid, awaiting);
            }
        }
        self.unpark();
    }

    /// Follower: a write the old leader never logged goes to the new one (its place in the
    /// connection's order is still held).
    pub(crate) fn forward_again(&mut self, conn: ConnId, session: SessionId, cxid: i32, awaiting: Awaiting) {
        let caller = self.caller(conn);
        let trace = awaiting.origin.trace_parent();
        let r = &mut self.replica;
        let sent = r.leader.is_some_and(|leader| {
            let message = PeerMessage::Forward {
                session,
                cxid,
                op: awaiting.op,
                auth: caller.auth,
                body: awaiting.body.clone(),
                trace,
            };
            self.io.send(leader, message.encode())
        });
        if sent {
            r.awaiting.insert((session, cxid), awaiting);
        }
        if !sent {
            self.close_connection(conn);
        }
    }

    /// New leader: a write it had forwarded to the old leader, never logged, is proposed here.
    pub(crate) fn propose_again(&mut self, conn: ConnId, cxid: i32, awaiting: Awaiting) {
        let Some(zxid) = self.prep_zxid() else {
            self.close_connection(conn);
            return;
        };
        let caller = self.caller(conn);
        let Awaiting { origin, op: op_code, body, .. } = awaiting;
        let Some(txn) = self.forwarded_txn(&caller, op_code, &body, zxid) else {
            self.close_connection(conn);
            return;
        };
        self.propose_in_held_place(conn, |core| core.propose(&caller, cxid, txn, origin));
    }

    /// A request while LOOKING: parked until the server serves again (bounded by
    /// `globalOutstandingLimit`; beyond it the connection is closed).
    pub(crate) fn park(
        &mut self,
        conn: ConnId,
        xid: i32,
        op: i32,
        request: Result<Request, ()>,
        received: Instant,
    ) {
        let limit = (self.config.global_outstanding_limit as usize).max(1);
        let r = &mut self.replica;
        if r.parked.len() >= limit {
            self.close_connection(conn);
            return;
        }
        r.parked.push_back(Parked { conn, xid, op, request, received });
    }

    /// Serving again: the parked requests run in arrival order.
    pub(crate) fn unpark(&mut self) {
        let r = &mut self.replica;
        let parked = std::mem::take(&mut r.parked);
        for Parked { conn, xid, op, request, received } in parked {
            if self.connections.contains_key(&conn) {
                self.replica_request(conn, xid, op, request, received);
            }
        }
    }

    /// Core tick while LOOKING: connections kept longer than their grace are closed, so their
    /// clients try another server.
    pub(crate) fn expire_parked(&mut self) {
        let r = &self.replica;
        if r.role != Role::Looking {
            return;
        }
        let Some((_, since)) = r.election.as_ref() else { return };
        let looking_ms = self.io.now().saturating_duration_since(*since).as_millis() as i64;
        let tick = i64::from(self.config.tick_time_ms);
        let expired: Vec<ConnId> = self
            .connections
            .iter()
            // Read-only clients (readonly.rs) are served, not kept waiting.
            .filter(|(conn, _)| !self.read_only.has(**conn))
            .filter(|(_, state)| looking_ms > (2 * tick).min(i64::from(state.timeout_ms) / 2))
            .map(|(conn, _)| *conn)
            .collect();
        if !expired.is_empty() {
            tracing::info!(
                count = expired.len(),
                looking_ms,
                "no leader yet; closing kept client connections"
            );
        }
        for conn in expired {
            self.close_connection(conn);
        }
    }
}

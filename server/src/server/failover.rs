//! Failover on the follower side: keeping client connections while the server has no leader.
//! Requests that arrive meanwhile are parked in arrival order; once the server serves again
//! (synced with the new leader), writes it had forwarded that the sync did not bring are
//! forwarded again in their original order (or proposed, if it now leads), syncs are asked
//! again, then the parked requests run. A connection kept longer than `2 * tickTime` (or half
//! its session timeout) without a leader is closed, so its client tries another server.

use std::time::Instant;

use bytes::Bytes;
use ferrokeeper_proto::request::Request;

use super::core::{Core, Origin};
use super::replica::{Held, origin_conn};
use crate::quorum::wire::PeerMessage;
use crate::tree::{ConnId, SessionId};
use crate::zab::Role;

/// A write this follower forwarded and has not yet seen as a proposal: enough to forward it
/// again (or propose it, as the new leader) if the leader changes before it is logged.
pub struct Awaiting {
    pub(super) origin: Origin,
    pub(super) op: i32,
    pub(super) body: Bytes,
    pub(super) seq: u64,
}

/// A client request that arrived while the server had no leader.
pub struct Parked {
    pub(super) conn: ConnId,
    pub(super) xid: i32,
    pub(super) op: i32,
    pub(super) request: Result<Request, ()>,
    pub(super) received: Instant,
}

impl Core {
    /// Serving again after an election (synced with the new leader): writes forwarded to the
    /// old leader that the sync did not bring are not in the new history and never will be
    /// (a leader forgets forwards when it steps down): they go to the new leader again, in
    /// their original order (or are proposed here, if this server leads now); syncs are asked
    /// again. Then the requests parked meanwhile run.
    pub(super) fn resume_after_election(&mut self) {
        let Some(r) = self.ensemble.as_mut() else { return };
        let mut lost: Vec<((SessionId, i32), Awaiting)> = r.awaiting.drain().collect();
        lost.sort_by_key(|(_, a)| a.seq);
        let leading = r.role == Role::Leading;
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
        let syncs: Vec<(ConnId, SessionId, i32)> = self
            .connections
            .iter()
            .flat_map(|(conn, state)| {
                state.held.iter().filter_map(move |h| match h {
                    Held::Sync { xid, target: None, .. } => Some((*conn, state.caller.session_id, *xid)),
                    _ => None,
                })
            })
            .collect();
        for (conn, session, xid) in syncs {
            match self.ensemble.as_ref() {
                Some(r) if leading => {
                    let last = r.peer.last_zxid();
                    if let Some(state) = self.connections.get_mut(&conn) {
                        for held in state.held.iter_mut() {
                            if let Held::Sync { xid: x, target, .. } = held
                                && *x == xid
                                && target.is_none()
                            {
                                *target = Some(last);
                            }
                        }
                    }
                    self.drain_held(conn);
                }
                Some(r) => {
                    if let Some(leader) = r.leader {
                        r.send(leader, &PeerMessage::SyncRequest { session, cxid: xid });
                    }
                }
                None => {}
            }
        }
        self.unpark();
    }

    /// Follower: a write the old leader never logged goes to the new one (its place in the
    /// connection's order is still held).
    pub(super) fn forward_again(&mut self, conn: ConnId, session: SessionId, cxid: i32, awaiting: Awaiting) {
        let caller = self.caller(conn);
        let trace = awaiting.origin.trace_parent();
        let sent = self.ensemble.as_mut().is_some_and(|r| {
            let Some(leader) = r.leader else { return false };
            let message = PeerMessage::Forward {
                session,
                cxid,
                op: awaiting.op,
                auth: caller.auth,
                body: awaiting.body.clone(),
                trace,
            };
            let sent = r.sender.send(leader, message.encode());
            if sent {
                r.awaiting.insert((session, cxid), awaiting);
            }
            sent
        });
        if !sent {
            self.close_connection(conn);
        }
    }

    /// New leader: a write it had forwarded to the old leader, never logged, is proposed here.
    pub(super) fn propose_again(&mut self, conn: ConnId, cxid: i32, awaiting: Awaiting) {
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
    pub(super) fn park(
        &mut self,
        conn: ConnId,
        xid: i32,
        op: i32,
        request: Result<Request, ()>,
        received: Instant,
    ) {
        let limit = (self.config.global_outstanding_limit as usize).max(1);
        let Some(r) = self.ensemble.as_mut() else { return };
        if r.parked.len() >= limit {
            self.close_connection(conn);
            return;
        }
        r.parked.push_back(Parked { conn, xid, op, request, received });
    }

    /// Serving again: the parked requests run in arrival order.
    pub(super) fn unpark(&mut self) {
        let Some(r) = self.ensemble.as_mut() else { return };
        let parked = std::mem::take(&mut r.parked);
        for Parked { conn, xid, op, request, received } in parked {
            if self.connections.contains_key(&conn) {
                self.ensemble_request(conn, xid, op, request, received);
            }
        }
    }

    /// Core tick while LOOKING: connections kept longer than their grace are closed, so their
    /// clients try another server.
    pub(super) fn expire_parked(&mut self) {
        let Some(r) = self.ensemble.as_ref() else { return };
        if r.role != Role::Looking {
            return;
        }
        let Some((_, since)) = r.election.as_ref() else { return };
        let looking_ms = since.elapsed().as_millis() as i64;
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

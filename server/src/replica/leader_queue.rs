//! The leader's queue of writes waiting for a zxid: when the outstanding-proposal bound is
//! reached, forwarded writes (and the leader's own clients' writes) wait here in arrival order
//! and are proposed as commits free room, never dropped. The followers bound what they
//! forward (`globalOutstandingLimit`), so this queue is bounded too. A follower's waiting
//! forwards are forgotten when its link ends (it forwards them again after its next sync).

use std::time::Instant;

use bytes::Bytes;
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::txn::ErrorTxn;
use ferrokeeper_proto::{Code, Id, op};

use super::core::{Core, Origin};
use super::forwarding::FORWARD_MALFORMED;
use super::ordering::Held;
use crate::quorum::wire::TraceParent;
use crate::tree::{Caller, ConnId, SessionId, Txn};
use crate::zab::{Role, Sid};

/// A follower's client write as the leader received it.
pub struct ForwardedWrite {
    /// The follower that forwarded it.
    pub(crate) from: Sid,
    pub(crate) session: SessionId,
    pub(crate) cxid: i32,
    pub(crate) op: i32,
    pub(crate) auth: Vec<Id>,
    pub(crate) body: Bytes,
    pub(crate) trace: Option<TraceParent>,
    pub(crate) received: Instant,
}

/// A write at the leader that waits for room under the outstanding-proposal bound.
pub enum WaitingWrite {
    Forwarded(ForwardedWrite),
    Local { conn: ConnId, xid: i32, op: i32, request: Request, received: Instant },
}

impl Core {
    /// The leader preps a follower's write with the caller's session and auth and proposes it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_forward(
        &mut self,
        from: Sid,
        session: SessionId,
        cxid: i32,
        op_code: i32,
        auth: Vec<Id>,
        body: Bytes,
        trace: Option<TraceParent>,
    ) {
        let write =
            ForwardedWrite { from, session, cxid, op: op_code, auth, body, trace, received: self.io.now() };
        let waiting = !self.replica.waiting_zxid.is_empty();
        if waiting || self.prep_zxid().is_none() {
            // Full: wait in order for room (the followers bound what they forward).
            {
                let r = &mut self.replica;
                r.waiting_zxid.push_back(WaitingWrite::Forwarded(write));
            }
            return;
        }
        self.propose_forwarded(write);
    }

    /// Preps and proposes a forwarded write (a zxid is available).
    pub(crate) fn propose_forwarded(&mut self, write: ForwardedWrite) {
        let ForwardedWrite { from, session, cxid, op: op_code, auth, body, trace, received } = write;
        let Some(zxid) = self.prep_zxid() else { return };
        let caller = Caller { session_id: session, conn: 0, auth };
        let txn = if self.session_moved(from, session, op_code) {
            Txn::Error(ErrorTxn { err: Code::SessionMoved.as_i32() })
        } else {
            let Some(txn) = self.forwarded_txn(&caller, op_code, &body, zxid) else { return };
            txn
        };
        // The follower traces this write: the leader's part joins its trace.
        let origin = match (trace, self.tracer.as_ref()) {
            (Some(parent), Some(tracer)) => Origin::Forwarded {
                received,
                trace: Some(Box::new(tracer.start_forwarded(op_code, received, session, cxid, parent))),
            },
            _ => Origin::Internal,
        };
        self.propose(&caller, cxid, txn, origin);
    }

    /// Preps a write that a follower forwarded as (opcode, request body) with the caller's
    /// session and auth: createSession carries its timeout, an undecodable body is an error
    /// txn. `None` for a body that is not a write.
    pub(crate) fn forwarded_txn(
        &mut self,
        caller: &Caller,
        op_code: i32,
        body: &Bytes,
        zxid: i64,
    ) -> Option<Txn> {
        let session = caller.session_id;
        if op_code == op::CREATE_SESSION {
            let timeout = body.get(..4).map_or(0, |b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            let now = self.mono_ms();
            self.tracker.add(session, timeout, now);
            return Some(self.tree.prep_create_session(session, timeout, zxid));
        }
        if op_code == FORWARD_MALFORMED {
            return Some(Txn::Error(ErrorTxn { err: Code::MarshallingError.as_i32() }));
        }
        Some(match Request::decode(op_code, body) {
            Ok(Request::Reconfig(_)) => Txn::Error(ErrorTxn { err: Code::ReconfigDisabled.as_i32() }),
            Ok(request) if request.is_write() => {
                if matches!(request, Request::CloseSession) {
                    self.tracker.remove(session);
                }
                self.tree.prep(caller, &request, zxid, self.io.wall_ms())
            }
            Ok(_) => return None,
            Err(_) => Txn::Error(ErrorTxn { err: Code::MarshallingError.as_i32() }),
        })
    }

    /// Runs `propose` for a write of `conn` whose place in the connection's order is already
    /// held (queued for a zxid, or forwarded to a leader that is gone): the proposal adds a
    /// placeholder of its own at the back, which is dropped again.
    pub(crate) fn propose_in_held_place(&mut self, conn: ConnId, propose: impl FnOnce(&mut Core)) {
        let Some(before) = self.connections.get(&conn).map(|state| state.held.len()) else { return };
        propose(self);
        if let Some(state) = self.connections.get_mut(&conn)
            && state.held.len() > before
            && matches!(state.held.back(), Some(Held::Write { done: false }))
        {
            state.held.pop_back();
            state.queued = state.queued.saturating_sub(1);
        }
    }

    /// Leader: a client write of this server, proposed now or, when the outstanding-proposal
    /// bound is reached, queued behind the writes already waiting.
    pub(crate) fn leader_write(
        &mut self,
        conn: ConnId,
        xid: i32,
        op: i32,
        request: Request,
        received: Instant,
    ) {
        let r = &mut self.replica;
        if r.waiting_zxid.is_empty() && r.peer.next_zxid().is_some() {
            self.propose_request(conn, xid, op, request, received);
            return;
        }
        self.hold_write(conn);
        {
            let r = &mut self.replica;
            r.waiting_zxid.push_back(WaitingWrite::Local { conn, xid, op, request, received });
        }
    }

    /// Leader, after commits freed room: proposes the waiting writes, in order, while room lasts.
    pub(crate) fn propose_waiting(&mut self) {
        loop {
            let r = &mut self.replica;
            if r.role != Role::Leading || r.peer.next_zxid().is_none() {
                return;
            }
            let Some(write) = r.waiting_zxid.pop_front() else { return };
            match write {
                WaitingWrite::Forwarded(write) => self.propose_forwarded(write),
                WaitingWrite::Local { conn, xid, op, request, received } => self
                    .propose_in_held_place(conn, |core| {
                        core.propose_request(conn, xid, op, request, received)
                    }),
            }
        }
    }

    /// Requests this server holds that are not yet in the commit queue: forwarded writes
    /// waiting for their txn (follower), writes waiting for a zxid (leader), parked requests.
    /// Counted with the commit queue against `globalOutstandingLimit`.
    pub(crate) fn replica_outstanding(&self) -> usize {
        let r = &self.replica;
        r.awaiting.len() + r.waiting_zxid.len() + r.parked.len()
    }
}

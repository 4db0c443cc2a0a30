//! Client requests: routing a decoded request (park while LOOKING, write → propose or forward,
//! read → run now or behind the connection's earlier requests), and running the requests that
//! need no txn.

use std::time::Instant;

use bytes::Bytes;
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::response::{Response, Response as R};
use ferrokeeper_proto::txn::ErrorTxn;
use ferrokeeper_proto::{Code, SetWatches2, SyncResponse, WhoAmIResponse, op};

use super::core::{Core, RequestFault};
use super::forwarding::FORWARD_MALFORMED;
use super::ordering::Held;
use crate::quorum::wire::PeerMessage;
use crate::tree::{self, ConnId, Txn};
use crate::zab::Role;

pub(crate) fn is_write_op(op_code: i32) -> bool {
    matches!(
        op_code,
        op::CREATE
            | op::CREATE2
            | op::CREATE_CONTAINER
            | op::CREATE_TTL
            | op::DELETE
            | op::SET_DATA
            | op::SET_ACL
            | op::MULTI
            | op::DELETE_CONTAINER
            | op::RECONFIG
    )
}

impl Core {
    pub fn on_request(
        &mut self,
        conn_id: ConnId,
        xid: i32,
        op_code: i32,
        request: Result<Request, RequestFault>,
        received: Instant,
    ) {
        if self.refuse_unauthenticated(conn_id, xid, op_code, received) {
            return;
        }
        let now = self.mono_ms();
        let Some(conn) = self.connections.get_mut(&conn_id) else { return };
        conn.received += 1;
        conn.unanswered += 1;
        self.metrics.outstanding_requests.inc();
        self.packets_received += 1;
        let session_id = conn.caller.session_id;
        if !self.tracker.touch(session_id, now) {
            self.reply(
                conn_id,
                xid,
                self.tree.last_processed_zxid(),
                Err(Code::SessionExpired),
                op_code,
                received,
            );
            self.close_connection(conn_id);
            return;
        }
        if self.read_only.has(conn_id) {
            self.read_only_request(conn_id, xid, op_code, request, received);
            return;
        }
        if self.local_sessions.contains(session_id)
            && let Ok(local) = &request
            && matches!(
                local,
                Request::CloseSession | Request::Create(_) | Request::Create2(_) | Request::Multi(_)
            )
        {
            if !self.local_session_request(conn_id, xid, op_code, local, received)
                && let Ok(request) = request
            {
                self.replica_request(conn_id, xid, op_code, Ok(request), received);
            }
            return;
        }
        let request = match request {
            Ok(request) => Ok(request),
            Err(RequestFault::UnknownOp) => {
                tracing::warn!(conn = conn_id, op = op_code, "unknown opcode; closing connection");
                // UnimplementedRequestProcessor answers with the request's unassigned zxid, -1.
                self.reply(conn_id, xid, -1, Err(Code::Unimplemented), op_code, received);
                self.close_connection(conn_id);
                return;
            }
            // A malformed write is an error txn, as in ZooKeeper (it consumes a zxid).
            Err(RequestFault::Malformed) if is_write_op(op_code) => Err(()),
            Err(RequestFault::Malformed) => {
                let zxid = self.tree.last_processed_zxid();
                self.reply(conn_id, xid, zxid, Err(Code::MarshallingError), op_code, received);
                return;
            }
        };
        self.replica_request(conn_id, xid, op_code, request, received);
    }

    /// A decoded client request (after the session checks); `Err` is a malformed write.
    pub(crate) fn replica_request(
        &mut self,
        conn_id: ConnId,
        xid: i32,
        op_code: i32,
        request: Result<Request, ()>,
        received: Instant,
    ) {
        if self.role() == Role::Looking {
            self.park(conn_id, xid, op_code, request, received);
            return;
        }
        let Some(conn) = self.connections.get(&conn_id) else { return };
        let session = conn.caller.session_id;
        let must_wait = !conn.held.is_empty();
        self.touch_later(session);
        let leading = self.role() == Role::Leading;
        let request = match request {
            Ok(request) => request,
            Err(()) => {
                // A malformed write: an error txn, as standalone.
                let origin = self.client_origin(conn_id, xid, op_code, received, false);
                if leading {
                    let caller = self.caller(conn_id);
                    let txn = Txn::Error(ErrorTxn { err: Code::MarshallingError.as_i32() });
                    self.propose(&caller, xid, txn, origin);
                } else {
                    self.forward(conn_id, xid, FORWARD_MALFORMED, Bytes::new(), origin);
                }
                return;
            }
        };
        if request.is_write() {
            if leading {
                self.leader_write(conn_id, xid, op_code, request, received);
            } else {
                let close = matches!(request, Request::CloseSession);
                if close {
                    self.tracker.remove(session);
                }
                let origin = self.client_origin(conn_id, xid, op_code, received, close);
                let mut body = Vec::new();
                request.write_body(&mut body);
                self.forward(conn_id, xid, request.op(), Bytes::from(body), origin);
            }
            return;
        }
        match request {
            Request::Sync(sync) => {
                let target = leading.then(|| self.replica.peer.last_zxid());
                if let Some(state) = self.connections.get_mut(&conn_id) {
                    state.queued += 1;
                    state.held.push_back(Held::Sync { xid, path: sync.path, received, target });
                }
                if !leading && let Some(leader) = self.replica.leader {
                    self.send_peer(leader, &PeerMessage::SyncRequest { session, cxid: xid });
                }
                self.drain_held(conn_id);
            }
            Request::Ping => self.execute(conn_id, xid, op_code, Request::Ping, received),
            request if must_wait => {
                if let Some(state) = self.connections.get_mut(&conn_id) {
                    state.queued += 1;
                    state.held.push_back(Held::Read { xid, op: op_code, request, received });
                }
            }
            request => self.execute(conn_id, xid, op_code, request, received),
        }
    }

    /// Runs a request that needs no txn.
    pub(crate) fn execute(
        &mut self,
        conn_id: ConnId,
        xid: i32,
        op_code: i32,
        request: Request,
        received: Instant,
    ) {
        let Some(conn) = self.connections.get_mut(&conn_id) else { return };
        match request {
            Request::Ping => {
                let zxid = self.tree.last_processed_zxid();
                self.reply(conn_id, xid, zxid, Ok(Response::Empty), op_code, received);
            }
            Request::Auth(packet) => {
                let ip = conn.peer.ip().to_string();
                let auth = packet.auth.as_deref();
                let authenticated = if packet.scheme == "x509" {
                    tree::acl::x509_addauth(&conn.caller.auth)
                } else {
                    tree::acl::authenticate(&packet.scheme, auth, &ip, self.config.super_digest.as_deref())
                };
                match authenticated {
                    Ok(ids) => {
                        for id in ids {
                            if !conn.caller.auth.contains(&id) {
                                conn.caller.auth.push(id);
                                // Keep ZooKeeper's iteration order of its auth-info set.
                                tree::acl::java_set_order(&mut conn.caller.auth);
                            }
                        }
                        self.reply(conn_id, xid, 0, Ok(Response::Empty), op_code, received);
                    }
                    Err(code) => {
                        tracing::warn!(conn = conn_id, scheme = packet.scheme, "authentication failed");
                        self.metrics.auth_failure(&packet.scheme);
                        self.reply(conn_id, xid, 0, Err(code), op_code, received);
                        self.close_connection(conn_id);
                    }
                }
            }
            Request::SetWatches(w) => {
                let all = SetWatches2 {
                    relative_zxid: w.relative_zxid,
                    data_watches: w.data_watches,
                    exist_watches: w.exist_watches,
                    child_watches: w.child_watches,
                    persistent_watches: Vec::new(),
                    persistent_recursive_watches: Vec::new(),
                };
                self.set_watches(conn_id, xid, op_code, &all, received);
            }
            Request::SetWatches2(w) => self.set_watches(conn_id, xid, op_code, &w, received),
            Request::Sync(sync) => {
                let zxid = self.tree.last_processed_zxid();
                self.reply(
                    conn_id,
                    xid,
                    zxid,
                    Ok(R::Sync(SyncResponse { path: sync.path })),
                    op_code,
                    received,
                );
            }
            Request::WhoAmI => {
                let client_info = conn
                    .caller
                    .auth
                    .iter()
                    .map(|id| ferrokeeper_proto::ClientInfo {
                        auth_scheme: id.scheme.clone(),
                        user: self.tree.user_name(id),
                    })
                    .collect();
                let zxid = self.tree.last_processed_zxid();
                self.reply(
                    conn_id,
                    xid,
                    zxid,
                    Ok(R::WhoAmI(WhoAmIResponse { client_info })),
                    op_code,
                    received,
                );
            }
            Request::Check(_) => {
                // check is only valid inside multi; ZooKeeper answers Unimplemented and closes.
                let zxid = self.tree.last_processed_zxid();
                self.reply(conn_id, xid, zxid, Err(Code::Unimplemented), op_code, received);
                self.close_connection(conn_id);
            }
            Request::Sasl(request) => self.sasl(conn_id, xid, op_code, request, received),
            request => {
                let result = self.tree.read(&conn.caller, &request);
                let zxid = self.tree.last_processed_zxid();
                self.reply(conn_id, xid, zxid, result, op_code, received);
            }
        }
    }

    /// Turns a write request into a txn and queues it on the log.
    pub(crate) fn propose_request(
        &mut self,
        conn_id: ConnId,
        xid: i32,
        op_code: i32,
        request: Request,
        received: Instant,
    ) {
        let caller = self.caller(conn_id);
        let Some(zxid) = self.prep_zxid() else {
            // Ensemble: not leading any more, or too many proposals outstanding.
            self.close_connection(conn_id);
            return;
        };
        let txn = match &request {
            // reconfigEnabled=false: the request becomes an error txn, as in ZooKeeper.
            Request::Reconfig(_) => Txn::Error(ErrorTxn { err: Code::ReconfigDisabled.as_i32() }),
            _ if self.session_moved_here(caller.session_id, op_code) => {
                Txn::Error(ErrorTxn { err: Code::SessionMoved.as_i32() })
            }
            request => self.tree.prep(&caller, request, zxid, self.io.wall_ms()),
        };
        let close = matches!(request, Request::CloseSession);
        if close {
            self.tracker.remove(caller.session_id);
        }
        let origin = self.client_origin(conn_id, xid, op_code, received, close);
        self.propose(&caller, xid, txn, origin);
    }

    pub(crate) fn set_watches(
        &mut self,
        conn: ConnId,
        xid: i32,
        op_code: i32,
        watches: &SetWatches2,
        received: Instant,
    ) {
        let events = self.tree.set_watches(conn, watches);
        for event in &events {
            self.push_event(conn, -1, event);
        }
        let zxid = self.tree.last_processed_zxid();
        self.reply(conn, xid, zxid, Ok(Response::Empty), op_code, received);
    }
}

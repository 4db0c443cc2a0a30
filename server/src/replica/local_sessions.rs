//! Local sessions (`localSessionsEnabled`, ZooKeeper 3.5+): in an ensemble a new session is
//! local to the server it was made on: no createSession txn, known to that server's tracker
//! only, expired there, closed there (no txn either). It reads and writes like any session
//! (its writes go to the leader as usual), but it cannot move to another server (there it is
//! unknown: expired) and cannot own an ephemeral node: with `localSessionsUpgradingEnabled`
//! its first ephemeral create makes it global first (a createSession txn ahead of the create,
//! as ZooKeeper's `checkUpgradeSession`), otherwise that create fails with
//! EphemeralOnLocalSession (-120). `mntr` counts them as `zk_local_sessions`.
//!
//! Hooks in the core: `on_connect` (a new session is made local; a local one may reconnect
//! to this server), `on_request` (closeSession, ephemeral creates), `on_tick` (expiry).

use std::time::Instant;

use bytes::Bytes;
use ferrokeeper_proto::multi::MultiOp;
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::response::Response;
use ferrokeeper_proto::{Code, ConnectResponse, op};

use super::Set;
use super::core::{Core, Origin};
use crate::quorum::wire::PeerMessage;
use crate::tree::{Caller, ConnId, SessionId};
use crate::zab::Role;

/// The sessions local to this server.
#[derive(Debug, Default)]
pub struct LocalSessions {
    ids: Set<SessionId>,
}

impl LocalSessions {
    pub fn contains(&self, session: SessionId) -> bool {
        self.ids.contains(&session)
    }
}

/// Whether a request creates an ephemeral node (itself or inside a multi).
fn creates_ephemeral(request: &Request) -> bool {
    let ephemeral = |flags: i32| matches!(flags, 1 | 3);
    match request {
        Request::Create(r) | Request::Create2(r) => ephemeral(r.flags),
        Request::Multi(m) => {
            m.ops.iter().any(|o| matches!(o, MultiOp::Create { request, .. } if ephemeral(request.flags)))
        }
        _ => false,
    }
}

impl Core {
    /// mntr `zk_local_sessions`, when local sessions are on.
    pub fn local_session_count(&self) -> Option<usize> {
        (self.config.local_sessions && !self.replica.standalone).then_some(self.local_sessions.ids.len())
    }

    /// `on_connect`, a new session in an ensemble: made local (and answered) when local
    /// sessions are on; `false` to make it global as usual.
    pub(crate) fn local_session_created(&mut self, conn: ConnId, response: &ConnectResponse) -> bool {
        if !self.config.local_sessions || self.replica.standalone {
            return false;
        }
        self.local_sessions.ids.insert(response.session_id);
        self.send_connect_response(conn, response);
        true
    }

    /// `on_request`, for a local session's closeSession or ephemeral create: handled here
    /// (`true`), or `false` for the usual path.
    pub(crate) fn local_session_request(
        &mut self,
        conn: ConnId,
        xid: i32,
        op_code: i32,
        request: &Request,
        received: Instant,
    ) -> bool {
        let Some(session) = self.connections.get(&conn).map(|c| c.caller.session_id) else { return false };
        let zxid = self.tree.last_processed_zxid();
        if matches!(request, Request::CloseSession) {
            self.local_sessions.ids.remove(&session);
            self.tracker.remove(session);
            self.session_conn.remove(&session);
            self.reply(conn, xid, zxid, Ok(Response::Empty), op_code, received);
            self.close_connection(conn);
            return true;
        }
        if !creates_ephemeral(request) {
            return false;
        }
        if !self.config.local_sessions_upgrading {
            self.reply(conn, xid, zxid, Err(Code::EphemeralOnLocalSession), op_code, received);
            return true;
        }
        self.upgrade_session(conn, session)
    }

    /// Makes a local session global: a createSession txn at the leader, ahead of the request
    /// that needs it (on the same link, so the leader runs it first). `true` when the
    /// request was answered here instead (no leader to upgrade with: the connection closes).
    fn upgrade_session(&mut self, conn: ConnId, session: SessionId) -> bool {
        let Some(timeout) = self.connections.get(&conn).map(|c| c.timeout_ms) else { return true };
        self.local_sessions.ids.remove(&session);
        tracing::info!(session = format_args!("0x{session:x}"), "upgrading a local session to global");
        match (self.replica.role, self.replica.leader) {
            (Role::Leading, _) => {
                let Some(zxid) = self.prep_zxid() else {
                    self.close_connection(conn);
                    return true;
                };
                let caller = Caller { session_id: session, conn, auth: Vec::new() };
                let txn = self.tree.prep_create_session(session, timeout, zxid);
                self.propose(&caller, 0, txn, Origin::Internal);
                false
            }
            (Role::Following, Some(leader)) => {
                let message = PeerMessage::Forward {
                    session,
                    cxid: 0,
                    op: op::CREATE_SESSION,
                    auth: Vec::new(),
                    body: Bytes::copy_from_slice(&timeout.to_be_bytes()),
                    trace: None,
                };
                if !self.send_peer(leader, &message) {
                    self.close_connection(conn);
                    return true;
                }
                false
            }
            _ => {
                self.close_connection(conn);
                true
            }
        }
    }

    /// `on_tick`: local sessions whose deadline passed end here (no txn).
    pub(crate) fn expire_local_sessions(&mut self) {
        if self.local_sessions.ids.is_empty() {
            return;
        }
        let now = self.mono_ms();
        let expired: Vec<SessionId> = self
            .local_sessions
            .ids
            .iter()
            .copied()
            .filter(|s| self.tracker.deadline(*s).is_none_or(|deadline| deadline <= now))
            .collect();
        for session in expired {
            tracing::info!(session = format_args!("0x{session:x}"), "local session expired");
            self.local_sessions.ids.remove(&session);
            self.tracker.remove(session);
            if let Some(conn) = self.session_conn.remove(&session) {
                self.close_connection(conn);
            }
        }
    }
}

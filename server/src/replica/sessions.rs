//! Sessions are global: createSession / closeSession are txns; followers report the sessions
//! their clients touched to the leader (`Touch`, every core tick), and the leader's
//! [`SessionTracker`](crate::tree::SessionTracker) expires sessions by proposing closeSession.

use bytes::Bytes;
use ferrokeeper_proto::{ConnectResponse, op};

use super::core::{Core, Origin};
use crate::quorum::wire::PeerMessage;
use crate::tree::{Caller, ConnId, SessionId, TxnHeader};
use crate::zab::Role;

impl Core {
    /// A new session: a txn at the leader, forwarded from a follower.
    pub(crate) fn create_session(
        &mut self,
        conn: ConnId,
        session: SessionId,
        timeout_ms: i32,
        response: ConnectResponse,
    ) {
        if self.role() == Role::Leading {
            let Some(zxid) = self.prep_zxid() else {
                self.close_connection(conn);
                return;
            };
            let caller = Caller { session_id: session, conn, auth: Vec::new() };
            let txn = self.tree.prep_create_session(session, timeout_ms, zxid);
            self.propose(&caller, 0, txn, Origin::Connect { conn, response });
        } else {
            self.touch_later(session);
            self.forward(
                conn,
                0,
                op::CREATE_SESSION,
                Bytes::copy_from_slice(&timeout_ms.to_be_bytes()),
                Origin::Connect { conn, response },
            );
        }
    }

    pub(crate) fn touch_later(&mut self, session: SessionId) {
        let r = &mut self.replica;
        if r.role == Role::Following {
            r.touched.insert(session);
        }
    }

    /// Follower, every core tick: report the active sessions to the leader.
    pub(crate) fn send_touches(&mut self) {
        let r = &mut self.replica;
        if r.role != Role::Following || r.touched.is_empty() {
            return;
        }
        let Some(leader) = r.leader else { return };
        let sessions: Vec<SessionId> = r.touched.drain().collect();
        self.send_peer(leader, &PeerMessage::Touch { sessions });
    }

    /// After a txn was applied: a closeSession (expiry at the leader, or a client's close
    /// elsewhere) ends the session's local connection too.
    pub(crate) fn txn_applied(&mut self, header: &TxnHeader, origin_conn: Option<ConnId>) {
        if header.txn_type == op::CLOSE_SESSION {
            self.tracker.remove(header.client_id);
            if let Some(conn) = self.session_conn.get(&header.client_id).copied()
                && Some(conn) != origin_conn
            {
                self.session_conn.remove(&header.client_id);
                self.close_connection(conn);
            }
        }
        if let Some(conn) = origin_conn {
            self.write_applied(conn);
        }
    }
}

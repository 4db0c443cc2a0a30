//! SessionMoved (-118), as ZooKeeper's leader raises it: every session has an owner, the
//! server that holds its connection. The leader records it when a client connects with an
//! existing session (a follower tells it with `Revalidate`, ZooKeeper's REVALIDATE; its own
//! clients are its own), and otherwise lets the first server that writes for a session claim
//! it (so a new leader needs no table handed over). A write that reaches the leader from
//! another server than the owner (the session moved on, its old connection did not notice)
//! becomes an error txn with SessionMoved instead of being prepped. Its connection is then
//! closed without a reply, as ZooKeeper's FinalRequestProcessor does (ZOOKEEPER-710: a
//! connection-level error); the client reconnects and finds its session where it moved.
//! Reads are served locally and never checked, as in ZooKeeper.

use ferrokeeper_proto::{ConnectResponse, op};

use super::Map;
use super::core::Core;
use crate::quorum::wire::PeerMessage;
use crate::tree::{ConnId, SessionId};
use crate::zab::{Role, Sid};

/// Whether a reply with this error code closes its connection instead (SessionMoved).
pub(crate) fn closes_instead_of_reply(err: i32) -> bool {
    err == ferrokeeper_proto::Code::SessionMoved.as_i32()
}

/// The leader's session owners.
#[derive(Debug, Default)]
pub struct Owners {
    owner: Map<SessionId, Sid>,
    /// Follower: reconnected clients waiting for the leader's `Revalidated` before their
    /// ConnectResponse.
    revalidating: Map<SessionId, (ConnId, ConnectResponse)>,
}

impl Core {
    /// This server's id in the ensemble.
    fn own_sid(&self) -> Option<Sid> {
        (!self.replica.standalone).then(|| self.replica.peer.sid())
    }

    /// `on_connect`: a client came back with an existing session: this server owns it now.
    /// A follower tells the leader and answers the client (`response`) once the leader has
    /// recorded it (`revalidated`), as ZooKeeper's follower does; otherwise at once.
    pub(crate) fn claim_session(&mut self, conn: ConnId, session: SessionId, response: ConnectResponse) {
        let Some(me) = self.own_sid() else {
            self.send_connect_response(conn, &response);
            return;
        };
        match (self.replica.role, self.replica.leader) {
            (Role::Leading, _) => {
                self.set_owner(session, me);
                self.send_connect_response(conn, &response);
            }
            (Role::Following, Some(leader))
                if self.send_peer(leader, &PeerMessage::Revalidate { session }) =>
            {
                self.replica.owners.revalidating.insert(session, (conn, response));
            }
            _ => self.send_connect_response(conn, &response),
        }
    }

    /// Follower: the leader recorded this server as the session's owner: the client waiting
    /// for its ConnectResponse gets it now. (A leader lost meanwhile leaves it waiting: the
    /// client's connect times out and it tries again.)
    pub(crate) fn revalidated(&mut self, session: SessionId) {
        if let Some((conn, response)) = self.replica.owners.revalidating.remove(&session)
            && self.session_conn.get(&session) == Some(&conn)
        {
            self.send_connect_response(conn, &response);
        }
    }

    /// Leader: `from` holds the session's connection now.
    pub(crate) fn set_owner(&mut self, session: SessionId, from: Sid) {
        let sessions = self.tree.sessions().len();
        let owners = &mut self.replica.owners.owner;
        owners.insert(session, from);
        // Closed and expired sessions leave their entry behind: prune once they dominate.
        if owners.len() > 2 * sessions + 1024 {
            let live = self.tree.sessions();
            self.replica.owners.owner.retain(|session, _| live.contains_key(session));
        }
    }

    /// Leader: whether a write for `session` arriving from server `from` must be refused with
    /// SessionMoved. A session without a recorded owner is claimed by `from`; createSession
    /// makes `from` the owner; a closeSession that passes forgets the session.
    pub(crate) fn session_moved(&mut self, from: Sid, session: SessionId, op_code: i32) -> bool {
        let owner = self.replica.owners.owner.get(&session).copied();
        if op_code == op::CREATE_SESSION || owner.is_none() {
            self.set_owner(session, from);
            return false;
        }
        if owner != Some(from) {
            tracing::info!(
                session = format_args!("0x{session:x}"),
                from,
                owner,
                "a write for a session that moved to another server: SessionMoved"
            );
            return true;
        }
        if op_code == op::CLOSE_SESSION {
            self.replica.owners.owner.remove(&session);
        }
        false
    }

    /// Leader: [`Core::session_moved`] for a write of one of its own clients.
    pub(crate) fn session_moved_here(&mut self, session: SessionId, op_code: i32) -> bool {
        match self.own_sid() {
            Some(me) if self.role() == Role::Leading => self.session_moved(me, session, op_code),
            _ => false,
        }
    }
}

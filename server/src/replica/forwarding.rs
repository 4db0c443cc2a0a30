//! Messages between servers other than zab's own: a follower forwards its clients' writes to
//! the leader (and answers them when the matching (session, cxid) commits), asks for `sync`
//! points, reports touched sessions; a link's end is news for zab and the leader's queue.

use bytes::Bytes;

use super::core::{Core, Origin};
use super::failover::Awaiting;
use super::leader_queue::WaitingWrite;
use super::ordering::Held;
use crate::quorum::wire::PeerMessage;
use crate::tree::ConnId;
use crate::zab::{Input, Role, Sid};

/// A forwarded write whose body could not be decoded at the follower.
pub(crate) const FORWARD_MALFORMED: i32 = i32::MIN;

impl Core {
    /// The connection with another server ended (after its last message). Its forwarded
    /// writes still waiting for a zxid are forgotten: the follower loses this leader too and
    /// forwards them again after its next sync (any already proposed reach it in that sync),
    /// so none runs twice.
    pub fn on_link_down(&mut self, from: Sid) {
        self.replica.waiting_zxid.retain(|w| !matches!(w, WaitingWrite::Forwarded(f) if f.from == from));
        self.zab_step(Input::LinkDown { peer: from });
    }

    /// A frame from another server.
    pub fn on_peer_message(&mut self, from: Sid, bytes: Bytes) {
        let message = match PeerMessage::decode(&bytes) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(from, %error, "dropping a peer message");
                return;
            }
        };
        let role = self.role();
        if matches!(message, PeerMessage::Forward { .. } | PeerMessage::SyncRequest { .. })
            && role == Role::Leading
            && !self.replica.peer.is_synced_learner(from)
        {
            // Sent before the learner's link ended (the writes before it were lost with the
            // link): executing it would run it ahead of them. The learner forwards every
            // write it still awaits again, in order, and asks its syncs again, once it has
            // synced with a leader again.
            tracing::debug!(from, "ignoring a forward from a learner that has not synced again");
            return;
        }
        match message {
            PeerMessage::Zab(msg) => self.zab_step(Input::Recv { from, msg }),
            PeerMessage::Forward { session, cxid, op, auth, body, trace } if role == (Role::Leading) => {
                self.on_forward(from, session, cxid, op, auth, body, trace)
            }
            PeerMessage::SyncRequest { session, cxid } if role == (Role::Leading) => {
                let zxid = self.replica.peer.last_zxid();
                self.send_peer(from, &PeerMessage::SyncDone { session, cxid, zxid });
            }
            PeerMessage::SyncDone { session, cxid, zxid } if role == (Role::Following) => {
                let Some(&conn) = self.session_conn.get(&session) else { return };
                let Some(state) = self.connections.get_mut(&conn) else { return };
                for held in state.held.iter_mut() {
                    if let Held::Sync { xid, target, .. } = held
                        && *xid == cxid
                        && target.is_none()
                    {
                        *target = Some(zxid);
                        break;
                    }
                }
                self.drain_held(conn);
            }
            PeerMessage::Revalidate { session } if role == (Role::Leading) => {
                self.set_owner(session, from);
                self.send_peer(from, &PeerMessage::Revalidated { session });
            }
            PeerMessage::Revalidated { session } if role == (Role::Following) => self.revalidated(session),
            PeerMessage::Touch { sessions } if role == (Role::Leading) => {
                let now = self.mono_ms();
                for session in sessions {
                    self.tracker.touch(session, now);
                }
            }
            other => tracing::debug!(from, ?role, message = ?other, "ignoring a peer message in this role"),
        }
    }

    /// A follower sends a client's write to the leader and waits for its txn.
    pub(crate) fn forward(&mut self, conn: ConnId, cxid: i32, op_code: i32, body: Bytes, origin: Origin) {
        let Some(leader) = self.replica.leader else {
            self.close_connection(conn);
            return;
        };
        let caller = self.caller(conn);
        self.hold_write(conn);
        let trace = origin.trace_parent();
        let r = &mut self.replica;
        r.forward_seq += 1;
        let awaiting = Awaiting { origin, op: op_code, body: body.clone(), seq: r.forward_seq };
        r.awaiting.insert((caller.session_id, cxid), awaiting);
        let session = caller.session_id;
        let message = PeerMessage::Forward {
            session: caller.session_id,
            cxid,
            op: op_code,
            auth: caller.auth,
            body,
            trace,
        };
        if !self.send_peer(leader, &message) {
            // The link to the leader is down or its queue full: never wait in silence.
            self.replica.awaiting.remove(&(session, cxid));
            self.close_connection(conn);
        }
    }
}

//! Read-only mode (`readonlymode.enabled`), as ZooKeeper's `ReadOnlyZooKeeperServer`: an
//! ensemble member that has been without a quorum (LOOKING) for max(2 s, tickTime) admits the
//! clients whose ConnectRequest says `readOnly=true` (Java's `canBeReadOnly`, kazoo's
//! `read_only=True`) and answers them with `readOnly=true`. They read the tree as this
//! member last applied it; writes, `sync` and a top-level `check` are answered NotReadOnly
//! (-119). A new session made here is local: known to this member's tracker only, never a
//! txn. Clients that did not ask for read-only are still refused, and the connections this
//! member kept through the election stay parked, as without the mode. When the member serves
//! again (it follows or leads), every read-only connection is closed: the clients reconnect
//! and find a read-write server (kazoo and the Java client also look for one on their own).
//!
//! Shown as `Mode: read-only` and `READ-ONLY mode; serving only read-only clients` (`srvr`),
//! `zk_server_state read-only` (`mntr`), `ro` (`isro`).
//!
//! Hooks in the core: `on_connect` (admission, the response flag, the local session),
//! `on_request` (requests of read-only connections), `on_tick` ([`Core::read_only_tick`]),
//! and the 4lw gate.

use std::time::{Duration, Instant};

use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::response::Response;
use ferrokeeper_proto::{Code, ConnectRequest, ConnectResponse, op};

use super::Set;
use super::core::{Core, RequestFault};
use crate::tree::{ConnId, SessionId};
use crate::zab::Role;

/// ZooKeeper's lower bound on the wait before a looking member serves read-only clients.
const GRACE_MIN: Duration = Duration::from_millis(2000);

/// The read-only mode's state in the core.
#[derive(Debug, Default)]
pub struct ReadOnly {
    /// Serving read-only clients now.
    active: bool,
    /// Connections admitted in read-only mode.
    conns: Set<ConnId>,
    /// Sessions created in read-only mode (local to this member).
    local_sessions: Set<SessionId>,
}

impl ReadOnly {
    /// Whether `conn` was admitted in read-only mode (and the mode lasts).
    pub fn has(&self, conn: ConnId) -> bool {
        self.conns.contains(&conn)
    }
}

/// Requests a read-only server refuses (ZooKeeper's `ReadOnlyRequestProcessor`).
fn refused(op_code: i32) -> bool {
    matches!(
        op_code,
        op::SYNC
            | op::CREATE
            | op::CREATE2
            | op::CREATE_TTL
            | op::CREATE_CONTAINER
            | op::DELETE
            | op::DELETE_CONTAINER
            | op::SET_DATA
            | op::RECONFIG
            | op::SET_ACL
            | op::MULTI
            | op::CHECK
    )
}

impl Core {
    /// Whether this member serves read-only clients now.
    pub fn read_only_active(&self) -> bool {
        self.read_only.active
    }

    /// Whether the mode is due: enabled, in an ensemble, LOOKING for at least the grace
    /// period (since the election began, or since the start). Once on, it lasts as long as
    /// the member looks (an election that starts over does not end it).
    fn read_only_due(&self) -> bool {
        let replica = &self.replica;
        if replica.standalone {
            return false;
        }
        if !self.config.read_only_mode || replica.role != Role::Looking {
            return false;
        }
        if self.read_only.active {
            return true;
        }
        let since = replica.election.as_ref().map_or(self.started, |(_, started)| *started);
        let grace = GRACE_MIN.max(Duration::from_millis(u64::from(self.config.tick_time_ms)));
        self.io.now().saturating_duration_since(since) >= grace
    }

    /// Core tick: enters the mode when it is due, leaves it when the member serves again
    /// (closing every read-only connection and forgetting the local sessions).
    pub(crate) fn read_only_tick(&mut self) {
        let live: Vec<ConnId> = self.read_only.conns.iter().copied().collect();
        for conn in live {
            if !self.connections.contains_key(&conn) {
                self.read_only.conns.remove(&conn);
            }
        }
        let due = self.read_only_due();
        if due == self.read_only.active {
            return;
        }
        self.read_only.active = due;
        if due {
            tracing::info!("no quorum: serving read-only clients (readonlymode.enabled)");
            self.metrics.set_role("read-only");
            return;
        }
        let conns: Vec<ConnId> = self.read_only.conns.drain().collect();
        tracing::info!(connections = conns.len(), "quorum back: closing the read-only connections");
        for conn in conns {
            self.close_connection(conn);
        }
        for session in std::mem::take(&mut self.read_only.local_sessions) {
            self.tracker.remove(session);
            self.session_conn.remove(&session);
        }
    }

    /// `on_connect`, for a member without a leader: whether this client comes in read-only.
    pub(crate) fn read_only_admits(&self, request: &ConnectRequest) -> bool {
        self.read_only.active && request.read_only == Some(true)
    }

    /// `on_connect`, once the connection is registered in read-only mode: remembers it (and
    /// the session, when new: local, no txn) and answers.
    pub(crate) fn read_only_admitted(&mut self, conn: ConnId, new_session: bool, response: ConnectResponse) {
        self.read_only.conns.insert(conn);
        if new_session {
            self.read_only.local_sessions.insert(response.session_id);
        }
        self.send_connect_response(conn, &response);
    }

    /// `on_request`, for a connection admitted in read-only mode: reads are served from the
    /// tree as it is, writes and `sync` refused with NotReadOnly, closeSession ends the
    /// session here (a global one is left to expire at the leader).
    pub(crate) fn read_only_request(
        &mut self,
        conn: ConnId,
        xid: i32,
        op_code: i32,
        request: Result<Request, RequestFault>,
        received: Instant,
    ) {
        let zxid = self.tree.last_processed_zxid();
        if refused(op_code) {
            self.reply(conn, xid, zxid, Err(Code::NotReadOnly), op_code, received);
            return;
        }
        match request {
            Ok(Request::CloseSession) => {
                if let Some(session) = self.connections.get(&conn).map(|c| c.caller.session_id) {
                    self.tracker.remove(session);
                    self.session_conn.remove(&session);
                    self.read_only.local_sessions.remove(&session);
                }
                self.reply(conn, xid, zxid, Ok(Response::Empty), op_code, received);
                self.close_connection(conn);
            }
            Ok(request) => self.execute(conn, xid, op_code, request, received),
            Err(RequestFault::UnknownOp) => {
                self.reply(conn, xid, -1, Err(Code::Unimplemented), op_code, received);
                self.close_connection(conn);
            }
            Err(RequestFault::Malformed) => {
                self.reply(conn, xid, zxid, Err(Code::MarshallingError), op_code, received);
            }
        }
    }
}

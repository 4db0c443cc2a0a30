//! Client connections as the core sees them: the handshake (new or resumed session), the
//! per-connection output buffer (replies and watch events in execution order, handed to the
//! connection task once per batch), and closing.

use ::core::net::SocketAddr;
use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use ferrokeeper_proto::response::Response;
use ferrokeeper_proto::{
    Code, ConnectRequest, ConnectResponse, Id, Jute, ReplyHeader, WatcherEvent, frame, op,
};

use super::core::{ConnState, Core, Origin};
use super::requests::is_write_op;
use super::stats::LatencyStats;
use crate::tree::{self, Caller, ConnId};

impl Core {
    pub fn on_connect(&mut self, conn: ConnId, peer: SocketAddr, request: ConnectRequest, tls_auth: Vec<Id>) {
        if !self.serving() && !self.read_only_admits(&request) {
            tracing::debug!(conn, "refusing a client: this server has no leader");
            self.io.close(conn);
            return;
        }
        let last_zxid = self.tree.last_processed_zxid();
        if request.last_zxid_seen > last_zxid {
            tracing::info!(
                conn,
                client_zxid = format_args!("0x{:x}", request.last_zxid_seen),
                server_zxid = format_args!("0x{:x}", last_zxid),
                "refusing connection: client has seen a newer zxid; client must try another server"
            );
            self.io.close(conn);
            return;
        }
        let timeout_ms = self.config.negotiate_timeout(request.timeout);
        let now = self.mono_ms();
        let read_only = request.read_only.map(|_| self.read_only_active());
        let session_id = if request.session_id == 0 {
            let session_id = self.tracker.next_session_id();
            self.tracker.add(session_id, timeout_ms, now);
            self.touch_later(session_id);
            session_id
        } else {
            let id = request.session_id;
            // As ZooKeeper: whatever connection the session had is closed first, even when
            // the password then turns out wrong.
            if let Some(old) = self.session_conn.remove(&id) {
                self.close_connection(old);
            }
            let password = tree::session_password(id);
            let valid = (self.tree.sessions().contains_key(&id) || self.local_sessions.contains(id))
                && (!self.may_propose() || self.tracker.is_live(id))
                && request.passwd.as_deref() == Some(&password[..]);
            if !valid {
                tracing::info!(conn, session = format_args!("0x{id:x}"), "invalid or expired session");
                let response = ConnectResponse {
                    protocol_version: 0,
                    timeout: 0,
                    session_id: 0,
                    passwd: Some(Bytes::from_static(&[0; 16])),
                    read_only,
                };
                let mut out = BytesMut::new();
                frame::write(&mut out, |b| response.write(b));
                self.io.deliver(conn, out.freeze());
                self.io.close(conn);
                return;
            }
            self.tracker.add(id, timeout_ms, now);
            self.touch_later(id);
            id
        };
        if let Some(old) = self.session_conn.insert(session_id, conn)
            && old != conn
        {
            self.close_connection(old);
        }
        let response = ConnectResponse {
            protocol_version: 0,
            timeout: timeout_ms,
            session_id,
            passwd: Some(Bytes::copy_from_slice(&tree::session_password(session_id))),
            read_only,
        };
        let ip = peer.ip().to_string();
        let state = ConnState {
            peer,
            caller: Caller { session_id, conn, auth: tree::acl::connection_ids(&ip, tls_auth) },
            timeout_ms,
            pending: BytesMut::with_capacity(4096),
            received: 0,
            sent: 0,
            established_ms: self.io.wall_ms(),
            last_op: "NA",
            last_cxid: -1,
            last_zxid: -1,
            last_response_ms: 0,
            last_latency_ms: 0,
            latency: LatencyStats::default(),
            queued: 0,
            unanswered: 0,
            held: VecDeque::new(),
        };
        self.connections.insert(conn, state);
        if self.read_only_active() {
            self.read_only_admitted(conn, request.session_id == 0, response);
        } else if request.session_id == 0 {
            // A new session is a txn: the client hears of it once it is committed (unless it
            // is a local session: `local_sessions.rs`).
            if !self.local_session_created(conn, &response) {
                self.create_session(conn, session_id, timeout_ms, response);
            }
        } else {
            self.claim_session(conn, session_id, response);
        }
        tracing::debug!(conn, session = format_args!("0x{session_id:x}"), timeout_ms, "session established");
    }

    pub(crate) fn send_connect_response(&mut self, conn: ConnId, response: &ConnectResponse) {
        let Some(state) = self.connections.get_mut(&conn) else { return };
        frame::write(&mut state.pending, |b| response.write(b));
        self.dirty.push(conn);
    }

    pub(crate) fn caller(&self, conn: ConnId) -> Caller {
        self.connections.get(&conn).map(|c| c.caller.clone()).unwrap_or_default()
    }

    /// The origin of a client's write (`close`: a closeSession). Tracing samples writes here,
    /// so that a traced write's span opens at `received`.
    pub(crate) fn client_origin(
        &self,
        conn: ConnId,
        xid: i32,
        op: i32,
        received: Instant,
        close: bool,
    ) -> Origin {
        let trace = self.tracer.as_ref().filter(|tracer| tracer.sample()).map(|tracer| {
            let session = self.connections.get(&conn).map_or(0, |c| c.caller.session_id);
            Box::new(tracer.start(op, received, session, xid))
        });
        if close {
            Origin::Close { conn, xid, op, received, trace }
        } else {
            Origin::Client { conn, xid, op, received, trace }
        }
    }

    pub(crate) fn dequeue(&mut self, conn: ConnId) {
        if let Some(state) = self.connections.get_mut(&conn) {
            state.queued -= 1;
        }
    }

    pub(crate) fn push_event(&mut self, conn: ConnId, zxid: i64, event: &WatcherEvent) {
        let Some(state) = self.connections.get_mut(&conn) else { return };
        let header = ReplyHeader { xid: ferrokeeper_proto::op::xid::NOTIFICATION, zxid, err: 0 };
        frame::write(&mut state.pending, |b| {
            header.write(b);
            event.write(b);
        });
        state.sent += 1;
        self.packets_sent += 1;
        self.dirty.push(conn);
    }

    pub(crate) fn reply(
        &mut self,
        conn: ConnId,
        xid: i32,
        zxid: i64,
        result: Result<Response, Code>,
        op_code: i32,
        received: Instant,
    ) {
        let Some(state) = self.connections.get_mut(&conn) else { return };
        if state.unanswered > 0 {
            state.unanswered -= 1;
            self.metrics.outstanding_requests.dec();
        }
        let err = match &result {
            Ok(_) => 0,
            Err(code) => code.as_i32(),
        };
        if super::session_moved::closes_instead_of_reply(err) {
            self.close_connection(conn);
            return;
        }
        let header = ReplyHeader { xid, zxid, err };
        frame::write(&mut state.pending, |b| {
            header.write(b);
            if let Ok(body) = &result {
                body.write_body(b);
            }
        });
        // Writes are traced when applied (with their stages); every other answer here.
        if let Some(tracer) = &self.tracer
            && !is_write_op(op_code)
            && !matches!(op_code, op::PING | op::CLOSE_SESSION)
            && tracer.sample()
        {
            tracer.read(op_code, received, state.caller.session_id, xid, zxid, err);
        }
        let elapsed = self.io.now().saturating_duration_since(received);
        self.metrics.observe_request(op_code, elapsed.as_secs_f64());
        if err != 0 {
            self.metrics.count_error(err);
        }
        // Per-request log line at TRACE (off by default: a level check).
        tracing::trace!(
            target: super::core::TRACE_TARGET,
            conn,
            session = format_args!("0x{:x}", state.caller.session_id),
            xid,
            op = op::name(op_code),
            zxid,
            err,
            micros = elapsed.as_micros() as u64,
            "reply"
        );
        let latency_ms = elapsed.as_millis() as u64;
        state.sent += 1;
        state.last_op = op::name(op_code);
        state.last_cxid = xid;
        state.last_zxid = zxid;
        state.last_response_ms = self.io.wall_ms();
        state.last_latency_ms = latency_ms;
        state.latency.record(latency_ms);
        self.packets_sent += 1;
        if op_code != op::PING {
            self.latency.record(latency_ms);
        }
        self.dirty.push(conn);
    }

    /// Hands what each connection accumulated during this batch to the shell. A client that
    /// stopped reading was cut off by it: forgotten here.
    pub fn flush(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for conn in dirty.drain(..) {
            let Some(state) = self.connections.get_mut(&conn) else { continue };
            if state.pending.is_empty() {
                continue;
            }
            let data = state.pending.split().freeze();
            if !self.io.deliver(conn, data) {
                self.drop_connection(conn);
            }
        }
        self.dirty = dirty;
    }

    /// Queues a close after whatever is pending and forgets the connection.
    pub(crate) fn close_connection(&mut self, conn: ConnId) {
        if let Some(state) = self.connections.get_mut(&conn)
            && !state.pending.is_empty()
        {
            let data = state.pending.split().freeze();
            self.io.deliver(conn, data);
        }
        self.io.close(conn);
        self.drop_connection(conn);
    }

    pub fn drop_connection(&mut self, conn: ConnId) {
        let Some(state) = self.connections.remove(&conn) else { return };
        // Its unanswered requests will never be answered: no longer outstanding.
        self.metrics.outstanding_requests.dec_by(i64::from(state.unanswered));
        self.tree.remove_connection(conn);
        let session_id = state.caller.session_id;
        if self.session_conn.get(&session_id) == Some(&conn) {
            self.session_conn.remove(&session_id);
        }
    }

    pub(crate) fn close_all_connections(&mut self) {
        let conns: Vec<ConnId> = self.connections.keys().copied().collect();
        for conn in conns {
            self.close_connection(conn);
        }
        self.session_conn.clear();
        {
            let r = &mut self.replica;
            r.awaiting.clear();
            r.sync_waiters.clear();
            r.touched.clear();
        }
    }
}

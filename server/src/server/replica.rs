//! The replica loop: in ensemble mode the core task owns a [`zab::Peer`] next to the tree and
//! executes the peer's outputs (the shell's duties listed in `zab/mod.rs`).
//!
//! ```text
//! leader:   client write ─► prep(zxid = peer.next_zxid) ─► Propose ─► Persist ─► log
//!           follower Forward ─┘                                  log durable ─► Persisted
//!           Commit{upto} ─► apply pending txns ≤ upto ─► replies (to local or forwarded origin)
//! follower: client write ─► Forward{session, cxid, op, body, auth} ─► leader
//!           Proposal ─► Persist ─► log (+ remember the record) … Commit ─► apply, and answer
//!           the waiting client matched by (session id, cxid) of the TxnHeader
//! ```
//!
//! Per connection, requests complete in order: in ensemble mode every request that must wait
//! (behind the connection's writes or a `sync`) sits in the connection's `held` queue.
//! A server that is not following or leading serves no client and refuses new connections;
//! a follower that loses its leader keeps its client connections (`failover.rs`: parking,
//! forwarding again after the next sync). Writes whose proposals the new leader truncated
//! close their connection (ConnectionLoss). A full leader queues writes for a zxid
//! (`leader_queue.rs`); it forgets a follower's waiting forwards when that follower's link
//! ends (the follower forwards them again), so no write runs twice.
//!
//! Sessions are global: createSession / closeSession are txns; followers report the sessions
//! their clients touched to the leader (`Touch`, every core tick), and the leader's
//! [`SessionTracker`](crate::tree::SessionTracker) expires sessions by proposing closeSession.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::response::Response as R;
use ferrokeeper_proto::txn::{ErrorTxn, TxnRecord};
use ferrokeeper_proto::{Code, ConnectResponse, Jute, SyncResponse, op};
use tokio::sync::mpsc;

use super::core::{Core, Origin, Pending};
use super::failover::{Awaiting, Parked};
use super::leader_queue::WaitingWrite;
use crate::quorum::transport::{Incoming, PeerSender};
use crate::quorum::wire::PeerMessage;
use crate::tree::{Caller, ConnId, SessionId, TreeConfig, Txn, TxnHeader};
use crate::txlog::LogWriter;
use crate::zab::{Input, Output, Peer, Role, Sid, Zxid};

/// A forwarded write whose body could not be decoded at the follower.
pub(super) const FORWARD_MALFORMED: i32 = i32::MIN;

/// A request waiting, in its connection's order.
pub enum Held {
    /// A write (or session creation) in flight; `done` once applied.
    Write { done: bool },
    /// A read to run once everything before it completed.
    Read { xid: i32, op: i32, request: Request, received: Instant },
    /// A sync: answered once the local tree has applied `target` (known once the leader told).
    Sync { xid: i32, path: String, received: Instant, target: Option<Zxid> },
}

/// The ensemble half of the core.
pub struct Replica {
    pub peer: Peer,
    pub(super) sender: PeerSender,
    pub incoming: Option<mpsc::Receiver<Incoming>>,
    pub role: Role,
    pub leader: Option<Sid>,
    /// The leader's own proposals between `Propose` and their `Persist` output.
    pub(super) proposing: HashMap<Zxid, (TxnRecord, Origin)>,
    /// Writes this follower forwarded, by (session, cxid), until their txn is logged.
    pub(super) awaiting: HashMap<(SessionId, i32), Awaiting>,
    /// Order of forwarding (a re-forward after a leader change keeps each session's order).
    pub(super) forward_seq: u64,
    /// Connections with a sync at the front of their held queue.
    pub(super) sync_waiters: HashSet<ConnId>,
    /// Sessions active since the last `Touch` (follower).
    pub(super) touched: HashSet<SessionId>,
    pub(super) tree_config: TreeConfig,
    pub(super) data_dir: std::path::PathBuf,
    /// The election under way (LOOKING): its span and start.
    pub(super) election: Option<(tracing::Span, Instant)>,
    /// Requests of kept connections that arrived while LOOKING, in arrival order.
    pub(super) parked: VecDeque<Parked>,
    /// Leader: writes waiting for a zxid (the outstanding-proposal bound was reached), in
    /// arrival order. Proposed as commits free room; never dropped.
    pub(super) waiting_zxid: VecDeque<WaitingWrite>,
    /// Leader: which server holds each session (`session_moved.rs`).
    pub(super) owners: super::session_moved::Owners,
}

impl Replica {
    pub fn new(
        peer: Peer,
        sender: PeerSender,
        incoming: mpsc::Receiver<Incoming>,
        tree_config: TreeConfig,
        data_dir: std::path::PathBuf,
    ) -> Replica {
        Replica {
            peer,
            sender,
            incoming: Some(incoming),
            role: Role::Looking,
            election: None,
            leader: None,
            proposing: HashMap::new(),
            awaiting: HashMap::new(),
            forward_seq: 0,
            sync_waiters: HashSet::new(),
            touched: HashSet::new(),
            parked: VecDeque::new(),
            waiting_zxid: VecDeque::new(),
            owners: Default::default(),
            tree_config,
            data_dir,
        }
    }

    pub(super) fn send(&self, to: Sid, message: &PeerMessage) {
        self.sender.send(to, message.encode());
    }
}

pub(super) fn origin_conn(origin: &Origin) -> Option<ConnId> {
    match origin {
        Origin::Client { conn, .. } | Origin::Connect { conn, .. } | Origin::Close { conn, .. } => {
            Some(*conn)
        }
        Origin::Forwarded { .. } | Origin::Internal => None,
    }
}

impl Core {
    pub(super) fn role(&self) -> Option<Role> {
        self.ensemble.as_ref().map(|r| r.role)
    }

    /// What 4lw `Mode:` and `zk_server_state` print.
    pub fn mode(&self) -> &'static str {
        match self.role() {
            None => "standalone",
            Some(Role::Leading) => "leader",
            Some(Role::Following) if self.is_observer() => "observer",
            Some(Role::Following) => "follower",
            Some(Role::Looking) if self.read_only_active() => "read-only",
            Some(Role::Looking) => "looking",
        }
    }

    /// mntr `zk_peer_state`, in ensemble mode.
    pub fn peer_state(&self) -> Option<&'static str> {
        self.role().map(|role| match role {
            Role::Leading => "leading - broadcast",
            Role::Following if self.is_observer() => "observing - broadcast",
            Role::Following => "following - broadcast",
            Role::Looking => "looking",
        })
    }

    /// mntr `zk_synced_followers` (leader only).
    pub fn synced_followers(&self) -> Option<usize> {
        match &self.ensemble {
            Some(r) if r.role == Role::Leading => Some(r.peer.synced_followers()),
            _ => None,
        }
    }

    /// Whether clients are served: always standalone, when following or leading otherwise.
    pub(super) fn serving(&self) -> bool {
        self.role().is_none_or(|role| role != Role::Looking)
    }

    /// Whether this server may stamp txns (standalone, or the established leader).
    pub(super) fn may_propose(&self) -> bool {
        self.role().is_none_or(|role| role == Role::Leading)
    }

    /// The zxid the next prepped txn gets, if this server may propose one now.
    pub(super) fn prep_zxid(&self) -> Option<i64> {
        match &self.ensemble {
            None => Some(self.next_zxid),
            Some(r) => r.peer.next_zxid(),
        }
    }

    pub(super) fn zab_now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub(super) fn zab_tick(&mut self) {
        let now_ms = self.zab_now_ms();
        self.zab_step(Input::Tick { now_ms });
    }

    /// Feeds the log's durable watermark to the peer.
    pub(super) fn zab_persisted(&mut self, upto: Zxid) {
        self.zab_step(Input::Persisted { upto });
    }

    /// One input, then its outputs in order (duty 1).
    pub(super) fn zab_step(&mut self, input: Input) {
        let mut queue = VecDeque::from([input]);
        while let Some(input) = queue.pop_front() {
            let Some(replica) = self.ensemble.as_mut() else { return };
            let mut out = Vec::new();
            replica.peer.step(input, &mut out);
            for output in out {
                if let Some(follow_up) = self.zab_output(output) {
                    queue.push_back(follow_up);
                }
            }
        }
    }

    fn fail(&mut self, reason: String) {
        tracing::error!("{reason}; stopping the server");
        let _ = self.fatal.send(Some(reason));
    }

    fn zab_output(&mut self, output: Output) -> Option<Input> {
        match output {
            Output::Send { to, msg } => {
                if let Some(r) = self.ensemble.as_ref() {
                    r.send(to, &PeerMessage::Zab(msg));
                }
            }
            Output::Persist { entries } => {
                for (zxid, payload) in entries {
                    self.persist_entry(zxid, payload);
                }
            }
            Output::Truncate { after } => {
                tracing::info!(
                    after = format_args!("0x{after:x}"),
                    "truncating the log (diverged from the leader)"
                );
                let dir = self.config.log.dir.clone();
                self.restart_log(after, |_| crate::txlog::truncate::truncate_after(&dir, after).map(|_| ()));
                // Proposals of the old leader that the new one does not have: never committed.
                // A client waiting on one cannot be told which (ConnectionLoss).
                let mut lost = Vec::new();
                self.pending.retain(|p| match p {
                    Pending::Write { record, origin, .. } if record.header.zxid > after => {
                        lost.extend(origin_conn(origin));
                        false
                    }
                    _ => true,
                });
                for conn in lost {
                    self.close_connection(conn);
                }
            }
            Output::InstallSnapshot { zxid, data } => self.install_snapshot(zxid, data),
            Output::Commit { upto } => {
                self.on_durable(upto);
                self.drain_sync_waiters();
                self.propose_waiting();
            }
            Output::SaveEpochs { current, accepted } => {
                let dir = self.ensemble.as_ref().map(|r| r.data_dir.clone()).unwrap_or_default();
                if let Err(error) = crate::quorum::epochs::save(&dir, current, accepted) {
                    self.fail(format!("cannot write the epoch files in {}: {error}", dir.display()));
                }
            }
            Output::NeedSnapshot { to } => self.snapshot_for_peer(to),
            Output::RoleChanged { role, leader, epoch } => self.on_role_changed(role, leader, epoch),
            Output::ProposalDropped { zxid } => {
                let dropped = self.ensemble.as_mut().and_then(|r| r.proposing.remove(&zxid));
                if let Some(conn) = dropped.as_ref().and_then(|(_, origin)| origin_conn(origin)) {
                    // The outcome is unknown to the client: ConnectionLoss.
                    self.close_connection(conn);
                }
            }
        }
        None
    }

    /// Duty 2: append to the log; remember the txn (and who waits for it) until committed.
    fn persist_entry(&mut self, zxid: Zxid, payload: Bytes) {
        let Some(replica) = self.ensemble.as_mut() else { return };
        let (record, origin) = match replica.proposing.remove(&zxid) {
            Some(proposed) => proposed,
            None => match TxnRecord::decode(&payload) {
                Ok(record) if record.header.zxid == zxid => {
                    let key = (record.header.client_id, record.header.cxid);
                    let origin = replica.awaiting.remove(&key).map_or(Origin::Internal, |a| a.origin);
                    (record, origin)
                }
                _ => {
                    self.fail(format!("the leader sent an undecodable txn at zxid 0x{zxid:x}"));
                    return;
                }
            },
        };
        self.log.append(zxid, payload.to_vec());
        self.pending.push_back(Pending::Write { record, origin, proposed: Instant::now() });
    }

    /// Stops the log writer, runs `change` on the log directory, starts a new writer whose
    /// durable watermark is `durable` (duty 1: done before the next output).
    fn restart_log(&mut self, durable: Zxid, change: impl FnOnce(&std::path::Path) -> std::io::Result<()>) {
        let settings = self.config.log.clone();
        let fresh = match LogWriter::start(settings.clone(), durable) {
            Ok(log) => log,
            Err(error) => {
                self.fail(format!(
                    "cannot restart the transaction log in {}: {error}",
                    settings.dir.display()
                ));
                return;
            }
        };
        let old = std::mem::replace(&mut self.log, fresh);
        old.shutdown();
        if let Err(error) = change(&settings.dir) {
            self.fail(format!("cannot rewrite the transaction log in {}: {error}", settings.dir.display()));
        }
        self.log_status = self.log.status();
        self.log_replaced = true;
    }

    /// Duty 5: replace the state and the log with the leader's snapshot.
    fn install_snapshot(&mut self, zxid: Zxid, data: Bytes) {
        let Some(tree_config) = self.ensemble.as_ref().map(|r| r.tree_config.clone()) else { return };
        tracing::info!(
            zxid = format_args!("0x{zxid:x}"),
            bytes = data.len(),
            "installing the leader's snapshot"
        );
        let tree = match crate::txlog::snapshot::decode(&data, tree_config) {
            Ok(tree) => tree,
            Err(reason) => {
                self.fail(format!("the leader's snapshot does not load: {reason}"));
                return;
            }
        };
        if let Err(error) = crate::txlog::snapshot::write(&self.config.snap_dir, zxid, &data) {
            self.fail(format!("cannot write the snapshot in {}: {error}", self.config.snap_dir.display()));
            return;
        }
        self.restart_log(zxid, crate::txlog::truncate::remove_all);
        self.pending.clear();
        self.close_all_connections();
        self.tree = tree;
    }

    pub(super) fn close_all_connections(&mut self) {
        let conns: Vec<ConnId> = self.connections.keys().copied().collect();
        for conn in conns {
            self.close_connection(conn);
        }
        self.session_conn.clear();
        if let Some(r) = self.ensemble.as_mut() {
            r.awaiting.clear();
            r.sync_waiters.clear();
            r.touched.clear();
        }
    }

    /// Entering LOOKING: counts the election and opens its span.
    pub(super) fn start_election(&mut self) {
        let Some(replica) = self.ensemble.as_mut() else { return };
        if replica.election.is_none() {
            let span = tracing::info_span!(
                "election",
                role = tracing::field::Empty,
                leader = tracing::field::Empty,
                epoch = tracing::field::Empty
            );
            replica.election = Some((span, Instant::now()));
            self.metrics.elections.inc();
        }
    }

    fn on_role_changed(&mut self, role: Role, leader: Option<Sid>, epoch: i64) {
        if role == Role::Looking {
            self.start_election();
        }
        let Some(replica) = self.ensemble.as_mut() else { return };
        let was = replica.role;
        replica.role = role;
        replica.leader = leader;
        if role != Role::Looking
            && let Some((span, started)) = replica.election.take()
        {
            span.record("role", tracing::field::debug(role));
            span.record("leader", leader);
            span.record("epoch", epoch);
            let seconds = started.elapsed().as_secs_f64();
            span.in_scope(|| tracing::info!(?role, ?leader, epoch, seconds, "election finished"));
            self.metrics.observe_election(seconds);
        }
        tracing::info!(?role, ?leader, epoch, "role changed");
        self.metrics.set_role(self.mode());
        if was == Role::Leading {
            // The leader's pipeline goes: clients reconnect elsewhere; the outcome of their
            // outstanding writes is unknown (forwarded ones: the followers close theirs).
            if let Some(r) = self.ensemble.as_mut() {
                r.waiting_zxid.clear();
            }
            self.close_all_connections();
        } else if role == Role::Looking && was == Role::Following {
            // Writes in flight stay: the next leader's sync tells which were committed; the
            // others are forwarded again (`resume_after_election`).
            if let Some(r) = self.ensemble.as_mut() {
                r.sync_waiters.clear();
            }
        }
        if was == Role::Leading && role != Role::Leading {
            // Proposals that may never commit: forget prep's overlay (its size, not the
            // tree's: no pause that grows with the tree).
            self.tree.discard_prepped();
        }
        if role != Role::Looking && was == Role::Looking {
            self.resume_after_election();
        }
        if role == Role::Leading {
            // The leader tracks every session afresh with its full timeout, as ZooKeeper does.
            let now = self.mono_ms();
            let sessions: Vec<(SessionId, i32)> =
                self.tree.sessions().iter().map(|(s, t)| (*s, *t)).collect();
            for (session, timeout) in sessions {
                self.tracker.add(session, timeout, now);
            }
        }
    }

    /// A frame from another server, or the end of a connection to one.
    pub(super) fn on_peer_message(&mut self, incoming: Incoming) {
        let (from, bytes) = match incoming {
            Incoming::Message { from, message } => (from, message),
            Incoming::LinkDown { from } => {
                // Its forwarded writes still waiting for a zxid are forgotten: the follower
                // loses this leader too and forwards them again after its next sync (any
                // already proposed reach it in that sync), so none runs twice.
                if let Some(r) = self.ensemble.as_mut() {
                    r.waiting_zxid.retain(|w| !matches!(w, WaitingWrite::Forwarded(f) if f.from == from));
                }
                self.zab_step(Input::LinkDown { peer: from });
                return;
            }
        };
        let message = match PeerMessage::decode(&bytes) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(from, %error, "dropping a peer message");
                return;
            }
        };
        let role = self.role();
        match message {
            PeerMessage::Zab(msg) => self.zab_step(Input::Recv { from, msg }),
            PeerMessage::Forward { session, cxid, op, auth, body, trace } if role == Some(Role::Leading) => {
                self.on_forward(from, session, cxid, op, auth, body, trace)
            }
            PeerMessage::SyncRequest { session, cxid } if role == Some(Role::Leading) => {
                if let Some(r) = self.ensemble.as_ref() {
                    let zxid = r.peer.last_zxid();
                    r.send(from, &PeerMessage::SyncDone { session, cxid, zxid });
                }
            }
            PeerMessage::SyncDone { session, cxid, zxid } if role == Some(Role::Following) => {
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
            PeerMessage::Revalidate { session } if role == Some(Role::Leading) => {
                self.set_owner(session, from)
            }
            PeerMessage::Touch { sessions } if role == Some(Role::Leading) => {
                let now = self.mono_ms();
                for session in sessions {
                    self.tracker.touch(session, now);
                }
            }
            other => tracing::debug!(from, ?role, message = ?other, "ignoring a peer message in this role"),
        }
    }

    /// Leader: stamps a prepped txn with the peer's next zxid and proposes it (duty 4).
    pub(super) fn zab_propose(&mut self, caller: &Caller, cxid: i32, txn: Txn, origin: Origin) {
        let Some(zxid) = self.prep_zxid() else {
            if let Some(conn) = origin_conn(&origin) {
                self.close_connection(conn);
            }
            return;
        };
        let header = TxnHeader {
            client_id: caller.session_id,
            cxid,
            zxid,
            time: super::core::wall_ms(),
            txn_type: txn.txn_type(),
        };
        let record = TxnRecord { header, txn };
        let payload = Bytes::from(record.encode_to_vec());
        if let Some(conn) = origin_conn(&origin) {
            self.hold_write(conn);
        }
        if let Some(r) = self.ensemble.as_mut() {
            r.proposing.insert(zxid, (record, origin));
        }
        self.zab_step(Input::Propose { zxid, payload });
    }

    pub(super) fn hold_write(&mut self, conn: ConnId) {
        if let Some(state) = self.connections.get_mut(&conn) {
            state.queued += 1;
            state.held.push_back(Held::Write { done: false });
        }
    }

    /// A follower sends a client's write to the leader and waits for its txn.
    pub(super) fn forward(&mut self, conn: ConnId, cxid: i32, op_code: i32, body: Bytes, origin: Origin) {
        let Some(leader) = self.ensemble.as_ref().and_then(|r| r.leader) else {
            self.close_connection(conn);
            return;
        };
        let caller = self.caller(conn);
        self.hold_write(conn);
        let trace = origin.trace_parent();
        let sent = self.ensemble.as_mut().is_some_and(|r| {
            r.forward_seq += 1;
            let awaiting = Awaiting { origin, op: op_code, body: body.clone(), seq: r.forward_seq };
            r.awaiting.insert((caller.session_id, cxid), awaiting);
            let message = PeerMessage::Forward {
                session: caller.session_id,
                cxid,
                op: op_code,
                auth: caller.auth,
                body,
                trace,
            };
            r.sender.send(leader, message.encode())
        });
        if !sent {
            // The link to the leader is down or its queue full: never wait in silence.
            if let Some(r) = self.ensemble.as_mut() {
                r.awaiting.remove(&(caller.session_id, cxid));
            }
            self.close_connection(conn);
        }
    }

    /// A new session in ensemble mode: a txn at the leader, forwarded from a follower.
    pub(super) fn ensemble_create_session(
        &mut self,
        conn: ConnId,
        session: SessionId,
        timeout_ms: i32,
        response: ConnectResponse,
    ) {
        if self.role() == Some(Role::Leading) {
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

    pub(super) fn touch_later(&mut self, session: SessionId) {
        if let Some(r) = self.ensemble.as_mut()
            && r.role == Role::Following
        {
            r.touched.insert(session);
        }
    }

    /// Follower, every core tick: report the active sessions to the leader.
    pub(super) fn send_touches(&mut self) {
        let Some(r) = self.ensemble.as_mut() else { return };
        if r.role != Role::Following || r.touched.is_empty() {
            return;
        }
        let Some(leader) = r.leader else { return };
        let sessions: Vec<SessionId> = r.touched.drain().collect();
        r.send(leader, &PeerMessage::Touch { sessions });
    }

    /// A decoded client request in ensemble mode (after the session checks).
    pub(super) fn ensemble_request(
        &mut self,
        conn_id: ConnId,
        xid: i32,
        op_code: i32,
        request: Result<Request, ()>,
        received: Instant,
    ) {
        if self.role() == Some(Role::Looking) {
            self.park(conn_id, xid, op_code, request, received);
            return;
        }
        let Some(conn) = self.connections.get(&conn_id) else { return };
        let session = conn.caller.session_id;
        let must_wait = !conn.held.is_empty();
        self.touch_later(session);
        let leading = self.role() == Some(Role::Leading);
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
                let target = if leading { self.ensemble.as_ref().map(|r| r.peer.last_zxid()) } else { None };
                if let Some(state) = self.connections.get_mut(&conn_id) {
                    state.queued += 1;
                    state.held.push_back(Held::Sync { xid, path: sync.path, received, target });
                }
                if !leading
                    && let Some(r) = self.ensemble.as_ref()
                    && let Some(leader) = r.leader
                {
                    r.send(leader, &PeerMessage::SyncRequest { session, cxid: xid });
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

    /// A txn of this connection was applied (its reply is queued): run what waited behind it.
    pub(super) fn write_applied(&mut self, conn: ConnId) {
        let Some(state) = self.connections.get_mut(&conn) else { return };
        for held in state.held.iter_mut() {
            if let Held::Write { done } = held
                && !*done
            {
                *done = true;
                break;
            }
        }
        self.drain_held(conn);
    }

    /// Completes the connection's held requests from the front while they can complete.
    pub(super) fn drain_held(&mut self, conn: ConnId) {
        loop {
            let applied = self.tree.last_processed_zxid();
            let Some(state) = self.connections.get_mut(&conn) else { return };
            match state.held.front() {
                None | Some(Held::Write { done: false }) => return,
                Some(Held::Write { done: true }) => {
                    state.held.pop_front();
                }
                Some(Held::Sync { target: Some(target), .. }) if *target <= applied => {
                    let Some(Held::Sync { xid, path, received, .. }) = state.held.pop_front() else { return };
                    state.queued = state.queued.saturating_sub(1);
                    let response = Ok(R::Sync(SyncResponse { path }));
                    self.reply(conn, xid, applied, response, op::SYNC, received);
                }
                Some(Held::Sync { .. }) => {
                    if let Some(r) = self.ensemble.as_mut() {
                        r.sync_waiters.insert(conn);
                    }
                    return;
                }
                Some(Held::Read { .. }) => {
                    let Some(Held::Read { xid, op, request, received }) = state.held.pop_front() else {
                        return;
                    };
                    state.queued = state.queued.saturating_sub(1);
                    self.execute(conn, xid, op, request, received);
                }
            }
        }
    }

    fn drain_sync_waiters(&mut self) {
        let Some(r) = self.ensemble.as_mut() else { return };
        if r.sync_waiters.is_empty() {
            return;
        }
        let waiters: Vec<ConnId> = r.sync_waiters.drain().collect();
        for conn in waiters {
            self.drain_held(conn);
        }
    }

    /// After a txn was applied in ensemble mode: a closeSession (expiry at the leader, or a
    /// client's close elsewhere) ends the session's local connection too.
    pub(super) fn ensemble_applied(&mut self, header: &TxnHeader, origin_conn: Option<ConnId>) {
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

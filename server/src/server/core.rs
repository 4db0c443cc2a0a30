//! The core task: the single owner of the tree, the session tracker and the connection table.
//! It executes requests in arrival order, stamps writes with zxids and time, delivers watch
//! events and replies, expires sessions and reaps containers/TTL nodes on a timer.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::response::{Response, Response as R};
use ferrokeeper_proto::txn::{ErrorTxn, TxnRecord};
use ferrokeeper_proto::{
    Code, ConnectRequest, ConnectResponse, Id, Jute, ReplyHeader, SetWatches2, SyncResponse, WatcherEvent,
    WhoAmIResponse, frame, op,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::Config;
use crate::metrics::STAGES;
use crate::telemetry::{RequestTrace, RequestTracer};
use crate::tree::{self, Caller, ConnId, DataTree, SessionId, SessionTracker, Txn, TxnHeader};
use crate::txlog::{LogStatus, LogWriter};

/// The version string clients parse (they decide which opcodes to use from it).
pub const VERSION: &str =
    concat!("3.9.3-ferrokeeper-", env!("CARGO_PKG_VERSION"), ", built on 2026-11-22 00:00 UTC");

/// Why a request body could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFault {
    UnknownOp,
    Malformed,
}

/// What connection tasks tell the core.
pub enum Event {
    Connect {
        conn: ConnId,
        peer: SocketAddr,
        request: ConnectRequest,
        outbound: mpsc::Sender<Outbound>,
        /// Shared with the connection task: queued bytes and the abort signal.
        control: Arc<ConnControl>,
        /// Ids the connection gained before its ConnectRequest: `x509` from its certificate.
        auth: Vec<Id>,
    },
    Request {
        conn: ConnId,
        xid: i32,
        op: i32,
        request: Result<Request, RequestFault>,
        received: Instant,
    },
    Closed {
        conn: ConnId,
    },
    FourLetter {
        word: String,
        reply: oneshot::Sender<String>,
    },
}

/// Shared by the core and one connection task.
#[derive(Default)]
pub struct ConnControl {
    /// Bytes handed to the connection task and not yet written to the socket.
    pub queued_bytes: std::sync::atomic::AtomicUsize,
    /// Wakes the connection task to drop the socket at once (a client that stopped reading:
    /// its queue is full, so no Close message fits).
    pub abort: tokio::sync::Notify,
}

/// What the core tells a connection task.
pub enum Outbound {
    Data(Bytes),
    /// Write what is queued, then close.
    Close,
}

/// Latency and packet counters (srvr/stat/mntr/cons).
#[derive(Debug, Clone, Default)]
pub struct LatencyStats {
    pub count: u64,
    pub total_ms: u64,
    pub min_ms: u64,
    pub max_ms: u64,
}

impl LatencyStats {
    fn record(&mut self, ms: u64) {
        if self.count == 0 || ms < self.min_ms {
            self.min_ms = ms;
        }
        self.max_ms = self.max_ms.max(ms);
        self.count += 1;
        self.total_ms += ms;
    }

    pub fn avg_ms(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.total_ms as f64 / self.count as f64 }
    }
}

/// A sampled write's open span (see [`crate::telemetry`]); `None` for nearly every write.
pub(super) type Trace = Option<Box<RequestTrace>>;

/// Who waits for a txn to be applied.
pub(super) enum Origin {
    /// A client request: reply to it.
    Client { conn: ConnId, xid: i32, op: i32, received: Instant, trace: Trace },
    /// A new session: send the ConnectResponse.
    Connect { conn: ConnId, response: ConnectResponse },
    /// closeSession from the client: reply, then close the connection.
    Close { conn: ConnId, xid: i32, op: i32, received: Instant, trace: Trace },
    /// Leader: a write a follower forwarded and traces; its spans join the follower's trace.
    Forwarded { received: Instant, trace: Trace },
    /// Session expiry, container reaping, untraced forwarded writes: nobody to answer here.
    Internal,
}

impl Origin {
    fn take_trace(&mut self) -> Trace {
        match self {
            Origin::Client { trace, .. } | Origin::Close { trace, .. } | Origin::Forwarded { trace, .. } => {
                trace.take()
            }
            Origin::Connect { .. } | Origin::Internal => None,
        }
    }

    /// The ids a forwarded write carries to the leader when it is traced.
    pub(super) fn trace_parent(&self) -> Option<crate::quorum::wire::TraceParent> {
        match self {
            Origin::Client { trace: Some(trace), .. } | Origin::Close { trace: Some(trace), .. } => {
                trace.parent()
            }
            _ => None,
        }
    }
}

/// An entry of the commit queue, in the order it must complete.
pub(super) enum Pending {
    /// A txn in the log, applied once durable.
    Write { record: TxnRecord, origin: Origin, proposed: Instant },
    /// A request that must not overtake its connection's earlier writes.
    Deferred { conn: ConnId, xid: i32, op: i32, request: Request, received: Instant },
}

pub struct ConnState {
    /// Queued-bytes count and abort signal shared with the connection task.
    pub control: Arc<ConnControl>,
    pub peer: SocketAddr,
    pub caller: Caller,
    pub timeout_ms: i32,
    pub outbound: mpsc::Sender<Outbound>,
    /// Frames produced in this batch, sent at the end of it.
    pub pending: BytesMut,
    pub received: u64,
    pub sent: u64,
    pub established_ms: i64,
    pub last_op: &'static str,
    pub last_cxid: i32,
    pub last_zxid: i64,
    pub last_response_ms: i64,
    pub last_latency_ms: u64,
    pub latency: LatencyStats,
    /// Entries of this connection in the commit queue; while non-zero, its reads wait.
    pub queued: u32,
    /// Requests received from this connection and not yet answered (`queued=` in `cons`; their
    /// sum is `Outstanding:` / `zk_outstanding_requests` / `ferrokeeper_outstanding_requests`).
    pub unanswered: u32,
    /// Ensemble mode: this connection's requests waiting in order (see `replica.rs`).
    pub held: VecDeque<super::replica::Held>,
}

pub struct Core {
    pub config: Arc<Config>,
    pub tree: DataTree,
    pub tracker: SessionTracker,
    pub connections: HashMap<ConnId, ConnState>,
    pub session_conn: HashMap<SessionId, ConnId>,
    /// Connections with frames waiting in `pending`.
    dirty: Vec<ConnId>,
    pub next_zxid: i64,
    pub started: Instant,
    pub packets_received: u64,
    pub packets_sent: u64,
    pub latency: LatencyStats,
    last_reap: Instant,
    pub trace_mask: i64,
    pub(super) log: LogWriter,
    pub(super) log_status: watch::Receiver<LogStatus>,
    /// The log writer was replaced (ensemble: truncation, snapshot install).
    pub(super) log_replaced: bool,
    /// Writes waiting for the log, and reads waiting behind them, in order.
    pub(super) pending: VecDeque<Pending>,
    pub(super) fatal: watch::Sender<Option<String>>,
    /// Txns applied since the last snapshot, and how many trigger the next one (snapCount/2 +
    /// a random part, so ensemble members do not snapshot together).
    txns_since_snapshot: u64,
    snapshot_after: u64,
    snapshot_running: Arc<std::sync::atomic::AtomicBool>,
    /// The snapshot being serialized, a chunk per loop iteration.
    snapshot: Option<Box<SnapshotWork>>,
    /// Learners asking for a snapshot while another one is being serialized.
    pub(super) snapshot_waiting: Vec<crate::zab::Sid>,
    last_snapshot_bytes: usize,
    last_purge: Instant,
    pub(super) metrics: crate::metrics::ServerMetrics,
    /// Ensemble mode: the Zab peer and the replica's bookkeeping.
    pub(super) ensemble: Option<Box<super::replica::Replica>>,
    /// Request and commit-stage spans; `None` (the default) when OTLP export is off.
    pub(super) tracer: Option<RequestTracer>,
    /// SASL exchanges under way (`sasl.rs`).
    pub(super) sasl: super::sasl::SaslExchanges,
}

pub(super) fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Core {
    /// A core over a recovered tree. Every session in the tree is tracked afresh with its full
    /// timeout, as ZooKeeper does after a restart.
    pub fn new(
        config: Arc<Config>,
        tree: DataTree,
        log: LogWriter,
        fatal: watch::Sender<Option<String>>,
        metrics: crate::metrics::ServerMetrics,
    ) -> Core {
        let next_zxid = tree.last_processed_zxid() + 1;
        let started = Instant::now();
        let mut tracker = SessionTracker::new(i64::from(config.tick_time_ms), 1, wall_ms());
        for (session_id, timeout_ms) in tree.sessions() {
            tracker.add(*session_id, *timeout_ms, 0);
        }
        Core {
            tracker,
            log_status: log.status(),
            log_replaced: false,
            log,
            pending: VecDeque::new(),
            fatal,
            txns_since_snapshot: 0,
            snapshot_after: snapshot_threshold(config.snap_count),
            snapshot_waiting: Vec::new(),
            snapshot_running: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            snapshot: None,
            last_snapshot_bytes: 0,
            last_purge: started,
            metrics,
            config,
            tree,
            connections: HashMap::new(),
            session_conn: HashMap::new(),
            dirty: Vec::new(),
            next_zxid,
            started,
            packets_received: 0,
            packets_sent: 0,
            latency: LatencyStats::default(),
            last_reap: started,
            trace_mask: 0,
            ensemble: None,
            tracer: None,
            sasl: Default::default(),
        }
    }

    /// Ensemble mode: the core also drives this replica. Sessions are created by the server
    /// id's tracker so that ids are unique across the ensemble.
    /// `tail` is the logged, not yet applied part of the log (applied once committed).
    pub fn with_replica(
        mut self,
        replica: super::replica::Replica,
        server_id: u8,
        tail: Vec<TxnRecord>,
    ) -> Core {
        self.tracker = SessionTracker::new(i64::from(self.config.tick_time_ms), server_id, wall_ms());
        let now = Instant::now();
        for record in tail {
            self.pending.push_back(Pending::Write { record, origin: Origin::Internal, proposed: now });
        }
        self.ensemble = Some(Box::new(replica));
        self.start_election();
        self
    }

    /// Monotonic milliseconds, for session expiry.
    pub(super) fn mono_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    pub async fn run(mut self, mut events: mpsc::Receiver<Event>, mut shutdown: watch::Receiver<bool>) {
        let tick = Duration::from_millis(u64::from(self.config.tick_time_ms / 4).clamp(10, 500));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(256);
        let outstanding_max = (self.config.global_outstanding_limit as usize).max(1);
        let mut log_status = self.log_status.clone();
        let mut incoming = self.ensemble.as_mut().and_then(|r| r.incoming.take());
        let ensemble = self.ensemble.is_some();
        let mut zab_ticker = tokio::time::interval(Duration::from_millis(10));
        zab_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // Stop taking requests while too many are outstanding (waiting for the log, for
                // the leader, or for a zxid): connections then stop being read and clients feel
                // the backpressure. In an ensemble every follower bounds what it forwards, so
                // the leader's queue of forwarded writes is bounded too; none is dropped.
                n = events.recv_many(&mut batch, 256), if self.outstanding() < outstanding_max => {
                    if n == 0 {
                        break;
                    }
                    for event in batch.drain(..) {
                        self.handle(event);
                    }
                }
                changed = log_status.changed() => {
                    let status = log_status.borrow_and_update().clone();
                    if changed.is_err() || status.failure.is_some() {
                        let reason = status.failure.unwrap_or_else(|| "transaction log writer stopped".into());
                        tracing::error!("{reason}; stopping the server");
                        let _ = self.fatal.send(Some(reason));
                        break;
                    }
                    if ensemble {
                        self.zab_persisted(status.durable_zxid);
                    } else {
                        self.on_durable(status.durable_zxid);
                    }
                }
                message = async {
                    match incoming.as_mut() {
                        Some(receiver) => receiver.recv().await,
                        None => std::future::pending().await,
                    }
                } => match message {
                    Some(message) => self.on_peer_message(message),
                    None => incoming = None,
                },
                _ = zab_ticker.tick(), if ensemble => self.zab_tick(),
                // A snapshot under way advances one chunk whenever the loop comes round.
                _ = std::future::ready(()), if self.snapshot.is_some() => self.snapshot_step(),
                _ = ticker.tick() => self.on_tick(),
                _ = shutdown.changed() => break,
            }
            if self.log_replaced {
                self.log_replaced = false;
                log_status = self.log_status.clone();
            }
            if self.fatal.borrow().is_some() {
                break;
            }
            self.flush();
        }
        for (_, conn) in self.connections.drain() {
            let _ = conn.outbound.try_send(Outbound::Close);
        }
    }

    /// What counts against `globalOutstandingLimit` (ZooKeeper's requests in process): the
    /// client requests received and not yet answered (held reads, parked and forwarded ones
    /// included), or the commit queue plus what the replica holds for other servers (a
    /// leader's forwarded writes), whichever is larger.
    fn outstanding(&self) -> usize {
        let unanswered = usize::try_from(self.metrics.outstanding_requests.get()).unwrap_or(0);
        unanswered.max(self.pending.len() + self.replica_outstanding())
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Connect { conn, peer, request, outbound, control, auth } => {
                self.on_connect(conn, peer, request, outbound, control, auth)
            }
            Event::Request { conn, xid, op, request, received } => {
                self.on_request(conn, xid, op, request, received)
            }
            Event::Closed { conn } => self.drop_connection(conn),
            Event::FourLetter { word, reply } => {
                // Without a leader, ZooKeeper answers only the words that need no server.
                let text = if self.serving() || matches!(word.as_str(), "ruok" | "envi" | "conf" | "isro") {
                    super::fourlw::execute(self, &word)
                } else {
                    "This ZooKeeper instance is not currently serving requests\n".to_owned()
                };
                let _ = reply.send(text);
            }
        }
    }

    fn on_connect(
        &mut self,
        conn: ConnId,
        peer: SocketAddr,
        request: ConnectRequest,
        outbound: mpsc::Sender<Outbound>,
        control: Arc<ConnControl>,
        tls_auth: Vec<Id>,
    ) {
        if !self.serving() {
            tracing::debug!(conn, "refusing a client: this server has no leader");
            let _ = outbound.try_send(Outbound::Close);
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
            let _ = outbound.try_send(Outbound::Close);
            return;
        }
        let timeout_ms = self.config.negotiate_timeout(request.timeout);
        let now = self.mono_ms();
        let read_only = request.read_only.map(|_| false);
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
            let valid = self.tree.sessions().contains_key(&id)
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
                let _ = outbound.try_send(Outbound::Data(out.freeze()));
                let _ = outbound.try_send(Outbound::Close);
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
            control,
            peer,
            caller: Caller { session_id, conn, auth: tree::acl::connection_ids(&ip, tls_auth) },
            timeout_ms,
            outbound,
            pending: BytesMut::with_capacity(4096),
            received: 0,
            sent: 0,
            established_ms: wall_ms(),
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
        if request.session_id == 0 && self.ensemble.is_some() {
            self.ensemble_create_session(conn, session_id, timeout_ms, response);
        } else if request.session_id == 0 {
            // A new session is a txn: the client hears of it once it is durable.
            let caller = Caller { session_id, conn, auth: Vec::new() };
            let txn = self.tree.prep_create_session(session_id, timeout_ms, self.next_zxid);
            self.propose(&caller, 0, txn, Origin::Connect { conn, response });
        } else {
            self.send_connect_response(conn, &response);
        }
        tracing::debug!(conn, session = format_args!("0x{session_id:x}"), timeout_ms, "session established");
    }

    pub(super) fn send_connect_response(&mut self, conn: ConnId, response: &ConnectResponse) {
        let Some(state) = self.connections.get_mut(&conn) else { return };
        frame::write(&mut state.pending, |b| response.write(b));
        self.dirty.push(conn);
    }

    fn on_request(
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
        if self.ensemble.is_some() && !matches!(request, Err(RequestFault::UnknownOp)) {
            let request = match request {
                Ok(request) => Ok(request),
                Err(_) if is_write_op(op_code) => Err(()),
                Err(_) => {
                    let zxid = self.tree.last_processed_zxid();
                    self.reply(conn_id, xid, zxid, Err(Code::MarshallingError), op_code, received);
                    return;
                }
            };
            self.ensemble_request(conn_id, xid, op_code, request, received);
            return;
        }
        let request = match request {
            Ok(request) => request,
            Err(RequestFault::UnknownOp) => {
                tracing::warn!(conn = conn_id, op = op_code, "unknown opcode; closing connection");
                // UnimplementedRequestProcessor answers with the request's unassigned zxid, -1.
                self.reply(conn_id, xid, -1, Err(Code::Unimplemented), op_code, received);
                self.close_connection(conn_id);
                return;
            }
            Err(RequestFault::Malformed) => {
                if is_write_op(op_code) {
                    let caller = self.caller(conn_id);
                    let txn = Txn::Error(ErrorTxn { err: Code::MarshallingError.as_i32() });
                    let origin = self.client_origin(conn_id, xid, op_code, received, false);
                    self.propose(&caller, xid, txn, origin);
                } else {
                    let zxid = self.tree.last_processed_zxid();
                    self.reply(conn_id, xid, zxid, Err(Code::MarshallingError), op_code, received);
                }
                return;
            }
        };
        let must_wait = conn.queued > 0;
        if request.is_write() {
            self.propose_request(conn_id, xid, op_code, request, received);
        } else if must_wait && !matches!(request, Request::Ping) {
            conn.queued += 1;
            self.pending.push_back(Pending::Deferred { conn: conn_id, xid, op: op_code, request, received });
        } else {
            self.execute(conn_id, xid, op_code, request, received);
        }
    }

    /// Runs a request that needs no txn.
    pub(super) fn execute(
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
    pub(super) fn propose_request(
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
            request => self.tree.prep(&caller, request, zxid, wall_ms()),
        };
        let close = matches!(request, Request::CloseSession);
        if close {
            self.tracker.remove(caller.session_id);
        }
        let origin = self.client_origin(conn_id, xid, op_code, received, close);
        self.propose(&caller, xid, txn, origin);
    }

    /// The origin of a client's write (`close`: a closeSession). Tracing samples writes here,
    /// so that a traced write's span opens at `received`.
    pub(super) fn client_origin(
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

    pub(super) fn caller(&self, conn: ConnId) -> Caller {
        self.connections.get(&conn).map(|c| c.caller.clone()).unwrap_or_default()
    }

    fn set_watches(
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

    /// Stamps `txn` with the next zxid and the time, appends it to the log and queues it to be
    /// applied once durable.
    pub(super) fn propose(&mut self, caller: &Caller, cxid: i32, txn: Txn, origin: Origin) {
        if self.ensemble.is_some() {
            self.zab_propose(caller, cxid, txn, origin);
            return;
        }
        let zxid = self.next_zxid;
        self.next_zxid += 1;
        let header =
            TxnHeader { client_id: caller.session_id, cxid, zxid, time: wall_ms(), txn_type: txn.txn_type() };
        let record = TxnRecord { header, txn };
        self.log.append(zxid, record.encode_to_vec());
        match &origin {
            Origin::Client { conn, .. } | Origin::Connect { conn, .. } | Origin::Close { conn, .. } => {
                if let Some(state) = self.connections.get_mut(conn) {
                    state.queued += 1;
                }
            }
            Origin::Forwarded { .. } | Origin::Internal => {}
        }
        self.pending.push_back(Pending::Write { record, origin, proposed: Instant::now() });
    }

    /// The log made everything up to `durable` durable: apply those txns in order, answer their
    /// clients, and run the reads that waited behind them.
    pub(super) fn on_durable(&mut self, durable: i64) {
        let durable_at = Instant::now();
        while let Some(front) = self.pending.front() {
            if let Pending::Write { record, .. } = front
                && record.header.zxid > durable
            {
                break;
            }
            let Some(entry) = self.pending.pop_front() else { break };
            match entry {
                Pending::Write { record, mut origin, proposed } => {
                    let trace = origin.take_trace();
                    let zxid = record.header.zxid;
                    let stage = if self.ensemble.is_some() { STAGE_QUORUM_ACK } else { STAGE_LOG };
                    self.metrics.observe_stage(stage, durable_at.duration_since(proposed).as_secs_f64());
                    if let Origin::Client { received, .. } | Origin::Close { received, .. } = &origin {
                        let wait = proposed.duration_since(*received).as_secs_f64();
                        self.metrics.observe_stage(STAGE_QUEUE, wait);
                    }
                    let client = match &origin {
                        Origin::Client { received, .. } | Origin::Close { received, .. } => Some(*received),
                        _ => None,
                    };
                    let traced_from = match &origin {
                        Origin::Forwarded { received, .. } => Some(*received),
                        _ => client,
                    };
                    let replicated = self.ensemble.is_some().then(|| {
                        let conn = match &origin {
                            Origin::Client { conn, .. }
                            | Origin::Connect { conn, .. }
                            | Origin::Close { conn, .. } => Some(*conn),
                            Origin::Forwarded { .. } | Origin::Internal => None,
                        };
                        (record.header.clone(), conn)
                    });
                    let err = self.apply(record, origin);
                    if let Some((header, conn)) = replicated {
                        self.ensemble_applied(&header, conn);
                    }
                    let applied_at = Instant::now();
                    self.metrics
                        .observe_stage(STAGE_APPLY, applied_at.duration_since(durable_at).as_secs_f64());
                    if let Some(received) = client {
                        let total = applied_at.duration_since(received).as_secs_f64();
                        self.metrics.observe_stage(STAGE_END_TO_END, total);
                        tracing::trace!(
                            zxid = format_args!("0x{zxid:x}"),
                            queue_wait_us = proposed.duration_since(received).as_micros() as u64,
                            commit_us = durable_at.duration_since(proposed).as_micros() as u64,
                            apply_us = applied_at.duration_since(durable_at).as_micros() as u64,
                            "write applied"
                        );
                    }
                    if let (Some(trace), Some(tracer), Some(received)) =
                        (trace, self.tracer.as_ref(), traced_from)
                    {
                        let stages = [
                            (STAGES[STAGE_QUEUE], received, proposed),
                            (STAGES[stage], proposed, durable_at),
                            (STAGES[STAGE_APPLY], durable_at, applied_at),
                        ];
                        trace.finish(tracer, &stages, applied_at, zxid, err);
                    }
                }
                Pending::Deferred { conn, xid, op, request, received } => {
                    if let Some(state) = self.connections.get_mut(&conn) {
                        state.queued -= 1;
                    }
                    self.execute(conn, xid, op, request, received);
                }
            }
        }
    }

    /// Applies a txn and answers whoever waits for it; returns the reply's error code (0: ok).
    fn apply(&mut self, record: TxnRecord, origin: Origin) -> i32 {
        let zxid = record.header.zxid;
        let outcome = self.tree.apply(&record.header, &record.txn);
        let err = outcome.reply.as_ref().err().map_or(0, |code| code.as_i32());
        self.txns_since_snapshot += 1;
        if self.txns_since_snapshot >= self.snapshot_after {
            self.take_snapshot();
        }
        for (conn, event, acl) in &outcome.events {
            // ZooKeeper sends a node's event only to connections allowed to READ the node.
            let allowed = self.connections.get(conn).is_some_and(|state| {
                self.tree.allows(acl, ferrokeeper_proto::op::perms::READ, &state.caller.auth)
            });
            if allowed {
                self.push_event(*conn, zxid, event);
            }
        }
        match origin {
            Origin::Client { conn, xid, op, received, .. } => {
                self.dequeue(conn);
                self.reply(conn, xid, zxid, outcome.reply, op, received);
            }
            Origin::Connect { conn, response } => {
                self.dequeue(conn);
                self.send_connect_response(conn, &response);
            }
            Origin::Close { conn, xid, op, received, .. } => {
                self.dequeue(conn);
                self.reply(conn, xid, zxid, outcome.reply, op, received);
                let session_id = record.header.client_id;
                if self.session_conn.get(&session_id) == Some(&conn) {
                    self.session_conn.remove(&session_id);
                }
                self.close_connection(conn);
            }
            // The follower that forwarded the write answers its client.
            Origin::Forwarded { .. } => {}
            Origin::Internal => {
                if let Err(code) = outcome.reply {
                    // A reaped node changed since reapable() looked; the next round sees it.
                    tracing::debug!(%code, zxid = format_args!("0x{zxid:x}"), "internal txn failed");
                }
            }
        }
        err
    }

    /// Rolls the log and starts a snapshot of the applied tree as it is now. The core
    /// serializes it a chunk of nodes per loop iteration ([`Core::snapshot_step`]), between
    /// batches of requests, while txns keep being applied (the tree keeps the pre-images of
    /// nodes that change before their turn); a thread of its own writes the file.
    fn take_snapshot(&mut self) {
        use std::sync::atomic::Ordering;
        if self.snapshot.is_some() {
            // A snapshot for a learner is under way; try again after the next txn.
            return;
        }
        if self.snapshot_running.swap(true, Ordering::AcqRel) {
            tracing::warn!("Too busy to snap, skipping");
            return;
        }
        self.txns_since_snapshot = 0;
        self.snapshot_after = snapshot_threshold(self.config.snap_count);
        self.log.roll();
        self.begin_snapshot(true, Vec::new());
    }

    /// Starts serializing the applied tree, a chunk per loop turn (`snapshot_step`).
    fn begin_snapshot(&mut self, to_disk: bool, for_peers: Vec<crate::zab::Sid>) {
        let (zxid, sessions) = self.tree.snapshot_begin();
        let span = tracing::info_span!("snapshot", zxid = format_args!("0x{zxid:x}"), to_disk);
        self.snapshot = Some(Box::new(SnapshotWork {
            to_disk,
            for_peers,
            // Sized like the last snapshot, so that the buffer does not grow (copying) midway.
            encoder: crate::txlog::snapshot::Encoder::start(
                zxid,
                &sessions,
                self.last_snapshot_bytes * 9 / 8,
            ),
            span,
            started: Instant::now(),
            busy: Duration::ZERO,
            longest: Duration::ZERO,
            chunks: 0,
        }));
    }

    /// A learner needs a SNAP sync: serialize the tree in chunks like a periodic snapshot (no
    /// pause that grows with the tree), after the one under way if any.
    pub(super) fn snapshot_for_peer(&mut self, to: crate::zab::Sid) {
        match self.snapshot.as_mut() {
            Some(_) => {
                if !self.snapshot_waiting.contains(&to) {
                    self.snapshot_waiting.push(to);
                }
            }
            None => self.begin_snapshot(false, vec![to]),
        }
    }

    /// One chunk of the snapshot under way; when it is complete, hands the bytes to a thread.
    fn snapshot_step(&mut self) {
        use std::sync::atomic::Ordering;
        let Some(work) = self.snapshot.as_mut() else { return };
        if !self.tree.snapshot_in_progress() {
            // The tree was replaced (a snapshot from the leader): this snapshot is void; the
            // next one comes after snapCount/2+ txns (a learner's is asked for again).
            tracing::info!(parent: &work.span, "snapshot abandoned: the tree was replaced");
            if work.to_disk {
                self.snapshot_running.store(false, Ordering::Release);
            }
            self.snapshot = None;
            return;
        }
        let chunk_started = Instant::now();
        let done = work.span.in_scope(|| work.encoder.chunk(&mut self.tree, SNAPSHOT_CHUNK_NODES));
        let took = chunk_started.elapsed();
        work.busy += took;
        work.longest = work.longest.max(took);
        work.chunks += 1;
        if !done {
            return;
        }
        let Some(work) = self.snapshot.take() else { return };
        let SnapshotWork { encoder, to_disk, for_peers, span, started, busy, longest, chunks } = *work;
        self.metrics.snapshot_serialize.observe(busy.as_secs_f64());
        let zxid = encoder.zxid();
        let bytes = encoder.finish();
        self.last_snapshot_bytes = bytes.len();
        // Learners that asked meanwhile get a snapshot of their own (cut now); one that finds
        // this one too old asks again and joins the waiting list.
        let waiting = std::mem::take(&mut self.snapshot_waiting);
        if !waiting.is_empty() {
            self.begin_snapshot(false, waiting);
        }
        if !for_peers.is_empty() {
            let data = bytes::Bytes::from(bytes.clone());
            span.in_scope(|| {
                tracing::info!(learners = ?for_peers, bytes = data.len(), chunks, "snapshot for SNAP sync ready")
            });
            for to in for_peers {
                self.zab_step(crate::zab::Input::SnapshotReady { to, zxid, data: data.clone() });
            }
        }
        if !to_disk {
            return;
        }
        let dir = self.config.snap_dir.clone();
        let running = self.snapshot_running.clone();
        let (duration, size) = (self.metrics.snapshot_duration.clone(), self.metrics.snapshot_size.clone());
        let spawned = std::thread::Builder::new().name("snapshot".into()).spawn(move || {
            let _entered = span.enter();
            match crate::txlog::snapshot::write(&dir, zxid, &bytes) {
                Ok(path) => {
                    duration.observe(started.elapsed().as_secs_f64());
                    size.set(bytes.len() as i64);
                    tracing::info!(
                        path = %path.display(),
                        bytes = bytes.len(),
                        chunks,
                        serialize_ms = busy.as_millis() as u64,
                        longest_chunk_us = longest.as_micros() as u64,
                        total_ms = started.elapsed().as_millis() as u64,
                        "snapshot written"
                    )
                }
                // The log still holds everything: a failed snapshot loses nothing.
                Err(error) => tracing::error!(%error, dir = %dir.display(), "snapshot failed"),
            }
            running.store(false, Ordering::Release);
        });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the snapshot thread");
            self.snapshot_running.store(false, Ordering::Release);
        }
    }

    fn dequeue(&mut self, conn: ConnId) {
        if let Some(state) = self.connections.get_mut(&conn) {
            state.queued -= 1;
        }
    }

    fn push_event(&mut self, conn: ConnId, zxid: i64, event: &WatcherEvent) {
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

    pub(super) fn reply(
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
        let elapsed = received.elapsed();
        self.metrics.observe_request(op_code, elapsed.as_secs_f64());
        if err != 0 {
            self.metrics.count_error(err);
        }
        // Per-request log line at TRACE (off by default: a level check).
        tracing::trace!(
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
        state.last_response_ms = wall_ms();
        state.last_latency_ms = latency_ms;
        state.latency.record(latency_ms);
        self.packets_sent += 1;
        if op_code != op::PING {
            self.latency.record(latency_ms);
        }
        self.dirty.push(conn);
    }

    /// Sends what each connection accumulated during this batch. A client whose outbound
    /// queue is full has stopped reading: it is cut off so it cannot grow server memory.
    fn flush(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for conn in dirty.drain(..) {
            let Some(state) = self.connections.get_mut(&conn) else { continue };
            if state.pending.is_empty() {
                continue;
            }
            let data = state.pending.split().freeze();
            let queued =
                state.control.queued_bytes.fetch_add(data.len(), std::sync::atomic::Ordering::AcqRel);
            let over = queued + data.len() > self.config.connection_outbound_bytes_max;
            if over || state.outbound.try_send(Outbound::Data(data)).is_err() {
                tracing::warn!(conn, peer = %state.peer, queued, "client is not reading its replies; closing connection");
                state.control.abort.notify_one();
                self.drop_connection(conn);
            }
        }
        self.dirty = dirty;
    }

    /// Queues a close after whatever is pending and forgets the connection.
    pub(super) fn close_connection(&mut self, conn: ConnId) {
        if let Some(state) = self.connections.get_mut(&conn) {
            if !state.pending.is_empty() {
                let data = state.pending.split().freeze();
                let _ = state.outbound.try_send(Outbound::Data(data));
            }
            let _ = state.outbound.try_send(Outbound::Close);
        }
        self.drop_connection(conn);
    }

    fn drop_connection(&mut self, conn: ConnId) {
        let Some(state) = self.connections.remove(&conn) else { return };
        // Its unanswered requests will never be answered: no longer outstanding.
        self.metrics.outstanding_requests.dec_by(i64::from(state.unanswered));
        self.tree.remove_connection(conn);
        let session_id = state.caller.session_id;
        if self.session_conn.get(&session_id) == Some(&conn) {
            self.session_conn.remove(&session_id);
        }
    }

    fn update_gauges(&self) {
        let m = &self.metrics;
        m.connections.set(self.connections.len() as i64);
        m.sessions.set(self.tree.sessions().len() as i64);
        m.znodes.set(self.tree.node_count() as i64);
        m.watches.set(self.tree.watch_stats().total as i64);
        m.ephemerals.set(self.tree.ephemerals().values().map(|v| v.len() as i64).sum());
        m.approximate_data_size.set(self.tree.approximate_data_size() as i64);
        m.last_zxid.set(self.tree.last_processed_zxid());
        m.epoch.set(self.tree.last_processed_zxid() >> 32);
    }

    fn on_tick(&mut self) {
        self.update_gauges();
        let now = self.mono_ms();
        self.send_touches();
        self.expire_parked();
        if !self.may_propose() {
            // Ensemble: only the leader expires sessions and reaps nodes.
            return;
        }
        for session_id in self.tracker.expired(now) {
            tracing::info!(session = format_args!("0x{session_id:x}"), "session expired");
            let caller = Caller { session_id, conn: 0, auth: Vec::new() };
            let Some(zxid) = self.prep_zxid() else { break };
            let txn = self.tree.prep(&caller, &Request::CloseSession, zxid, wall_ms());
            self.propose(&caller, 0, txn, Origin::Internal);
            self.tracker.remove(session_id);
            if let Some(conn) = self.session_conn.remove(&session_id) {
                self.close_connection(conn);
            }
        }
        if self.config.purge_interval_hours > 0
            && self.last_purge.elapsed() >= Duration::from_secs(self.config.purge_interval_hours * 3600)
        {
            self.last_purge = Instant::now();
            let (snaps, logs, retain) =
                (self.config.snap_dir.clone(), self.config.log.dir.clone(), self.config.snap_retain_count);
            tokio::task::spawn_blocking(move || match crate::txlog::purge::purge(&snaps, &logs, retain) {
                Ok(report) => tracing::info!(deleted = report.deleted.len(), "autopurge done"),
                Err(error) => tracing::warn!(%error, "autopurge failed"),
            });
        }
        let interval = Duration::from_millis(self.config.container_check_interval_ms.max(1));
        // Reap only when nothing is in flight, so a node is never proposed for deletion twice.
        if self.last_reap.elapsed() >= interval && self.pending.is_empty() {
            self.last_reap = Instant::now();
            let per_interval = (u128::from(self.config.container_max_per_minute) * interval.as_millis()
                / 60_000)
                .max(1) as usize;
            let system = Caller { session_id: 0, conn: 0, auth: vec![Id::new("super", "")] };
            for path in self.tree.reapable(wall_ms(), per_interval) {
                let request = Request::DeleteContainer(ferrokeeper_proto::DeleteContainerRequest { path });
                let Some(zxid) = self.prep_zxid() else { break };
                let txn = self.tree.prep(&system, &request, zxid, wall_ms());
                self.propose(&system, 0, txn, Origin::Internal);
            }
        }
    }

    pub fn log_stats(&self) -> Arc<crate::txlog::stats::LogStats> {
        self.log.stats()
    }

    pub fn election_stats(&self) -> Arc<crate::txlog::stats::Histogram> {
        self.metrics.election_micros.clone()
    }

    pub fn stage_stats(&self) -> Arc<[crate::txlog::stats::Histogram; crate::metrics::STAGES.len()]> {
        self.metrics.stage_micros.clone()
    }

    pub fn log_backend(&self) -> &'static str {
        self.log.backend().name()
    }

    /// `srst`: resets server-wide counters.
    pub fn reset_stats(&mut self) {
        self.packets_received = 0;
        self.packets_sent = 0;
        self.latency = LatencyStats::default();
    }

    /// `crst`: resets per-connection counters.
    pub fn reset_connection_stats(&mut self) {
        for state in self.connections.values_mut() {
            state.received = 0;
            state.sent = 0;
            state.latency = LatencyStats::default();
            state.last_op = "NA";
            state.last_cxid = -1;
            state.last_zxid = -1;
            state.last_response_ms = 0;
            state.last_latency_ms = 0;
        }
    }
}

const STAGE_QUEUE: usize = 0;
const STAGE_LOG: usize = 1;
const STAGE_QUORUM_ACK: usize = 2;
const STAGE_APPLY: usize = 3;
const STAGE_END_TO_END: usize = 4;

/// Nodes serialized per loop iteration while a snapshot is under way (~0.3-0.5 ms of work).
const SNAPSHOT_CHUNK_NODES: usize = 1024;

/// A snapshot being serialized by the core, a chunk at a time.
struct SnapshotWork {
    encoder: crate::txlog::snapshot::Encoder,
    /// Written to the snapshot directory (a periodic snapshot), or only handed to learners.
    to_disk: bool,
    /// Learners of this leader waiting for these bytes (SNAP sync).
    for_peers: Vec<crate::zab::Sid>,
    span: tracing::Span,
    started: Instant,
    /// Core time spent serializing so far, and the longest chunk.
    busy: Duration,
    longest: Duration,
    chunks: u32,
}

/// ZooKeeper's SyncRequestProcessor: snapshot after snapCount/2 + rand[0, snapCount/2) txns.
fn snapshot_threshold(snap_count: u64) -> u64 {
    let half = (snap_count / 2).max(1);
    half + rand::random_range(0..half)
}

fn is_write_op(op_code: i32) -> bool {
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

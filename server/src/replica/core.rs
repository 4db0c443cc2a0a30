//! The core task: the single owner of the tree, the session tracker and the connection table.
//! It executes requests in arrival order, stamps writes with zxids and time, delivers watch
//! events and replies, expires sessions and reaps containers/TTL nodes on a timer.

use ::core::net::SocketAddr;
use std::collections::VecDeque;

use super::Map;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use ferrokeeper_proto::ConnectResponse;
use ferrokeeper_proto::txn::TxnRecord;

use super::io::Io;
use super::snapshotter::{SnapshotWork, snapshot_threshold};
use super::stats::LatencyStats;
use crate::config::Config;
use crate::telemetry::{RequestTrace, RequestTracer};
use crate::tree::{Caller, ConnId, DataTree, SessionId, SessionTracker};

/// The version string clients parse (they decide which opcodes to use from it).
pub const VERSION: &str =
    concat!("3.9.3-ferrokeeper-", env!("CARGO_PKG_VERSION"), ", built on 2026-11-22 00:00 UTC");

/// The target of the per-request TRACE lines (`reply`, `write applied`), wherever they are
/// logged from: `RUST_LOG=info,ferrokeeper_server::server::core=trace` (docs/tracing.md).
pub(crate) const TRACE_TARGET: &str = "ferrokeeper_server::server::core";

/// Why a request body could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFault {
    UnknownOp,
    Malformed,
}

/// A sampled write's open span (see [`crate::telemetry`]); `None` for nearly every write.
pub(crate) type Trace = Option<Box<RequestTrace>>;

/// Who waits for a txn to be applied.
pub(crate) enum Origin {
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
    pub(crate) fn take_trace(&mut self) -> Trace {
        match self {
            Origin::Client { trace, .. } | Origin::Close { trace, .. } | Origin::Forwarded { trace, .. } => {
                trace.take()
            }
            Origin::Connect { .. } | Origin::Internal => None,
        }
    }

    /// The ids a forwarded write carries to the leader when it is traced.
    pub(crate) fn trace_parent(&self) -> Option<crate::quorum::wire::TraceParent> {
        match self {
            Origin::Client { trace: Some(trace), .. } | Origin::Close { trace: Some(trace), .. } => {
                trace.parent()
            }
            _ => None,
        }
    }
}

/// An entry of the commit queue: a txn in the log, applied once committed.
pub(crate) struct Pending {
    pub(crate) record: TxnRecord,
    pub(crate) origin: Origin,
    pub(crate) proposed: Instant,
}

pub struct ConnState {
    pub peer: SocketAddr,
    pub caller: Caller,
    pub timeout_ms: i32,
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
    /// This connection's requests waiting in order (see `replica.rs`).
    pub held: VecDeque<super::ordering::Held>,
}

pub struct Core {
    pub config: Arc<Config>,
    pub tree: DataTree,
    pub tracker: SessionTracker,
    pub connections: Map<ConnId, ConnState>,
    pub session_conn: Map<SessionId, ConnId>,
    /// Connections with frames waiting in `pending`.
    pub(crate) dirty: Vec<ConnId>,
    pub started: Instant,
    pub packets_received: u64,
    pub packets_sent: u64,
    pub latency: LatencyStats,
    pub(crate) last_reap: Instant,
    pub trace_mask: i64,
    /// Every effect on the world: clients, peers, the log, files, the clock (`io.rs`).
    pub(crate) io: Box<dyn Io>,
    /// Logged txns waiting for their commit, in zxid order.
    pub(crate) pending: VecDeque<Pending>,
    /// Txns applied since the last snapshot, and how many trigger the next one (snapCount/2 +
    /// a random part, so ensemble members do not snapshot together).
    pub(crate) txns_since_snapshot: u64,
    pub(crate) snapshot_after: u64,
    pub(crate) snapshot_running: Arc<std::sync::atomic::AtomicBool>,
    /// The snapshot being serialized, a chunk per loop iteration.
    pub(crate) snapshot: Option<Box<SnapshotWork>>,
    /// Learners asking for a snapshot while another one is being serialized.
    pub(crate) snapshot_waiting: Vec<crate::zab::Sid>,
    pub(crate) last_snapshot_bytes: usize,
    pub(crate) last_purge: Instant,
    pub(crate) metrics: crate::metrics::ServerMetrics,
    /// The Zab peer (one voter when standalone) and the replica's bookkeeping.
    pub(crate) replica: Box<super::consensus::Replica>,
    /// Request and commit-stage spans; `None` (the default) when OTLP export is off.
    pub(crate) tracer: Option<RequestTracer>,
    /// Read-only mode (`readonly.rs`).
    pub(crate) read_only: super::readonly::ReadOnly,
    /// Sessions local to this server (`local_sessions.rs`).
    pub(crate) local_sessions: super::local_sessions::LocalSessions,
    /// SASL exchanges under way (`sasl.rs`).
    pub(crate) sasl: super::sasl::SaslExchanges,
    /// The zab step's output buffer, reused (`consensus.rs`).
    pub(crate) zab_out: Vec<crate::zab::Output>,
}

impl Core {
    /// A core over a recovered tree, driving `replica` (a one-voter ensemble when standalone).
    /// `tail` is the logged, not yet applied part of the log (applied once committed).
    /// Sessions are created by the server id's tracker so that ids are unique across the
    /// ensemble; the leader tracks every session afresh with its full timeout, as ZooKeeper does.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Arc<Config>,
        tree: DataTree,
        mut io: Box<dyn Io>,
        metrics: crate::metrics::ServerMetrics,
        replica: super::consensus::Replica,
        server_id: u8,
        tail: Vec<TxnRecord>,
    ) -> Core {
        let started = io.now();
        let tracker = SessionTracker::new(i64::from(config.tick_time_ms), server_id, io.wall_ms());
        let last_logged = tail.last().map_or(tree.last_processed_zxid(), |record| record.header.zxid);
        let pending =
            tail.into_iter().map(|record| Pending { record, origin: Origin::Internal, proposed: started });
        let mut core = Core {
            tracker,
            pending: pending.collect(),
            txns_since_snapshot: 0,
            snapshot_after: snapshot_threshold(config.snap_count, io.random()),
            snapshot_waiting: Vec::new(),
            snapshot_running: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            snapshot: None,
            last_snapshot_bytes: 0,
            last_purge: started,
            metrics,
            config,
            tree,
            connections: Map::default(),
            session_conn: Map::default(),
            dirty: Vec::new(),
            started,
            packets_received: 0,
            packets_sent: 0,
            latency: LatencyStats::default(),
            last_reap: started,
            trace_mask: 0,
            replica: Box::new(replica),
            io,
            tracer: None,
            read_only: Default::default(),
            local_sessions: Default::default(),
            sasl: Default::default(),
            zab_out: Vec::new(),
        };
        core.start_election();
        if core.replica.standalone {
            // A one-voter ensemble elects itself at its first tick; its recovered log is on
            // disk, so it commits it at once and serves before the first client arrives.
            core.zab_tick();
            core.zab_persisted(last_logged);
        }
        core
    }

    /// Monotonic milliseconds, for session expiry.
    pub(crate) fn mono_ms(&self) -> i64 {
        self.io.now().saturating_duration_since(self.started).as_millis() as i64
    }

    /// What counts against `globalOutstandingLimit` (ZooKeeper's requests in process): the
    /// client requests received and not yet answered (held reads, parked and forwarded ones
    /// included), or the commit queue plus what the replica holds for other servers (a
    /// leader's forwarded writes), whichever is larger.
    pub fn outstanding(&self) -> usize {
        let unanswered = usize::try_from(self.metrics.outstanding_requests.get()).unwrap_or(0);
        unanswered.max(self.pending.len() + self.replica_outstanding())
    }
}

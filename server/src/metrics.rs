//! Prometheus metrics of the server (names in `docs/metrics.md`): request latency by op,
//! errors by ZooKeeper code, the stages of a write's commit, the log's fsync and batch
//! figures, and gauges of the tree and connections. The core task updates handles it clones
//! once at start (no label lookups on the request path); the HTTP endpoint encodes the
//! registry without involving the core.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use ferrokeeper_proto::op;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::txlog::stats::{Histogram as LogHistogram, LogStats};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SideLabel {
    side: &'static str,
}

/// Failed TLS handshakes on the quorum links (`sslQuorum` / `portUnification`), by which end
/// this server was: `dial` (it connected to a peer) or `accept` (a peer connected to it).
#[derive(Clone, Default)]
pub struct QuorumTlsMetrics {
    failures: Family<SideLabel, Counter>,
}

impl QuorumTlsMetrics {
    pub fn failure(&self, side: &'static str) {
        debug_assert!(side == "dial" || side == "accept", "undocumented side {side}");
        self.failures.get_or_create(&SideLabel { side }).inc();
    }

    /// Failures by side (`dial`, `accept`), for `mntr`.
    pub fn failures(&self) -> [(&'static str, u64); 2] {
        ["dial", "accept"].map(|side| (side, self.failures.get_or_create(&SideLabel { side }).get()))
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SchemeLabel {
    scheme: &'static str,
}

/// The `scheme` label of `ferrokeeper_auth_failures_total`: an `addauth` of a scheme refused
/// (`digest`, `ip`, `x509`; any other scheme is `other`), a failed SASL login (`sasl`), or a
/// request refused by `enforce.auth.*` from a connection without an enforced id
/// (`unauthenticated`).
pub const AUTH_FAILURE_SCHEMES: [&str; 6] = ["digest", "ip", "x509", "sasl", "other", "unauthenticated"];

/// Why a TLS handshake on the secure client port failed (the `reason` label; see
/// `server::tls::failure_reason` and `docs/metrics.md`).
pub const TLS_FAILURE_REASONS: [&str; 11] = [
    "not_tls",
    "no_client_certificate",
    "expired_certificate",
    "untrusted_certificate",
    "bad_certificate",
    "incompatible",
    "alert_received",
    "timeout",
    "closed",
    "io",
    "other",
];

/// Counters of the secure client port's handshakes; cheap to clone (the connection tasks
/// update them, not the core).
#[derive(Clone, Default)]
pub struct TlsMetrics {
    /// `ferrokeeper_tls_handshakes_total`: handshakes completed.
    pub handshakes: Counter,
    failures: Family<ReasonLabel, Counter>,
}

impl TlsMetrics {
    /// Registers `ferrokeeper_tls_handshakes_total` and
    /// `ferrokeeper_tls_handshake_failures_total{reason}`, every reason at zero from the start.
    pub fn register(registry: &mut Registry) -> TlsMetrics {
        let metrics = TlsMetrics::default();
        registry.register(
            "ferrokeeper_tls_handshakes",
            "TLS handshakes completed on the secure client port",
            metrics.handshakes.clone(),
        );
        registry.register(
            "ferrokeeper_tls_handshake_failures",
            "TLS handshakes refused or failed on the secure client port, by cause",
            metrics.failures.clone(),
        );
        for reason in TLS_FAILURE_REASONS {
            let _ = metrics.failures.get_or_create(&ReasonLabel { reason });
        }
        metrics
    }

    pub fn failure(&self, reason: &'static str) {
        debug_assert!(TLS_FAILURE_REASONS.contains(&reason), "undocumented reason {reason}");
        self.failures.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Failed handshakes by reason, in the order of [`TLS_FAILURE_REASONS`] (for `mntr`).
    pub fn failures(&self) -> Vec<(&'static str, u64)> {
        TLS_FAILURE_REASONS
            .iter()
            .map(|&reason| (reason, self.failures.get_or_create(&ReasonLabel { reason }).get()))
            .collect()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabel {
    role: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 25 µs .. ~13 s.
    Histogram::new(exponential_buckets(0.000_025, 2.0, 20))
}

/// The stages of a write, in order. Standalone: `queue_wait`, `log_fsync` (proposed → durable),
/// `apply`, `end_to_end`. In an ensemble `quorum_ack` replaces `log_fsync`: proposed → committed
/// (on the leader: a quorum acked after their fdatasyncs; on a follower: proposal received →
/// commit received); the local fdatasync is `ferrokeeper_txnlog_fsync_duration_seconds`.
/// There is no separate `commit` stage: the leader sends COMMIT in the same step that counts
/// the quorum, so it would always read zero.
pub const STAGES: [&str; 5] = ["queue_wait", "log_fsync", "quorum_ack", "apply", "end_to_end"];

/// `mntr` names (ZooKeeper's where it has one) of the stages, in the order of [`STAGES`].
pub const STAGE_MNTR_NAMES: [&str; STAGES.len()] = [
    "write_queue_wait_time",
    "txnlog_fsync_time",
    "quorum_ack_latency",
    "write_apply_time",
    "write_end_to_end_latency",
];

/// Handles the core updates; cheap to clone.
#[derive(Clone)]
pub struct ServerMetrics {
    /// `metricsEnabled=false` turns the per-request recording off (to measure its cost);
    /// gauges and the log's own counters are kept either way.
    pub enabled: bool,
    /// Request duration (receive → reply queued) by opcode, indexed by `op_index`.
    requests: Vec<Histogram>,
    errors: Family<CodeLabel, Counter>,
    stages: Vec<Histogram>,
    /// The same stage times in µs, with count/sum/min/max for `mntr`'s ZooKeeper-style
    /// summaries (Prometheus histograms do not expose their sums).
    pub stage_micros: Arc<[LogHistogram; STAGES.len()]>,
    pub connections: Gauge,
    pub sessions: Gauge,
    pub znodes: Gauge,
    pub watches: Gauge,
    pub ephemerals: Gauge,
    pub approximate_data_size: Gauge,
    pub outstanding_requests: Gauge,
    pub last_zxid: Gauge,
    pub epoch: Gauge,
    role: Family<RoleLabel, Gauge>,
    pub snapshot_duration: Histogram,
    /// The part of a snapshot done in the core task (serializing the tree): requests wait.
    pub snapshot_serialize: Histogram,
    pub snapshot_size: Gauge,
    pub elections: Counter,
    pub election_duration: Histogram,
    /// The same election times in µs for `mntr`'s `election_time` summary.
    pub election_micros: Arc<LogHistogram>,
    /// `ferrokeeper_auth_failures_total{scheme}`.
    auth_failures: Family<SchemeLabel, Counter>,
    /// The secure client port's handshake counters (updated by connection tasks).
    pub tls: TlsMetrics,
    /// The quorum links' failed handshakes (updated by the link tasks).
    pub quorum_tls: QuorumTlsMetrics,
}

/// Opcodes with their own request-latency series; others are counted as "other".
const OPS: [i32; 26] = [
    op::CREATE,
    op::DELETE,
    op::EXISTS,
    op::GET_DATA,
    op::SET_DATA,
    op::GET_ACL,
    op::SET_ACL,
    op::GET_CHILDREN,
    op::SYNC,
    op::PING,
    op::GET_CHILDREN2,
    op::MULTI,
    op::CREATE2,
    op::CHECK_WATCHES,
    op::REMOVE_WATCHES,
    op::CREATE_CONTAINER,
    op::CREATE_TTL,
    op::MULTI_READ,
    op::AUTH,
    op::SET_WATCHES,
    op::GET_EPHEMERALS,
    op::GET_ALL_CHILDREN_NUMBER,
    op::SET_WATCHES2,
    op::ADD_WATCH,
    op::WHO_AM_I,
    op::CLOSE_SESSION,
];

impl ServerMetrics {
    /// Registers every metric in `registry` (plus the log's figures from `log`).
    pub fn register(registry: &mut Registry, log: Arc<LogStats>, backend: &'static str) -> ServerMetrics {
        let requests_family: HistogramFamily<OpLabel> = Family::new_with_constructor(latency_histogram);
        registry.register(
            "ferrokeeper_request_duration_seconds",
            "Time from receiving a request to queueing its reply, by opcode",
            requests_family.clone(),
        );
        let mut requests: Vec<Histogram> = OPS
            .iter()
            .map(|o| requests_family.get_or_create(&OpLabel { op: op::name(*o) }).clone())
            .collect();
        requests.push(requests_family.get_or_create(&OpLabel { op: "other" }).clone());
        let errors = Family::<CodeLabel, Counter>::default();
        registry.register(
            "ferrokeeper_request_errors",
            "Requests answered with a ZooKeeper error code",
            errors.clone(),
        );
        // Every error code has its series from the start, at zero: "no errors" reads 0, not
        // "no data".
        for code in ferrokeeper_proto::Code::ALL.iter().filter(|c| c.as_i32() != 0) {
            let _ = errors.get_or_create(&CodeLabel { code: code.as_i32() });
        }
        let stage_family: HistogramFamily<StageLabel> = Family::new_with_constructor(latency_histogram);
        registry.register(
            "ferrokeeper_commit_stage_duration_seconds",
            "Time a write spends in each commit stage",
            stage_family.clone(),
        );
        let stages =
            STAGES.iter().map(|s| stage_family.get_or_create(&StageLabel { stage: s }).clone()).collect();
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let connections = gauge(registry, "ferrokeeper_connections", "Open client connections");
        let sessions = gauge(registry, "ferrokeeper_sessions", "Live sessions");
        let znodes = gauge(registry, "ferrokeeper_znodes", "Znodes in the tree");
        let watches = gauge(registry, "ferrokeeper_watches", "Registered watches");
        let ephemerals = gauge(registry, "ferrokeeper_ephemerals", "Ephemeral znodes");
        let approximate_data_size =
            gauge(registry, "ferrokeeper_approximate_data_size_bytes", "Path and data bytes in the tree");
        let outstanding_requests = gauge(
            registry,
            "ferrokeeper_outstanding_requests",
            "Client requests received and not yet answered",
        );
        let last_zxid = gauge(registry, "ferrokeeper_last_zxid", "Last applied zxid");
        let epoch = gauge(registry, "ferrokeeper_epoch", "Current epoch (zxid >> 32)");
        let role = Family::<RoleLabel, Gauge>::default();
        registry.register("ferrokeeper_role", "1 for the server's current role", role.clone());
        let snapshot_duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "ferrokeeper_snapshot_duration_seconds",
            "Time to serialize and write a snapshot",
            snapshot_duration.clone(),
        );
        let snapshot_serialize = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "ferrokeeper_snapshot_serialize_duration_seconds",
            "Time the core task spent serializing the tree for a snapshot (requests wait meanwhile)",
            snapshot_serialize.clone(),
        );
        let snapshot_size = gauge(registry, "ferrokeeper_snapshot_size_bytes", "Size of the last snapshot");
        let elections = Counter::default();
        registry.register(
            "ferrokeeper_elections",
            "Leader elections this server took part in",
            elections.clone(),
        );
        let election_duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "ferrokeeper_election_duration_seconds",
            "Time from starting to look for a leader to leading or following",
            election_duration.clone(),
        );
        registry.register_collector(Box::new(LogCollector { stats: log, backend }));
        let auth_failures = Family::<SchemeLabel, Counter>::default();
        registry.register(
            "ferrokeeper_auth_failures",
            "Authentications refused: addauth by scheme, SASL logins, requests refused by enforce.auth",
            auth_failures.clone(),
        );
        for scheme in AUTH_FAILURE_SCHEMES {
            let _ = auth_failures.get_or_create(&SchemeLabel { scheme });
        }
        let tls = TlsMetrics::register(registry);
        let quorum_tls = QuorumTlsMetrics::default();
        registry.register(
            "ferrokeeper_quorum_tls_handshake_failures",
            "TLS handshakes on the quorum links that failed, by which end this server was (dial, accept)",
            quorum_tls.failures.clone(),
        );
        for side in ["dial", "accept"] {
            let _ = quorum_tls.failures.get_or_create(&SideLabel { side });
        }
        ServerMetrics {
            auth_failures,
            tls,
            quorum_tls,
            enabled: true,
            requests,
            errors,
            stages,
            stage_micros: Arc::new(std::array::from_fn(|_| LogHistogram::default())),
            connections,
            sessions,
            znodes,
            watches,
            ephemerals,
            approximate_data_size,
            outstanding_requests,
            last_zxid,
            epoch,
            role,
            snapshot_duration,
            snapshot_serialize,
            snapshot_size,
            elections,
            election_duration,
            election_micros: Arc::new(LogHistogram::default()),
        }
    }

    fn op_index(op_code: i32) -> usize {
        OPS.iter().position(|o| *o == op_code).unwrap_or(OPS.len())
    }

    pub fn observe_request(&self, op_code: i32, seconds: f64) {
        if !self.enabled {
            return;
        }
        self.requests[Self::op_index(op_code)].observe(seconds);
    }

    pub fn count_error(&self, code: i32) {
        if !self.enabled {
            return;
        }
        self.errors.get_or_create(&CodeLabel { code }).inc();
    }

    /// `stage` is an index into [`STAGES`].
    pub fn observe_stage(&self, stage: usize, seconds: f64) {
        if !self.enabled {
            return;
        }
        self.stages[stage].observe(seconds);
        self.stage_micros[stage].record((seconds * 1e6) as u64);
    }

    /// A leader election ended after `seconds` (recorded whether or not `enabled`: rare).
    pub fn observe_election(&self, seconds: f64) {
        self.election_duration.observe(seconds);
        self.election_micros.record((seconds * 1e6) as u64);
    }

    /// An authentication was refused; `scheme` outside [`AUTH_FAILURE_SCHEMES`] counts as
    /// `other` (a client picks the scheme name: the label set stays bounded).
    pub fn auth_failure(&self, scheme: &str) {
        let scheme = AUTH_FAILURE_SCHEMES.iter().copied().find(|s| *s == scheme).unwrap_or("other");
        self.auth_failures.get_or_create(&SchemeLabel { scheme }).inc();
    }

    /// Refused authentications by scheme, in the order of [`AUTH_FAILURE_SCHEMES`].
    pub fn auth_failures(&self) -> Vec<(&'static str, u64)> {
        AUTH_FAILURE_SCHEMES
            .iter()
            .map(|&scheme| (scheme, self.auth_failures.get_or_create(&SchemeLabel { scheme }).get()))
            .collect()
    }

    pub fn set_role(&self, role: &'static str) {
        for r in ["standalone", "leader", "follower", "observer", "looking", "read-only"] {
            self.role.get_or_create(&RoleLabel { role: r }).set(i64::from(r == role));
        }
    }
}

/// Exposes the log writer's lock-free counters at scrape time.
#[derive(Debug)]
struct LogCollector {
    stats: Arc<LogStats>,
    backend: &'static str,
}

impl std::fmt::Debug for LogStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogStats")
    }
}

fn encode_log_histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    histogram: &LogHistogram,
    scale: f64,
) -> Result<(), std::fmt::Error> {
    // prometheus-client adds the per-bucket counts up itself and writes the `+Inf` bucket for an
    // upper bound of infinity: hand it per-bucket counts and the overflow as that last bucket.
    let mut previous = 0;
    let mut buckets: Vec<(f64, u64)> = histogram
        .cumulative()
        .into_iter()
        .map(|(upper, cumulative)| {
            let in_bucket = cumulative.saturating_sub(previous);
            previous = cumulative;
            (upper as f64 * scale, in_bucket)
        })
        .collect();
    buckets.push((f64::INFINITY, histogram.count().saturating_sub(previous)));
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    metric.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
        histogram.sum() as f64 * scale,
        histogram.count(),
        &buckets,
        None,
    )
}

impl prometheus_client::collector::Collector for LogCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.stats;
        encode_log_histogram(
            &mut encoder,
            "ferrokeeper_txnlog_fsync_duration_seconds",
            "Write + fdatasync time of one log batch",
            &s.fsync_micros,
            1e-6,
        )?;
        encode_log_histogram(
            &mut encoder,
            "ferrokeeper_txnlog_batch_txns",
            "Txns per log batch",
            &s.txns_per_batch,
            1.0,
        )?;
        encode_log_histogram(
            &mut encoder,
            "ferrokeeper_txnlog_batch_bytes",
            "Bytes per log batch",
            &s.bytes_per_batch,
            1.0,
        )?;
        let counter = |encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64| {
            let c = Counter::<u64>::default();
            c.inc_by(value);
            c.encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
        };
        counter(
            &mut encoder,
            "ferrokeeper_txnlog_written_txns",
            "Txns written to the log",
            s.written_txns.load(Relaxed),
        )?;
        counter(
            &mut encoder,
            "ferrokeeper_txnlog_written_bytes",
            "Bytes written to the log",
            s.written_bytes.load(Relaxed),
        )?;
        counter(
            &mut encoder,
            "ferrokeeper_txnlog_segments",
            "Log segments created",
            s.segments_created.load(Relaxed),
        )?;
        let depth = Gauge::<i64>::default();
        depth.set(s.queue_depth() as i64);
        depth.encode(encoder.encode_descriptor(
            "ferrokeeper_txnlog_queue_depth",
            "Txns appended but not yet written",
            None,
            MetricType::Gauge,
        )?)?;
        let info = encoder.encode_descriptor(
            "ferrokeeper_txnlog_backend",
            "The log's I/O backend",
            None,
            MetricType::Info,
        )?;
        let mut info = info;
        info.encode_info(&[("backend", self.backend)])
    }
}

/// The OTLP export's counters (registered only when export is on).
pub fn register_export_stats(registry: &mut Registry, stats: Arc<crate::telemetry::ExportStats>) {
    registry.register_collector(Box::new(ExportCollector { stats }));
}

#[derive(Debug)]
struct ExportCollector {
    stats: Arc<crate::telemetry::ExportStats>,
}

impl prometheus_client::collector::Collector for ExportCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.stats;
        for (name, help, value) in [
            ("ferrokeeper_otlp_traced_requests", "Requests chosen by the trace sampler", &s.traced_requests),
            ("ferrokeeper_otlp_exported_spans", "Spans the OTLP collector accepted", &s.exported_spans),
            ("ferrokeeper_otlp_failed_spans", "Spans in OTLP exports that failed", &s.failed_spans),
            ("ferrokeeper_otlp_failed_exports", "OTLP export requests that failed", &s.failed_batches),
        ] {
            let counter = Counter::<u64>::default();
            counter.inc_by(value.load(Relaxed));
            counter.encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)?;
        }
        Ok(())
    }
}

/// Renders the registry in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
        out.clear();
        out.push_str("# metrics encoding failed\n");
    }
    out
}

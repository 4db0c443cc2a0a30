//! The executor: prepares the tree, runs closed-loop (sessions × in-flight workers, each
//! sending as soon as its previous reply came) or open-loop (each worker on a fixed schedule;
//! latency counted from the intended send time, as wrk2, so a stall is charged to every request
//! it delayed), ticks once a second, and assembles the result.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ferrokeeper_client::recipes::lock::DistributedLock;
use ferrokeeper_client::{Acl, Builder, CreateMode, Error, LoadedTls, Multi, SaslOptions, ZooKeeper};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::cpu::{ClientCpu, process_cpu_seconds};
use crate::dist::{Keys, Mix, Sizes};
use crate::fault::{DurabilityCheck, FaultReport, OpEvent, OpLog, WriteLedger};
use crate::hdrlog::HdrLog;
use crate::metrics::Metrics;
use crate::mntr::{ServerView, Snapshot};
use crate::stats::{OpSummary, Recorder, SeriesPoint, lock, series_point};
use crate::trace::{TraceEvent, TraceWriter};
use crate::worker::{WorkerInfo, WorkerSpec, clock_offset, sleep_until_unix};
use crate::workload::{MixOp, OpKind, Workload};

/// The root every fkload node lives under.
pub const ROOT: &str = "/fkload";
const WATCHED: &str = "/fkload/watched";
/// The version `set_stale` expects: a key would need 2^31-1 writes to reach it.
pub const STALE_VERSION: i32 = i32::MAX;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Connect string of the target (`h:p[,h:p...][/chroot]`).
    pub connect: String,
    pub workload: Workload,
    /// Write an HDR interval log here.
    pub hdr_log: Option<PathBuf>,
    /// Record the op stream here (JSON lines).
    pub record: Option<PathBuf>,
    /// Show the live progress line.
    pub progress: bool,
    /// Serve Prometheus metrics on this port.
    pub metrics_port: Option<u16>,
    /// Skip creating the key tree (it exists already).
    pub skip_setup: bool,
    /// Seed for the workers' generators.
    pub seed: u64,
    /// Read `mntr` from the targets before and after.
    pub server_stats: bool,
    /// Which share of the workload this process runs (`--worker I/N`).
    pub worker: WorkerSpec,
    /// Start the first phase when the wall clock reads this (Unix seconds, `--start-at`).
    pub start_at: Option<f64>,
    /// Write every raw sample of the measured phase here (`--samples`; text, one per line).
    pub samples: Option<PathBuf>,
    /// Create a snapshot's tree and use its nodes as keys instead of the synthetic tree
    /// (`--tree-from`, [`crate::snaptree`]).
    pub tree_from: Option<PathBuf>,
    /// TLS and SASL for every session (`-D` client properties).
    pub security: Security,
}

/// How sessions connect: TLS (the stores read once for all sessions) and a SASL login, from
/// the Java client's property names (`zookeeper.client.secure`, `zookeeper.ssl.*`,
/// `java.security.auth.login.config`).
#[derive(Debug, Clone, Default)]
pub struct Security {
    pub tls: Option<LoadedTls>,
    pub sasl: Option<SaslOptions>,
}

impl Security {
    /// Reads the properties; `None` settings mean plain text and no login.
    pub fn from_properties(properties: &[(String, String)]) -> anyhow::Result<Security> {
        let pairs = || properties.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let tls = match ferrokeeper_client::TlsOptions::from_properties(pairs())? {
            Some(options) => Some(LoadedTls::load(&options)?),
            None => None,
        };
        Ok(Security { tls, sasl: SaslOptions::from_properties(pairs())? })
    }

    /// A session builder for `connect` with these settings.
    pub fn builder(&self, connect: &str) -> Builder {
        let builder = ZooKeeper::builder(connect).sasl(self.sasl.clone());
        match &self.tls {
            Some(tls) => builder.tls_loaded(tls.clone()),
            None => builder,
        }
    }
}

impl RunOptions {
    /// Options for the whole workload in one process, with the defaults of `fkload run`.
    pub fn new(connect: &str, workload: Workload) -> RunOptions {
        RunOptions {
            connect: connect.to_owned(),
            workload,
            hdr_log: None,
            record: None,
            progress: false,
            metrics_port: None,
            skip_setup: false,
            seed: 42,
            server_stats: true,
            worker: WorkerSpec::SOLE,
            start_at: None,
            tree_from: None,
            samples: None,
            security: Security::default(),
        }
    }
}

/// Totals of the measured phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub ops: u64,
    pub errors: u64,
    pub throughput: f64,
}

/// One step of a stepped or sweep run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    /// Target rate, ops/s.
    pub rate: f64,
    /// Achieved rate, ops/s.
    pub achieved: f64,
    /// Worst response-time p99 over the ops, ms.
    pub p99_ms: f64,
    /// The SLO percentile's value, ms, when an SLO is set.
    pub slo_value_ms: Option<f64>,
    /// Whether the step met the SLO (and achieved ≥ 95 % of the rate).
    pub ok: bool,
    pub ops: BTreeMap<String, OpSummary>,
}

/// Everything a run produced; written as the result JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub fkload_version: String,
    pub workload: Workload,
    pub target: String,
    /// `closed`, `open`, `stepped`, `sweep` or `replay`.
    pub mode: String,
    pub rate: Option<f64>,
    pub started_unix: f64,
    pub measured_secs: f64,
    pub totals: Totals,
    pub ops: BTreeMap<String, OpSummary>,
    pub series: Vec<SeriesPoint>,
    pub client_cpu: ClientCpu,
    #[serde(default)]
    pub servers: Vec<ServerView>,
    #[serde(default)]
    pub steps: Vec<StepResult>,
    #[serde(default)]
    pub hdr_log: Option<String>,
    /// Open loop: how late fkload sent requests relative to their schedule (ms). Includes the
    /// time a worker waited for its previous reply; a large p50 with small service times means
    /// fkload itself fell behind.
    #[serde(default)]
    pub send_lag: Option<crate::stats::Percentiles>,
    /// Every op fkload completed in the run, warm-up and the drain after the last phase
    /// included (`ops` holds only the measured phase): with `setup_creates`, all the requests
    /// fkload's workload made, to reconcile with the servers' request counters.
    #[serde(default)]
    pub completed: BTreeMap<String, crate::stats::RunCount>,
    /// Requests sent before the run, by ZooKeeper opcode name: `create` (the key tree) and
    /// `sync` (one per session, so that every session's server has the tree before it reads).
    #[serde(default)]
    pub setup_requests: BTreeMap<String, u64>,
    /// The process that produced this result: its share, start time and clock offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerInfo>,
    /// A merged result (`fkload merge`): every worker's info, in index order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerInfo>,
    /// A merged result: what looked wrong with the workers (behind schedule, clocks apart, a
    /// late start, a missing worker).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merge_flags: Vec<String>,
    /// Faults injected during the run and what each did to the load (`faults:` / `--fault`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultReport>,
    /// With faults: whether every acknowledged setData was still readable after the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durability: Option<DurabilityCheck>,
    /// With faults: ops not logged for the fault analysis (past its bound).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fault_log_dropped: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Paths of the keys and directories.
pub struct Tree {
    pub keys: Vec<String>,
    pub dirs: Vec<String>,
    /// Paths `get_missing` reads, under a directory never created.
    pub missing: Vec<String>,
}

impl Tree {
    /// `/fkload/d<i/fanout>/k<i>`.
    pub fn new(workload: &Workload) -> Tree {
        let fanout = workload.tree.fanout.max(1);
        let dirs: Vec<String> =
            (0..workload.znodes.div_ceil(fanout)).map(|d| format!("{ROOT}/d{d}")).collect();
        let keys = (0..workload.znodes).map(|i| format!("{ROOT}/d{}/k{i}", i / fanout)).collect();
        let missing = if workload.ops.get(&MixOp::GetMissing).copied().unwrap_or(0) > 0 {
            (0..workload.znodes).map(|i| format!("{ROOT}/missing/k{i}")).collect()
        } else {
            Vec::new()
        };
        Tree { keys, dirs, missing }
    }
}

fn error_name(e: &Error) -> &'static str {
    e.code().message()
}

/// Creates the fixed nodes and the key tree (existing nodes are left as they are). A worker
/// creates every directory and its own share of the keys. Returns the number of create requests
/// sent.
pub async fn prepare(
    zk: &ZooKeeper,
    workload: &Workload,
    tree: &Tree,
    value: &Bytes,
    worker: WorkerSpec,
) -> anyhow::Result<u64> {
    let acl = Acl::open_unsafe();
    let fixed = [ROOT, "/fkload/cd", "/fkload/eph", "/fkload/lock", WATCHED];
    let mut creates = fixed.len() as u64;
    for p in fixed {
        match zk.create(p, b"", &acl, CreateMode::Persistent, None).await {
            Ok(_) => {}
            Err(e) if e.code() == ferrokeeper_client::Code::NodeExists => {}
            Err(e) => return Err(anyhow::anyhow!("creating {p}: {e}")),
        }
    }
    let size = workload.value_size.max().min(value.len());
    let keys: Vec<String> =
        tree.keys.iter().enumerate().filter(|(i, _)| worker.owns(*i)).map(|(_, k)| k.clone()).collect();
    creates += (tree.dirs.len() + keys.len()) as u64;
    for batch in [&tree.dirs, &keys] {
        for chunk in batch.chunks(512) {
            let mut set = JoinSet::new();
            for path in chunk {
                let zk = zk.clone();
                let path = path.clone();
                let data = value.slice(..size);
                set.spawn(async move {
                    match zk.create(&path, &data, &Acl::open_unsafe(), CreateMode::Persistent, None).await {
                        Ok(_) => Ok(()),
                        Err(e) if e.code() == ferrokeeper_client::Code::NodeExists => Ok(()),
                        Err(e) => Err(anyhow::anyhow!("creating {path}: {e}")),
                    }
                });
            }
            while let Some(r) = set.join_next().await {
                r??;
            }
        }
    }
    Ok(creates)
}

/// The connect string with its host list rotated by `i`, so that session `i` starts on host
/// `i mod hosts` (the client tries hosts in order; without this every session lands on the
/// first host of an ensemble).
pub fn rotated(connect: &str, i: usize) -> String {
    let (hosts, chroot) = match connect.find('/') {
        Some(p) => (&connect[..p], &connect[p..]),
        None => (connect, ""),
    };
    let list: Vec<&str> = hosts.split(',').collect();
    let k = i % list.len().max(1);
    let mut out: Vec<&str> = list[k..].to_vec();
    out.extend_from_slice(&list[..k]);
    format!("{}{chroot}", out.join(","))
}

/// Waits until every key of the tree exists (the other workers have created their shares),
/// counting the children of each directory; gives up after `limit`.
pub async fn wait_for_tree(zk: &ZooKeeper, tree: &Tree, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let mut present = 0usize;
        for dir in &tree.dirs {
            present += zk.get_children(dir).await.map(|c| c.len()).unwrap_or(0);
        }
        if present >= tree.keys.len() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the key tree is incomplete after {:.0} s ({present} of {} keys): is every worker running?",
            limit.as_secs_f64(),
            tree.keys.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Opens `n` sessions concurrently, spread over the connect string's hosts.
pub async fn connect_all(connect: &str, n: usize, security: &Security) -> anyhow::Result<Vec<ZooKeeper>> {
    connect_sessions(connect, &(0..n).collect::<Vec<_>>(), security).await
}

/// Opens the sessions with the given global numbers; session `i` starts on host `i mod hosts`.
pub async fn connect_sessions(
    connect: &str,
    numbers: &[usize],
    security: &Security,
) -> anyhow::Result<Vec<ZooKeeper>> {
    let n = numbers.len();
    let mut set = JoinSet::new();
    for (i, number) in numbers.iter().enumerate() {
        let builder = security.builder(&rotated(connect, *number));
        set.spawn(async move {
            let r = builder.session_timeout(Duration::from_secs(30)).connect().await;
            (i, r)
        });
    }
    let mut out: Vec<Option<ZooKeeper>> = (0..n).map(|_| None).collect();
    while let Some(r) = set.join_next().await {
        let (i, r) = r?;
        let (zk, _events) = r.map_err(|e| anyhow::anyhow!("connecting to {connect}: {e}"))?;
        out[i] = Some(zk);
    }
    Ok(out.into_iter().flatten().collect())
}

/// State shared by the workers of one run.
pub struct Ctx {
    pub recorder: Arc<Recorder>,
    pub mix: Mix,
    pub keys: Keys,
    pub sizes: Sizes,
    pub tree: Tree,
    pub value: Bytes,
    pub connect: String,
    pub t0: Instant,
    pub stop: AtomicBool,
    /// Open loop: the phase generation, its start (ns after t0) and rate (f64 bits; 0 = closed).
    pub epoch: AtomicU64,
    pub phase_start_ns: AtomicU64,
    pub rate_bits: AtomicU64,
    /// Watch fan-out: when the last watched setData was sent (ns after t0).
    pub watch_sent_ns: AtomicU64,
    pub workers: usize,
    pub inflight: usize,
    pub trace: Option<TraceWriter>,
    /// With faults: every op's times and error, the acknowledged writes, expired sessions.
    pub op_log: Option<OpLog>,
    pub ledger: Option<WriteLedger>,
    pub session_ends: std::sync::Mutex<BTreeMap<usize, u64>>,
    pub security: Security,
}

impl Ctx {
    fn since_t0(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.t0).as_nanos() as u64
    }

    /// Logs an op for the fault analysis (when faults are scheduled).
    fn log_op(&self, op: OpKind, session: usize, start: Instant, end: Instant, error: Option<&'static str>) {
        if let Some(log) = &self.op_log {
            let start_us = self.since_t0(start) / 1000;
            let end_us = (self.since_t0(end) / 1000).max(start_us);
            log.push(OpEvent { op, session: session as u32, start_us, end_us, error });
        }
    }
}

/// setData; with a ledger (faults scheduled) the value starts with a unique tag and the
/// outcome is recorded, so that acknowledged writes can be checked after the run.
async fn set_tracked(
    ctx: &Ctx,
    zk: &ZooKeeper,
    key: usize,
    size: usize,
    worker: usize,
    seq: u64,
) -> Result<(), Error> {
    let path = &ctx.tree.keys[key];
    let Some(ledger) = &ctx.ledger else {
        return zk.set_data(path, &ctx.value[..size], -1).await.map(|_| ());
    };
    let tag = crate::fault::tag(worker, seq);
    let mut value = ctx.value[..size].to_vec();
    if value.len() < tag.len() {
        value = tag.as_bytes().to_vec();
    } else {
        value[..tag.len()].copy_from_slice(tag.as_bytes());
    }
    match zk.set_data(path, &value, -1).await {
        Ok(stat) => {
            ledger.acked(key, stat.mzxid, tag);
            Ok(())
        }
        Err(e) => {
            ledger.unknown(key, tag);
            Err(e)
        }
    }
}

/// Runs one op (or op pair) and records it. `intended` is the open-loop send time. Returns
/// whether the op failed at the session level (connection loss, expired or closed session),
/// after which the worker backs off instead of spinning on instant failures.
async fn exec(
    ctx: &Ctx,
    zk: &ZooKeeper,
    op: MixOp,
    rng: &mut SmallRng,
    worker: usize,
    seq: u64,
    intended: Option<Instant>,
) -> bool {
    let start = Instant::now();
    let response = |end: Instant| intended.map(|i| end.saturating_duration_since(i));
    let mut traced: Option<(OpKind, &str, usize)> = None;
    let (kind, result) = match op {
        MixOp::Get => {
            let path = &ctx.tree.keys[ctx.keys.pick(rng)];
            traced = Some((OpKind::Get, path, 0));
            (OpKind::Get, zk.get_data(path).await.map(|_| ()))
        }
        MixOp::Set => {
            let key = ctx.keys.pick(rng);
            let size = ctx.sizes.pick(rng);
            traced = Some((OpKind::Set, &ctx.tree.keys[key], size));
            (OpKind::Set, set_tracked(ctx, zk, key, size, worker, seq).await)
        }
        MixOp::GetMissing => {
            let path = &ctx.tree.missing[ctx.keys.pick(rng)];
            traced = Some((OpKind::GetMissing, path, 0));
            (OpKind::GetMissing, zk.get_data(path).await.map(|_| ()))
        }
        MixOp::SetStale => {
            let path = &ctx.tree.keys[ctx.keys.pick(rng)];
            let size = ctx.sizes.pick(rng);
            traced = Some((OpKind::SetStale, path, size));
            (OpKind::SetStale, zk.set_data(path, &ctx.value[..size], STALE_VERSION).await.map(|_| ()))
        }
        MixOp::Exists => {
            let path = &ctx.tree.keys[ctx.keys.pick(rng)];
            traced = Some((OpKind::Exists, path, 0));
            (OpKind::Exists, zk.exists(path).await.map(|_| ()))
        }
        MixOp::Children => {
            let key = ctx.keys.pick(rng);
            let dir = &ctx.tree.dirs[key * ctx.tree.dirs.len() / ctx.tree.keys.len().max(1)];
            traced = Some((OpKind::Children, dir, 0));
            (OpKind::Children, zk.get_children(dir).await.map(|_| ()))
        }
        MixOp::Multi => {
            let a = &ctx.tree.keys[ctx.keys.pick(rng)];
            let b = &ctx.tree.keys[ctx.keys.pick(rng)];
            let size = ctx.sizes.pick(rng);
            let v = &ctx.value[..size];
            let m = Multi::new().check(a, -1).set_data(a, v, -1).set_data(b, v, -1);
            (OpKind::Multi, zk.multi(m).await.map(|_| ()))
        }
        MixOp::WatchSet => {
            let size = ctx.sizes.pick(rng);
            ctx.watch_sent_ns.store(ctx.since_t0(Instant::now()), Ordering::Relaxed);
            (OpKind::WatchSet, zk.set_data(WATCHED, &ctx.value[..size], -1).await.map(|_| ()))
        }
        MixOp::CreateDelete => {
            let path = format!("/fkload/cd/w{worker}-{seq}");
            let size = ctx.sizes.pick(rng);
            let r =
                zk.create(&path, &ctx.value[..size], &Acl::open_unsafe(), CreateMode::Persistent, None).await;
            let mid = Instant::now();
            let err = r.as_ref().err().map(error_name);
            ctx.recorder.record(OpKind::Create, mid - start, response(mid), err);
            ctx.log_op(OpKind::Create, worker / ctx.inflight.max(1), intended.unwrap_or(start), mid, err);
            if let Some(t) = &ctx.trace {
                t.send(TraceEvent::new(
                    ctx.since_t0(intended.unwrap_or(start)),
                    OpKind::Create,
                    &path,
                    size,
                    mid - start,
                ));
            }
            let r = zk.delete(&path, -1).await.map(|_| ());
            let end = Instant::now();
            if let Some(t) = &ctx.trace {
                t.send(TraceEvent::new(ctx.since_t0(mid), OpKind::Delete, &path, 0, end - mid));
            }
            // The delete is issued right after the create: its response time is its service time.
            let delete_response = intended.map(|_| end - mid);
            ctx.recorder.record(OpKind::Delete, end - mid, delete_response, r.as_ref().err().map(error_name));
            ctx.log_op(
                OpKind::Delete,
                worker / ctx.inflight.max(1),
                mid,
                end,
                r.as_ref().err().map(error_name),
            );
            return r.as_ref().err().is_some_and(session_level);
        }
        MixOp::EphemeralChurn => {
            let r = async {
                let (s, _events) = ctx
                    .security
                    .builder(&ctx.connect)
                    .session_timeout(Duration::from_secs(10))
                    .connect()
                    .await?;
                let path = format!("/fkload/eph/w{worker}-{seq}");
                let r = s
                    .create(
                        &path,
                        &ctx.value[..16.min(ctx.value.len())],
                        &Acl::open_unsafe(),
                        CreateMode::Ephemeral,
                        None,
                    )
                    .await;
                let c = s.close().await;
                r.map(|_| ())?;
                c
            }
            .await;
            (OpKind::Session, r)
        }
        MixOp::Lock => {
            let mut lock = DistributedLock::new(zk.clone(), "/fkload/lock");
            let r = match lock.acquire().await {
                Ok(()) => lock.release().await,
                Err(e) => {
                    let _ = lock.release().await;
                    Err(e)
                }
            };
            (OpKind::Lock, r)
        }
    };
    let end = Instant::now();
    ctx.recorder.record(kind, end - start, response(end), result.as_ref().err().map(error_name));
    ctx.log_op(
        kind,
        worker / ctx.inflight.max(1),
        intended.unwrap_or(start),
        end,
        result.as_ref().err().map(error_name),
    );
    if let (Some(t), Some((op, path, size))) = (&ctx.trace, traced) {
        t.send(TraceEvent::new(ctx.since_t0(intended.unwrap_or(start)), op, path, size, end - start));
    }
    result.as_ref().err().is_some_and(session_level)
}

fn session_level(e: &Error) -> bool {
    use ferrokeeper_client::Code;
    matches!(e, Error::Closed | Error::ConnectFailed(_))
        || matches!(e.code(), Code::ConnectionLoss | Code::SessionExpired | Code::AuthFailed)
}

/// How early an open-loop worker wakes before a request's intended time (half a timer tick).
const TIMER_SLACK: Duration = Duration::from_micros(500);

/// One worker: a closed loop, or an open loop on the current phase's schedule.
async fn worker(ctx: Arc<Ctx>, mut zk: ZooKeeper, id: usize, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut seq = 0u64;
    let mut epoch = u64::MAX;
    let mut next = Instant::now();
    let mut interval = Duration::ZERO;
    let mut open = false;
    while !ctx.stop.load(Ordering::Relaxed) {
        let e = ctx.epoch.load(Ordering::Acquire);
        if e != epoch {
            epoch = e;
            let rate = f64::from_bits(ctx.rate_bits.load(Ordering::Relaxed));
            open = rate > 0.0;
            if open {
                let per_worker = rate / ctx.workers as f64;
                interval = Duration::from_secs_f64(1.0 / per_worker);
                let phase_start = ctx.t0 + Duration::from_nanos(ctx.phase_start_ns.load(Ordering::Relaxed));
                // Spread the workers' first sends evenly over one interval.
                next = phase_start + interval.mul_f64(id as f64 / ctx.workers as f64);
            }
        }
        let intended = if open {
            // tokio's timer rounds deadlines up to its 1 ms tick, so aim half a tick early; a
            // request that leaves early is timed from its actual send, never before it.
            let wake = next.checked_sub(TIMER_SLACK).unwrap_or(next);
            if wake > Instant::now() {
                tokio::time::sleep_until(wake.into()).await;
                if ctx.stop.load(Ordering::Relaxed) || ctx.epoch.load(Ordering::Acquire) != epoch {
                    continue;
                }
            }
            let at = next;
            next += interval;
            let now = Instant::now();
            ctx.recorder.record_lag(now.saturating_duration_since(at));
            Some(at.min(now))
        } else {
            None
        };
        let op = ctx.mix.pick(&mut rng);
        let broken = exec(&ctx, &zk, op, &mut rng, id, seq, intended).await;
        seq += 1;
        if broken {
            // A dead session fails instantly; without a pause the worker would spin and starve
            // the runtime (ticks, other sessions). A closed or expired session never recovers.
            if !zk.state().is_alive() {
                let expired = zk.state() == ferrokeeper_client::SessionState::Expired;
                if expired {
                    let at = ctx.since_t0(Instant::now()) / 1000;
                    lock(&ctx.session_ends).entry(id / ctx.inflight.max(1)).or_insert(at);
                }
                // Under a fault schedule an application would open a new session and go on;
                // so does the worker (its own), or the rest of the run would measure nothing.
                if !(expired && ctx.op_log.is_some()) {
                    break;
                }
                match reconnect(&ctx, id).await {
                    Some(fresh) => zk = fresh,
                    None => break,
                }
                continue;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A new session for worker `id` after its session expired, retried until the run stops.
async fn reconnect(ctx: &Ctx, id: usize) -> Option<ZooKeeper> {
    let connect = rotated(&ctx.connect, id / ctx.inflight.max(1));
    while !ctx.stop.load(Ordering::Relaxed) {
        let attempt = ctx.security.builder(&connect).session_timeout(Duration::from_secs(30)).connect();
        if let Ok(Ok((zk, _events))) = tokio::time::timeout(Duration::from_secs(10), attempt).await {
            return Some(zk);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// A watcher of the fan-out node: re-arms its watch and records set → event latency.
async fn watcher(ctx: Arc<Ctx>, zk: ZooKeeper) {
    while !ctx.stop.load(Ordering::Relaxed) {
        let Ok((_, _, watch)) = zk.get_data_w(WATCHED).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(_event) = watch.changed().await else { continue };
        let now = Instant::now();
        let sent = ctx.t0 + Duration::from_nanos(ctx.watch_sent_ns.load(Ordering::Relaxed));
        let latency = now.saturating_duration_since(sent);
        ctx.recorder.record(OpKind::Notify, latency, None, None);
    }
}

/// One phase of a run.
#[derive(Debug, Clone)]
struct Phase {
    name: String,
    secs: f64,
    rate: Option<f64>,
    measured: bool,
}

fn plan(w: &Workload, rate_override: Option<f64>) -> Vec<Phase> {
    let mut phases = Vec::new();
    let first_rate = rate_override.or(w.steps.first().copied()).or(w.rate);
    if w.warmup_secs > 0.0 {
        phases.push(Phase { name: "warmup".into(), secs: w.warmup_secs, rate: first_rate, measured: false });
    }
    if rate_override.is_none() && !w.steps.is_empty() {
        for r in &w.steps {
            phases.push(Phase {
                name: format!("step-{r}"),
                secs: w.step_secs,
                rate: Some(*r),
                measured: true,
            });
        }
    } else {
        phases.push(Phase {
            name: "measure".into(),
            secs: w.duration_secs,
            rate: first_rate,
            measured: true,
        });
    }
    phases
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// This machine's host name (for the worker info), from the kernel.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
}

/// Writes raw samples as text: `op service_us response_us` (response 0 in closed loop).
fn write_samples(path: &std::path::Path, samples: &[(OpKind, u64, u64)]) -> anyhow::Result<()> {
    use std::io::Write;
    let file =
        std::fs::File::create(path).map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for (op, service, response) in samples {
        writeln!(out, "{} {service} {response}", op.name())?;
    }
    out.flush()?;
    Ok(())
}

/// Runs a workload once. `rate_override` forces an open loop at that rate (sweep).
pub async fn run(opts: &RunOptions, rate_override: Option<f64>) -> anyhow::Result<RunResult> {
    let w = &opts.workload;
    w.validate()?;
    let me = opts.worker;
    let my_sessions = me.sessions(w.sessions);
    anyhow::ensure!(
        !my_sessions.is_empty(),
        "worker {}/{} has no session: the workload has only {} sessions",
        me.index,
        me.count,
        w.sessions
    );
    if me.count > 1 {
        // A watcher times set → event against its own process's last set; across processes
        // that pairing is meaningless.
        anyhow::ensure!(
            w.ops.get(&MixOp::WatchSet).copied().unwrap_or(0) == 0,
            "watch_set cannot be split over workers (notify latency needs the setter's clock)"
        );
    }
    let metrics = opts.metrics_port.map(|_| Metrics::new(&opts.connect));
    let _metrics_task = match (&metrics, opts.metrics_port) {
        (Some(m), Some(port)) => Some(AbortOnDrop(m.clone().serve(port).await?)),
        _ => None,
    };
    if let Some(m) = &metrics {
        m.start_at_zero(&w.kinds());
    }
    let recorder = Arc::new(if opts.samples.is_some() {
        Recorder::with_samples(metrics)
    } else {
        Recorder::new(metrics)
    });
    let snapshot = opts.tree_from.as_deref().map(crate::snaptree::load).transpose()?;
    let tree = match &snapshot {
        Some(loaded) => {
            anyhow::ensure!(
                w.ops.get(&MixOp::GetMissing).copied().unwrap_or(0) == 0,
                "get_missing reads a synthetic subtree and cannot run on a snapshot's tree"
            );
            crate::snaptree::run_tree(loaded)?
        }
        None => Tree::new(w),
    };
    let mut value = vec![0u8; w.value_size.max().max(16)];
    SmallRng::seed_from_u64(opts.seed).fill_bytes(&mut value);
    for b in &mut value {
        *b = b'a' + (*b % 26);
    }
    let value = Bytes::from(value);
    let sessions = connect_sessions(&opts.connect, &my_sessions, &opts.security).await?;
    let first = sessions.first().ok_or_else(|| anyhow::anyhow!("no session"))?.clone();
    let mut setup_requests = BTreeMap::new();
    if !opts.skip_setup {
        let creates = match &snapshot {
            // The fixed nodes, then the snapshot's tree (every worker creates it whole; nodes
            // already there are left alone).
            Some(loaded) => {
                let empty = Tree { keys: Vec::new(), dirs: Vec::new(), missing: Vec::new() };
                prepare(&first, w, &empty, &value, me).await?
                    + crate::snaptree::create(&first, loaded).await?
            }
            None => prepare(&first, w, &tree, &value, me).await?,
        };
        setup_requests.insert("create".to_owned(), creates);
        if me.count > 1 && snapshot.is_none() {
            wait_for_tree(&first, &tree, Duration::from_secs(120)).await?;
        }
        // The tree was created through one server; a session on another (a follower behind the
        // leader) could still read NoNode for a key. ZooKeeper's answer: sync first.
        let mut syncs = JoinSet::new();
        for zk in &sessions {
            let zk = zk.clone();
            syncs.spawn(async move { zk.sync(ROOT).await });
        }
        while let Some(r) = syncs.join_next().await {
            r?.map_err(|e| anyhow::anyhow!("sync after setup: {e}"))?;
        }
        setup_requests.insert("sync".to_owned(), sessions.len() as u64);
    }
    let coordinated = me.count > 1 || opts.start_at.is_some();
    let clock_before = if coordinated { clock_offset(&first, me.index, 8).await } else { None };
    let workers = w.sessions * w.inflight;
    let trace = match &opts.record {
        Some(p) => Some(TraceWriter::create(p, w)?),
        None => None,
    };
    let ctx = Arc::new(Ctx {
        recorder: recorder.clone(),
        mix: Mix::new(w),
        keys: Keys::new(&w.keys, tree.keys.len()),
        sizes: Sizes::new(&w.value_size),
        tree,
        value,
        connect: opts.connect.clone(),
        t0: Instant::now(),
        stop: AtomicBool::new(false),
        epoch: AtomicU64::new(0),
        phase_start_ns: AtomicU64::new(0),
        rate_bits: AtomicU64::new(0),
        watch_sent_ns: AtomicU64::new(0),
        workers,
        inflight: w.inflight,
        trace,
        op_log: (!w.faults.is_empty()).then(OpLog::default),
        ledger: (!w.faults.is_empty()).then(WriteLedger::default),
        session_ends: std::sync::Mutex::new(BTreeMap::new()),
        security: opts.security.clone(),
    });
    let phases = plan(w, rate_override);
    let mut watchers = JoinSet::new();
    if w.watchers > 0 {
        for zk in connect_all(&opts.connect, w.watchers, &opts.security).await? {
            watchers.spawn(watcher(ctx.clone(), zk));
        }
    }
    if let Some(at) = opts.start_at {
        sleep_until_unix(at).await;
    }
    // Publish the first phase just before the workers start, so the open-loop schedule does
    // not begin with a backlog from the time spent connecting.
    set_phase(&ctx, phases.first().and_then(|p| p.rate), ctx.since_t0(Instant::now()));
    let started_unix = unix_now();
    // Worker 0 alone carries out the faults (the others would hit the same nodes again).
    let fault_events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let schedule = (!w.faults.is_empty() && me.index == 0).then(|| {
        let now = Instant::now();
        let run_secs: f64 = phases.iter().map(|p| p.secs).sum();
        let clock = crate::fault::ScheduleClock {
            start: now,
            t0: ctx.t0,
            end: now + Duration::from_secs_f64(run_secs),
        };
        AbortOnDrop(tokio::spawn(crate::fault::run_schedule(
            w.faults.clone(),
            w.fault_commands.clone(),
            opts.connect.clone(),
            clock,
            fault_events.clone(),
        )))
    });
    let mut tasks = JoinSet::new();
    for (zk, s) in sessions.iter().zip(&my_sessions) {
        for j in 0..w.inflight {
            // Global worker numbers: the same schedule slots and key streams as in one process.
            tasks.spawn(worker(ctx.clone(), zk.clone(), s * w.inflight + j, opts.seed));
        }
    }
    let mut ticker = Ticker::new(opts, &ctx)?;
    let mut before = Snapshot::default();
    let mut cpu_before = (0.0, 0.0);
    let mut ops_before = 0;
    let mut measure_start = Instant::now();
    let mut steps = Vec::new();
    let mut last_ops = BTreeMap::new();
    let mut measured_secs = 0.0;
    let mut first_measured = true;
    let mut send_lag = None;
    let mut send_lag_hdr = None;
    for (i, phase) in phases.iter().enumerate() {
        if i > 0 {
            set_phase(&ctx, phase.rate, ctx.since_t0(Instant::now()));
        }
        if phase.measured {
            recorder.reset_totals();
            if first_measured {
                first_measured = false;
                if opts.server_stats {
                    before = Snapshot::take(&opts.connect).await;
                }
                cpu_before = process_cpu_seconds();
                ops_before = recorder.total_ops();
                measure_start = Instant::now();
            }
        }
        let phase_start = Instant::now();
        ticker.run_phase(&phase.name, phase.secs).await?;
        if phase.measured {
            let secs = phase_start.elapsed().as_secs_f64();
            measured_secs = secs;
            let ops = recorder.summarize(secs);
            send_lag = recorder.lag();
            send_lag_hdr = recorder.lag_histogram();
            if !w.steps.is_empty() || rate_override.is_some() {
                steps.push(step_result(phase.rate.unwrap_or(0.0), &ops, w));
            }
            last_ops = ops;
        }
    }
    let cpu_after = process_cpu_seconds();
    let ops_measured = recorder.total_ops().saturating_sub(ops_before);
    let wall = measure_start.elapsed().as_secs_f64();
    let end_us = ctx.since_t0(Instant::now()) / 1000;
    ctx.stop.store(true, Ordering::Relaxed);
    ctx.epoch.fetch_add(1, Ordering::Release);
    let servers = if opts.server_stats {
        Snapshot::diff(&before, &Snapshot::take(&opts.connect).await)
    } else {
        Vec::new()
    };
    // Let the workers finish their current op (bounded), then drop the sessions.
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), drain).await.is_err() {
        tasks.abort_all();
    }
    let clock_after = if coordinated {
        tokio::time::timeout(Duration::from_secs(10), clock_offset(&first, me.index, 8)).await.ok().flatten()
    } else {
        None
    };
    if let Some(p) = &opts.samples {
        write_samples(p, &recorder.samples())?;
    }
    let (faults, durability, fault_log_dropped) =
        finish_faults(&ctx, &opts.connect, schedule, &fault_events, end_us).await;
    watchers.abort_all();
    for zk in &sessions {
        let _ = tokio::time::timeout(Duration::from_secs(2), zk.close()).await;
    }
    let hdr_log = ticker.finish();
    if let Some(t) = &ctx.trace {
        t.flush();
    }
    let totals = totals(&last_ops, measured_secs);
    let mode = if rate_override.is_some() {
        "open"
    } else if !w.steps.is_empty() {
        "stepped"
    } else if w.rate.is_some() {
        "open"
    } else {
        "closed"
    };
    Ok(RunResult {
        fkload_version: env!("CARGO_PKG_VERSION").to_owned(),
        workload: w.clone(),
        target: opts.connect.clone(),
        mode: mode.to_owned(),
        rate: rate_override.or(w.rate),
        started_unix,
        measured_secs,
        totals,
        ops: last_ops,
        series: ticker.series,
        client_cpu: ClientCpu::between(cpu_before, cpu_after, ops_measured, wall),
        servers,
        steps,
        hdr_log,
        send_lag,
        completed: recorder.run_counts(),
        setup_requests,
        worker: Some(WorkerInfo {
            index: me.index,
            count: me.count,
            host: host_name(),
            sessions: my_sessions,
            start_at_unix: opts.start_at,
            started_unix,
            clock_before,
            clock_after,
            send_lag_hdr,
        }),
        workers: Vec::new(),
        merge_flags: Vec::new(),
        faults,
        durability,
        fault_log_dropped,
    })
}

/// After a run with faults: waits for the schedule (every action falls inside the run), measures
/// each action's span in the op log and reads every acknowledged write back on a fresh session.
async fn finish_faults(
    ctx: &Ctx,
    connect: &str,
    schedule: Option<AbortOnDrop>,
    events: &std::sync::Mutex<Vec<crate::fault::FaultEvent>>,
    end_us: u64,
) -> (Vec<FaultReport>, Option<DurabilityCheck>, u64) {
    let (Some(log), Some(ledger)) = (&ctx.op_log, &ctx.ledger) else {
        return (Vec::new(), None, 0);
    };
    // The schedule stops at the run's end (an action in progress gets a few seconds).
    if let Some(mut task) = schedule {
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut task.0).await;
    }
    let events = lock(events).clone();
    let (ops, dropped) = log.take();
    let session_ends: Vec<u64> = lock(&ctx.session_ends).values().copied().collect();
    let reports = crate::fault::analyze(&events, &ops, end_us, &session_ends);
    let check = async {
        let (zk, _events) =
            ctx.security.builder(connect).session_timeout(Duration::from_secs(30)).connect().await.ok()?;
        let c = crate::fault::verify(&zk, &ctx.tree.keys, ledger, Duration::from_secs(30)).await;
        let _ = zk.close().await;
        Some(c)
    };
    let durability =
        tokio::time::timeout(Duration::from_secs(45), check).await.ok().flatten().or_else(|| {
            Some(DurabilityCheck {
                acked_writes: ledger.acked_count(),
                unreadable: vec![format!("no session to {connect}, or no answer, within 45 s")],
                ..DurabilityCheck::default()
            })
        });
    (reports, durability, dropped)
}

fn set_phase(ctx: &Ctx, rate: Option<f64>, start_ns: u64) {
    ctx.rate_bits.store(rate.unwrap_or(0.0).to_bits(), Ordering::Relaxed);
    ctx.phase_start_ns.store(start_ns, Ordering::Relaxed);
    ctx.epoch.fetch_add(1, Ordering::Release);
}

/// Sums the per-op summaries.
pub fn totals(ops: &BTreeMap<String, OpSummary>, secs: f64) -> Totals {
    let count: u64 = ops.iter().filter(|(k, _)| k.as_str() != "notify").map(|(_, s)| s.count).sum();
    let errors: u64 = ops.values().map(|s| s.errors).sum();
    Totals { ops: count, errors, throughput: count as f64 / secs.max(1e-9) }
}

/// One step's result from its op summaries: achieved rate, worst p99, the SLO verdict.
pub fn step_result(rate: f64, ops: &BTreeMap<String, OpSummary>, w: &Workload) -> StepResult {
    let p99 = ops.values().map(|s| s.response.as_ref().unwrap_or(&s.service).p99).fold(0.0, f64::max);
    let achieved: f64 = ops.iter().filter(|(k, _)| k.as_str() != "notify").map(|(_, s)| s.throughput).sum();
    let slo_value = w.slo.as_ref().map(|slo| {
        ops.values().map(|s| s.response.as_ref().unwrap_or(&s.service).at(slo.percentile)).fold(0.0, f64::max)
    });
    let ok = achieved >= 0.95 * rate
        && match (&w.slo, slo_value) {
            (Some(slo), Some(v)) => v <= slo.latency_ms,
            _ => true,
        };
    StepResult { rate, achieved, p99_ms: p99, slo_value_ms: slo_value, ok, ops: ops.clone() }
}

/// Finds the highest open-loop rate that meets the workload's SLO: grows the rate ×1.5 from
/// `start` until a step misses (twice in a row at that rate), then bisects until the bounds are
/// within 5 % or `max_steps` rates were tried. Returns the best step's full run, with every
/// step (retries included) in `steps`.
pub async fn sweep(opts: &RunOptions, start: f64, max_steps: usize) -> anyhow::Result<RunResult> {
    anyhow::ensure!(opts.workload.slo.is_some(), "--sweep needs an slo in the workload");
    let mut o = opts.clone();
    let mut steps: Vec<StepResult> = Vec::new();
    let mut best: Option<RunResult> = None;
    let mut rate = start.max(1.0);
    let mut low = 0.0f64;
    let mut high: Option<f64> = None;
    for _ in 0..max_steps.max(1) {
        let mut r = run(&o, Some(rate)).await?;
        o.skip_setup = true;
        let mut step =
            r.steps.last().cloned().ok_or_else(|| anyhow::anyhow!("sweep step produced no result"))?;
        if !step.ok {
            // One noisy second (a GC pause, a neighbour's build) should not end the search:
            // a miss counts only if a second run at the same rate misses too.
            steps.push(step);
            r = run(&o, Some(rate)).await?;
            step = r.steps.last().cloned().ok_or_else(|| anyhow::anyhow!("sweep step produced no result"))?;
        }
        let ok = step.ok;
        steps.push(step);
        if ok {
            low = rate;
            best = Some(r);
        } else {
            high = Some(rate);
        }
        rate = match high {
            None => rate * 1.5,
            Some(h) if low > 0.0 => (low + h) / 2.0,
            Some(h) => h / 2.0,
        };
        if let Some(h) = high
            && low > 0.0
            && (h - low) / h < 0.05
        {
            break;
        }
    }
    let mut result = match best {
        Some(b) => b,
        None => run(&o, Some(steps.last().map_or(start, |s| s.rate))).await?,
    };
    result.mode = "sweep".into();
    result.steps = steps;
    Ok(result)
}

struct AbortOnDrop<T = ()>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The once-a-second tick: series point, HDR interval log, progress line.
struct Ticker {
    ctx: Arc<Ctx>,
    bar: indicatif::ProgressBar,
    hdr: Option<HdrLog>,
    series: Vec<SeriesPoint>,
    last: Instant,
}

impl Ticker {
    fn new(opts: &RunOptions, ctx: &Arc<Ctx>) -> anyhow::Result<Ticker> {
        let bar = if opts.progress {
            let b = indicatif::ProgressBar::new_spinner();
            b.set_style(
                indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            b
        } else {
            indicatif::ProgressBar::hidden()
        };
        let hdr = match &opts.hdr_log {
            Some(p) => Some(HdrLog::create(p)?),
            None => None,
        };
        Ok(Ticker { ctx: ctx.clone(), bar, hdr, series: Vec::new(), last: Instant::now() })
    }

    async fn run_phase(&mut self, name: &str, secs: f64) -> anyhow::Result<()> {
        let end = Instant::now() + Duration::from_secs_f64(secs);
        self.last = Instant::now();
        loop {
            let now = Instant::now();
            if now >= end {
                break;
            }
            let next = (self.last + Duration::from_secs(1)).min(end);
            tokio::time::sleep_until(next.into()).await;
            self.tick(name)?;
        }
        Ok(())
    }

    fn tick(&mut self, phase: &str) -> anyhow::Result<()> {
        let now = Instant::now();
        let secs = now.duration_since(self.last).as_secs_f64();
        let interval = self.ctx.recorder.take_interval();
        let t = now.duration_since(self.ctx.t0).as_secs_f64();
        let point = series_point(t, secs, phase, &interval);
        if let Some(h) = &mut self.hdr {
            let start = self.last.duration_since(self.ctx.t0);
            h.write(&interval, start, now.duration_since(self.last))?;
        }
        self.bar.set_message(format!(
            "{phase:>10}  {:>9.0} ops/s  p99 {:>8.2} ms  errors {:>6.0}/s",
            point.ops, point.p99_ms, point.errors
        ));
        self.bar.tick();
        self.series.push(point);
        self.last = now;
        Ok(())
    }

    fn finish(&mut self) -> Option<String> {
        self.bar.finish_and_clear();
        self.hdr.take().map(|h| h.finish())
    }
}

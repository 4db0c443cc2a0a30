//! Op-stream traces (JSON lines) for `--record` and `fkload replay`.
//!
//! Format (see `loadgen/README.md`): an optional first line `{"fkload_trace":1,"workload":{...}}`,
//! then one object per op: `{"t_us":1234,"op":"get","path":"/a/b","size":0,"latency_us":310}`.
//! `t_us` is the (intended) send time in microseconds from the start; `size` the bytes written
//! (set/create); `latency_us` is informative and ignored by replay.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ferrokeeper_client::{Acl, Multi, ZooKeeper};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::cpu::{ClientCpu, process_cpu_seconds};
use crate::run::{RunResult, Tree, connect_all, prepare, totals};
use crate::stats::{Recorder, series_point};
use crate::workload::{OpKind, Workload};

/// One recorded op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceEvent {
    pub t_us: u64,
    pub op: String,
    pub path: String,
    #[serde(default)]
    pub size: usize,
    #[serde(default)]
    pub latency_us: u64,
    /// The session that issued it in the source (a ZooKeeper log or audit log): events of one
    /// session are replayed in order by one worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<i64>,
    /// A create's mode: `persistent` (default), `ephemeral`, `container`, `ttl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// A TTL create's TTL (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
    /// A multi's sub-ops (`create`, `delete`, `set`, `check`), as logged by ZooKeeper.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<TraceSubOp>,
}

/// One operation of a replayed multi.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceSubOp {
    pub op: String,
    pub path: String,
    #[serde(default)]
    pub size: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
}

impl TraceEvent {
    /// An event sent `t_ns` after the start.
    pub fn new(t_ns: u64, op: OpKind, path: &str, size: usize, latency: Duration) -> TraceEvent {
        TraceEvent {
            t_us: t_ns / 1000,
            op: op.name().to_owned(),
            path: path.to_owned(),
            size,
            latency_us: latency.as_micros() as u64,
            session: None,
            mode: None,
            ttl: None,
            ops: Vec::new(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    fkload_trace: u32,
    workload: Option<Workload>,
}

/// Writes events from any worker through a channel to a writer thread.
#[derive(Debug)]
pub struct TraceWriter {
    tx: std::sync::Mutex<Option<mpsc::Sender<TraceEvent>>>,
    done: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl TraceWriter {
    /// Creates the file, writes the header and starts the writer thread.
    pub fn create(path: &Path, workload: &Workload) -> anyhow::Result<TraceWriter> {
        let file =
            std::fs::File::create(path).map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))?;
        let mut out = std::io::BufWriter::new(file);
        serde_json::to_writer(&mut out, &Header { fkload_trace: 1, workload: Some(workload.clone()) })?;
        out.write_all(b"\n")?;
        let (tx, rx) = mpsc::channel::<TraceEvent>();
        let handle = std::thread::spawn(move || {
            for ev in rx {
                if serde_json::to_writer(&mut out, &ev).is_err() || out.write_all(b"\n").is_err() {
                    break;
                }
            }
            let _ = out.flush();
        });
        Ok(TraceWriter { tx: std::sync::Mutex::new(Some(tx)), done: std::sync::Mutex::new(Some(handle)) })
    }

    /// Queues one event.
    pub fn send(&self, ev: TraceEvent) {
        if let Some(tx) = crate::stats::lock(&self.tx).as_ref() {
            let _ = tx.send(ev);
        }
    }

    /// Closes the channel and waits for the file to be written.
    pub fn flush(&self) {
        crate::stats::lock(&self.tx).take();
        if let Some(h) = crate::stats::lock(&self.done).take() {
            let _ = h.join();
        }
    }
}

/// Reads a trace: the header's workload (if any) and the events sorted by time. Besides
/// fkload's JSON lines, `path` may be an Apache ZooKeeper transaction log (`log.*`), a directory
/// of them (a dataDir / dataLogDir or its `version-2`), or a ZooKeeper audit log
/// ([`crate::zktrace`]); what they hold that cannot be replayed is reported on stderr.
pub fn read(path: &Path) -> anyhow::Result<(Option<Workload>, Vec<TraceEvent>)> {
    let converted = if path.is_dir() {
        Some(crate::zktrace::from_zk_logs(&crate::zktrace::log_files(path)?)?)
    } else {
        let mut head = vec![0u8; 64 * 1024];
        let n = {
            use std::io::Read;
            let mut f =
                std::fs::File::open(path).map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
            let mut n = 0;
            while n < head.len() {
                match f.read(&mut head[n..])? {
                    0 => break,
                    k => n += k,
                }
            }
            n
        };
        match crate::zktrace::kind_of(&head[..n]) {
            crate::zktrace::Kind::ZkLog => Some(crate::zktrace::from_zk_logs(&[path.to_owned()])?),
            crate::zktrace::Kind::AuditLog => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
                Some(crate::zktrace::from_audit_log(&text, path)?)
            }
            crate::zktrace::Kind::FkloadTrace => None,
        }
    };
    if let Some(c) = converted {
        if !c.skipped.is_empty() {
            let list: Vec<String> = c.skipped.iter().map(|(k, n)| format!("{k} {n}")).collect();
            eprintln!("fkload: {}: not replayed: {}", path.display(), list.join(", "));
        }
        return Ok((None, c.events));
    }
    let file = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
    let mut workload = None;
    let mut events = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        if i == 0 && line.contains("\"fkload_trace\"") {
            let h: Header = serde_json::from_str(&line)?;
            workload = h.workload;
            continue;
        }
        let ev: TraceEvent =
            serde_json::from_str(&line).map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))?;
        anyhow::ensure!(
            OpKind::from_name(&ev.op).is_some(),
            "{}:{}: unknown op {:?}",
            path.display(),
            i + 1,
            ev.op
        );
        events.push(ev);
    }
    events.sort_by_key(|e| e.t_us);
    Ok((workload, events))
}

/// Replays a trace open-loop at `speed` × the recorded pace over `sessions × inflight` workers
/// (event i goes to worker i mod workers); latency counts from each event's scheduled time.
pub async fn replay(
    connect: &str,
    path: &Path,
    speed: f64,
    sessions: usize,
    inflight: usize,
    setup: bool,
) -> anyhow::Result<RunResult> {
    replay_with(connect, path, speed, sessions, inflight, setup, None).await
}

/// [`replay`], first creating the tree of the snapshot `tree_from` (ZooKeeper's or
/// ferrokeeper's, [`crate::snaptree`]) when given, e.g. the snapshot a ZooKeeper log follows.
/// Events that carry their source session are assigned to workers by session (one session's
/// events in order on one worker); others round-robin.
pub async fn replay_with(
    connect: &str,
    path: &Path,
    speed: f64,
    sessions: usize,
    inflight: usize,
    setup: bool,
    tree_from: Option<&Path>,
) -> anyhow::Result<RunResult> {
    let (workload, events) = read(path)?;
    let snapshot = tree_from.map(crate::snaptree::load).transpose()?;
    anyhow::ensure!(speed > 0.0, "--speed must be > 0");
    let sessions_n = sessions.max(1);
    let workers = sessions_n * inflight.max(1);
    // Replays connect in plain text (`fkload run`'s -D TLS/SASL properties are not read here).
    let zks = connect_all(connect, sessions_n, &crate::run::Security::default()).await?;
    let max_size = events
        .iter()
        .map(|e| e.ops.iter().map(|o| o.size).max().unwrap_or(0).max(e.size))
        .max()
        .unwrap_or(0)
        .max(16);
    let value = Bytes::from(vec![b'r'; max_size]);
    if setup && let (Some(w), Some(zk)) = (&workload, zks.first()) {
        prepare(zk, w, &Tree::new(w), &value, crate::worker::WorkerSpec::SOLE).await?;
    }
    if let (Some(loaded), Some(zk)) = (&snapshot, zks.first()) {
        crate::snaptree::create(zk, loaded).await?;
    }
    let recorder = Arc::new(Recorder::new(None));
    let mut buckets: Vec<Vec<TraceEvent>> = (0..workers).map(|_| Vec::new()).collect();
    let mut by_session: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
    for (i, ev) in events.into_iter().enumerate() {
        let worker = match ev.session {
            Some(s) => {
                let next = by_session.len();
                *by_session.entry(s).or_insert(next) % workers
            }
            None => i % workers,
        };
        buckets[worker].push(ev);
    }
    let t0 = Instant::now() + Duration::from_millis(50);
    let cpu_before = process_cpu_seconds();
    let stop = Arc::new(AtomicBool::new(false));
    let mut set = JoinSet::new();
    for (i, bucket) in buckets.into_iter().enumerate() {
        let zk = zks[i % sessions_n].clone();
        let rec = recorder.clone();
        let value = value.clone();
        let stop = stop.clone();
        set.spawn(async move {
            for ev in bucket {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let intended = t0 + Duration::from_secs_f64(ev.t_us as f64 / 1e6 / speed);
                tokio::time::sleep_until(intended.into()).await;
                replay_one(&zk, &rec, &ev, &value, intended).await;
            }
        });
    }
    let mut series = Vec::new();
    let mut last = Instant::now();
    let start = Instant::now();
    loop {
        let tick = tokio::time::sleep(Duration::from_secs(1));
        tokio::select! {
            r = set.join_next() => if r.is_none() { break },
            _ = tick => {
                let now = Instant::now();
                let iv = recorder.take_interval();
                series.push(series_point(now.duration_since(start).as_secs_f64(), now.duration_since(last).as_secs_f64(), "replay", &iv));
                last = now;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let ops = recorder.summarize(secs);
    let totals = totals(&ops, secs);
    let client_cpu = ClientCpu::between(cpu_before, process_cpu_seconds(), totals.ops, secs);
    for zk in &zks {
        let _ = tokio::time::timeout(Duration::from_secs(2), zk.close()).await;
    }
    let mut w = workload.unwrap_or_else(|| Workload {
        name: "replay".into(),
        description: String::new(),
        ops: BTreeMap::from([(crate::workload::MixOp::Get, 1)]),
        znodes: 1,
        tree: Default::default(),
        value_size: crate::workload::SizeDist::Fixed { size: max_size },
        keys: crate::workload::KeyDist::Uniform,
        sessions: sessions_n,
        inflight,
        duration_secs: secs,
        warmup_secs: 0.0,
        rate: None,
        steps: Vec::new(),
        step_secs: 0.0,
        slo: None,
        watchers: 0,
        faults: Vec::new(),
        fault_commands: None,
    });
    w.name = format!("replay of {} at {speed}x", path.display());
    Ok(RunResult {
        fkload_version: env!("CARGO_PKG_VERSION").to_owned(),
        workload: w,
        target: connect.to_owned(),
        mode: "replay".into(),
        rate: None,
        started_unix: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
            - secs,
        measured_secs: secs,
        totals,
        ops,
        series,
        client_cpu,
        servers: Vec::new(),
        steps: Vec::new(),
        hdr_log: None,
        send_lag: None,
        completed: recorder.run_counts(),
        setup_requests: BTreeMap::new(),
        worker: None,
        workers: Vec::new(),
        merge_flags: Vec::new(),
        faults: Vec::new(),
        durability: None,
        fault_log_dropped: 0,
    })
}

async fn replay_one(zk: &ZooKeeper, rec: &Recorder, ev: &TraceEvent, value: &Bytes, intended: Instant) {
    let Some(op) = OpKind::from_name(&ev.op) else { return };
    let start = Instant::now();
    let data = &value[..ev.size.min(value.len())];
    let r = match op {
        OpKind::Get | OpKind::GetMissing => zk.get_data(&ev.path).await.map(|_| ()),
        OpKind::Set | OpKind::WatchSet => zk.set_data(&ev.path, data, -1).await.map(|_| ()),
        OpKind::SetStale => zk.set_data(&ev.path, data, crate::run::STALE_VERSION).await.map(|_| ()),
        OpKind::Create => {
            let mode = crate::zktrace::create_mode(ev.mode.as_deref());
            let ttl = if mode.is_ttl() { Some(ev.ttl.unwrap_or(60_000).max(1)) } else { None };
            zk.create(&ev.path, data, &Acl::open_unsafe(), mode, ttl).await.map(|_| ())
        }
        OpKind::Multi if !ev.ops.is_empty() => zk.multi(multi_of(&ev.ops, value)).await.map(|_| ()),
        OpKind::Delete => zk.delete(&ev.path, -1).await,
        OpKind::Exists => zk.exists(&ev.path).await.map(|_| ()),
        OpKind::Children => zk.get_children(&ev.path).await.map(|_| ()),
        // Compound ops are not replayable one by one; they are skipped.
        OpKind::Multi | OpKind::Session | OpKind::Lock | OpKind::Notify => return,
    };
    let end = Instant::now();
    rec.record(
        op,
        end - start,
        Some(end.saturating_duration_since(intended)),
        r.as_ref().err().map(|e| e.code().message()),
    );
}

/// A logged multi's sub-ops as a client multi.
fn multi_of(ops: &[TraceSubOp], value: &Bytes) -> Multi {
    let mut m = Multi::new();
    for op in ops {
        let data = &value[..op.size.min(value.len())];
        m = match op.op.as_str() {
            "create" => {
                let mode = crate::zktrace::create_mode(op.mode.as_deref());
                let ttl = if mode.is_ttl() { Some(op.ttl.unwrap_or(60_000).max(1)) } else { None };
                m.create(&op.path, data, &Acl::open_unsafe(), mode, ttl)
            }
            "delete" => m.delete(&op.path, -1),
            "set" => m.set_data(&op.path, data, -1),
            _ => m.check(&op.path, -1),
        };
    }
    m
}

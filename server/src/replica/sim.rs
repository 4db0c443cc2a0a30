//! Deterministic simulation of whole replicas: N [`Core`]s (the same code the server runs,
//! zab, tree, sessions, forwarding, snapshots and all) in one thread on simulated time, each
//! with an in-memory [`Io`]: a disk whose unsynced log tail is lost on a crash and whose fsync
//! is sometimes slow, a network of FIFO links with delays, resets (both ends told, after the
//! last message) and partitions (silence, then either delivery or a reset), and clients that
//! connect, pipeline writes and reads, reconnect with their session elsewhere, and ping.
//!
//! Checked after every step:
//! - equal tree digests at equal zxids on every replica (so equal histories);
//! - every client sees its replies in request order, and the zxid it sees never goes back
//!   (also across reconnects);
//! - a read never misses an acknowledged write older than the zxid it was answered at, and a
//!   value written by an acknowledged write carries that write's zxid (checked at the end,
//!   once every acknowledgement is known);
//! - the end of a run (faults off, every replica up, links healed) converges: one zxid and
//!   one digest everywhere, every acknowledged write in it, and no request without an answer
//!   on a connection that is still open (never silence).
//!
//! Replay one seed: `FK_RSIM_SEED=7 cargo test -p ferrokeeper-server --lib replica::sim --
//! --nocapture` (`FK_RSIM_TRACE=1` prints the events). `FK_RSIM_SEEDS` sets the seed count.
//!
//! Without faults the same machinery is the instruction-count gate's whole quorum write path
//! ([`Sim::bench`]: replicas, network and disk in memory, deterministic), so this module is
//! compiled outside tests too; like every `sim.rs`, the tidy test lets it use the clock for
//! its base instant.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]
// The fault and checking half is used by the tests only.
#![cfg_attr(not(test), allow(dead_code))]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::response::Response;
use ferrokeeper_proto::txn::TxnRecord;
use ferrokeeper_proto::{
    ConnectRequest, ConnectResponse, CreateRequest, GetDataRequest, Jute, ReplyHeader, SetDataRequest,
    SyncRequest, frame, op,
};

use super::io::{Io, LogCut, SnapshotFile};
use super::{Core, Replica};
use crate::config::Config;
use crate::tree::{ConnId, DataTree, TreeConfig};
use crate::txlog::stats::LogStats;
use crate::zab::{self, Sid, Zxid};

/// The simulators' seeded PRNG (splitmix64).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }
}

const STEP_MS: u64 = 2;
const TICK_MS: u32 = 200;

/// What a replica asked of the world and the simulator has not carried out yet.
enum Effect {
    Deliver(ConnId, Bytes),
    Close(ConnId),
    Send(Sid, Bytes),
}

/// One replica's disk and outbox, shared by its [`SimIo`] and the simulator.
#[derive(Default)]
struct Disk {
    outbox: Vec<Effect>,
    /// The log: a synced prefix and an unsynced tail (lost on a crash).
    log: Vec<(Zxid, Bytes)>,
    synced: usize,
    epochs: (i64, i64),
    snapshots: Vec<(Zxid, Vec<u8>)>,
    fatal: Option<String>,
    random: u64,
}

struct SimIo {
    disk: Arc<Mutex<Disk>>,
    clock: Arc<AtomicU64>,
    base: Instant,
    stats: Arc<LogStats>,
}

impl Io for SimIo {
    fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.clock.load(Ordering::Relaxed))
    }
    fn wall_ms(&self) -> i64 {
        1_800_000_000_000 + self.clock.load(Ordering::Relaxed) as i64
    }
    fn random(&mut self) -> u64 {
        let mut disk = self.disk.lock().unwrap();
        disk.random = disk.random.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        disk.random >> 11
    }
    fn deliver(&mut self, conn: ConnId, data: Bytes) -> bool {
        self.disk.lock().unwrap().outbox.push(Effect::Deliver(conn, data));
        true
    }
    fn close(&mut self, conn: ConnId) {
        self.disk.lock().unwrap().outbox.push(Effect::Close(conn));
    }
    fn send(&mut self, to: Sid, message: Bytes) -> bool {
        self.disk.lock().unwrap().outbox.push(Effect::Send(to, message));
        true
    }
    fn log_append(&mut self, zxid: Zxid, payload: Bytes) {
        let mut disk = self.disk.lock().unwrap();
        assert!(disk.log.last().is_none_or(|(last, _)| *last < zxid), "log zxids must grow");
        disk.log.push((zxid, payload));
    }
    fn log_roll(&mut self) {}
    fn log_restart(&mut self, durable: Zxid, cut: LogCut) -> Result<(), String> {
        let mut disk = self.disk.lock().unwrap();
        match cut {
            LogCut::After(after) => disk.log.retain(|(z, _)| *z <= after),
            LogCut::All => disk.log.clear(),
        }
        // The old writer wrote what it had queued before stopping; the new one starts durable
        // at `durable`, which no kept entry may exceed.
        assert!(disk.log.last().is_none_or(|(last, _)| *last <= durable), "log kept past its durable point");
        disk.synced = disk.log.len();
        Ok(())
    }
    fn log_stats(&self) -> Arc<LogStats> {
        self.stats.clone()
    }
    fn log_backend(&self) -> &'static str {
        "sim"
    }
    fn save_epochs(&mut self, current: i64, accepted: i64) -> Result<(), String> {
        self.disk.lock().unwrap().epochs = (current, accepted);
        Ok(())
    }
    fn write_snapshot(&mut self, snapshot: SnapshotFile) {
        self.disk.lock().unwrap().snapshots.push((snapshot.zxid, snapshot.bytes));
        snapshot.done.store(false, Ordering::Release);
    }
    fn install_snapshot(&mut self, zxid: Zxid, data: &Bytes) -> Result<(), String> {
        self.disk.lock().unwrap().snapshots.push((zxid, data.to_vec()));
        Ok(())
    }
    fn purge(&mut self) {}
    fn fatal(&mut self, reason: String) {
        self.disk.lock().unwrap().fatal = Some(reason);
    }
    fn failed(&self) -> bool {
        self.disk.lock().unwrap().fatal.is_some()
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

struct Node {
    core: Option<Core>,
    disk: Arc<Mutex<Disk>>,
    /// When the unsynced tail is made durable (an fsync under way).
    fsync_at: Option<u64>,
    next_zab_tick: u64,
    next_tick: u64,
    restart_at: Option<u64>,
}

/// A message on a link, or the link's end (EOF) after the messages before it.
enum Wire {
    Message(Bytes),
    Eof,
}

/// A request a client sent and has no answer to yet.
#[derive(Clone)]
struct Outstanding {
    xid: i32,
    op: i32,
    /// setData: the value written (unique: names its writer); getData: the path.
    path: String,
    data: Option<Bytes>,
}

/// A read answered with a value, checked once every acknowledgement is known.
struct Read {
    path: String,
    data: Bytes,
    mzxid: Zxid,
    at: Zxid,
}

struct Client {
    session: i64,
    /// (node, connection) and whether its ConnectResponse arrived.
    conn: Option<(usize, ConnId, bool)>,
    reconnect_at: u64,
    next_xid: i32,
    outstanding: VecDeque<Outstanding>,
    last_zxid: Zxid,
    inbuf: BytesMut,
    writes: u64,
    created: bool,
    last_sent_ms: u64,
}

/// How often each fault strikes, per step.
#[derive(Clone, Copy)]
pub struct Faults {
    crash: f64,
    reset: f64,
    partition: f64,
    slow_fsync: f64,
    delay_max_ms: u64,
}

/// N replicas, their clients, network and disks, on simulated time.
pub struct Sim {
    rng: Rng,
    now: u64,
    clock: Arc<AtomicU64>,
    base: Instant,
    nodes: Vec<Node>,
    voters: Vec<Sid>,
    links: HashMap<(usize, usize), VecDeque<(u64, Wire)>>,
    /// Unordered pairs that are partitioned (silence) until the given time.
    cut: HashMap<(usize, usize), u64>,
    clients: Vec<Client>,
    next_conn: ConnId,
    /// Digest of the tree at each zxid, as the first replica to reach it saw it.
    digests: BTreeMap<Zxid, u64>,
    /// Acknowledged writes: zxid → (path, value).
    acked: BTreeMap<Zxid, (String, Bytes)>,
    reads: Vec<Read>,
    faults: Faults,
    trace: bool,
    last_roles: Vec<String>,
    stats: Stats,
    /// Check digests after every step (off in the benchmark).
    checking: bool,
    /// Benchmark: writes of 1 KiB only, this many still to send.
    bench_left: Option<u64>,
}

#[derive(Default, Debug, Clone, Copy)]
struct Stats {
    crashes: u64,
    resets: u64,
    partitions: u64,
    slow_fsyncs: u64,
    acked_writes: u64,
    reads: u64,
    replies: u64,
    reconnects: u64,
    checks: u64,
}

fn config() -> Arc<Config> {
    let text = format!(
        "tickTime={TICK_MS}\ndataDir=/sim\nclientPort=2181\nsnapCount=40\nglobalOutstandingLimit=64\n\
         minSessionTimeout=400\nmaxSessionTimeout=4000\n"
    );
    Arc::new(Config::parse(Path::new("sim.cfg"), &text).unwrap())
}

fn pair(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

impl Sim {
    fn new(seed: u64, peers: usize, clients: usize, faults: Faults) -> Sim {
        super::SeededState::set_key(seed);
        let clock = Arc::new(AtomicU64::new(0));
        let mut sim = Sim {
            rng: Rng(seed),
            now: 0,
            clock,
            base: Instant::now(),
            nodes: Vec::new(),
            voters: (1..=peers as Sid).collect(),
            links: HashMap::new(),
            cut: HashMap::new(),
            clients: (0..clients)
                .map(|_| Client {
                    session: 0,
                    conn: None,
                    reconnect_at: 0,
                    next_xid: 1,
                    outstanding: VecDeque::new(),
                    last_zxid: 0,
                    inbuf: BytesMut::new(),
                    writes: 0,
                    created: false,
                    last_sent_ms: 0,
                })
                .collect(),
            next_conn: 1,
            digests: BTreeMap::new(),
            acked: BTreeMap::new(),
            reads: Vec::new(),
            faults,
            trace: std::env::var("FK_RSIM_TRACE").is_ok_and(|t| {
                if t == "2" {
                    // The replicas' own log lines too.
                    let _ = tracing_subscriber::fmt().with_env_filter("debug").with_test_writer().try_init();
                }
                true
            }),
            last_roles: Vec::new(),
            checking: true,
            bench_left: None,
            stats: Stats::default(),
        };
        for i in 0..peers {
            let disk = Arc::new(Mutex::new(Disk { random: seed ^ (i as u64 + 1), ..Disk::default() }));
            sim.nodes.push(Node {
                core: None,
                disk,
                fsync_at: None,
                next_zab_tick: 0,
                next_tick: 0,
                restart_at: None,
            });
            sim.start(i);
        }
        sim
    }

    fn log(&self, text: impl FnOnce() -> String) {
        if self.trace {
            println!("[{:>6} ms] {}", self.now, text());
        }
    }

    /// Starts replica `i` from its disk, as `server::start` recovers: the newest snapshot,
    /// then the log after it as the peer's tail.
    fn start(&mut self, i: usize) {
        let config = config();
        let (tree, tail, epochs) = {
            let disk = self.nodes[i].disk.lock().unwrap();
            let tree = match disk.snapshots.iter().max_by_key(|(z, _)| *z) {
                Some((_, bytes)) => crate::txlog::snapshot::decode(bytes, TreeConfig::default()).unwrap(),
                None => DataTree::new(TreeConfig::default()),
            };
            let from = tree.last_processed_zxid();
            let tail: Vec<TxnRecord> = disk
                .log
                .iter()
                .filter(|(z, _)| *z > from)
                .map(|(_, payload)| TxnRecord::decode(payload).unwrap())
                .collect();
            (tree, tail, disk.epochs)
        };
        let applied = tree.last_processed_zxid();
        let durable = zab::DurableState {
            current_epoch: epochs.0,
            accepted_epoch: epochs.1.max(epochs.0),
            applied_zxid: applied,
            log_base: applied,
            log_tail: tail.iter().map(|r| (r.header.zxid, Bytes::from(r.encode_to_vec()))).collect(),
        };
        let (first, last) = (tail.first().map(|r| r.header.zxid), tail.last().map(|r| r.header.zxid));
        let sid = i as Sid + 1;
        let mut zab_config = zab::Config::new(sid, self.voters.clone());
        zab_config.tick_ms = u64::from(TICK_MS);
        zab_config.proposals_outstanding_max = 64;
        let peer = zab::Peer::new(zab_config, durable, self.rng.next(), 0);
        let standalone = self.voters.len() == 1;
        let replica = Replica::new(peer, standalone, TreeConfig::default());
        let stats = Arc::new(LogStats::default());
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = crate::metrics::ServerMetrics::register(&mut registry, stats.clone(), "sim");
        let io = Box::new(SimIo {
            disk: self.nodes[i].disk.clone(),
            clock: self.clock.clone(),
            base: self.base,
            stats,
        });
        let core = Core::new(config, tree, io, metrics, replica, sid as u8, tail);
        let node = &mut self.nodes[i];
        node.core = Some(core);
        node.fsync_at = None;
        node.next_zab_tick = self.now;
        node.next_tick = self.now;
        node.restart_at = None;
        self.log(|| {
            format!(
                "node {sid} started at zxid 0x{applied:x}, epochs {epochs:?}, log tail {first:x?}..{last:x?}"
            )
        });
    }

    /// Replica `i` dies: its unsynced log tail is lost; its links end with EOF after what it
    /// sent; its clients' connections drop.
    fn crash(&mut self, i: usize) {
        let Some(core) = self.nodes[i].core.take() else { return };
        drop(core);
        self.stats.crashes += 1;
        {
            let mut disk = self.nodes[i].disk.lock().unwrap();
            let synced = disk.synced;
            let lost = disk.log.len() - synced;
            disk.log.truncate(synced);
            let last = disk.log.last().map(|(z, _)| *z);
            if self.trace {
                println!(
                    "[{:>6} ms] node {} loses {lost} unsynced entries; durable log ends at {last:x?}",
                    self.now,
                    i + 1
                );
            }
            disk.outbox.clear();
        }
        self.nodes[i].fsync_at = None;
        self.nodes[i].restart_at = Some(self.now + 200 + self.rng.below(3000));
        for j in 0..self.nodes.len() {
            if j != i {
                self.links.entry((j, i)).or_default().clear();
                let due = self.links.get(&(i, j)).and_then(|q| q.back()).map_or(self.now, |(t, _)| *t);
                self.links.entry((i, j)).or_default().push_back((due + 1, Wire::Eof));
            }
        }
        for c in 0..self.clients.len() {
            if matches!(self.clients[c].conn, Some((n, _, _)) if n == i) {
                self.connection_lost(c);
            }
        }
        self.log(|| format!("node {} crashed", i + 1));
    }

    /// A link between two live replicas resets: both ends are told, after what was delivered.
    fn reset(&mut self, a: usize, b: usize) {
        self.stats.resets += 1;
        for (x, y) in [(a, b), (b, a)] {
            self.links.entry((x, y)).or_default().clear();
            self.links.entry((x, y)).or_default().push_back((self.now, Wire::Eof));
        }
        self.log(|| format!("link {}-{} reset", a + 1, b + 1));
    }

    fn connection_lost(&mut self, c: usize) {
        let client = &mut self.clients[c];
        client.conn = None;
        client.outstanding.clear();
        client.inbuf.clear();
        client.reconnect_at = self.now + 10 + self.rng.below(100);
    }

    fn step(&mut self, faults_on: bool) {
        self.step_with(faults_on, faults_on);
    }

    fn step_with(&mut self, faults_on: bool, load: bool) {
        self.now += STEP_MS;
        self.clock.store(self.now, Ordering::Relaxed);
        if faults_on {
            self.inject();
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].core.is_none() {
                if self.nodes[i].restart_at.is_some_and(|t| t <= self.now) {
                    self.start(i);
                }
                continue;
            }
            self.deliver_links(i);
            self.disk_step(i);
            self.timers(i);
            self.effects(i);
        }
        self.clients_step(load);
        for i in 0..self.nodes.len() {
            self.effects(i);
        }
        if self.checking {
            self.check();
        }
    }

    fn inject(&mut self) {
        let n = self.nodes.len();
        if self.rng.chance(self.faults.crash) {
            let i = self.rng.below(n as u64) as usize;
            self.crash(i);
        }
        if self.rng.chance(self.faults.reset) {
            let (a, b) = (self.rng.below(n as u64) as usize, self.rng.below(n as u64) as usize);
            if a != b && self.nodes[a].core.is_some() && self.nodes[b].core.is_some() {
                self.reset(a, b);
            }
        }
        if self.rng.chance(self.faults.partition) {
            let (a, b) = (self.rng.below(n as u64) as usize, self.rng.below(n as u64) as usize);
            if a != b {
                self.stats.partitions += 1;
                self.cut.insert(pair(a, b), self.now + 100 + self.rng.below(3000));
                self.log(|| format!("link {}-{} silent", a + 1, b + 1));
            }
        }
    }

    fn deliver_links(&mut self, i: usize) {
        for j in 0..self.nodes.len() {
            if j == i {
                continue;
            }
            if let Some(until) = self.cut.get(&pair(i, j)).copied() {
                if until > self.now {
                    continue;
                }
                self.cut.remove(&pair(i, j));
                // Healed: the held messages arrive, or the connection did not survive.
                if self.rng.chance(0.5) && self.nodes[j].core.is_some() {
                    self.reset(i, j);
                }
            }
            loop {
                let ready =
                    self.links.get(&(j, i)).and_then(|q| q.front()).is_some_and(|(t, _)| *t <= self.now);
                if !ready {
                    break;
                }
                let Some((_, wire)) = self.links.get_mut(&(j, i)).and_then(VecDeque::pop_front) else {
                    break;
                };
                let from = j as Sid + 1;
                let Some(core) = self.nodes[i].core.as_mut() else { return };
                match wire {
                    Wire::Message(bytes) => core.on_peer_message(from, bytes),
                    Wire::Eof => core.on_link_down(from),
                }
            }
        }
    }

    /// The unsynced tail becomes durable after an fsync (sometimes slow), then the replica hears.
    fn disk_step(&mut self, i: usize) {
        let (unsynced, last) = {
            let disk = self.nodes[i].disk.lock().unwrap();
            (disk.log.len() > disk.synced, disk.log.last().map(|(z, _)| *z))
        };
        if !unsynced {
            return;
        }
        match self.nodes[i].fsync_at {
            None => {
                let slow = self.rng.chance(self.faults.slow_fsync);
                if slow {
                    self.stats.slow_fsyncs += 1;
                }
                let delay = if slow { 50 + self.rng.below(200) } else { self.rng.below(3) };
                self.nodes[i].fsync_at = Some(self.now + delay);
            }
            Some(at) if at <= self.now => {
                self.nodes[i].fsync_at = None;
                {
                    let mut disk = self.nodes[i].disk.lock().unwrap();
                    disk.synced = disk.log.len();
                }
                if let (Some(core), Some(last)) = (self.nodes[i].core.as_mut(), last) {
                    core.zab_persisted(last);
                }
            }
            Some(_) => {}
        }
    }

    fn timers(&mut self, i: usize) {
        let now = self.now;
        let node = &mut self.nodes[i];
        let Some(core) = node.core.as_mut() else { return };
        if node.next_zab_tick <= now {
            node.next_zab_tick = now + 10;
            core.zab_tick();
        }
        if node.next_tick <= now {
            node.next_tick = now + u64::from(TICK_MS / 4);
            core.on_tick();
        }
        while core.snapshot.is_some() {
            core.snapshot_step();
        }
        core.flush();
    }

    /// Carries out what replica `i` asked for.
    fn effects(&mut self, i: usize) {
        if let Some(core) = self.nodes[i].core.as_mut() {
            core.flush();
        }
        let (effects, fatal) = {
            let mut disk = self.nodes[i].disk.lock().unwrap();
            (std::mem::take(&mut disk.outbox), disk.fatal.clone())
        };
        assert!(fatal.is_none(), "node {} stopped: {fatal:?}", i + 1);
        for effect in effects {
            match effect {
                Effect::Send(to, bytes) => {
                    let j = (to - 1) as usize;
                    if self.nodes[j].core.is_none() {
                        continue;
                    }
                    let delay = 1 + self.rng.below(self.faults.delay_max_ms.max(1));
                    let queue = self.links.entry((i, j)).or_default();
                    // FIFO: never before the message ahead of it.
                    let due = queue.back().map_or(0, |(t, _)| *t).max(self.now + delay);
                    queue.push_back((due, Wire::Message(bytes)));
                }
                Effect::Deliver(conn, data) => {
                    if let Some(c) = self.client_of(i, conn) {
                        self.clients[c].inbuf.extend_from_slice(&data);
                        self.read_replies(c);
                    }
                }
                Effect::Close(conn) => {
                    if let Some(c) = self.client_of(i, conn) {
                        self.log(|| format!("client {c}: connection {conn} closed by node {}", i + 1));
                        self.connection_lost(c);
                    }
                }
            }
        }
    }

    fn client_of(&self, node: usize, conn: ConnId) -> Option<usize> {
        self.clients.iter().position(|c| matches!(c.conn, Some((n, k, _)) if n == node && k == conn))
    }

    fn read_replies(&mut self, c: usize) {
        loop {
            let client = &mut self.clients[c];
            let Some(len) = frame::check(&client.inbuf, 1 << 24).unwrap() else { return };
            let payload = client.inbuf.split_to(4 + len).freeze().slice(4..);
            let Some((node, conn, established)) = client.conn else { return };
            if !established {
                let response = ConnectResponse::decode(&payload).unwrap();
                if response.session_id == 0 {
                    // Expired: a new session next time.
                    client.session = 0;
                    client.created = false;
                    self.log(|| format!("client {c}: session expired"));
                    continue;
                }
                client.session = response.session_id;
                client.conn = Some((node, conn, true));
                continue;
            }
            let header = ReplyHeader::decode(&payload).unwrap();
            if header.xid == op::xid::NOTIFICATION || header.xid == op::xid::PING {
                continue;
            }
            self.stats.replies += 1;
            self.log(|| {
                format!("client {c}: reply xid {} zxid 0x{:x} err {}", header.xid, header.zxid, header.err)
            });
            let client = &mut self.clients[c];
            let Some(request) = client.outstanding.pop_front() else {
                panic!("client {c}: a reply to xid {} nobody waits for", header.xid);
            };
            assert_eq!(
                header.xid,
                request.xid,
                "client {c}: replies out of request order: got {} (err {}) while {} ({}) waits",
                header.xid,
                header.err,
                request.xid,
                op::name(request.op)
            );
            assert!(
                header.zxid >= client.last_zxid,
                "client {c}: zxid went back from 0x{:x} to 0x{:x} (xid {})",
                client.last_zxid,
                header.zxid,
                header.xid
            );
            client.last_zxid = header.zxid;
            let body = &payload[16..];
            match request.op {
                op::SET_DATA if header.err == 0 => {
                    self.stats.acked_writes += 1;
                    let value = request.data.clone().unwrap_or_default();
                    let clash = self.acked.insert(header.zxid, (request.path.clone(), value));
                    assert!(clash.is_none(), "two acknowledged writes at zxid 0x{:x}", header.zxid);
                }
                op::CREATE
                    if header.err == 0 || header.err == ferrokeeper_proto::Code::NodeExists.as_i32() =>
                {
                    client.created = true;
                }
                op::GET_DATA if header.err == 0 => {
                    let Ok(Response::GetData(read)) = Response::decode(op::GET_DATA, body) else {
                        panic!("client {c}: undecodable getData reply");
                    };
                    assert!(read.stat.mzxid <= header.zxid, "a read newer than its own zxid");
                    self.stats.reads += 1;
                    self.reads.push(Read {
                        path: request.path.clone(),
                        data: read.data.unwrap_or_default(),
                        mzxid: read.stat.mzxid,
                        at: header.zxid,
                    });
                }
                _ => {}
            }
        }
    }

    fn clients_step(&mut self, load: bool) {
        for c in 0..self.clients.len() {
            let Some((node, conn, established)) = self.clients[c].conn else {
                if self.clients[c].reconnect_at <= self.now {
                    self.connect(c);
                }
                continue;
            };
            if !established || self.nodes[node].core.is_none() {
                continue;
            }
            let idle = self.now - self.clients[c].last_sent_ms;
            if load && self.bench_left == Some(0) {
                continue;
            }
            if load
                && self.clients[c].outstanding.len() < 4
                && (self.bench_left.is_some() || self.rng.chance(0.3))
            {
                if let Some(left) = self.bench_left.as_mut() {
                    *left -= 1;
                }
                let request = self.next_request(c);
                self.send(c, node, conn, request);
            } else if idle >= 300 {
                self.send(c, node, conn, (Request::Ping, String::new(), None));
            }
        }
    }

    fn next_request(&mut self, c: usize) -> (Request, String, Option<Bytes>) {
        let path = format!("/c{c}");
        if !self.clients[c].created {
            let create = CreateRequest {
                path: path.clone(),
                data: None,
                acl: ferrokeeper_proto::Acl::open_unsafe(),
                flags: 0,
            };
            return (Request::Create(create), path, None);
        }
        let kind = if self.bench_left.is_some() { 0 } else { self.rng.below(10) };
        match kind {
            0..=4 => {
                let client = &mut self.clients[c];
                client.writes += 1;
                let mut value = format!("c{c}-{}", client.writes).into_bytes();
                if self.bench_left.is_some() {
                    value.resize(1024, b'.');
                }
                let value = Bytes::from(value);
                let set = SetDataRequest { path: path.clone(), data: Some(value.clone()), version: -1 };
                (Request::SetData(set), path, Some(value))
            }
            5..=8 => {
                let other = format!("/c{}", self.rng.below(self.clients.len() as u64));
                (Request::GetData(GetDataRequest { path: other.clone(), watch: false }), other, None)
            }
            _ => (Request::Sync(SyncRequest { path: path.clone() }), path, None),
        }
    }

    fn send(
        &mut self,
        c: usize,
        node: usize,
        conn: ConnId,
        (request, path, data): (Request, String, Option<Bytes>),
    ) {
        let now = self.now;
        let client = &mut self.clients[c];
        let op_code = request.op();
        let xid = if matches!(request, Request::Ping) { op::xid::PING } else { client.next_xid };
        if xid != op::xid::PING {
            client.next_xid += 1;
            client.outstanding.push_back(Outstanding { xid, op: op_code, path, data });
        }
        client.last_sent_ms = now;
        if self.trace && xid != op::xid::PING {
            println!("[{now:>6} ms] client {c}: xid {xid} {} to node {}", op::name(op_code), node + 1);
        }
        let received = self.base + Duration::from_millis(now);
        if let Some(core) = self.nodes[node].core.as_mut() {
            core.on_request(conn, xid, op_code, Ok(request), received);
        }
    }

    fn connect(&mut self, c: usize) {
        let live: Vec<usize> = (0..self.nodes.len()).filter(|i| self.nodes[*i].core.is_some()).collect();
        if live.is_empty() {
            return;
        }
        let node = live[self.rng.below(live.len() as u64) as usize];
        let conn = self.next_conn;
        self.next_conn += 1;
        self.stats.reconnects += 1;
        let client = &mut self.clients[c];
        client.conn = Some((node, conn, false));
        client.last_sent_ms = self.now;
        client.reconnect_at = self.now + 50 + self.rng.below(200);
        let session = client.session;
        let request = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: client.last_zxid,
            timeout: 2000,
            session_id: session,
            passwd: Some(Bytes::copy_from_slice(&crate::tree::session_password(session))),
            read_only: Some(false),
        };
        let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 40000 + c as u16));
        self.log(|| format!("client {c}: connecting to node {} (session 0x{session:x})", node + 1));
        if let Some(core) = self.nodes[node].core.as_mut() {
            core.on_connect(conn, peer, request, Vec::new());
        }
    }

    /// Equal digests at equal zxids.
    fn check(&mut self) {
        if self.trace {
            let roles: Vec<String> = self
                .nodes
                .iter()
                .map(|n| n.core.as_ref().map_or("down".into(), |c| c.mode().to_owned()))
                .collect();
            if roles != self.last_roles {
                self.log(|| format!("roles {roles:?}"));
                self.last_roles = roles;
            }
        }
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(core) = node.core.as_ref() else { continue };
            let zxid = core.tree.last_processed_zxid();
            let digest = core.tree.digest();
            self.stats.checks += 1;
            match self.digests.get(&zxid) {
                Some(seen) => assert_eq!(*seen, digest, "node {} has another tree at zxid 0x{zxid:x}", i + 1),
                None => {
                    self.digests.insert(zxid, digest);
                }
            }
        }
    }

    /// Faults off: everyone up, links healed; then every replica converges, nothing
    /// acknowledged is lost, no request waits in silence, and every read was consistent.
    fn finish(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].core.is_none() {
                self.nodes[i].restart_at = Some(self.now);
            }
        }
        self.cut.clear();
        let deadline = self.now + 30_000;
        // Converged: every replica serving, one leader, equal zxid and digest, no request
        // waiting, and still so half a second later.
        let mut stable_since = None;
        loop {
            self.step(false);
            let leaders =
                self.nodes.iter().filter_map(|n| n.core.as_ref()).filter(|c| c.mode() == "leader").count();
            let serving = self.nodes.iter().filter_map(|n| n.core.as_ref()).all(|c| c.serving());
            let zxids: Vec<(Zxid, u64)> = self
                .nodes
                .iter()
                .filter_map(|n| n.core.as_ref())
                .map(|core| (core.tree.last_processed_zxid(), core.tree.digest()))
                .collect();
            let converged = zxids.len() == self.nodes.len()
                && serving
                && (leaders == 1 || self.nodes.len() == 1)
                && zxids.windows(2).all(|w| w[0] == w[1])
                && self.clients.iter().all(|c| c.outstanding.is_empty());
            if !converged {
                stable_since = None;
            } else if stable_since.is_none_or(|(_, at)| at != zxids[0]) {
                stable_since = Some((self.now, zxids[0]));
            }
            let stable = stable_since.is_some_and(|(since, _)| self.now >= since + 500);
            if stable {
                self.log(|| format!("converged: {zxids:x?}"));
                break;
            }
            if self.now >= deadline {
                let waiting: Vec<String> = self
                    .clients
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| !c.outstanding.is_empty())
                    .map(|(i, c)| {
                        let first = &c.outstanding[0];
                        format!("client {i} on {:?}: xid {} {}", c.conn, first.xid, op::name(first.op))
                    })
                    .collect();
                panic!(
                    "no convergence 30 s after the faults stopped: {zxids:x?}, {leaders} leaders, serving \
                     {serving}, waiting: {waiting:?}"
                );
            }
        }
        let last = self.nodes[0].core.as_ref().unwrap().tree.last_processed_zxid();
        let (max_acked, _) = self.acked.last_key_value().map_or((0, None), |(z, v)| (*z, Some(v)));
        assert!(max_acked <= last, "an acknowledged write at 0x{max_acked:x} is beyond the final 0x{last:x}");
        // Every acknowledged value is in the tree unless a later write replaced it.
        let mut newest: HashMap<String, (Zxid, Bytes)> = HashMap::new();
        for (zxid, (path, value)) in &self.acked {
            newest.insert(path.clone(), (*zxid, value.clone()));
        }
        let tree = &mut self.nodes[0].core.as_mut().unwrap().tree;
        for (path, (zxid, value)) in newest {
            let caller = crate::tree::Caller::default();
            let request = Request::GetData(GetDataRequest { path: path.clone(), watch: false });
            let Ok(Response::GetData(read)) = tree.read(&caller, &request) else {
                panic!("{path}: acknowledged at 0x{zxid:x} but gone")
            };
            assert!(read.stat.mzxid >= zxid, "{path}: the write acknowledged at 0x{zxid:x} was lost");
            if read.stat.mzxid == zxid {
                assert_eq!(read.data.as_ref(), Some(&value), "{path} at 0x{zxid:x}");
            }
        }
        // Reads: the value read is the one its mzxid wrote, and no acknowledged write to the
        // path between mzxid and the read's zxid was missed.
        let by_value: HashMap<&Bytes, Zxid> =
            self.acked.values().zip(self.acked.keys()).map(|((_, v), z)| (v, *z)).collect();
        for read in &self.reads {
            if let Some(zxid) = by_value.get(&read.data) {
                assert_eq!(
                    *zxid, read.mzxid,
                    "{}: value {:?} read with mzxid 0x{:x}",
                    read.path, read.data, read.mzxid
                );
            }
            let missed = (read.mzxid < read.at)
                .then(|| self.acked.range(read.mzxid + 1..=read.at).find(|(_, (path, _))| *path == read.path))
                .flatten();
            assert!(
                missed.is_none(),
                "{}: a read at 0x{:x} returned mzxid 0x{:x}, missing the write acknowledged at 0x{:x}",
                read.path,
                read.at,
                read.mzxid,
                missed.map_or(0, |(z, _)| *z)
            );
        }
    }
}

impl Sim {
    /// The instruction-count gate's quorum write path: `peers` replicas with `clients`
    /// clients (spread over the replicas by the seed), no faults, no per-step checks, settled
    /// (a leader, every client connected with its node created).
    pub fn bench(peers: usize, clients: usize) -> Sim {
        let none = Faults { crash: 0.0, reset: 0.0, partition: 0.0, slow_fsync: 0.0, delay_max_ms: 1 };
        let mut sim = Sim::new(1, peers, clients, none);
        sim.checking = false;
        sim.bench_left = Some(0);
        for c in 0..clients {
            let create = CreateRequest {
                path: format!("/c{c}"),
                data: None,
                acl: ferrokeeper_proto::Acl::open_unsafe(),
                flags: 0,
            };
            while !sim.clients[c].conn.is_some_and(|(_, _, established)| established) {
                sim.step_with(false, false);
                assert!(sim.now < 60_000, "the benchmark ensemble does not serve");
            }
            let (node, conn, _) = sim.clients[c].conn.unwrap();
            sim.send(c, node, conn, (Request::Create(create), format!("/c{c}"), None));
            while !sim.clients[c].outstanding.is_empty() {
                sim.step_with(false, false);
            }
            assert!(sim.clients[c].created, "the benchmark's client could not create its node");
        }
        sim
    }

    /// Runs `writes` setData of 1 KiB, each client pipelining up to 4, until every one is
    /// acknowledged; returns how many were.
    pub fn bench_writes(&mut self, writes: u64) -> u64 {
        let before = self.stats.acked_writes;
        self.bench_left = Some(writes);
        while self.stats.acked_writes - before < writes {
            self.step_with(false, true);
            assert!(self.clients.iter().all(|c| c.conn.is_some()), "a benchmark client lost its connection");
        }
        self.stats.acked_writes - before
    }
}

#[cfg(test)]
fn run(seed: u64, peers: usize, steps: u64) -> Stats {
    let faults = Faults { crash: 0.0008, reset: 0.001, partition: 0.001, slow_fsync: 0.02, delay_max_ms: 4 };
    let mut sim = Sim::new(seed, peers, 6, faults);
    for _ in 0..steps {
        sim.step(true);
    }
    sim.finish();
    sim.stats
}

#[cfg(test)]
fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("FK_RSIM_SEED") {
        return vec![seed.parse().unwrap()];
    }
    let count = std::env::var("FK_RSIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    (1..=count).collect()
}

#[cfg(test)]
fn run_seeds(peers: usize, steps: u64) {
    let mut total = Stats::default();
    for seed in seeds() {
        let outcome = std::panic::catch_unwind(|| run(seed, peers, steps));
        match outcome {
            Ok(stats) => {
                total.crashes += stats.crashes;
                total.resets += stats.resets;
                total.partitions += stats.partitions;
                total.slow_fsyncs += stats.slow_fsyncs;
                total.acked_writes += stats.acked_writes;
                total.reads += stats.reads;
                total.replies += stats.replies;
                total.reconnects += stats.reconnects;
                total.checks += stats.checks;
            }
            Err(_) => panic!(
                "replica simulation failed: replay with FK_RSIM_SEED={seed} cargo test -p ferrokeeper-server --lib \
                 replica::sim::tests::{}_replicas -- --nocapture",
                if peers == 1 { "one" } else { "three" }
            ),
        }
    }
    println!("replica sim, {peers} replicas, {} seeds: {total:?}", seeds().len());
}

#[cfg(test)]
mod tests {
    #[test]
    fn three_replicas() {
        super::run_seeds(3, 4000);
    }

    #[test]
    fn one_replicas() {
        super::run_seeds(1, 2000);
    }
}

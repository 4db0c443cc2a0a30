//! Differential test: seeded random operation sequences run against ferrokeeper and Apache
//! ZooKeeper (each freshly started with the same zoo.cfg), comparing every normalised result
//! and every watch event per session.
//!
//! Environment:
//! - `FK_DIFF_SEED=n`   replay one seed only.
//! - `FK_DIFF_SEEDS=k`  number of seeds (1..=k, default 3).
//! - `FK_DIFF_OPS=m`    operations per seed (default 300).
//! - `FK_DIFF_SELF=1`   ZooKeeper-vs-ZooKeeper: validates the harness itself.
//! - `FK_DIFF_EXCLUDE=a,b` never generate these step kinds (see `Step::kind`), e.g. to look
//!   past a known difference: `FK_DIFF_EXCLUDE=badPassword,whoAmI`.
//! - `FK_DIFF_VERBOSE=1` print every operation and the oracle's outcome.
//! - `FK_DIFF_CLUSTER=1` run ferrokeeper as a 3-node ensemble, session slot i connected to node
//!   i % 3, barriers and tree dumps preceded by `sync` (checkWatches is left out: see below).
//!   `differential_against_zookeeper_cluster` always runs this mode (2 seeds by default).
//! - `FK_SKIP_ORACLE=1` skip (instead of fail) when Apache ZooKeeper is not installed.
//!
//! Every 20 operations (and at the end) a super-user observer session dumps the whole tree
//! (data, stat, ACL of every node) on both servers and the dumps are compared too.
//!
//! Determinism: after every operation each live session sends a barrier (`exists /`); the
//! server writes notifications in order with replies, so all events caused by the operation
//! arrive before the barrier's reply. zxids are renamed canonically (by first appearance),
//! times are zeroed, session ids are replaced by the session's creation index, children lists
//! are sorted and the notification header zxid is ignored.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::fmt::Write as _;

use bytes::Bytes;
use ferrokeeper_proto::multi::{MultiOp, MultiRequest, OpResult};
use ferrokeeper_proto::op::{self, ephemeral_owner, perms};
use ferrokeeper_proto::records::*;
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::response::Response;
use support::{ConnectOptions, ServerKind, ServerProcess, TestClient};

const SLOTS: usize = 3;

// ---------------------------------------------------------------------------------------------
// Deterministic PRNG (SplitMix64): independent of any crate version.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())].clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Steps.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RelZxid {
    /// The session's last seen zxid (per server).
    Last,
    Zero,
}

#[derive(Debug, Clone)]
struct WatchSet {
    v2: bool,
    rel: RelZxid,
    data: Vec<String>,
    exist: Vec<String>,
    child: Vec<String>,
    persistent: Vec<String>,
    recursive: Vec<String>,
}

#[derive(Debug, Clone)]
enum Step {
    /// Open a new session in an empty slot.
    Open { slot: usize, timeout: i32, read_only: Option<bool> },
    /// Drop the TCP connection without closing the session.
    Disconnect { slot: usize },
    /// Reconnect a disconnected session with its id and password, optionally re-adding watches.
    Reconnect { slot: usize, watches: Option<WatchSet> },
    /// closeSession.
    Close { slot: usize },
    /// Reconnect attempt with a wrong password (on a fresh connection).
    BadPassword { slot: usize },
    /// Open a throwaway session (timeout clamping, readOnly byte) and close it.
    Probe { timeout: i32, read_only: Option<bool> },
    /// setWatches / setWatches2 on the live connection.
    SetWatchesLive { slot: usize, watches: WatchSet },
    /// A request sent under its own opcode.
    Req { slot: usize, req: Request },
    /// A request body sent under another opcode (unknown opcodes). (A top-level `check`
    /// is not generated: ZooKeeper 3.8 neither answers nor closes, so it only costs a timeout.)
    RawOp { slot: usize, op: i32, req: Request },
}

impl Step {
    /// A short name used by `FK_DIFF_EXCLUDE`: the opcode name for requests (`create2`,
    /// `whoAmI`, `auth`, ...), else `open`, `disconnect`, `reconnect`, `close`,
    /// `badPassword`, `probe`, `setWatchesLive`, `rawOp`.
    fn kind(&self) -> &'static str {
        match self {
            Step::Open { .. } => "open",
            Step::Disconnect { .. } => "disconnect",
            Step::Reconnect { .. } => "reconnect",
            Step::Close { .. } => "close",
            Step::BadPassword { .. } => "badPassword",
            Step::Probe { .. } => "probe",
            Step::SetWatchesLive { .. } => "setWatchesLive",
            Step::Req { req, .. } => op::name(req.op()),
            Step::RawOp { .. } => "rawOp",
        }
    }

    fn describe(&self) -> String {
        match self {
            Step::Req { slot, req } => format!("s{slot} {} {:?}", op::name(req.op()), req),
            other => format!("{other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Generation.

const BASE_PATHS: &[&str] = &["/a", "/b", "/c", "/a/b", "/a/c", "/b/a", "/a/b/c", "/a/b/d", "/c/x"];
const SEQ_PREFIXES: &[&str] = &["/a/s-", "/s-", "/b/", "/c/x/q"];
const SPECIAL_PATHS: &[&str] = &["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"];
const INVALID_PATHS: &[&str] = &["", "a", "/a/", "//a", "/a/./b", "/a/..", "/a\u{1}b", "/\u{7f}", "/a//b"];
const DATA: &[&str] = &["", "x", "hello", "spring", "0123456789abcdef0123456789abcdef", "ü-ñ"];

struct Gen {
    rng: Rng,
    /// Paths that ever got a persistent (0) or recursive (1) watch, with that mode. The
    /// oracle (Debian's ZooKeeper 3.8.0) keeps one watch mode per (connection, path): a
    /// one-shot watch set later on the same path downgrades a persistent one, and persistent
    /// and recursive replace each other (ZOOKEEPER-4466, fixed in 3.9, which ferrokeeper
    /// follows). So a path keeps the mode it got first and never gets one-shot watches; and
    /// checkWatches/removeWatches, whose 3.8.0 answers depend on those mode tables, are not
    /// sent on such paths or below recursive ones.
    persistent_paths: std::collections::BTreeMap<String, i32>,
    /// Paths that ever got a one-shot child watch: 3.8.0's addWatch puts a recursive watch in
    /// the child table too, where it replaces such a watch (so its NodeChildrenChanged is
    /// lost); recursive watches are not set on these paths.
    child_watched: std::collections::BTreeSet<String>,
    pool: Vec<String>,
    /// Nodes that existed at the last tree dump (oracle's view), outside /zookeeper.
    existing: Vec<String>,
    /// ferrokeeper runs as an ensemble against a standalone oracle: an ensemble member's
    /// `/zookeeper/config` holds the membership (server-local, as in a ZooKeeper ensemble;
    /// `ensemble_config.rs` compares it with one), the standalone oracle's is empty. Requests
    /// go to `/zookeeper` instead and tree dumps leave it out.
    cluster: bool,
}

impl Gen {
    fn path(&mut self) -> String {
        if !self.existing.is_empty() && self.rng.chance(35) {
            return self.rng.pick(&self.existing);
        }
        let r = self.rng.below(100);
        if r < 72 || (r < 84 && self.pool.is_empty()) {
            self.rng.pick(BASE_PATHS).to_owned()
        } else if r < 84 {
            self.rng.pick(&self.pool)
        } else if r < 93 {
            match self.rng.pick(SPECIAL_PATHS) {
                "/zookeeper/config" if self.cluster => "/zookeeper".to_owned(),
                path => path.to_owned(),
            }
        } else {
            self.rng.pick(INVALID_PATHS).to_owned()
        }
    }

    fn create_path(&mut self, sequential: bool) -> String {
        if sequential && self.rng.chance(60) {
            self.rng.pick(SEQ_PREFIXES).to_owned()
        } else if self.rng.chance(45) {
            // Under a node that exists (or the root), so trees grow deeper.
            let parent = if self.existing.is_empty() || self.rng.chance(25) {
                String::new()
            } else {
                self.rng.pick(&self.existing)
            };
            format!("{parent}/{}", self.rng.pick(&["a", "b", "c", "x", "q-"]))
        } else {
            self.path()
        }
    }

    /// Learns the oracle's current nodes from a tree dump.
    fn learn_tree(&mut self, dump: &[String]) {
        self.existing = dump
            .iter()
            .filter_map(|line| line.split(' ').next())
            .filter(|p| *p != "/" && !p.starts_with("/zookeeper"))
            .map(str::to_owned)
            .collect();
    }

    fn data(&mut self) -> Option<Bytes> {
        if self.rng.chance(5) { None } else { Some(Bytes::from(self.rng.pick(DATA).as_bytes().to_vec())) }
    }

    fn version(&mut self) -> i32 {
        self.rng.pick(&[-1, -1, -1, 0, 0, 1, 2, 7])
    }

    /// ACLs to create or set. Every valid one lets everybody READ: the oracle, ZooKeeper
    /// 3.8.0, neither checks READ on exists (ZOOKEEPER-2590, 3.8.1) nor filters watch events by
    /// READ (CVE-2024-23944, 3.8.4), both of which ferrokeeper does as 3.9 does. Write,
    /// create, delete and admin permissions still vary.
    fn acl(&mut self) -> Vec<Acl> {
        let alice = support::digest("alice", "pw");
        let bob = support::digest("bob", "pw");
        let read = Acl::new(perms::READ, "world", "anyone");
        match self.rng.below(24) {
            0..=11 => Acl::open_unsafe(),
            12 => Acl::read_unsafe(),
            13 => vec![Acl::new(self.rng.pick(&[1, 5, 7, 15, 29, 31]), "world", "anyone")],
            14 => vec![read, Acl::new(perms::ALL, "auth", "")],
            15 => vec![read, Acl::new(perms::ALL, "digest", &alice)],
            16 => vec![Acl::new(perms::ALL, "ip", "127.0.0.1")],
            17 => vec![read, Acl::new(perms::ALL, "ip", "10.0.0.0/8")],
            18 => vec![],
            19 => vec![Acl::new(perms::ALL, "foo", "bar")],
            20 => vec![Acl::new(perms::READ, "world", "anyone"), Acl::new(perms::ALL, "digest", &alice)],
            21 => vec![read, Acl::new(perms::READ | perms::WRITE, "digest", &bob)],
            22 => vec![Acl::new(perms::ALL, "ip", "127.0.0.1/33")],
            _ => vec![Acl::new(perms::ALL, "world", "somebody")],
        }
    }

    /// A path for a one-shot watch (see `persistent_paths`).
    fn watchable(&mut self, path: String, watch: bool) -> bool {
        watch && !self.persistent_paths.contains_key(&path)
    }

    fn child_watchable(&mut self, path: String, watch: bool) -> bool {
        let watch = self.watchable(path.clone(), watch);
        if watch {
            self.child_watched.insert(path);
        }
        watch
    }

    /// A path for a persistent (`mode` 0) or recursive (1) watch, remembered with its mode;
    /// `None` when the path already has the other mode.
    fn persistent_path(&mut self, mode: i32) -> Option<String> {
        let path = self.path();
        if mode == 1 && self.child_watched.contains(&path) {
            return None;
        }
        match self.persistent_paths.get(&path) {
            Some(m) if *m != mode => None,
            _ => {
                self.persistent_paths.insert(path.clone(), mode);
                Some(path)
            }
        }
    }

    /// Whether 3.8.0's watch-mode tables could make checkWatches/removeWatches differ here.
    fn mode_sensitive(&self, path: &str) -> bool {
        self.persistent_paths
            .iter()
            .any(|(p, mode)| p == path || (*mode == 1 && (p == "/" || path.starts_with(&format!("{p}/")))))
    }

    /// A path for checkWatches / removeWatches. Not an invalid one either: 3.8.0's answer then
    /// depends on whether any recursive watch exists anywhere (its parent-path iterator fails
    /// on a relative path only in that case).
    fn watch_query_path(&mut self) -> String {
        for _ in 0..8 {
            let path = self.path();
            if !self.mode_sensitive(&path) && !INVALID_PATHS.contains(&path.as_str()) {
                return path;
            }
        }
        "/zookeeper/quota".to_owned()
    }

    fn create_request(&mut self) -> (i32, Request) {
        let opcode = self.rng.pick(&[
            op::CREATE,
            op::CREATE,
            op::CREATE2,
            op::CREATE2,
            op::CREATE_CONTAINER,
            op::CREATE_TTL,
        ]);
        let flags = match opcode {
            op::CREATE_CONTAINER => self.rng.pick(&[4, 4, 4, 0]),
            op::CREATE_TTL => self.rng.pick(&[5, 5, 6, 6, 0, 1]),
            _ => {
                if self.rng.chance(10) {
                    self.rng.pick(&[4, 5, 6, 7, -1, 64])
                } else {
                    self.rng.pick(&[0, 0, 0, 0, 0, 1, 2, 2, 3])
                }
            }
        };
        let sequential = matches!(flags, 2 | 3 | 6);
        let path = self.create_path(sequential);
        let data = self.data();
        let acl = self.acl();
        let req = match opcode {
            op::CREATE_TTL => {
                let mut ttl =
                    self.rng.pick(&[3_600_000, 3_600_000, 86_400_000, 0, -5, 1 << 40, (1 << 40) - 1]);
                if ttl < 0 && !matches!(flags, 5 | 6) {
                    // ZooKeeper 3.8.0 drops every connection (its request processor dies) on a
                    // createTTL with a negative ttl and a non-TTL mode; don't generate that.
                    ttl = 0;
                }
                Request::CreateTtl(CreateTtlRequest { path, data, acl, flags, ttl })
            }
            _ => {
                let r = CreateRequest { path, data, acl, flags };
                match opcode {
                    op::CREATE => Request::Create(r),
                    op::CREATE2 => Request::Create2(r),
                    _ => Request::CreateContainer(r),
                }
            }
        };
        (opcode, req)
    }

    fn multi_op(&mut self) -> MultiOp {
        match self.rng.below(10) {
            0..=3 => match self.create_request() {
                (_, Request::CreateTtl(r)) => MultiOp::CreateTtl(r),
                (opcode, Request::Create(r) | Request::Create2(r) | Request::CreateContainer(r)) => {
                    MultiOp::Create { op: opcode, request: r }
                }
                _ => unreachable!(),
            },
            4 | 5 => MultiOp::Delete(DeleteRequest { path: self.path(), version: self.version() }),
            6 | 7 => MultiOp::SetData(SetDataRequest {
                path: self.path(),
                data: self.data(),
                version: self.version(),
            }),
            _ => MultiOp::Check(CheckVersionRequest { path: self.path(), version: self.version() }),
        }
    }

    fn one_shot_paths(&mut self, max: usize) -> Vec<String> {
        let paths = self.paths(max);
        paths.into_iter().filter(|p| !self.persistent_paths.contains_key(p)).collect()
    }

    fn paths(&mut self, max: usize) -> Vec<String> {
        let n = self.rng.below(max + 1);
        (0..n).map(|_| self.path()).collect()
    }

    fn watch_set(&mut self) -> WatchSet {
        let v2 = self.rng.chance(50);
        WatchSet {
            v2,
            rel: if self.rng.chance(75) { RelZxid::Last } else { RelZxid::Zero },
            persistent: if v2 {
                (0..self.rng.below(3)).filter_map(|_| self.persistent_path(0)).collect()
            } else {
                vec![]
            },
            recursive: if v2 {
                (0..self.rng.below(3)).filter_map(|_| self.persistent_path(1)).collect()
            } else {
                vec![]
            },
            data: self.one_shot_paths(3),
            exist: self.one_shot_paths(3),
            child: {
                let paths = self.one_shot_paths(3);
                self.child_watched.extend(paths.iter().cloned());
                paths
            },
        }
    }

    fn request(&mut self) -> Request {
        let w = self.rng.chance(60);
        match self.rng.below(100) {
            0..=21 => self.create_request().1,
            22..=29 => Request::Delete(DeleteRequest { path: self.path(), version: self.version() }),
            30..=37 => Request::SetData(SetDataRequest {
                path: self.path(),
                data: self.data(),
                version: self.version(),
            }),
            38..=40 => {
                Request::SetAcl(SetAclRequest { path: self.path(), acl: self.acl(), version: self.version() })
            }
            41..=46 => {
                let path = self.path();
                let watch = self.watchable(path.clone(), w);
                Request::Exists(ExistsRequest { path, watch })
            }
            47..=52 => {
                let path = self.path();
                let watch = self.watchable(path.clone(), w);
                Request::GetData(GetDataRequest { path, watch })
            }
            53..=57 => {
                let path = self.path();
                let watch = self.child_watchable(path.clone(), w);
                Request::GetChildren(GetChildrenRequest { path, watch })
            }
            58..=61 => {
                let path = self.path();
                let watch = self.child_watchable(path.clone(), w);
                Request::GetChildren2(GetChildren2Request { path, watch })
            }
            62..=63 => Request::GetAcl(GetAclRequest { path: self.path() }),
            64..=65 => Request::GetAllChildrenNumber(GetAllChildrenNumberRequest { path: self.path() }),
            66..=67 => Request::GetEphemerals(GetEphemeralsRequest {
                prefix_path: self.rng.pick(&["/", "", "/a", "/a/b", "/b", "/s"]).to_owned(),
            }),
            68..=74 => {
                let n = self.rng.pick(&[0, 1, 2, 2, 3, 3, 4]);
                Request::Multi(MultiRequest { ops: (0..n).map(|_| self.multi_op()).collect() })
            }
            75..=77 => {
                let n = self.rng.pick(&[1, 2, 3]);
                let ops = (0..n)
                    .map(|_| {
                        if self.rng.chance(50) {
                            MultiOp::GetData(GetDataRequest { path: self.path(), watch: false })
                        } else {
                            MultiOp::GetChildren(GetChildrenRequest { path: self.path(), watch: false })
                        }
                    })
                    .collect();
                Request::MultiRead(MultiRequest { ops })
            }
            78 => Request::Sync(SyncRequest { path: self.path() }),
            79..=83 => {
                let mode = self
                    .rng
                    .pick(&[op::add_watch_mode::PERSISTENT, op::add_watch_mode::PERSISTENT_RECURSIVE]);
                let path = self.persistent_path(mode);
                // A path that already has the other mode keeps it.
                let (path, mode) = match path {
                    Some(path) => (path, mode),
                    None => (self.path(), mode),
                };
                let mode = self.persistent_paths.get(&path).copied().unwrap_or(mode);
                let mode =
                    if self.child_watched.contains(&path) { op::add_watch_mode::PERSISTENT } else { mode };
                self.persistent_paths.insert(path.clone(), mode);
                Request::AddWatch(AddWatchRequest { path, mode })
            }
            84..=85 => Request::CheckWatches(CheckWatchesRequest {
                path: self.watch_query_path(),
                watcher_type: self.rng.pick(&[1, 2, 3]),
            }),
            86..=88 => Request::RemoveWatches(RemoveWatchesRequest {
                path: self.watch_query_path(),
                watcher_type: self.rng.pick(&[1, 2, 3]),
            }),
            89..=90 => Request::WhoAmI,
            91 => Request::Ping,
            _ => {
                let (scheme, auth) = self.rng.pick(&[
                    ("digest", "alice:pw"),
                    ("digest", "alice:pw"),
                    ("digest", "bob:pw"),
                    ("digest", "alice:wrong"),
                    ("digest", "super:superpw"),
                    ("digest", "nocolon"),
                    ("ip", "127.0.0.1"),
                    ("foo", "bar"),
                ]);
                Request::Auth(AuthPacket {
                    auth_type: 0,
                    scheme: scheme.to_owned(),
                    auth: Some(Bytes::from(auth.as_bytes().to_vec())),
                })
            }
        }
    }

    fn step(&mut self, slots: &[SlotKind; SLOTS]) -> Step {
        let slot = self.rng.below(SLOTS);
        match slots[slot] {
            SlotKind::Empty => Step::Open {
                slot,
                timeout: self.rng.pick(&[30000, 30000, 100000]),
                read_only: self.rng.pick(&[Some(false), Some(false), None, Some(true)]),
            },
            SlotKind::Gone => Step::Reconnect {
                slot,
                watches: if self.rng.chance(70) { Some(self.watch_set()) } else { None },
            },
            SlotKind::Live => match self.rng.below(200) {
                0..=2 => Step::Close { slot },
                3..=5 => Step::Disconnect { slot },
                6 => Step::BadPassword { slot },
                7 => Step::Probe {
                    timeout: self.rng.pick(&[1000, 30000, 100000]),
                    read_only: self.rng.pick(&[Some(false), None, Some(true)]),
                },
                8..=9 => Step::SetWatchesLive { slot, watches: self.watch_set() },
                10 => Step::RawOp { slot, op: self.rng.pick(&[999, 10, -3]), req: Request::WhoAmI },
                _ => Step::Req { slot, req: self.request() },
            },
        }
    }

    /// Adds created paths (from the oracle's outcome) to the pool of known paths.
    fn learn(&mut self, created: &[String]) {
        for p in created {
            if !BASE_PATHS.contains(&p.as_str()) && !self.pool.contains(p) {
                self.pool.push(p.clone());
                if self.pool.len() > 12 {
                    self.pool.remove(0);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Execution against one server.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotKind {
    Empty,
    Live,
    Gone,
}

struct SessionInfo {
    id: i64,
    passwd: Vec<u8>,
    last_zxid: i64,
}

enum Slot {
    Empty,
    Live(Box<TestClient>),
    Gone(SessionInfo),
}

impl Slot {
    fn kind(&self) -> SlotKind {
        match self {
            Slot::Empty => SlotKind::Empty,
            Slot::Live(_) => SlotKind::Live,
            Slot::Gone(_) => SlotKind::Gone,
        }
    }
}

#[derive(Default)]
struct Norm {
    zxids: HashMap<i64, usize>,
    sessions: HashMap<i64, usize>,
}

impl Norm {
    fn z(&mut self, z: i64) -> String {
        if z == 0 || z == -1 {
            return z.to_string();
        }
        let n = self.zxids.len();
        format!("z{}", self.zxids.entry(z).or_insert(n))
    }

    fn owner(&mut self, o: i64) -> String {
        if o == 0 {
            "0".into()
        } else if o == ephemeral_owner::CONTAINER {
            "container".into()
        } else if let Some(ttl) = ephemeral_owner::ttl_of(o) {
            format!("ttl({ttl})")
        } else {
            match self.sessions.get(&o) {
                Some(label) => format!("S{label}"),
                None => "unknown-session".into(),
            }
        }
    }

    fn stat(&mut self, s: &Stat) -> String {
        format!(
            "{{czxid={} mzxid={} pzxid={} v={} cv={} av={} owner={} len={} kids={}}}",
            self.z(s.czxid),
            self.z(s.mzxid),
            self.z(s.pzxid),
            s.version,
            s.cversion,
            s.aversion,
            self.owner(s.ephemeral_owner),
            s.data_length,
            s.num_children
        )
    }

    fn response(&mut self, r: &Response) -> String {
        match r {
            Response::Empty => "empty".into(),
            Response::Create(c) => format!("path={}", c.path),
            Response::Create2(c) => format!("path={} {}", c.path, self.stat(&c.stat)),
            Response::Exists(e) => self.stat(&e.stat),
            Response::GetData(g) => format!("data={} {}", data(&g.data), self.stat(&g.stat)),
            Response::SetData(s) => self.stat(&s.stat),
            Response::GetAcl(a) => format!("acl={} {}", acls(&a.acl), self.stat(&a.stat)),
            Response::SetAcl(s) => self.stat(&s.stat),
            Response::GetChildren(c) => sorted(&c.children),
            Response::GetChildren2(c) => format!("{} {}", sorted(&c.children), self.stat(&c.stat)),
            Response::Sync(s) => format!("path={}", s.path),
            Response::Multi(m) => {
                let parts: Vec<String> = m.results.iter().map(|r| self.op_result(r)).collect();
                format!("[{}]", parts.join(", "))
            }
            Response::GetEphemerals(e) => sorted(&e.ephemerals),
            Response::GetAllChildrenNumber(n) => format!("total={}", n.total_number),
            Response::WhoAmI(w) => {
                let v: Vec<String> =
                    w.client_info.iter().map(|c| format!("{}:{}", c.auth_scheme, c.user)).collect();
                format!("{v:?}")
            }
            Response::AddWatch(e) => format!("err={}", e.err),
            Response::Sasl(r) => format!("sasl token={:?}", r.token),
        }
    }

    fn op_result(&mut self, r: &OpResult) -> String {
        match r {
            OpResult::Create { path } => format!("create path={path}"),
            OpResult::Create2 { path, stat } => format!("create2 path={path} {}", self.stat(stat)),
            OpResult::Delete => "delete".into(),
            OpResult::SetData { stat } => format!("setData {}", self.stat(stat)),
            OpResult::Check => "check".into(),
            OpResult::GetChildren { children } => format!("getChildren {}", sorted(children)),
            OpResult::GetData { data: d, stat } => format!("getData data={} {}", data(d), self.stat(stat)),
            OpResult::Error { err } => format!("error {}", code(*err)),
        }
    }

    fn connect_response(&mut self, r: &ConnectResponse) -> String {
        format!(
            "proto={} timeout={} session={} passwd_len={} passwd_zero={} read_only={:?}",
            r.protocol_version,
            r.timeout,
            if r.session_id == 0 { "0" } else { "nonzero" },
            r.passwd.as_ref().map_or(-1, |p| p.len() as i64),
            r.passwd.as_ref().is_none_or(|p| p.iter().all(|b| *b == 0)),
            r.read_only
        )
    }
}

fn data(d: &Option<Bytes>) -> String {
    match d {
        None => "null".into(),
        Some(b) => format!("{:?}", String::from_utf8_lossy(b)),
    }
}

fn acls(a: &[Acl]) -> String {
    let v: Vec<String> = a.iter().map(|a| format!("{}:{}:{}", a.perms, a.id.scheme, a.id.id)).collect();
    format!("{v:?}")
}

fn sorted(v: &[String]) -> String {
    let mut v = v.to_vec();
    v.sort();
    format!("{v:?}")
}

fn code(err: i32) -> String {
    match ferrokeeper_proto::Code::from_i32(err) {
        Some(c) => format!("{c:?}({err})"),
        None => format!("err({err})"),
    }
}

/// What one step produced on one server, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    result: String,
    events: Vec<String>,
}

struct World {
    name: &'static str,
    /// Client ports: one for a standalone server, three for an ensemble (slot i talks to
    /// node i % 3, so sessions are spread over the nodes).
    ports: Vec<u16>,
    /// An ensemble: barriers and tree dumps `sync` first, so a node has applied everything
    /// committed before the barrier.
    cluster: bool,
    slots: [Slot; SLOTS],
    norm: Norm,
    /// Paths the last step created (for the generator's pool).
    created: Vec<String>,
    /// A super-user session used only to dump the whole tree.
    observer: Option<TestClient>,
}

impl World {
    fn new(name: &'static str, ports: Vec<u16>) -> World {
        World {
            name,
            cluster: ports.len() > 1,
            ports,
            slots: [Slot::Empty, Slot::Empty, Slot::Empty],
            norm: Norm::default(),
            created: vec![],
            observer: None,
        }
    }

    /// Opens the observer session (session label 0), authenticated as super.
    fn start_observer(&mut self) {
        let mut c = TestClient::connect(self.ports[0]).unwrap();
        self.norm.sessions.insert(c.session_id, 0);
        assert_eq!(c.auth("digest", format!("super:{}", support::SUPER_PASSWORD).as_bytes()).unwrap(), 0);
        self.observer = Some(c);
    }

    /// Every node (breadth first, children sorted) with data, stat and ACL, normalised.
    fn dump(&mut self) -> Vec<String> {
        let mut c = self.observer.take().expect("observer session");
        if self.cluster {
            let (header, _) = c.call(&Request::Sync(SyncRequest { path: "/".into() })).unwrap();
            assert_eq!(header.err, 0, "sync before the tree dump");
        }
        let mut out = Vec::new();
        let mut queue = std::collections::VecDeque::from([String::from("/")]);
        while let Some(path) = queue.pop_front() {
            let line = match c.call(&Request::GetData(GetDataRequest { path: path.clone(), watch: false })) {
                Ok((_, Ok(Response::GetData(d)))) => {
                    format!("data={} {}", data(&d.data), self.norm.stat(&d.stat))
                }
                Ok((h, _)) => format!("getData {}", code(h.err)),
                Err(e) => format!("getData failed: {e}"),
            };
            let acl = match c.call(&Request::GetAcl(GetAclRequest { path: path.clone() })) {
                Ok((_, Ok(Response::GetAcl(a)))) => acls(&a.acl),
                Ok((h, _)) => format!("getACL {}", code(h.err)),
                Err(e) => format!("getACL failed: {e}"),
            };
            out.push(format!("{path} {line} acl={acl}"));
            if let Ok((_, Ok(Response::GetChildren(k)))) =
                c.call(&Request::GetChildren(GetChildrenRequest { path: path.clone(), watch: false }))
            {
                let mut kids = k.children;
                kids.sort();
                for kid in kids {
                    queue.push_back(if path == "/" { format!("/{kid}") } else { format!("{path}/{kid}") });
                }
            }
        }
        self.observer = Some(c);
        out
    }

    fn kinds(&self) -> [SlotKind; SLOTS] {
        [self.slots[0].kind(), self.slots[1].kind(), self.slots[2].kind()]
    }

    fn client(&mut self, slot: usize) -> &mut TestClient {
        match &mut self.slots[slot] {
            Slot::Live(c) => c,
            _ => panic!("{}: slot {slot} is not live", self.name),
        }
    }

    fn port_for(&self, slot: usize) -> u16 {
        self.ports[slot % self.ports.len()]
    }

    fn open(&mut self, slot: usize, opts: &ConnectOptions, label: usize) -> String {
        match TestClient::connect_with(self.port_for(slot), opts) {
            Ok(client) => {
                self.norm.sessions.insert(client.session_id, label);
                let r = self.norm.connect_response(&client.connect_response);
                self.slots[slot] = Slot::Live(Box::new(client));
                r
            }
            Err(e) => format!("connect failed: {:?}", e.kind()),
        }
    }

    fn watch_request(&self, w: &WatchSet, last_zxid: i64) -> Request {
        let rel = match w.rel {
            RelZxid::Last => last_zxid,
            RelZxid::Zero => 0,
        };
        if w.v2 {
            Request::SetWatches2(SetWatches2 {
                relative_zxid: rel,
                data_watches: w.data.clone(),
                exist_watches: w.exist.clone(),
                child_watches: w.child.clone(),
                persistent_watches: w.persistent.clone(),
                persistent_recursive_watches: w.recursive.clone(),
            })
        } else {
            Request::SetWatches(SetWatches {
                relative_zxid: rel,
                data_watches: w.data.clone(),
                exist_watches: w.exist.clone(),
                child_watches: w.child.clone(),
            })
        }
    }

    /// Sends a request on a live slot; a dropped connection turns the slot Gone.
    fn call(&mut self, slot: usize, op_code: i32, req: &Request) -> String {
        let client = self.client(slot);
        match client.call_op(op_code, req) {
            Ok((header, result)) => {
                let zxid = self.norm.z(header.zxid);
                match result {
                    Ok(body) => {
                        collect_created(&body, &mut self.created);
                        format!("zxid={zxid} ok {}", self.norm.response(&body))
                    }
                    Err(err) => format!("zxid={zxid} {}", code(err)),
                }
            }
            Err(e) => {
                self.mark_gone(slot);
                format!("connection lost ({:?})", e.kind())
            }
        }
    }

    fn mark_gone(&mut self, slot: usize) {
        if let Slot::Live(c) = std::mem::replace(&mut self.slots[slot], Slot::Empty) {
            self.slots[slot] = Slot::Gone(SessionInfo {
                id: c.session_id,
                passwd: c.passwd.clone(),
                last_zxid: c.last_zxid,
            });
        }
    }

    fn exec(&mut self, step: &Step, label: usize) -> Outcome {
        self.created.clear();
        let result = match step {
            Step::Open { slot, timeout, read_only } => {
                let opts =
                    ConnectOptions { timeout_ms: *timeout, read_only: *read_only, ..Default::default() };
                self.open(*slot, &opts, label)
            }
            Step::Disconnect { slot } => {
                self.mark_gone(*slot);
                "disconnected".into()
            }
            Step::Reconnect { slot, watches } => {
                let Slot::Gone(info) = std::mem::replace(&mut self.slots[*slot], Slot::Empty) else {
                    panic!("{}: reconnect of a slot that is not gone", self.name)
                };
                let opts = ConnectOptions {
                    session_id: info.id,
                    passwd: info.passwd.clone(),
                    last_zxid_seen: info.last_zxid,
                    ..Default::default()
                };
                match TestClient::connect_with(self.port_for(*slot), &opts) {
                    Ok(client) => {
                        let mut r = self.norm.connect_response(&client.connect_response);
                        let same = client.session_id == info.id;
                        self.slots[*slot] = Slot::Live(Box::new(client));
                        write!(r, " same_session={same}").unwrap();
                        if let Some(w) = watches {
                            let req = self.watch_request(w, info.last_zxid);
                            let res = self.call(*slot, req.op(), &req);
                            write!(r, "; {}: {res}", op::name(req.op())).unwrap();
                        }
                        r
                    }
                    Err(e) => {
                        // The session is gone for good (expired or refused).
                        format!("reconnect failed: {e}")
                    }
                }
            }
            Step::Close { slot } => {
                let client = self.client(*slot);
                let r = match client.close_session() {
                    Ok(h) => format!("closed zxid={} err={}", self.norm.z(h.zxid), code(h.err)),
                    Err(e) => format!("close failed ({:?})", e.kind()),
                };
                self.slots[*slot] = Slot::Empty;
                r
            }
            Step::BadPassword { slot } => {
                let (id, mut passwd, last_zxid) = match &self.slots[*slot] {
                    Slot::Live(c) => (c.session_id, c.passwd.clone(), c.last_zxid),
                    Slot::Gone(i) => (i.id, i.passwd.clone(), i.last_zxid),
                    Slot::Empty => panic!("bad password on empty slot"),
                };
                if let Some(b) = passwd.first_mut() {
                    *b ^= 0x5a;
                }
                let opts = ConnectOptions {
                    session_id: id,
                    passwd,
                    last_zxid_seen: last_zxid,
                    ..Default::default()
                };
                match TestClient::handshake(self.port_for(*slot), &opts) {
                    Ok((mut stream, resp)) => {
                        let closed = {
                            use std::io::Read;
                            stream.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
                            let mut buf = [0u8; 64];
                            matches!(stream.read(&mut buf), Ok(0) | Err(_))
                        };
                        format!("{} then_closed={closed}", self.norm.connect_response(&resp))
                    }
                    Err(e) => format!("handshake failed ({:?})", e.kind()),
                }
            }
            Step::Probe { timeout, read_only } => {
                let opts =
                    ConnectOptions { timeout_ms: *timeout, read_only: *read_only, ..Default::default() };
                match TestClient::connect_with(self.ports[self.ports.len() - 1], &opts) {
                    Ok(mut client) => {
                        self.norm.sessions.insert(client.session_id, label);
                        let r = self.norm.connect_response(&client.connect_response);
                        let close = match client.close_session() {
                            Ok(h) => format!("zxid={} err={}", self.norm.z(h.zxid), code(h.err)),
                            Err(e) => format!("failed ({:?})", e.kind()),
                        };
                        format!("{r}; close {close}")
                    }
                    Err(e) => format!("connect failed: {e}"),
                }
            }
            Step::SetWatchesLive { slot, watches } => {
                let last = self.client(*slot).last_zxid;
                let req = self.watch_request(watches, last);
                self.call(*slot, req.op(), &req)
            }
            Step::Req { slot, req } => self.call(*slot, req.op(), req),
            Step::RawOp { slot, op, req } => {
                let result = self.call(*slot, *op, req);
                // The server closes the connection after answering an unknown opcode, but
                // ZooKeeper closes it asynchronously (a request sent right after may still be
                // answered), so the session is dropped here on both sides alike.
                if result.contains("Unimplemented") {
                    self.mark_gone(*slot);
                }
                result
            }
        };
        let events = self.barrier();
        Outcome { result, events }
    }

    /// `exists /` on every live session; returns the notifications each one received.
    fn barrier(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for slot in 0..SLOTS {
            let cluster = self.cluster;
            let Slot::Live(client) = &mut self.slots[slot] else { continue };
            let res = if cluster {
                client.call(&Request::Sync(SyncRequest { path: "/".into() }))
            } else {
                client.call(&Request::Exists(ExistsRequest { path: "/".into(), watch: false }))
            };
            let events: Vec<String> = client
                .take_events()
                .iter()
                .map(|n| format!("{}:{}:{}", event_name(n.event.event_type), n.event.state, n.event.path))
                .collect();
            if !events.is_empty() {
                out.push(format!("s{slot} {events:?}"));
            }
            if let Err(e) = res {
                out.push(format!("s{slot} barrier: connection lost ({:?})", e.kind()));
                self.mark_gone(slot);
            }
        }
        out
    }
}

fn event_name(t: i32) -> &'static str {
    use op::event_type::*;
    match t {
        NONE => "None",
        NODE_CREATED => "NodeCreated",
        NODE_DELETED => "NodeDeleted",
        NODE_DATA_CHANGED => "NodeDataChanged",
        NODE_CHILDREN_CHANGED => "NodeChildrenChanged",
        DATA_WATCH_REMOVED => "DataWatchRemoved",
        CHILD_WATCH_REMOVED => "ChildWatchRemoved",
        PERSISTENT_WATCH_REMOVED => "PersistentWatchRemoved",
        _ => "UnknownEvent",
    }
}

fn collect_created(body: &Response, out: &mut Vec<String>) {
    match body {
        Response::Create(c) => out.push(c.path.clone()),
        Response::Create2(c) => out.push(c.path.clone()),
        Response::Multi(m) => {
            for r in &m.results {
                match r {
                    OpResult::Create { path } | OpResult::Create2 { path, .. } => out.push(path.clone()),
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Driver.

fn env_num(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Runs one seed; returns a mismatch report, or None when both servers agreed throughout.
fn run_seed(seed: u64, ops: usize, kind_a: ServerKind, cluster: bool) -> Option<String> {
    let cluster = cluster && kind_a == ServerKind::Ferrokeeper;
    let (server_a, ensemble, server_b) = std::thread::scope(|s| {
        let a = s.spawn(move || {
            if cluster {
                let mut extras = ServerProcess::standard_extras();
                // The ensemble ticks fast (100 ms); give it the oracle's timeout bounds
                // (tickTime 2000: 2x and 20x).
                extras.push(("minSessionTimeout", "4000".to_owned()));
                extras.push(("maxSessionTimeout", "40000".to_owned()));
                let refs: Vec<(&str, &str)> = extras.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let mut ensemble = support::Ensemble::with_extras(&refs);
                for i in 0..support::ENSEMBLE_SIZE {
                    ensemble.start(i);
                }
                ensemble.wait_stable(std::time::Duration::from_secs(30));
                (None, Some(ensemble))
            } else {
                (Some(ServerProcess::start_standard(kind_a)), None)
            }
        });
        let b = s.spawn(|| ServerProcess::start_standard(ServerKind::ZooKeeper));
        let (a, ensemble) = a.join().unwrap();
        (a, ensemble, b.join().unwrap())
    });
    let (name_a, ports_a) = match (&server_a, &ensemble) {
        (_, Some(e)) => ("ferrokeeper-ensemble", (0..support::ENSEMBLE_SIZE).map(|i| e.port(i)).collect()),
        (Some(server), None) if kind_a == ServerKind::ZooKeeper => ("zookeeper#1", vec![server.port]),
        (Some(server), None) => ("ferrokeeper", vec![server.port]),
        (None, None) => unreachable!("one of them was started"),
    };
    let mut a = World::new(name_a, ports_a);
    let mut b = World::new("zookeeper", vec![server_b.port]);
    a.start_observer();
    b.start_observer();
    let mut generator = Gen {
        rng: Rng(seed ^ 0x5EED_0FF3),
        persistent_paths: Default::default(),
        child_watched: Default::default(),
        pool: vec![],
        existing: vec![],
        cluster,
    };
    let mut history: Vec<(usize, String, Outcome)> = Vec::new();
    let mut labels = 0usize;
    let verbose = std::env::var("FK_DIFF_VERBOSE").as_deref() == Ok("1");
    let mut exclude: Vec<String> = std::env::var("FK_DIFF_EXCLUDE")
        .unwrap_or_default()
        .split(',')
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .collect();
    if cluster {
        // ZooKeeper's checkWatches answers "yes" when any connection *of that server* watches
        // the path; spread over three servers the sessions no longer share one watch table.
        exclude.push("checkWatches".to_owned());
    }
    for i in 0..ops {
        // The oracle's slot states drive generation; both worlds agree until a mismatch.
        let mut step = generator.step(&b.kinds());
        while exclude.iter().any(|k| k == step.kind()) {
            step = generator.step(&b.kinds());
        }
        if matches!(step, Step::Open { .. } | Step::Probe { .. }) {
            labels += 1;
        }
        let step_started = std::time::Instant::now();
        let out_a = a.exec(&step, labels);
        let out_b = b.exec(&step, labels);
        generator.learn(&b.created);
        let desc = step.describe();
        let dumps = if out_a == out_b && (i % 20 == 19 || i + 1 == ops) {
            let (mut da, mut db) = (a.dump(), b.dump());
            if cluster {
                da.retain(|line| !line.starts_with("/zookeeper/config "));
                db.retain(|line| !line.starts_with("/zookeeper/config "));
            }
            generator.learn_tree(&db);
            if verbose {
                eprintln!("tree after #{i} (zookeeper):\n  {}", db.join("\n  "));
            }
            if da != db { Some((da, db)) } else { None }
        } else {
            None
        };
        if out_a != out_b || a.kinds() != b.kinds() || dumps.is_some() {
            let mut report = String::new();
            writeln!(report, "MISMATCH seed={seed} op#{i} (of {ops}): {desc}").unwrap();
            writeln!(report, "  {name_a:>12}: {}", out_a.result).unwrap();
            writeln!(report, "  {:>12}: {}", "zookeeper", out_b.result).unwrap();
            writeln!(report, "  {name_a:>12} events: {:?}", out_a.events).unwrap();
            writeln!(report, "  {:>12} events: {:?}", "zookeeper", out_b.events).unwrap();
            if let Some((da, db)) = &dumps {
                writeln!(
                    report,
                    "  the results agree but the trees differ afterwards (! marks differing lines):"
                )
                .unwrap();
                for j in 0..da.len().max(db.len()) {
                    let (x, y) = (da.get(j), db.get(j));
                    if x != y {
                        writeln!(report, "  ! {name_a}: {}", x.map_or("<none>", String::as_str)).unwrap();
                        writeln!(report, "  ! zookeeper: {}", y.map_or("<none>", String::as_str)).unwrap();
                    }
                }
            }
            if a.kinds() != b.kinds() {
                writeln!(report, "  session slots differ: {:?} vs {:?}", a.kinds(), b.kinds()).unwrap();
            }
            writeln!(report, "  previous ops (zookeeper's outcome):").unwrap();
            for (j, d, o) in history.iter().rev().take(10).rev() {
                writeln!(report, "    #{j} {d}\n        => {} {:?}", o.result, o.events).unwrap();
            }
            let excl =
                std::env::var("FK_DIFF_EXCLUDE").map(|e| format!("FK_DIFF_EXCLUDE={e} ")).unwrap_or_default();
            writeln!(
                report,
                "  replay: {excl}FK_DIFF_SEED={seed} FK_DIFF_OPS={} cargo test -p ferrokeeper-server --test differential -- --nocapture",
                i + 1
            )
            .unwrap();
            if kind_a == ServerKind::Ferrokeeper {
                let tail = match (&server_a, &ensemble) {
                    (Some(server), _) => server.log_tail(),
                    (None, Some(e)) => e.logs(),
                    (None, None) => String::new(),
                };
                writeln!(report, "  ferrokeeper log tail:\n{tail}").unwrap();
            }
            return Some(report);
        }
        if verbose {
            eprintln!(
                "#{i} {desc}\n    => {} {:?} ({:.1?})",
                out_b.result,
                out_b.events,
                step_started.elapsed()
            );
        }
        history.push((i, desc, out_b));
    }
    None
}

#[test]
fn differential_against_zookeeper() {
    let cluster = std::env::var("FK_DIFF_CLUSTER").as_deref() == Ok("1");
    differential(cluster, 3);
}

/// The same comparison with ferrokeeper as a 3-node ensemble, clients spread over the nodes.
#[test]
fn differential_against_zookeeper_cluster() {
    differential(true, 2);
}

fn differential(cluster: bool, default_seeds: u64) {
    if !support::oracle_available() {
        return;
    }
    let kind_a = support::server_under_test();
    let self_mode = kind_a == ServerKind::ZooKeeper;
    let ops = env_num("FK_DIFF_OPS").unwrap_or(300) as usize;
    let seeds: Vec<u64> = match env_num("FK_DIFF_SEED") {
        Some(s) => vec![s],
        None => (1..=env_num("FK_DIFF_SEEDS").unwrap_or(default_seeds)).collect(),
    };
    let mut failures = Vec::new();
    for &seed in &seeds {
        let started = std::time::Instant::now();
        match run_seed(seed, ops, kind_a, cluster) {
            None => eprintln!("seed {seed}: {ops} ops agree ({:.1?})", started.elapsed()),
            Some(report) => {
                eprintln!("{report}");
                failures.push(seed);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreed with Apache ZooKeeper on seeds {failures:?} (reports above)",
        if self_mode {
            "zookeeper#1"
        } else if cluster {
            "a ferrokeeper ensemble"
        } else {
            "ferrokeeper"
        }
    );
}

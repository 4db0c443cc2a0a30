//! `DataTree`: znodes, stats, ACL checks, ephemerals, session table, watches, prep and apply.
//!
//! Node stats are kept as ZooKeeper stores them (`StatPersisted`) and converted for clients
//! as `DataNode.copyStat` does: the client-visible `cversion` is `stored * 2 - numChildren`,
//! `dataLength` of null data is 0, and containers / TTL nodes show `ephemeralOwner` 0.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use ferrokeeper_proto::multi::{MultiOp, MultiResponse, OpResult};
use ferrokeeper_proto::op::{
    self, CreateMode, ephemeral_owner, event_type, keeper_state, perms, watcher_type,
};
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::response::Response;
use ferrokeeper_proto::txn::{
    CheckVersionTxn, CloseSessionTxn, CreateContainerTxn, CreateSessionTxn, CreateTtlTxn, CreateTxn,
    DeleteTxn, ErrorTxn, SetAclTxn, SetDataTxn,
};
use ferrokeeper_proto::{
    Acl, Code, Create2Response, CreateResponse, ErrorResponse, ExistsResponse, GetAclResponse,
    GetAllChildrenNumberResponse, GetChildren2Response, GetChildrenResponse, GetDataResponse,
    GetEphemeralsResponse, SetAclResponse, SetDataResponse, SetWatches2, Stat, StatPersisted, WatcherEvent,
    path,
};

use super::acl;
use super::prep::{Overlay, PNode};
use super::watch::{PERSISTENT, RECURSIVE, STANDARD, WatchStats, Watches};
use super::{ApplyOutcome, Caller, ConnId, SessionId, TreeConfig, Txn, TxnHeader};

/// A node's ACL list, shared: a node created with its parent's ACL (the common case: most
/// trees use one or a few ACLs) points at the parent's list instead of holding a copy (one
/// `Vec<Acl>` with an `Acl` and two small strings per node otherwise: ~150 bytes). Watch
/// events carry the same `Arc`.
type SharedAcl = Arc<Vec<Acl>>;

/// One znode as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    data: Option<Bytes>,
    acl: SharedAcl,
    stat: StatPersisted,
    /// How many children it has. Their names are not kept apart: they are the keys just
    /// under `path + "/"` in the node map ([`DataTree::child_names`]), so a name is stored once.
    children: u32,
}

/// Events produced while applying, in delivery order, each with the ACL of the node it is
/// about (ZooKeeper delivers an event only to connections with READ on that ACL).
type Events = Vec<(ConnId, WatcherEvent, Arc<Vec<Acl>>)>;

/// The special nodes ZooKeeper refuses to delete (`DataTree.isSpecialPath`).
const SPECIAL: [&str; 4] = ["/", "/zookeeper", "/zookeeper/quota", CONFIG_NODE];
/// Server-local (see [`super::ConfigNode`]): left out of the replicated state's digest.
const CONFIG_NODE: &str = "/zookeeper/config";

pub struct DataTree {
    config: TreeConfig,
    last_processed_zxid: i64,
    sessions: BTreeMap<SessionId, i32>,
    nodes: BTreeMap<String, Node>,
    ephemerals: BTreeMap<SessionId, BTreeSet<String>>,
    watches: Watches,
    pending: Overlay,
    /// A snapshot being taken a chunk at a time ([`DataTree::snapshot_begin`]).
    cut: Option<Box<SnapshotCut>>,
}

/// The state of a chunked snapshot: it yields the nodes as they were at `zxid` although the
/// tree keeps changing between chunks. Nodes are emitted in path order; a node not yet emitted
/// is saved as it was before its first change after `zxid` (`preserve`), and nodes created
/// after `zxid` (czxid > zxid) are skipped.
struct SnapshotCut {
    zxid: i64,
    /// Every path up to and including this one was emitted (None: none yet).
    cursor: Option<String>,
    /// Pre-images of nodes that existed at `zxid`, changed since and are not yet emitted.
    saved: BTreeMap<String, SavedNode>,
}

struct SavedNode {
    data: Option<Bytes>,
    acl: SharedAcl,
    stat: StatPersisted,
}

/// ZooKeeper resolves `""` (the parent of `/a`) to the root.
fn norm(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

fn err_txn(code: Code) -> Txn {
    Txn::Error(ErrorTxn { err: code.as_i32() })
}

/// A createTTL request as the create it is, apart from its TTL (passed on separately).
fn ttl_as_create(r: &ferrokeeper_proto::CreateTtlRequest) -> ferrokeeper_proto::CreateRequest {
    ferrokeeper_proto::CreateRequest {
        path: r.path.clone(),
        data: r.data.clone(),
        acl: r.acl.clone(),
        flags: r.flags,
    }
}

/// PrepRequestProcessor.checkAndIncVersion: BadVersion on mismatch (-1 matches anything);
/// the next version skips -1 so a client can always name it.
fn check_and_inc_version(current: i32, expected: i32) -> Result<i32, Code> {
    if expected != -1 && expected != current {
        return Err(Code::BadVersion);
    }
    let next = current.wrapping_add(1);
    Ok(if next == -1 { 0 } else { next })
}

fn event(kind: i32, path: &str) -> WatcherEvent {
    WatcherEvent { event_type: kind, state: keeper_state::SYNC_CONNECTED, path: path.to_owned() }
}

/// The stat of a node created by txn `zxid` at `time` with ephemeral owner `owner`.
pub fn new_stat(zxid: i64, time: i64, owner: i64) -> StatPersisted {
    StatPersisted {
        czxid: zxid,
        mzxid: zxid,
        ctime: time,
        mtime: time,
        version: 0,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: owner,
        pzxid: zxid,
    }
}

/// 64-bit FNV-1a, used for the state digest because it is simple and stable.
struct Fnv(u64);

impl Fnv {
    fn bytes(&mut self, b: &[u8]) {
        for x in b {
            self.0 ^= u64::from(*x);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn i64(&mut self, v: i64) {
        self.bytes(&v.to_be_bytes());
    }
    fn str(&mut self, s: &str) {
        self.i64(s.len() as i64);
        self.bytes(s.as_bytes());
    }
}

impl DataTree {
    /// A tree holding `/`, `/zookeeper`, `/zookeeper/quota` and `/zookeeper/config` as a fresh
    /// ZooKeeper 3.9 has them (stats all zero, system nodes READ_ACL_UNSAFE... see reference).
    ///
    /// Checked against a real 3.8 server: all four have empty (not null) data and zero
    /// zxids/times; `/`, `/zookeeper` and `/zookeeper/quota` carry OPEN_ACL_UNSAFE;
    /// `/zookeeper/config` carries READ_ACL_UNSAFE and aversion -1.
    pub fn new(config: TreeConfig) -> DataTree {
        let mut nodes = BTreeMap::new();
        let empty = || Some(Bytes::new());
        let mk = |acl: Vec<Acl>, children: &[&str]| Node {
            data: empty(),
            acl: Arc::new(acl),
            stat: StatPersisted::default(),
            children: children.len() as u32,
        };
        nodes.insert("/".to_owned(), mk(Acl::open_unsafe(), &["zookeeper"]));
        nodes.insert("/zookeeper".to_owned(), mk(Acl::open_unsafe(), &["quota", "config"]));
        nodes.insert("/zookeeper/quota".to_owned(), mk(Acl::open_unsafe(), &[]));
        let mut config_node = mk(Acl::read_unsafe(), &[]);
        config_node.stat.aversion = -1;
        nodes.insert("/zookeeper/config".to_owned(), config_node);
        let mut tree = DataTree {
            config,
            last_processed_zxid: 0,
            sessions: BTreeMap::new(),
            nodes,
            ephemerals: BTreeMap::new(),
            watches: Watches::default(),
            pending: Overlay::default(),
            cut: None,
        };
        tree.install_config_node();
        tree
    }

    /// Puts this member's own `/zookeeper/config` in place (see [`super::ConfigNode`]); a
    /// snapshot's copy (another member's, or an older start's) is replaced.
    fn install_config_node(&mut self) {
        let Some(local) = self.config.config_node.clone() else { return };
        if let Some(node) = self.nodes.get_mut(CONFIG_NODE) {
            node.data = Some(local.data);
            node.stat.mzxid = 0;
            node.stat.mtime = local.mtime_ms;
            node.stat.version = -1;
        }
    }

    /// The zxid of the last applied txn.
    pub fn last_processed_zxid(&self) -> i64 {
        self.last_processed_zxid
    }

    // ----- helpers -------------------------------------------------------------------------

    /// `EphemeralType.get(owner) == NORMAL`: owned by a session (not persistent, container
    /// or — when extended types are on — TTL).
    fn is_session_owner(&self, owner: i64) -> bool {
        if owner == 0 || owner == ephemeral_owner::CONTAINER {
            return false;
        }
        !(self.config.extended_types_enabled && ephemeral_owner::ttl_of(owner).is_some())
    }

    /// DataNode.copyStat: the stat a client sees.
    fn client_stat(&self, node: &Node) -> Stat {
        let n = node.children as i32;
        let s = &node.stat;
        Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            cversion: s.cversion.wrapping_mul(2).wrapping_sub(n),
            aversion: s.aversion,
            ephemeral_owner: if self.is_session_owner(s.ephemeral_owner) { s.ephemeral_owner } else { 0 },
            data_length: node.data.as_ref().map_or(0, |d| d.len() as i32),
            num_children: n,
            pzxid: s.pzxid,
        }
    }

    fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(norm(path))
    }

    /// getRecordForPath: the node as prep sees it (pending changes first).
    fn record(&self, path: &str) -> Result<PNode, Code> {
        let path = norm(path);
        if let Some(change) = self.pending.changes.get(path) {
            return change.node.clone().ok_or(Code::NoNode);
        }
        let node = self.nodes.get(path).ok_or(Code::NoNode)?;
        Ok(PNode {
            stat: node.stat.clone(),
            child_count: node.children as i32,
            acl: node.acl.to_vec(),
            data: node.data.clone(),
        })
    }

    /// Whether ids `auth` hold permission `perm` under `acl` (watch delivery asks this).
    pub fn allows(&self, acl: &[Acl], perm: i32, auth: &[ferrokeeper_proto::Id]) -> bool {
        acl::check(&self.config.providers, self.config.skip_acl, acl, perm, auth).is_ok()
    }

    /// The user whoAmI names for `id`, with this tree's providers.
    pub fn user_name(&self, id: &ferrokeeper_proto::Id) -> String {
        acl::user_name(&self.config.providers, id)
    }

    fn check_acl(&self, acl: &[Acl], perm: i32, caller: &Caller) -> Result<(), Code> {
        acl::check(&self.config.providers, self.config.skip_acl, acl, perm, &caller.auth)
    }

    /// Whether a session is live as prep sees it (pending creates / closes first).
    fn session_live(&self, session: SessionId) -> bool {
        match self.pending.sessions.get(&session) {
            Some((_, live)) => *live,
            None => self.sessions.contains_key(&session),
        }
    }

    // ----- prep ----------------------------------------------------------------------------

    /// Validates a write request (create*, delete, setData, setACL, multi, deleteContainer,
    /// closeSession) and returns the txn to log under `zxid`. Checks run against the tree as it
    /// will be after every txn prepped so far is applied. Failures become `Txn::Error` (or, for
    /// multi, `Txn::Multi` of error sub-txns per reference §1.7).
    pub fn prep(&mut self, caller: &Caller, request: &Request, zxid: i64, time_ms: i64) -> Txn {
        debug_assert!(zxid > self.last_processed_zxid, "prep zxid must be ahead of the applied tree");
        let result = match request {
            Request::Create(r) => self.prep_create(caller, op::CREATE, r, -1, zxid, time_ms),
            Request::Create2(r) => self.prep_create(caller, op::CREATE2, r, -1, zxid, time_ms),
            Request::CreateContainer(r) => {
                self.prep_create(caller, op::CREATE_CONTAINER, r, -1, zxid, time_ms)
            }
            Request::CreateTtl(r) => {
                self.prep_create(caller, op::CREATE_TTL, &ttl_as_create(r), r.ttl, zxid, time_ms)
            }
            Request::Delete(r) => self.prep_delete(caller, &r.path, r.version, zxid),
            Request::DeleteContainer(r) => self.prep_delete_container(&r.path, zxid),
            Request::SetData(r) => self.prep_set_data(caller, &r.path, &r.data, r.version, zxid, time_ms),
            Request::SetAcl(r) => self.prep_set_acl(caller, &r.path, &r.acl, r.version, zxid),
            Request::CloseSession => Ok(self.prep_close_session(caller.session_id, zxid)),
            Request::Multi(m) => Ok(self.prep_multi(caller, &m.ops, zxid, time_ms)),
            // Reconfig is disabled (reconfigEnabled=false), which ZooKeeper checks first.
            Request::Reconfig(_) => Err(Code::ReconfigDisabled),
            _ => Err(Code::Unimplemented),
        };
        result.unwrap_or_else(err_txn)
    }

    /// Preps the createSession txn of a new session so that writes prepped after it (an
    /// ephemeral create) see the session as live before the txn is applied.
    pub fn prep_create_session(&mut self, session_id: SessionId, timeout_ms: i32, zxid: i64) -> Txn {
        self.pending.sessions.insert(session_id, (zxid, true));
        Txn::CreateSession(CreateSessionTxn { time_out: timeout_ms })
    }

    fn prep_create(
        &mut self,
        caller: &Caller,
        opcode: i32,
        req: &ferrokeeper_proto::CreateRequest,
        ttl: i64,
        zxid: i64,
        time: i64,
    ) -> Result<Txn, Code> {
        // validateCreateRequest: flags, TTL, session.
        let mode = CreateMode::from_flags(req.flags).ok_or(Code::BadArguments)?;
        if mode.is_ttl() && !self.config.extended_types_enabled {
            return Err(Code::Unimplemented);
        }
        if mode.is_ttl() {
            if ttl <= 0 || ttl > ephemeral_owner::TTL_MAX {
                return Err(Code::BadArguments);
            }
        } else if ttl >= 0 {
            return Err(Code::BadArguments);
        }
        if mode.is_ephemeral() && !self.session_live(caller.session_id) {
            return Err(Code::SessionExpired);
        }
        // validatePathForCreate.
        let last_slash = req.path.rfind('/').ok_or(Code::BadArguments)?;
        if req.path.contains('\0') {
            return Err(Code::BadArguments);
        }
        let parent_path = norm(&req.path[..last_slash]).to_owned();
        let acl = acl::fixup_acl(&self.config.providers, &caller.auth, &req.acl)?;
        let parent = self.record(&parent_path)?;
        self.check_acl(&parent.acl, perms::CREATE, caller)?;
        let parent_cversion = parent.stat.cversion;
        let path = if mode.is_sequential() {
            format!("{}{:010}", req.path, parent_cversion)
        } else {
            req.path.clone()
        };
        path::validate(&path).map_err(|_| Code::BadArguments)?;
        if self.record(&path).is_ok() {
            return Err(Code::NodeExists);
        }
        if self.is_session_owner(parent.stat.ephemeral_owner) {
            return Err(Code::NoChildrenForEphemerals);
        }
        // createTTL with a non-TTL mode and a negative ttl passes every ZooKeeper check above
        // and then fails while applying (3.8.0 stops serving). Refuse it here, last, so the
        // earlier errors come out as ZooKeeper reports them.
        if opcode == op::CREATE_TTL && !mode.is_ttl() {
            return Err(Code::BadArguments);
        }
        let new_cversion = parent_cversion.wrapping_add(1);
        let txn = match opcode {
            op::CREATE_CONTAINER => Txn::CreateContainer(CreateContainerTxn {
                path: path.clone(),
                data: req.data.clone(),
                acl: acl.clone(),
                parent_c_version: new_cversion,
            }),
            op::CREATE_TTL => Txn::CreateTtl(CreateTtlTxn {
                path: path.clone(),
                data: req.data.clone(),
                acl: acl.clone(),
                parent_c_version: new_cversion,
                ttl,
            }),
            _ => Txn::Create {
                op: opcode,
                txn: CreateTxn {
                    path: path.clone(),
                    data: req.data.clone(),
                    acl: acl.clone(),
                    ephemeral: mode.is_ephemeral(),
                    parent_c_version: new_cversion,
                },
            },
        };
        // The overlay's owner follows the mode, as in ZooKeeper's prep.
        let owner = if mode.is_container() {
            ephemeral_owner::CONTAINER
        } else if mode.is_ttl() {
            ephemeral_owner::ttl(ttl)
        } else if mode.is_ephemeral() {
            caller.session_id
        } else {
            0
        };
        let mut parent = parent;
        parent.child_count += 1;
        parent.stat.cversion = new_cversion;
        parent.stat.pzxid = zxid;
        self.pending.put(&parent_path, zxid, Some(parent));
        let node = PNode { stat: new_stat(zxid, time, owner), child_count: 0, acl, data: req.data.clone() };
        self.pending.put(&path, zxid, Some(node));
        Ok(txn)
    }

    /// getParentPathAndValidate: BadArguments for paths without `/`, with NUL, or special.
    fn parent_and_validate(path: &str) -> Result<String, Code> {
        let last_slash = path.rfind('/').ok_or(Code::BadArguments)?;
        if path.contains('\0') || SPECIAL.contains(&path) {
            return Err(Code::BadArguments);
        }
        Ok(norm(&path[..last_slash]).to_owned())
    }

    fn pending_delete(&mut self, parent_path: &str, mut parent: PNode, path: &str, zxid: i64) {
        parent.child_count -= 1;
        parent.stat.pzxid = zxid;
        self.pending.put(parent_path, zxid, Some(parent));
        self.pending.put(path, zxid, None);
    }

    fn prep_delete(&mut self, caller: &Caller, path: &str, version: i32, zxid: i64) -> Result<Txn, Code> {
        let parent_path = Self::parent_and_validate(path)?;
        let parent = self.record(&parent_path)?;
        self.check_acl(&parent.acl, perms::DELETE, caller)?;
        let node = self.record(path)?;
        check_and_inc_version(node.stat.version, version)?;
        if node.child_count > 0 {
            return Err(Code::NotEmpty);
        }
        self.pending_delete(&parent_path, parent, path, zxid);
        Ok(Txn::Delete { op: op::DELETE, txn: DeleteTxn { path: path.to_owned() } })
    }

    fn prep_delete_container(&mut self, path: &str, zxid: i64) -> Result<Txn, Code> {
        let parent_path = Self::parent_and_validate(path)?;
        let node = self.record(path)?;
        if node.child_count > 0 {
            return Err(Code::NotEmpty);
        }
        // ZooKeeper refuses session-owned nodes with BadVersion (persistent ones pass).
        if self.is_session_owner(node.stat.ephemeral_owner) {
            return Err(Code::BadVersion);
        }
        let parent = self.record(&parent_path)?;
        self.pending_delete(&parent_path, parent, path, zxid);
        Ok(Txn::Delete { op: op::DELETE_CONTAINER, txn: DeleteTxn { path: path.to_owned() } })
    }

    fn prep_set_data(
        &mut self,
        caller: &Caller,
        path: &str,
        data: &Option<Bytes>,
        version: i32,
        zxid: i64,
        time: i64,
    ) -> Result<Txn, Code> {
        path::validate(path).map_err(|_| Code::BadArguments)?;
        let mut node = self.record(path)?;
        self.check_acl(&node.acl, perms::WRITE, caller)?;
        let new_version = check_and_inc_version(node.stat.version, version)?;
        node.stat.version = new_version;
        node.stat.mtime = time;
        node.stat.mzxid = zxid;
        node.data = data.clone();
        self.pending.put(path, zxid, Some(node));
        Ok(Txn::SetData(SetDataTxn { path: path.to_owned(), data: data.clone(), version: new_version }))
    }

    fn prep_set_acl(
        &mut self,
        caller: &Caller,
        path: &str,
        acl_in: &[Acl],
        version: i32,
        zxid: i64,
    ) -> Result<Txn, Code> {
        path::validate(path).map_err(|_| Code::BadArguments)?;
        let acl = acl::fixup_acl(&self.config.providers, &caller.auth, acl_in)?;
        let mut node = self.record(path)?;
        self.check_acl(&node.acl, perms::ADMIN, caller)?;
        let new_version = check_and_inc_version(node.stat.aversion, version)?;
        node.stat.aversion = new_version;
        node.acl = acl.clone();
        self.pending.put(path, zxid, Some(node));
        Ok(Txn::SetAcl(SetAclTxn { path: path.to_owned(), acl, version: new_version }))
    }

    fn prep_check(&mut self, caller: &Caller, path: &str, version: i32) -> Result<Txn, Code> {
        path::validate(path).map_err(|_| Code::BadArguments)?;
        let node = self.record(path)?;
        self.check_acl(&node.acl, perms::READ, caller)?;
        let v = check_and_inc_version(node.stat.version, version)?;
        Ok(Txn::Check(CheckVersionTxn { path: path.to_owned(), version: v }))
    }

    fn prep_close_session(&mut self, session: SessionId, zxid: i64) -> Txn {
        let mut es: BTreeSet<String> = self.ephemerals.get(&session).cloned().unwrap_or_default();
        for (p, change) in &self.pending.changes {
            match &change.node {
                Some(n) if n.stat.ephemeral_owner == session => {
                    es.insert(p.clone());
                }
                _ => {
                    es.remove(p);
                }
            }
        }
        for p in &es {
            let parent_path = path::parent(p).to_owned();
            // Unlike ZooKeeper (which leaves childCount alone here) the pending parent loses
            // the child, so a pipelined delete of the parent sees the right count.
            if let Ok(parent) = self.record(&parent_path) {
                self.pending_delete(&parent_path, parent, p, zxid);
            } else {
                self.pending.put(p, zxid, None);
            }
        }
        self.pending.sessions.insert(session, (zxid, false));
        // ZooKeeper lists them from a HashSet: watchers see the deletions in that order.
        let mut paths: Vec<String> = es.into_iter().collect();
        super::acl::java_hash_set_order(&mut paths);
        Txn::CloseSession(CloseSessionTxn { paths_to_delete: paths })
    }

    /// How ZooKeeper's MultiOperationRecord turns a create sub-op into an `Op`: the kind
    /// comes from the flags, not the header's opcode (`Op.create` with
    /// `CreateMode.fromFlag(flags, PERSISTENT)`): a create2 becomes a plain create (its result
    /// has no stat), a createTTL whose flags are not a TTL mode becomes a plain create (the
    /// ttl is dropped), and a create/create2/createContainer header with TTL flags cannot be
    /// handled at all (ZooKeeper fails the whole multi with MarshallingError).
    fn normalize_multi(ops: &[MultiOp]) -> Vec<Result<MultiOp, Code>> {
        let kind = |flags: i32| CreateMode::from_flags(flags).unwrap_or(CreateMode::Persistent);
        let plain_op = |mode: CreateMode| if mode.is_container() { op::CREATE_CONTAINER } else { op::CREATE };
        ops.iter()
            .map(|mop| match mop {
                MultiOp::Create { request, .. } => {
                    let mode = kind(request.flags);
                    if mode.is_ttl() {
                        return Err(Code::MarshallingError);
                    }
                    Ok(MultiOp::Create { op: plain_op(mode), request: request.clone() })
                }
                MultiOp::CreateTtl(r) if !kind(r.flags).is_ttl() => Ok(MultiOp::Create {
                    op: plain_op(kind(r.flags)),
                    request: ferrokeeper_proto::CreateRequest {
                        path: r.path.clone(),
                        data: r.data.clone(),
                        acl: r.acl.clone(),
                        flags: r.flags,
                    },
                }),
                other => Ok(other.clone()),
            })
            .collect()
    }

    fn prep_multi(&mut self, caller: &Caller, ops: &[MultiOp], zxid: i64, time: i64) -> Txn {
        let ops = Self::normalize_multi(ops);
        let saved = self.pending.clone();
        let mut txns = Vec::with_capacity(ops.len());
        let mut failed = false;
        for mop in &ops {
            if failed {
                txns.push(err_txn(Code::RuntimeInconsistency));
                continue;
            }
            let mop = match mop {
                Ok(mop) => mop,
                Err(code) => {
                    // Reached an op ZooKeeper cannot even prep: the whole request fails.
                    self.pending = saved;
                    return err_txn(*code);
                }
            };
            let r = match mop {
                MultiOp::Create { op: o, request } => self.prep_create(caller, *o, request, -1, zxid, time),
                MultiOp::CreateTtl(r) => {
                    self.prep_create(caller, op::CREATE_TTL, &ttl_as_create(r), r.ttl, zxid, time)
                }
                MultiOp::Delete(r) => self.prep_delete(caller, &r.path, r.version, zxid),
                MultiOp::SetData(r) => self.prep_set_data(caller, &r.path, &r.data, r.version, zxid, time),
                MultiOp::Check(r) => self.prep_check(caller, &r.path, r.version),
                // Reads have no txn form; ZooKeeper's prep has no case for them either.
                MultiOp::GetChildren(_) | MultiOp::GetData(_) => Err(Code::Unimplemented),
            };
            match r {
                Ok(t) => txns.push(t),
                Err(code) => {
                    failed = true;
                    self.pending = saved.clone();
                    txns.push(err_txn(code));
                }
            }
        }
        if failed {
            // Ops before the failure are logged as errors carrying 0 (reference §1.7).
            for t in txns.iter_mut() {
                if !matches!(t, Txn::Error(_)) {
                    *t = err_txn(Code::Ok);
                }
            }
        }
        Txn::Multi(txns)
    }

    // ----- apply ---------------------------------------------------------------------------

    /// Applies one txn (zxids strictly increasing). Never fails for a txn prep produced;
    /// error txns only advance the zxid and produce the error reply.
    pub fn apply(&mut self, header: &TxnHeader, txn: &Txn) -> ApplyOutcome {
        assert!(
            header.zxid > self.last_processed_zxid,
            "apply out of order: zxid {:#x} after {:#x}",
            header.zxid,
            self.last_processed_zxid
        );
        let mut events = Vec::new();
        let reply = match txn {
            Txn::Multi(txns) => Ok(Response::Multi(self.apply_multi(header, txns, &mut events))),
            Txn::CreateSession(t) => {
                self.sessions.insert(header.client_id, t.time_out);
                Ok(Response::Empty)
            }
            Txn::CloseSession(t) => {
                self.close_session(header.client_id, &t.paths_to_delete, header.zxid, &mut events);
                Ok(Response::Empty)
            }
            Txn::Error(e) => Err(Code::from_i32(e.err).unwrap_or(Code::SystemError)),
            Txn::Check(_) => Ok(Response::Empty),
            other => self.apply_one(header, other, &mut events).map(|r| match r {
                OpResult::Create { path } => Response::Create(CreateResponse { path }),
                OpResult::Create2 { path, stat } => Response::Create2(Create2Response { path, stat }),
                OpResult::SetData { stat } if matches!(other, Txn::SetAcl(_)) => {
                    Response::SetAcl(SetAclResponse { stat })
                }
                OpResult::SetData { stat } => Response::SetData(SetDataResponse { stat }),
                _ => Response::Empty,
            }),
        };
        self.last_processed_zxid = header.zxid;
        self.pending.applied(header.zxid);
        ApplyOutcome { reply, events }
    }

    /// Applies a tree-changing txn; SetAcl reports its stat as `OpResult::SetData`.
    fn apply_one(&mut self, header: &TxnHeader, txn: &Txn, events: &mut Events) -> Result<OpResult, Code> {
        let (zxid, time) = (header.zxid, header.time);
        match txn {
            Txn::Create { op: o, txn: t } => {
                let owner = if t.ephemeral { header.client_id } else { 0 };
                let stat = self.create_node(
                    &t.path,
                    &t.data,
                    &t.acl,
                    owner,
                    t.parent_c_version,
                    zxid,
                    time,
                    events,
                )?;
                Ok(if *o == op::CREATE {
                    OpResult::Create { path: t.path.clone() }
                } else {
                    OpResult::Create2 { path: t.path.clone(), stat }
                })
            }
            Txn::CreateContainer(_) | Txn::CreateTtl(_) => {
                // Both answer with a stat and differ only in the owner encoding.
                let (path, data, acl, parent_c_version, owner) = match txn {
                    Txn::CreateContainer(t) => {
                        (&t.path, &t.data, &t.acl, t.parent_c_version, ephemeral_owner::CONTAINER)
                    }
                    Txn::CreateTtl(t) => (
                        &t.path,
                        &t.data,
                        &t.acl,
                        t.parent_c_version,
                        ephemeral_owner::ttl(t.ttl & ephemeral_owner::TTL_MAX),
                    ),
                    _ => unreachable!("matched above"),
                };
                let stat = self.create_node(path, data, acl, owner, parent_c_version, zxid, time, events)?;
                Ok(OpResult::Create2 { path: path.clone(), stat })
            }
            Txn::Delete { txn: t, .. } => {
                self.delete_node(&t.path, zxid, events)?;
                Ok(OpResult::Delete)
            }
            Txn::SetData(t) => {
                self.preserve(&t.path);
                let node = self.nodes.get_mut(&t.path).ok_or(Code::NoNode)?;
                node.data = t.data.clone();
                node.stat.version = t.version;
                node.stat.mtime = time;
                node.stat.mzxid = zxid;
                let fired = self.watches.data.trigger(&t.path, &BTreeSet::new());
                if !fired.is_empty() {
                    let acl = node.acl.clone();
                    let changed = |c| (c, event(event_type::NODE_DATA_CHANGED, &t.path), acl.clone());
                    events.extend(fired.into_iter().map(changed));
                }
                let stat = self.get(&t.path).map(|n| self.client_stat(n)).ok_or(Code::NoNode)?;
                Ok(OpResult::SetData { stat })
            }
            Txn::SetAcl(t) => {
                self.preserve(&t.path);
                let node = self.nodes.get_mut(&t.path).ok_or(Code::NoNode)?;
                node.acl = Arc::new(t.acl.clone());
                node.stat.aversion = t.version;
                let stat = self.get(&t.path).map(|n| self.client_stat(n)).ok_or(Code::NoNode)?;
                Ok(OpResult::SetData { stat })
            }
            Txn::Check(_) => Ok(OpResult::Check),
            Txn::Error(e) => Err(Code::from_i32(e.err).unwrap_or(Code::SystemError)),
            Txn::CreateSession(_) | Txn::CloseSession(_) | Txn::Multi(_) => Err(Code::BadArguments),
        }
    }

    fn apply_multi(&mut self, header: &TxnHeader, txns: &[Txn], events: &mut Events) -> MultiResponse {
        let failed = txns.iter().any(|t| matches!(t, Txn::Error(_)));
        let mut results = Vec::with_capacity(txns.len());
        if failed {
            // DataTree.processTxn: nothing is applied; ops before the first error read 0,
            // ops after it -2, errors keep their code.
            let mut post_failed = false;
            for t in txns {
                match t {
                    Txn::Error(e) => {
                        post_failed = true;
                        results.push(OpResult::Error { err: e.err });
                    }
                    _ => {
                        let err = if post_failed { Code::RuntimeInconsistency } else { Code::Ok };
                        results.push(OpResult::Error { err: err.as_i32() });
                    }
                }
            }
            return MultiResponse { results };
        }
        for t in txns {
            let r = self.apply_one(header, t, events);
            results.push(match r {
                Ok(OpResult::SetData { stat }) if matches!(t, Txn::SetAcl(_)) => OpResult::SetData { stat },
                Ok(r) => r,
                Err(code) => OpResult::Error { err: code.as_i32() },
            });
        }
        MultiResponse { results }
    }

    #[allow(clippy::too_many_arguments)]
    fn create_node(
        &mut self,
        path: &str,
        data: &Option<Bytes>,
        acl: &[Acl],
        owner: i64,
        parent_cversion: i32,
        zxid: i64,
        time: i64,
        events: &mut Events,
    ) -> Result<Stat, Code> {
        if path == "/" || self.nodes.contains_key(path) {
            return Err(Code::NodeExists);
        }
        let parent_path = path::parent(path).to_owned();
        self.preserve(&parent_path);
        let parent = self.nodes.get_mut(&parent_path).ok_or(Code::NoNode)?;
        let mut cv = parent_cversion;
        if cv == -1 {
            cv = parent.stat.cversion.wrapping_add(1);
        }
        // Replays of a fuzzy snapshot may see a create whose cversion is already covered.
        if cv > parent.stat.cversion {
            parent.stat.cversion = cv;
            parent.stat.pzxid = zxid;
        }
        parent.children += 1;
        let acl = if parent.acl[..] == *acl { parent.acl.clone() } else { Arc::new(acl.to_vec()) };
        let node =
            Node { data: data.clone(), acl: acl.clone(), stat: new_stat(zxid, time, owner), children: 0 };
        let stat = self.client_stat(&node);
        self.nodes.insert(path.to_owned(), node);
        if self.is_session_owner(owner) {
            self.ephemerals.entry(owner).or_default().insert(path.to_owned());
        }
        // ACLs are copied for the events only when a watch fired (most writes fire none).
        let none = BTreeSet::new();
        let fired = self.watches.data.trigger(path, &none);
        if !fired.is_empty() {
            events.extend(fired.into_iter().map(|c| (c, event(event_type::NODE_CREATED, path), acl.clone())));
        }
        self.fire_children_changed(&parent_path, events);
        Ok(stat)
    }

    fn delete_node(&mut self, path: &str, zxid: i64, events: &mut Events) -> Result<(), Code> {
        if SPECIAL.contains(&path) {
            return Err(Code::BadArguments);
        }
        self.preserve(path);
        let node = self.nodes.remove(path).ok_or(Code::NoNode)?;
        debug_assert!(node.children == 0, "deleting a node with children");
        let parent_path = path::parent(path).to_owned();
        self.preserve(&parent_path);
        if let Some(parent) = self.nodes.get_mut(&parent_path) {
            parent.children = parent.children.saturating_sub(1);
            if zxid > parent.stat.pzxid {
                parent.stat.pzxid = zxid;
            }
        }
        let owner = node.stat.ephemeral_owner;
        if self.is_session_owner(owner)
            && let Some(set) = self.ephemerals.get_mut(&owner)
        {
            set.remove(path);
            if set.is_empty() {
                self.ephemerals.remove(&owner);
            }
        }
        let data_fired = self.watches.data.trigger(path, &BTreeSet::new());
        let child_fired = self.watches.child.trigger(path, &data_fired);
        if !data_fired.is_empty() || !child_fired.is_empty() {
            let acl = node.acl;
            let deleted = |c| (c, event(event_type::NODE_DELETED, path), acl.clone());
            events.extend(data_fired.into_iter().chain(child_fired).map(deleted));
        }
        self.fire_children_changed(&parent_path, events);
        Ok(())
    }

    /// NodeChildrenChanged for `parent_path`'s child watchers, with the parent's ACL.
    fn fire_children_changed(&mut self, parent_path: &str, events: &mut Events) {
        let fired = self.watches.child.trigger(parent_path, &BTreeSet::new());
        if fired.is_empty() {
            return;
        }
        let acl = self.nodes.get(parent_path).map(|p| p.acl.clone()).unwrap_or_default();
        let changed = |c| (c, event(event_type::NODE_CHILDREN_CHANGED, parent_path), acl.clone());
        events.extend(fired.into_iter().map(changed));
    }

    fn close_session(&mut self, session: SessionId, paths: &[String], zxid: i64, events: &mut Events) {
        for p in paths {
            // A path may already be gone (deleted by an earlier txn); that is not an error.
            let _ = self.delete_node(p, zxid, events);
        }
        // Ephemerals created after prep listed them still die with the session.
        let rest: Vec<String> =
            self.ephemerals.get(&session).map(|s| s.iter().cloned().collect()).unwrap_or_default();
        for p in rest {
            let _ = self.delete_node(&p, zxid, events);
        }
        self.ephemerals.remove(&session);
        self.sessions.remove(&session);
    }

    // ----- reads ---------------------------------------------------------------------------

    /// Serves a read-side request: exists, getData, getACL, getChildren, getChildren2,
    /// getAllChildrenNumber, getEphemerals, multiRead, addWatch, checkWatches, removeWatches.
    /// Registers watches for `caller.conn` where the request asks for one.
    pub fn read(&mut self, caller: &Caller, request: &Request) -> Result<Response, Code> {
        match request {
            Request::Exists(r) => {
                if r.path.contains('\0') {
                    return Err(Code::BadArguments);
                }
                if let Some(n) = self.get(&r.path) {
                    self.check_acl(&n.acl, perms::READ, caller)?;
                }
                // The watch is set even when the node is missing: it fires on NodeCreated.
                if r.watch {
                    self.watches.data.add(&r.path, caller.conn, STANDARD);
                }
                let n = self.get(&r.path).ok_or(Code::NoNode)?;
                Ok(Response::Exists(ExistsResponse { stat: self.client_stat(n) }))
            }
            Request::GetData(r) => {
                let (data, stat) = self.get_data(caller, &r.path, r.watch)?;
                Ok(Response::GetData(GetDataResponse { data, stat }))
            }
            Request::GetChildren(r) => {
                let (children, _) = self.get_children(caller, &r.path, r.watch)?;
                Ok(Response::GetChildren(GetChildrenResponse { children }))
            }
            Request::GetChildren2(r) => {
                let (children, stat) = self.get_children(caller, &r.path, r.watch)?;
                Ok(Response::GetChildren2(GetChildren2Response { children, stat }))
            }
            Request::GetAcl(r) => {
                let n = self.get(&r.path).ok_or(Code::NoNode)?;
                self.check_acl(&n.acl, perms::READ | perms::ADMIN, caller)?;
                let stat = self.client_stat(n);
                let acl = if self.check_acl(&n.acl, perms::ADMIN, caller).is_ok() {
                    n.acl.to_vec()
                } else {
                    acl::mask_digests(&n.acl)
                };
                Ok(Response::GetAcl(GetAclResponse { acl, stat }))
            }
            Request::GetAllChildrenNumber(r) => {
                let n = self.get(&r.path).ok_or(Code::NoNode)?;
                self.check_acl(&n.acl, perms::READ, caller)?;
                let total = if norm(&r.path) == "/" {
                    self.nodes.len() - 1
                } else {
                    let prefix = format!("{}/", r.path);
                    self.nodes.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)).count()
                };
                Ok(Response::GetAllChildrenNumber(GetAllChildrenNumberResponse {
                    total_number: total as i32,
                }))
            }
            Request::GetEphemerals(r) => {
                let all = self.ephemerals.get(&caller.session_id);
                // Java's trim() strips every char <= ' '.
                let prefix = r.prefix_path.trim_matches(|c: char| c <= ' ');
                let ephemerals = all
                    .map(|s| {
                        s.iter()
                            .filter(|p| prefix.is_empty() || prefix == "/" || p.starts_with(&r.prefix_path))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(Response::GetEphemerals(GetEphemeralsResponse { ephemerals }))
            }
            Request::MultiRead(m) => {
                if m.ops.iter().any(|o| !matches!(o, MultiOp::GetChildren(_) | MultiOp::GetData(_))) {
                    return Err(Code::MarshallingError);
                }
                let mut results = Vec::with_capacity(m.ops.len());
                for o in &m.ops {
                    let r = match o {
                        MultiOp::GetChildren(r) => self
                            .get_children(caller, &r.path, false)
                            .map(|(children, _)| OpResult::GetChildren { children }),
                        MultiOp::GetData(r) => self
                            .get_data(caller, &r.path, false)
                            .map(|(data, stat)| OpResult::GetData { data, stat }),
                        _ => Err(Code::MarshallingError),
                    };
                    results.push(r.unwrap_or_else(|c| OpResult::Error { err: c.as_i32() }));
                }
                Ok(Response::Multi(MultiResponse { results }))
            }
            Request::AddWatch(r) => {
                match r.mode {
                    op::add_watch_mode::PERSISTENT => {
                        self.watches.data.add(&r.path, caller.conn, PERSISTENT);
                        self.watches.child.add(&r.path, caller.conn, PERSISTENT);
                    }
                    op::add_watch_mode::PERSISTENT_RECURSIVE => {
                        self.watches.data.add(&r.path, caller.conn, RECURSIVE);
                    }
                    // WatcherMode.fromZooDef throws, which the server reports as a marshalling error.
                    _ => return Err(Code::MarshallingError),
                }
                Ok(Response::AddWatch(ErrorResponse { err: 0 }))
            }
            Request::CheckWatches(r) => {
                let (p, c) = (&r.path, caller.conn);
                let w = &self.watches;
                // ZooKeeper 3.8's WatchManager.containsWatcher answers "yes" when *any*
                // connection watches the exact path ("at the leaf node, all watcher types
                // match"), or this connection watches it recursively. Clients see that, so
                // we answer the same.
                let any_on = |m: &super::watch::WatchManager| m.watched(p);
                let found = match r.watcher_type {
                    watcher_type::CHILDREN => any_on(&w.child) || w.child.contains(p, c, RECURSIVE),
                    watcher_type::DATA => any_on(&w.data) || w.data.contains(p, c, RECURSIVE),
                    watcher_type::PERSISTENT => w.data.contains(p, c, PERSISTENT),
                    watcher_type::PERSISTENT_RECURSIVE => w.data.contains(p, c, RECURSIVE),
                    watcher_type::ANY => {
                        any_on(&w.child) || any_on(&w.data) || w.data.contains(p, c, RECURSIVE)
                    }
                    _ => return Err(Code::MarshallingError),
                };
                if found { Ok(Response::Empty) } else { Err(Code::NoWatcher) }
            }
            Request::RemoveWatches(r) => {
                let (p, c) = (&r.path, caller.conn);
                let w = &mut self.watches;
                // ZooKeeper's WatchManager.removeWatcher drops the connection's entry for the
                // path whatever its mode, so a Data/Children removal also ends a persistent
                // watch held in that table.
                let removed = match r.watcher_type {
                    watcher_type::CHILDREN => w.child.remove(p, c, 0),
                    watcher_type::DATA => w.data.remove(p, c, 0),
                    watcher_type::PERSISTENT => {
                        let a = w.child.remove(p, c, PERSISTENT);
                        let b = w.data.remove(p, c, PERSISTENT);
                        a || b
                    }
                    watcher_type::PERSISTENT_RECURSIVE => w.data.remove(p, c, RECURSIVE),
                    watcher_type::ANY => {
                        let a = w.child.remove(p, c, 0);
                        let b = w.data.remove(p, c, 0);
                        a || b
                    }
                    _ => return Err(Code::MarshallingError),
                };
                if removed { Ok(Response::Empty) } else { Err(Code::NoWatcher) }
            }
            _ => Err(Code::Unimplemented),
        }
    }

    fn get_data(&mut self, caller: &Caller, path: &str, watch: bool) -> Result<(Option<Bytes>, Stat), Code> {
        let n = self.get(path).ok_or(Code::NoNode)?;
        self.check_acl(&n.acl, perms::READ, caller)?;
        let out = (n.data.clone(), self.client_stat(n));
        if watch {
            self.watches.data.add(path, caller.conn, STANDARD);
        }
        Ok(out)
    }

    /// The names of `path`'s children, in byte order: the keys of the node map just under
    /// `path + "/"`, found by one seek per child (a child's own subtree is skipped by seeking
    /// past `child + "/"`, i.e. to `child + "0"`, '0' being the byte after '/').
    fn child_names(&self, path: &str) -> Vec<String> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let prefix = if path == "/" { "/".to_owned() } else { format!("{path}/") };
        let mut names = Vec::new();
        let mut from: (std::ops::Bound<String>, std::ops::Bound<String>) =
            (Excluded(prefix.clone()), Unbounded);
        'seek: loop {
            for key in self.nodes.range::<String, _>(from.clone()).map(|(k, _)| k) {
                let Some(rest) = key.strip_prefix(prefix.as_str()) else { break 'seek };
                match rest.find('/') {
                    None => names.push(rest.to_owned()),
                    Some(slash) => {
                        // A grandchild: skip the rest of that child's subtree.
                        from = (Included(format!("{prefix}{}0", &rest[..slash])), Unbounded);
                        continue 'seek;
                    }
                }
            }
            break;
        }
        names
    }

    fn get_children(
        &mut self,
        caller: &Caller,
        path: &str,
        watch: bool,
    ) -> Result<(Vec<String>, Stat), Code> {
        let n = self.get(path).ok_or(Code::NoNode)?;
        self.check_acl(&n.acl, perms::READ, caller)?;
        let out = (self.child_names(norm(path)), self.client_stat(n));
        if watch {
            self.watches.child.add(path, caller.conn, STANDARD);
        }
        Ok(out)
    }

    /// Re-registers watches after a reconnect (setWatches / setWatches2) and returns the
    /// events that fire at once because the node changed after `relative_zxid`.
    pub fn set_watches(&mut self, conn: ConnId, watches: &SetWatches2) -> Vec<WatcherEvent> {
        let rel = watches.relative_zxid;
        let mut out = Vec::new();
        for p in &watches.data_watches {
            match self.get(p).map(|n| n.stat.mzxid) {
                None => out.push(event(event_type::NODE_DELETED, p)),
                Some(m) if m > rel => out.push(event(event_type::NODE_DATA_CHANGED, p)),
                Some(_) => self.watches.data.add(p, conn, STANDARD),
            }
        }
        for p in &watches.exist_watches {
            if self.get(p).is_some() {
                out.push(event(event_type::NODE_CREATED, p));
            } else {
                self.watches.data.add(p, conn, STANDARD);
            }
        }
        for p in &watches.child_watches {
            match self.get(p).map(|n| n.stat.pzxid) {
                None => out.push(event(event_type::NODE_DELETED, p)),
                Some(z) if z > rel => out.push(event(event_type::NODE_CHILDREN_CHANGED, p)),
                Some(_) => self.watches.child.add(p, conn, STANDARD),
            }
        }
        for p in &watches.persistent_watches {
            self.watches.child.add(p, conn, PERSISTENT);
            self.watches.data.add(p, conn, PERSISTENT);
        }
        for p in &watches.persistent_recursive_watches {
            self.watches.data.add(p, conn, RECURSIVE);
        }
        out
    }

    /// Drops every watch a closed connection held.
    pub fn remove_connection(&mut self, conn: ConnId) {
        self.watches.remove_connection(conn);
    }

    /// Live sessions and their negotiated timeouts (created/closed only by txns).
    pub fn sessions(&self) -> &BTreeMap<SessionId, i32> {
        &self.sessions
    }

    /// Ephemeral paths owned by each session, sorted.
    pub fn ephemerals(&self) -> BTreeMap<SessionId, Vec<String>> {
        self.ephemerals.iter().map(|(s, p)| (*s, p.iter().cloned().collect())).collect()
    }

    /// The node count as ZooKeeper reports it (`zk_znode_count`): its node map holds the
    /// root twice (as `""` and `/`), so a fresh tree counts 5.
    pub fn node_count(&self) -> usize {
        self.nodes.len() + 1
    }

    /// Sum of path lengths and data lengths, as ZooKeeper's approximateDataSize.
    /// The root's second entry (`""`) adds its data length once more.
    pub fn approximate_data_size(&self) -> u64 {
        let mut total: u64 = 0;
        for (p, n) in &self.nodes {
            total += (p.len() + n.data.as_ref().map_or(0, Bytes::len)) as u64;
        }
        total + self.get("/").and_then(|n| n.data.as_ref()).map_or(0, |d| d.len() as u64)
    }

    pub fn watch_stats(&self) -> WatchStats {
        self.watches.stats()
    }

    /// Watched paths per connection (wchc) and watching connections per path (wchp).
    pub fn watches_by_connection(&self) -> BTreeMap<ConnId, Vec<String>> {
        self.watches.by_connection()
    }

    pub fn watches_by_path(&self) -> BTreeMap<String, Vec<ConnId>> {
        self.watches.by_path()
    }

    /// Containers and TTL nodes due for deletion at `now_ms` (ContainerManager rules), at most
    /// `limit` of them.
    pub fn reapable(&self, now_ms: i64, limit: usize) -> Vec<String> {
        let max_never_used = self.config.container_max_never_used_interval_ms;
        self.nodes
            .iter()
            .filter(|(_, n)| n.children == 0)
            .filter(|(_, n)| {
                let owner = n.stat.ephemeral_owner;
                let elapsed = now_ms - n.stat.mtime;
                if owner == ephemeral_owner::CONTAINER {
                    n.stat.cversion > 0 || (max_never_used != 0 && elapsed > max_never_used)
                } else if self.config.extended_types_enabled
                    && let Some(ttl) = ephemeral_owner::ttl_of(owner)
                {
                    ttl != 0 && elapsed > ttl
                } else {
                    false
                }
            })
            .map(|(p, _)| p.clone())
            .take(limit)
            .collect()
    }

    /// A digest of the replicated state (paths, data, persisted stats, ACLs, sessions; not the
    /// server-local `/zookeeper/config`): equal trees at equal zxid have equal digests.
    pub fn digest(&self) -> u64 {
        let mut h = Fnv(0xcbf2_9ce4_8422_2325);
        for (p, n) in self.nodes.iter().filter(|(p, _)| p.as_str() != CONFIG_NODE) {
            h.str(p);
            match &n.data {
                Some(d) => {
                    h.i64(d.len() as i64);
                    h.bytes(d);
                }
                None => h.i64(-1),
            }
            let s = &n.stat;
            for v in [s.czxid, s.mzxid, s.ctime, s.mtime, s.ephemeral_owner, s.pzxid] {
                h.i64(v);
            }
            for v in [s.version, s.cversion, s.aversion] {
                h.i64(i64::from(v));
            }
            h.i64(n.acl.len() as i64);
            for a in n.acl.iter() {
                h.i64(i64::from(a.perms));
                h.str(&a.id.scheme);
                h.str(&a.id.id);
            }
        }
        h.i64(-2);
        for (s, t) in &self.sessions {
            h.i64(*s);
            h.i64(i64::from(*t));
        }
        h.0
    }

    /// Visits every node in path order (a parent before its children), with its data, ACL and
    /// stored stat: what a snapshot holds.
    pub fn for_each_node<F: FnMut(&str, &Option<Bytes>, &[Acl], &StatPersisted)>(&self, mut visit: F) {
        for (path, node) in &self.nodes {
            visit(path, &node.data, &node.acl, &node.stat);
        }
    }

    /// Rebuilds a tree from a snapshot's contents: nodes (any order), the session table and
    /// the zxid the snapshot was taken at. Children and the ephemeral index are derived.
    pub fn restore(
        config: TreeConfig,
        zxid: i64,
        sessions: BTreeMap<SessionId, i32>,
        snapshot_nodes: Vec<(String, Option<Bytes>, Vec<Acl>, StatPersisted)>,
    ) -> Result<DataTree, String> {
        let mut tree = DataTree::new(config);
        tree.nodes.clear();
        // Nodes come in path order: a node shares its parent's ACL list, or the previous
        // node's (a sibling's), when it is the same.
        let mut last: Option<SharedAcl> = None;
        for (path, data, acl, stat) in snapshot_nodes {
            if path != "/" && path::validate(&path).is_err() {
                return Err(format!("invalid path {path:?} in snapshot"));
            }
            let parent = if path == "/" { None } else { tree.nodes.get(path::parent(&path)) };
            let acl = match (parent, &last) {
                (Some(p), _) if *p.acl == acl => p.acl.clone(),
                (_, Some(l)) if **l == acl => l.clone(),
                _ => Arc::new(acl),
            };
            last = Some(acl.clone());
            let node = Node { data, acl, stat, children: 0 };
            if tree.nodes.insert(path.clone(), node).is_some() {
                return Err(format!("path {path} appears twice in snapshot"));
            }
        }
        if !tree.nodes.contains_key("/") {
            return Err("snapshot has no root node".into());
        }
        let paths: Vec<String> = tree.nodes.keys().filter(|p| p.as_str() != "/").cloned().collect();
        for child in paths {
            let parent = path::parent(&child);
            let Some(parent_node) = tree.nodes.get_mut(parent) else {
                return Err(format!("node {child} has no parent in snapshot"));
            };
            parent_node.children += 1;
            let owner = tree.nodes.get(&child).map_or(0, |n| n.stat.ephemeral_owner);
            if tree.is_session_owner(owner) {
                tree.ephemerals.entry(owner).or_default().insert(child);
            }
        }
        tree.sessions = sessions;
        tree.last_processed_zxid = zxid;
        tree.install_config_node();
        Ok(tree)
    }

    /// Starts a chunked snapshot of the applied state as it is now: returns its zxid and the
    /// session table; [`DataTree::snapshot_chunk`] then yields the nodes as they are now, even
    /// as txns keep being applied in between. Replaces a snapshot already under way.
    pub fn snapshot_begin(&mut self) -> (i64, BTreeMap<SessionId, i32>) {
        let zxid = self.last_processed_zxid;
        self.cut = Some(Box::new(SnapshotCut { zxid, cursor: None, saved: BTreeMap::new() }));
        (zxid, self.sessions.clone())
    }

    /// Whether a chunked snapshot is under way (a tree rebuilt or replaced has none).
    pub fn snapshot_in_progress(&self) -> bool {
        self.cut.is_some()
    }

    /// Gives up the snapshot under way.
    pub fn snapshot_abort(&mut self) {
        self.cut = None;
    }

    /// Visits up to `limit` more nodes of the snapshot under way, in path order, as they were
    /// at its zxid. Returns true when every node has been visited (the snapshot is then over).
    pub fn snapshot_chunk<F: FnMut(&str, &Option<Bytes>, &[Acl], &StatPersisted)>(
        &mut self,
        limit: usize,
        mut visit: F,
    ) -> bool {
        use std::ops::Bound;
        let Some(cut) = self.cut.as_deref_mut() else { return true };
        let (last, done) = {
            let lower = match cut.cursor.as_deref() {
                Some(cursor) => Bound::Excluded(cursor),
                None => Bound::Unbounded,
            };
            let mut live = self.nodes.range::<str, _>((lower, Bound::Unbounded)).peekable();
            let mut saved = cut.saved.range::<str, _>((lower, Bound::Unbounded)).peekable();
            let mut last: Option<&str> = None;
            let mut visited = 0;
            let done = loop {
                if visited == limit {
                    break false;
                }
                let next_live = live.peek().map(|(path, _)| path.as_str());
                let next_saved = saved.peek().map(|(path, _)| path.as_str());
                match (next_live, next_saved) {
                    (None, None) => break true,
                    (live_path, Some(saved_path)) if live_path.is_none_or(|l| saved_path <= l) => {
                        if live_path == Some(saved_path) {
                            live.next();
                        }
                        if let Some((path, node)) = saved.next() {
                            visit(path, &node.data, &node.acl, &node.stat);
                            last = Some(path);
                        }
                    }
                    _ => {
                        if let Some((path, node)) = live.next() {
                            // Created after the cut (and not there before): not in this snapshot.
                            if node.stat.czxid <= cut.zxid {
                                visit(path, &node.data, &node.acl, &node.stat);
                            }
                            last = Some(path);
                        }
                    }
                }
                visited += 1;
            };
            (last.map(str::to_owned), done)
        };
        if done {
            self.cut = None;
            return true;
        }
        if let Some(last) = last {
            // Pre-images at or before the cursor are spent.
            let mut rest = cut.saved.split_off(last.as_str());
            rest.remove(last.as_str());
            cut.saved = rest;
            cut.cursor = Some(last);
        }
        false
    }

    /// Before a node changes: while a snapshot is under way and has not reached `path`, keep
    /// the node as it was at the snapshot's zxid.
    fn preserve(&mut self, path: &str) {
        let Some(cut) = self.cut.as_deref_mut() else { return };
        if cut.cursor.as_deref().is_some_and(|cursor| path <= cursor) || cut.saved.contains_key(path) {
            return;
        }
        if let Some(node) = self.nodes.get(path)
            && node.stat.czxid <= cut.zxid
        {
            let saved = SavedNode { data: node.data.clone(), acl: node.acl.clone(), stat: node.stat.clone() };
            cut.saved.insert(path.to_owned(), saved);
        }
    }

    /// Whether prep has changes not yet applied (for tests and the shell's assertions).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Forgets every prepped change not yet applied (a leader stepping down: its proposals
    /// may never commit). Prep only ever writes the overlay, so the tree is as applied; the
    /// cost is the overlay's size, not the tree's.
    pub fn discard_prepped(&mut self) {
        self.pending = Overlay::default();
    }
}

#[cfg(test)]
#[path = "data_tree_tests.rs"]
mod tests;

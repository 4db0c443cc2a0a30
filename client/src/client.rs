//! The public handle: typed ZooKeeper operations over one multiplexed session.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::sasl::SaslOptions;
use bytes::Bytes;
use ferrokeeper_proto::multi::{MultiOp, MultiRequest, OpResult};
use ferrokeeper_proto::op::{self, CreateMode, add_watch_mode, watcher_type};
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::response::Response;
use ferrokeeper_proto::*;
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{Error, Result};
use crate::session::{self, Call, Config, Reply, Shared, lock};
use crate::tls::{Connector, LoadedTls, TlsOptions};
use crate::types::{Chroot, ConnectString, SessionState};
use crate::watch::{Events, Watch, WatchKind, WatchReg};

/// `AddWatchMode`: what [`ZooKeeper::add_watch`] registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddWatchMode {
    /// Data and child events for the path itself; stays after firing.
    Persistent,
    /// Created/Deleted/DataChanged events for the path and every descendant.
    PersistentRecursive,
}

/// `Watcher.WatcherType` for [`ZooKeeper::remove_watches`] / [`ZooKeeper::check_watches`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatcherType {
    Children,
    Data,
    Any,
    Persistent,
    PersistentRecursive,
}

impl WatcherType {
    fn as_i32(self) -> i32 {
        match self {
            WatcherType::Children => watcher_type::CHILDREN,
            WatcherType::Data => watcher_type::DATA,
            WatcherType::Any => watcher_type::ANY,
            WatcherType::Persistent => watcher_type::PERSISTENT,
            WatcherType::PersistentRecursive => watcher_type::PERSISTENT_RECURSIVE,
        }
    }
}

/// Options for a new session; start with [`ZooKeeper::builder`].
#[derive(Debug, Clone)]
pub struct Builder {
    connect_string: String,
    session_timeout: Duration,
    connect_timeout: Option<Duration>,
    queue: usize,
    read_only: bool,
    shuffle_hosts: bool,
    tls: Option<TlsOptions>,
    tls_loaded: Option<LoadedTls>,
    sasl: Option<SaslOptions>,
}

impl Builder {
    /// Requested session timeout (the server clamps it to [2, 20] × tickTime by default).
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// How long [`Builder::connect`] waits for the first session (default: the session timeout,
    /// at least 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Capacity of the request queue between the handles and the connection (default 4096).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue = capacity.max(1);
        self
    }

    /// Whether to ask for a read-only capable session.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Whether to try the connect string's hosts in a random order (the default, as the Java
    /// client's StaticHostProvider does, so many clients spread over an ensemble) or in the
    /// order given.
    pub fn shuffle_hosts(mut self, shuffle: bool) -> Self {
        self.shuffle_hosts = shuffle;
        self
    }

    /// Connects with TLS (to servers' `secureClientPort`s), or in plain text with `None` (the
    /// default). The stores are read by [`Builder::connect`].
    pub fn tls(mut self, tls: Option<TlsOptions>) -> Self {
        self.tls = tls;
        self
    }

    /// Connects with TLS whose stores were loaded once ([`LoadedTls::load`]) for many
    /// sessions; overrides [`Builder::tls`].
    pub fn tls_loaded(mut self, tls: LoadedTls) -> Self {
        self.tls_loaded = Some(tls);
        self
    }

    /// Logs in with SASL DIGEST-MD5 on every connection, before any other request (the
    /// session then holds a `sasl:<username>` id); `None` (the default): no SASL. A refused
    /// login ends the session with `AuthFailed` (and makes [`Builder::connect`] fail).
    pub fn sasl(mut self, sasl: Option<SaslOptions>) -> Self {
        self.sasl = sasl;
        self
    }

    /// Opens the session and waits until a server accepted it.
    pub async fn connect(self) -> Result<(ZooKeeper, Events)> {
        let cs = ConnectString::parse(&self.connect_string)?;
        let tls = match &self.tls_loaded {
            Some(loaded) => Some(loaded.0.clone()),
            None => self.tls.as_ref().map(Connector::new).transpose()?.map(Arc::new),
        };
        if cs.resolve().is_empty() {
            return Err(Error::ConnectString(format!("no resolvable host in {:?}", self.connect_string)));
        }
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (state_tx, mut state_rx) = watch::channel(SessionState::Connecting);
        let shared = Arc::new(Shared {
            chroot: Chroot(cs.chroot.clone()),
            last_zxid: AtomicI64::new(0),
            session_id: AtomicI64::new(0),
            negotiated_timeout: AtomicI64::new(0),
            watches: Mutex::default(),
            auth: Mutex::default(),
            events: events_tx,
            state: state_tx,
            connected_host: Mutex::new(None),
            last_failure: Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel(self.queue);
        let mut hosts = cs.hosts.clone();
        if self.shuffle_hosts {
            use rand::seq::SliceRandom;
            hosts.shuffle(&mut rand::rng());
        }
        let config = Config {
            hosts,
            session_timeout: self.session_timeout,
            read_only: self.read_only,
            tls,
            sasl: self.sasl.clone(),
        };
        tokio::spawn(session::run(shared.clone(), config, rx));
        let limit = self.connect_timeout.unwrap_or(self.session_timeout.max(Duration::from_secs(5)));
        let waited = tokio::time::timeout(limit, state_rx.wait_for(|s| *s != SessionState::Connecting)).await;
        let zk = ZooKeeper { tx, shared };
        match waited {
            Ok(Ok(state)) if *state == SessionState::Connected => Ok((zk, Events { rx: events_rx })),
            Ok(Ok(state)) if *state == SessionState::Expired => {
                Err(Error::keeper(Code::SessionExpired, None))
            }
            Ok(Ok(state)) if *state == SessionState::AuthFailed => Err(Error::keeper(Code::AuthFailed, None)),
            _ => Err(Error::ConnectFailed(match lock(&zk.shared.last_failure).clone() {
                Some(failure) => format!("{} ({failure})", self.connect_string),
                None => self.connect_string,
            })),
        }
    }
}

/// A handle on one ZooKeeper session. Cheap to clone; all clones share the session and its
/// single connection, over which requests are pipelined.
///
/// The session ends when [`ZooKeeper::close`] is called or every clone is dropped (then the
/// session is closed on the server too, removing its ephemeral nodes).
#[derive(Debug, Clone)]
pub struct ZooKeeper {
    tx: mpsc::Sender<Call>,
    shared: Arc<Shared>,
}

/// The result of a create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The node's actual path (with the sequence suffix for sequential modes).
    pub path: String,
    /// The new node's stat when the server returned one (create2 / TTL / container).
    pub stat: Option<Stat>,
}

impl ZooKeeper {
    /// Starts building a session for `connect_string` (`h1:p1,h2:p2[/chroot]`).
    pub fn builder(connect_string: &str) -> Builder {
        Builder {
            connect_string: connect_string.to_owned(),
            session_timeout: Duration::from_secs(30),
            connect_timeout: None,
            queue: 4096,
            read_only: false,
            shuffle_hosts: true,
            tls: None,
            tls_loaded: None,
            sasl: None,
        }
    }

    /// Connects with the given session timeout; see [`Builder`] for more options.
    pub async fn connect(connect_string: &str, session_timeout: Duration) -> Result<(ZooKeeper, Events)> {
        ZooKeeper::builder(connect_string).session_timeout(session_timeout).connect().await
    }

    /// The session id (0 before the first connection).
    pub fn session_id(&self) -> i64 {
        self.shared.session_id.load(Ordering::Relaxed)
    }

    /// The session timeout the server granted, in milliseconds.
    pub fn session_timeout_ms(&self) -> i64 {
        self.shared.negotiated_timeout.load(Ordering::Relaxed)
    }

    /// The highest zxid seen in a reply.
    pub fn last_zxid(&self) -> i64 {
        self.shared.last_zxid.load(Ordering::Relaxed)
    }

    /// The session's current state.
    pub fn state(&self) -> SessionState {
        *self.shared.state.borrow()
    }

    /// Waits until the state satisfies `f` (e.g. reconnected) or `limit` passes.
    pub async fn wait_for_state(&self, limit: Duration, f: impl Fn(SessionState) -> bool) -> bool {
        let mut rx = self.shared.state.subscribe();
        matches!(tokio::time::timeout(limit, rx.wait_for(|s| f(*s))).await, Ok(Ok(_)))
    }

    /// The `host:port` of the server currently connected, if any.
    pub fn connected_host(&self) -> Option<String> {
        lock(&self.shared.connected_host).clone()
    }

    fn server_path(&self, path: &str) -> Result<String> {
        ferrokeeper_proto::path::validate(path).map_err(Error::InvalidPath)?;
        Ok(self.shared.chroot.prepend(path))
    }

    fn strip(&self, path: String) -> String {
        self.shared.chroot.strip(path)
    }

    async fn submit(&self, request: Request, watch: Option<WatchReg>) -> Result<Reply> {
        let (tx, rx) = oneshot::channel();
        let call = Call { request, watch, reply: tx };
        if self.tx.send(call).await.is_err() {
            return Err(self.dead_error());
        }
        rx.await.map_err(|_| self.dead_error())?
    }

    fn dead_error(&self) -> Error {
        match self.state() {
            SessionState::Expired => Error::keeper(Code::SessionExpired, None),
            SessionState::AuthFailed => Error::keeper(Code::AuthFailed, None),
            _ => Error::Closed,
        }
    }

    /// Sends a request and returns the success body, or the error code as an [`Error`].
    async fn call(&self, request: Request, watch: Option<WatchReg>, path: &str) -> Result<Bytes> {
        let reply = self.submit(request, watch).await.map_err(|e| with_path(e, path))?;
        if reply.err != 0 {
            return Err(Error::from_raw(reply.err, Some(path)));
        }
        Ok(reply.body)
    }

    fn decode(op_code: i32, body: &[u8]) -> Result<Response> {
        Response::decode(op_code, body).map_err(|e| Error::Protocol(e.to_string()))
    }

    /// Creates a node. The opcode is chosen as Java's client does: `create` (1), or
    /// `createContainer` (19) / `createTTL` (21) for those modes. `ttl` is required (in ms)
    /// for the TTL modes and must be absent otherwise.
    pub async fn create(
        &self,
        path: &str,
        data: &[u8],
        acl: &[Acl],
        mode: CreateMode,
        ttl: Option<i64>,
    ) -> Result<String> {
        Ok(self.create_inner(path, data, acl, mode, ttl, false).await?.path)
    }

    /// Like [`ZooKeeper::create`] but also returns the new node's [`Stat`] (opcode `create2`
    /// (15), or 19 / 21 which answer with a stat anyway).
    pub async fn create2(
        &self,
        path: &str,
        data: &[u8],
        acl: &[Acl],
        mode: CreateMode,
        ttl: Option<i64>,
    ) -> Result<Created> {
        self.create_inner(path, data, acl, mode, ttl, true).await
    }

    async fn create_inner(
        &self,
        path: &str,
        data: &[u8],
        acl: &[Acl],
        mode: CreateMode,
        ttl: Option<i64>,
        want_stat: bool,
    ) -> Result<Created> {
        let checked = if mode.is_sequential() { format!("{path}1") } else { path.to_owned() };
        ferrokeeper_proto::path::validate(&checked).map_err(Error::InvalidPath)?;
        let server_path = self.shared.chroot.prepend(path);
        let request = build_create(server_path, data, acl, mode, ttl, want_stat)?;
        let op_code = request.op();
        let body = self.call(request, None, path).await?;
        match Self::decode(op_code, &body)? {
            Response::Create(r) => Ok(Created { path: self.strip(r.path), stat: None }),
            Response::Create2(r) => Ok(Created { path: self.strip(r.path), stat: Some(r.stat) }),
            other => Err(unexpected(&other)),
        }
    }

    /// [`ZooKeeper::create2`] with possibly-null data (`None` is stored as a null buffer, which
    /// zkCli prints as `null`).
    pub async fn create_nullable(
        &self,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        mode: CreateMode,
        ttl: Option<i64>,
    ) -> Result<Created> {
        let checked = if mode.is_sequential() { format!("{path}1") } else { path.to_owned() };
        ferrokeeper_proto::path::validate(&checked).map_err(Error::InvalidPath)?;
        let server_path = self.shared.chroot.prepend(path);
        let mut request = build_create(server_path, &[], acl, mode, ttl, false)?;
        let null = data.is_none();
        let bytes = data.map(Bytes::copy_from_slice);
        match &mut request {
            Request::Create(r) | Request::CreateContainer(r) => r.data = if null { None } else { bytes },
            Request::CreateTtl(r) => r.data = if null { None } else { bytes },
            _ => {}
        }
        let op_code = request.op();
        let body = self.call(request, None, path).await?;
        match Self::decode(op_code, &body)? {
            Response::Create(r) => Ok(Created { path: self.strip(r.path), stat: None }),
            Response::Create2(r) => Ok(Created { path: self.strip(r.path), stat: Some(r.stat) }),
            other => Err(unexpected(&other)),
        }
    }

    /// [`ZooKeeper::get_data`] keeping a null buffer distinct from empty data; `watch` sets
    /// a data watch delivered to [`Events`].
    pub async fn get_data_nullable(&self, path: &str, watch: bool) -> Result<(Option<Bytes>, Stat)> {
        let reg = if watch { self.reg(WatchKind::Data, path, false).0 } else { None };
        let sp = self.server_path(path)?;
        let request = Request::GetData(GetDataRequest { path: sp, watch });
        let body = self.call(request, reg, path).await?;
        match Self::decode(op::GET_DATA, &body)? {
            Response::GetData(r) => Ok((r.data, r.stat)),
            other => Err(unexpected(&other)),
        }
    }

    /// The ensemble's configuration, `/zookeeper/config` (Java's `getConfig`): `server.N=...`
    /// lines and `version=<hex>` (empty on a standalone server). The path is not under the
    /// chroot, as in Java; `watch` sets a data watch on it delivered to [`Events`].
    pub async fn get_config(&self, watch: bool) -> Result<(Bytes, Stat)> {
        const CONFIG_NODE: &str = "/zookeeper/config";
        let reg =
            watch.then(|| WatchReg { kind: WatchKind::Data, path: CONFIG_NODE.to_owned(), notify: None });
        let request = Request::GetData(GetDataRequest { path: CONFIG_NODE.to_owned(), watch });
        let body = self.call(request, reg, CONFIG_NODE).await?;
        match Self::decode(op::GET_DATA, &body)? {
            Response::GetData(r) => Ok((r.data.unwrap_or_default(), r.stat)),
            other => Err(unexpected(&other)),
        }
    }

    /// Creates `path` and any missing ancestors as empty persistent nodes (open ACL);
    /// succeeds if it already exists.
    pub async fn ensure_path(&self, path: &str) -> Result<()> {
        ferrokeeper_proto::path::validate(path).map_err(Error::InvalidPath)?;
        let mut end = 0;
        while end < path.len() {
            end = path[end + 1..].find('/').map(|i| i + end + 1).unwrap_or(path.len());
            let prefix = &path[..end];
            match self.create(prefix, &[], &Acl::open_unsafe(), CreateMode::Persistent, None).await {
                Ok(_) => {}
                Err(e) if e.code() == Code::NodeExists => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Deletes a node; `version` -1 matches any version.
    pub async fn delete(&self, path: &str, version: i32) -> Result<()> {
        let request = Request::Delete(DeleteRequest { path: self.server_path(path)?, version });
        self.call(request, None, path).await.map(|_| ())
    }

    /// Deletes `path` and everything below it (zkCli's `deleteall`).
    pub async fn delete_all(&self, path: &str) -> Result<()> {
        let mut order = vec![path.to_owned()];
        let mut i = 0;
        while i < order.len() {
            let children = match self.get_children(&order[i]).await {
                Ok(c) => c,
                Err(e) if e.code() == Code::NoNode => Vec::new(),
                Err(e) => return Err(e),
            };
            let base = if order[i] == "/" { String::new() } else { order[i].clone() };
            for c in children {
                order.push(format!("{base}/{c}"));
            }
            i += 1;
        }
        for p in order.iter().rev() {
            match self.delete(p, -1).await {
                Ok(()) => {}
                Err(e) if e.code() == Code::NoNode && p != path => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn exists_inner(&self, path: &str, watch: Option<WatchReg>) -> Result<Option<Stat>> {
        let sp = self.server_path(path)?;
        let watching = watch.is_some();
        let request = Request::Exists(ExistsRequest { path: sp, watch: watching });
        match self.call(request, watch, path).await {
            Ok(body) => match Self::decode(op::EXISTS, &body)? {
                Response::Exists(r) => Ok(Some(r.stat)),
                other => Err(unexpected(&other)),
            },
            Err(e) if e.code() == Code::NoNode => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn reg(&self, kind: WatchKind, path: &str, oneshot: bool) -> (Option<WatchReg>, Option<Watch>) {
        let (watch, tx) = if oneshot {
            let (w, tx) = Watch::new();
            (Some(w), Some(tx))
        } else {
            (None, None)
        };
        (Some(WatchReg { kind, path: self.shared.chroot.prepend(path), notify: tx }), watch)
    }

    /// The node's stat, or `None` if it does not exist.
    pub async fn exists(&self, path: &str) -> Result<Option<Stat>> {
        self.exists_inner(path, None).await
    }

    /// [`ZooKeeper::exists`] leaving a watch (fires NodeCreated / NodeDeleted /
    /// NodeDataChanged) whose event also goes to the session's [`Events`].
    pub async fn exists_w(&self, path: &str) -> Result<(Option<Stat>, Watch)> {
        let (reg, watch) = self.reg(WatchKind::Exist, path, true);
        let stat = self.exists_inner(path, reg).await?;
        Ok((stat, watch.ok_or(Error::Closed)?))
    }

    /// Sets a data/exist watch whose event goes only to the session's [`Events`].
    pub async fn exists_watch(&self, path: &str) -> Result<Option<Stat>> {
        let (reg, _) = self.reg(WatchKind::Exist, path, false);
        self.exists_inner(path, reg).await
    }

    async fn get_data_inner(&self, path: &str, watch: Option<WatchReg>) -> Result<(Bytes, Stat)> {
        let sp = self.server_path(path)?;
        let request = Request::GetData(GetDataRequest { path: sp, watch: watch.is_some() });
        let body = self.call(request, watch, path).await?;
        match Self::decode(op::GET_DATA, &body)? {
            Response::GetData(r) => Ok((r.data.unwrap_or_default(), r.stat)),
            other => Err(unexpected(&other)),
        }
    }

    /// The node's data and stat (null data reads as empty).
    pub async fn get_data(&self, path: &str) -> Result<(Bytes, Stat)> {
        self.get_data_inner(path, None).await
    }

    /// [`ZooKeeper::get_data`] leaving a one-shot data watch.
    pub async fn get_data_w(&self, path: &str) -> Result<(Bytes, Stat, Watch)> {
        let (reg, watch) = self.reg(WatchKind::Data, path, true);
        let (data, stat) = self.get_data_inner(path, reg).await?;
        Ok((data, stat, watch.ok_or(Error::Closed)?))
    }

    /// Sets a data watch whose event goes only to the session's [`Events`].
    pub async fn get_data_watch(&self, path: &str) -> Result<(Bytes, Stat)> {
        let (reg, _) = self.reg(WatchKind::Data, path, false);
        self.get_data_inner(path, reg).await
    }

    /// Replaces the node's data; `version` -1 matches any version.
    pub async fn set_data(&self, path: &str, data: &[u8], version: i32) -> Result<Stat> {
        let sp = self.server_path(path)?;
        let request =
            Request::SetData(SetDataRequest { path: sp, data: Some(Bytes::copy_from_slice(data)), version });
        let body = self.call(request, None, path).await?;
        match Self::decode(op::SET_DATA, &body)? {
            Response::SetData(r) => Ok(r.stat),
            other => Err(unexpected(&other)),
        }
    }

    /// The node's ACL and stat.
    pub async fn get_acl(&self, path: &str) -> Result<(Vec<Acl>, Stat)> {
        let request = Request::GetAcl(GetAclRequest { path: self.server_path(path)? });
        let body = self.call(request, None, path).await?;
        match Self::decode(op::GET_ACL, &body)? {
            Response::GetAcl(r) => Ok((r.acl, r.stat)),
            other => Err(unexpected(&other)),
        }
    }

    /// Replaces the node's ACL; `version` (the aclVersion) -1 matches any.
    pub async fn set_acl(&self, path: &str, acl: &[Acl], version: i32) -> Result<Stat> {
        let request =
            Request::SetAcl(SetAclRequest { path: self.server_path(path)?, acl: acl.to_vec(), version });
        let body = self.call(request, None, path).await?;
        match Self::decode(op::SET_ACL, &body)? {
            Response::SetAcl(r) => Ok(r.stat),
            other => Err(unexpected(&other)),
        }
    }

    async fn children_inner(&self, path: &str, watch: Option<WatchReg>) -> Result<Vec<String>> {
        let sp = self.server_path(path)?;
        let request = Request::GetChildren(GetChildrenRequest { path: sp, watch: watch.is_some() });
        let body = self.call(request, watch, path).await?;
        match Self::decode(op::GET_CHILDREN, &body)? {
            Response::GetChildren(r) => Ok(r.children),
            other => Err(unexpected(&other)),
        }
    }

    async fn children2_inner(&self, path: &str, watch: Option<WatchReg>) -> Result<(Vec<String>, Stat)> {
        let sp = self.server_path(path)?;
        let request = Request::GetChildren2(GetChildren2Request { path: sp, watch: watch.is_some() });
        let body = self.call(request, watch, path).await?;
        match Self::decode(op::GET_CHILDREN2, &body)? {
            Response::GetChildren2(r) => Ok((r.children, r.stat)),
            other => Err(unexpected(&other)),
        }
    }

    /// The node's children names (unordered, as the server sends them).
    pub async fn get_children(&self, path: &str) -> Result<Vec<String>> {
        self.children_inner(path, None).await
    }

    /// [`ZooKeeper::get_children`] leaving a one-shot child watch.
    pub async fn get_children_w(&self, path: &str) -> Result<(Vec<String>, Watch)> {
        let (reg, watch) = self.reg(WatchKind::Child, path, true);
        let children = self.children_inner(path, reg).await?;
        Ok((children, watch.ok_or(Error::Closed)?))
    }

    /// Sets a child watch whose event goes only to the session's [`Events`].
    pub async fn get_children_watch(&self, path: &str) -> Result<Vec<String>> {
        let (reg, _) = self.reg(WatchKind::Child, path, false);
        self.children_inner(path, reg).await
    }

    /// The node's children and its stat (`getChildren2`).
    pub async fn get_children2(&self, path: &str) -> Result<(Vec<String>, Stat)> {
        self.children2_inner(path, None).await
    }

    /// [`ZooKeeper::get_children2`] leaving a one-shot child watch.
    pub async fn get_children2_w(&self, path: &str) -> Result<(Vec<String>, Stat, Watch)> {
        let (reg, watch) = self.reg(WatchKind::Child, path, true);
        let (children, stat) = self.children2_inner(path, reg).await?;
        Ok((children, stat, watch.ok_or(Error::Closed)?))
    }

    /// [`ZooKeeper::get_children2`] with a child watch delivered to [`Events`] only.
    pub async fn get_children2_watch(&self, path: &str) -> Result<(Vec<String>, Stat)> {
        let (reg, _) = self.reg(WatchKind::Child, path, false);
        self.children2_inner(path, reg).await
    }

    /// Runs `ops` atomically. On failure returns the first failing op's code and path.
    pub async fn multi(&self, ops: Multi) -> Result<Vec<OpResult>> {
        self.multi_inner(ops.ops, op::MULTI, true).await
    }

    /// Runs read ops (getData / getChildren) in one round trip; not atomic: each result is
    /// independent and failures come back as `OpResult::Error`.
    pub async fn multi_read(&self, ops: Multi) -> Result<Vec<OpResult>> {
        self.multi_inner(ops.ops, op::MULTI_READ, false).await
    }

    async fn multi_inner(&self, mut ops: Vec<MultiOp>, op_code: i32, atomic: bool) -> Result<Vec<OpResult>> {
        let client_paths: Vec<String> = ops.iter().map(|o| o.path().to_owned()).collect();
        for op in &mut ops {
            let path = match op {
                MultiOp::Create { request, .. } => &mut request.path,
                MultiOp::CreateTtl(r) => &mut r.path,
                MultiOp::Delete(r) => &mut r.path,
                MultiOp::SetData(r) => &mut r.path,
                MultiOp::Check(r) => &mut r.path,
                MultiOp::GetChildren(r) => &mut r.path,
                MultiOp::GetData(r) => &mut r.path,
            };
            *path = self.shared.chroot.prepend(path);
        }
        let request = MultiRequest { ops };
        let request =
            if op_code == op::MULTI { Request::Multi(request) } else { Request::MultiRead(request) };
        let first = client_paths.first().map(String::as_str).unwrap_or("/");
        let body = self.call(request, None, first).await?;
        let results = match Self::decode(op_code, &body)? {
            Response::Multi(r) => r.results,
            other => return Err(unexpected(&other)),
        };
        let mut out = Vec::with_capacity(results.len());
        for (i, r) in results.into_iter().enumerate() {
            let r = match r {
                OpResult::Error { err }
                    if atomic && err != 0 && err != Code::RuntimeInconsistency.as_i32() =>
                {
                    return Err(Error::from_raw(err, client_paths.get(i).map(String::as_str)));
                }
                OpResult::Create { path } => OpResult::Create { path: self.strip(path) },
                OpResult::Create2 { path, stat } => OpResult::Create2 { path: self.strip(path), stat },
                other => other,
            };
            out.push(r);
        }
        Ok(out)
    }

    /// Waits until the server this client talks to has caught up with the leader.
    pub async fn sync(&self, path: &str) -> Result<String> {
        let request = Request::Sync(SyncRequest { path: self.server_path(path)? });
        let body = self.call(request, None, path).await?;
        match Self::decode(op::SYNC, &body)? {
            Response::Sync(r) => Ok(self.strip(r.path)),
            other => Err(unexpected(&other)),
        }
    }

    /// Adds a persistent (or persistent recursive) watch; its events go to [`Events`].
    pub async fn add_watch(&self, path: &str, mode: AddWatchMode) -> Result<()> {
        let sp = self.server_path(path)?;
        let wire = match mode {
            AddWatchMode::Persistent => add_watch_mode::PERSISTENT,
            AddWatchMode::PersistentRecursive => add_watch_mode::PERSISTENT_RECURSIVE,
        };
        let request = Request::AddWatch(AddWatchRequest { path: sp.clone(), mode: wire });
        self.call(request, None, path).await?;
        let mut reg = lock(&self.shared.watches);
        match mode {
            AddWatchMode::Persistent => reg.persistent.insert(sp),
            AddWatchMode::PersistentRecursive => reg.recursive.insert(sp),
        };
        Ok(())
    }

    /// Removes watches of `kind` on `path` from the server and locally; the removal events
    /// (DataWatchRemoved, ...) are delivered to [`Events`] and to one-shot [`Watch`]es.
    pub async fn remove_watches(&self, path: &str, kind: WatcherType) -> Result<()> {
        let sp = self.server_path(path)?;
        let request =
            Request::RemoveWatches(RemoveWatchesRequest { path: sp.clone(), watcher_type: kind.as_i32() });
        self.call(request, None, path).await?;
        let events = lock(&self.shared.watches).remove(&sp, kind.as_i32(), &self.shared.chroot);
        for e in events {
            let _ = self.shared.events.send(e);
        }
        Ok(())
    }

    /// Checks that a watch of `kind` exists on `path` (`NoWatcher` otherwise).
    pub async fn check_watches(&self, path: &str, kind: WatcherType) -> Result<()> {
        let sp = self.server_path(path)?;
        let request = Request::CheckWatches(CheckWatchesRequest { path: sp, watcher_type: kind.as_i32() });
        self.call(request, None, path).await.map(|_| ())
    }

    /// This session's ephemeral nodes under `prefix` (`/` for all).
    pub async fn get_ephemerals(&self, prefix: &str) -> Result<Vec<String>> {
        let sp = self.shared.chroot.prepend(prefix);
        let request = Request::GetEphemerals(GetEphemeralsRequest { prefix_path: sp });
        let body = self.call(request, None, prefix).await?;
        match Self::decode(op::GET_EPHEMERALS, &body)? {
            Response::GetEphemerals(r) => Ok(r.ephemerals.into_iter().map(|p| self.strip(p)).collect()),
            other => Err(unexpected(&other)),
        }
    }

    /// The number of all descendants of `path`.
    pub async fn get_all_children_number(&self, path: &str) -> Result<i32> {
        let request =
            Request::GetAllChildrenNumber(GetAllChildrenNumberRequest { path: self.server_path(path)? });
        let body = self.call(request, None, path).await?;
        match Self::decode(op::GET_ALL_CHILDREN_NUMBER, &body)? {
            Response::GetAllChildrenNumber(r) => Ok(r.total_number),
            other => Err(unexpected(&other)),
        }
    }

    /// Adds authentication (e.g. `digest`, `user:password`). Remembered and re-sent on
    /// reconnect. A rejected auth ends the session (`AuthFailed`), as in ZooKeeper.
    pub async fn add_auth(&self, scheme: &str, auth: &[u8]) -> Result<()> {
        let request = Request::Auth(AuthPacket {
            auth_type: 0,
            scheme: scheme.to_owned(),
            auth: Some(Bytes::copy_from_slice(auth)),
        });
        let reply = self.submit(request, None).await?;
        if reply.err != 0 {
            return Err(Error::from_raw(reply.err, None));
        }
        Ok(())
    }

    /// The identities the server associates with this connection.
    pub async fn who_am_i(&self) -> Result<Vec<ClientInfo>> {
        let body = self.call(Request::WhoAmI, None, "/").await?;
        match Self::decode(op::WHO_AM_I, &body)? {
            Response::WhoAmI(r) => Ok(r.client_info),
            other => Err(unexpected(&other)),
        }
    }

    /// Closes the session (its ephemeral nodes go away) and the connection. Waits at most the
    /// session timeout when disconnected.
    pub async fn close(&self) -> Result<()> {
        if !self.state().is_alive() {
            return Ok(());
        }
        // Bounded: while no server is reachable the close waits for a reconnect at most this long.
        let limit = Duration::from_millis(self.session_timeout_ms().clamp(1000, 30_000) as u64);
        match tokio::time::timeout(limit, self.submit(Request::CloseSession, None)).await {
            Err(_) | Ok(Ok(_)) | Ok(Err(Error::Closed)) => Ok(()),
            Ok(Err(e)) if e.code() == Code::ConnectionLoss => Ok(()),
            Ok(Err(e)) => Err(e),
        }?;
        self.wait_for_state(Duration::from_secs(5), |s| !s.is_alive()).await;
        Ok(())
    }
}

fn with_path(e: Error, path: &str) -> Error {
    match e {
        Error::Keeper { code, path: None } => Error::keeper(code, Some(path)),
        other => other,
    }
}

fn unexpected(r: &Response) -> Error {
    Error::Protocol(format!("unexpected response {r:?}"))
}

fn build_create(
    path: String,
    data: &[u8],
    acl: &[Acl],
    mode: CreateMode,
    ttl: Option<i64>,
    want_stat: bool,
) -> Result<Request> {
    let data = Some(Bytes::copy_from_slice(data));
    let acl = acl.to_vec();
    let flags = mode.flags();
    if mode.is_ttl() {
        let ttl = ttl.ok_or_else(|| Error::BadArguments("TTL mode requires a ttl".into()))?;
        if ttl <= 0 || ttl > op::ephemeral_owner::TTL_MAX {
            return Err(Error::BadArguments(format!("ttl must be 1..={}", op::ephemeral_owner::TTL_MAX)));
        }
        return Ok(Request::CreateTtl(CreateTtlRequest { path, data, acl, flags, ttl }));
    }
    if ttl.is_some() {
        return Err(Error::BadArguments("ttl given for a non-TTL mode".into()));
    }
    let request = CreateRequest { path, data, acl, flags };
    Ok(if mode.is_container() {
        Request::CreateContainer(request)
    } else if want_stat {
        Request::Create2(request)
    } else {
        Request::Create(request)
    })
}

/// A list of operations for [`ZooKeeper::multi`] (create / delete / set_data / check) or
/// [`ZooKeeper::multi_read`] (get_data / get_children). Paths are client paths.
#[derive(Debug, Clone, Default)]
pub struct Multi {
    ops: Vec<MultiOp>,
}

impl Multi {
    pub fn new() -> Multi {
        Multi::default()
    }

    /// Adds a create (TTL modes need `ttl`).
    pub fn create(
        mut self,
        path: &str,
        data: &[u8],
        acl: &[Acl],
        mode: CreateMode,
        ttl: Option<i64>,
    ) -> Self {
        let data = Some(Bytes::copy_from_slice(data));
        let acl = acl.to_vec();
        let flags = mode.flags();
        let path = path.to_owned();
        let op = if mode.is_ttl() {
            MultiOp::CreateTtl(CreateTtlRequest { path, data, acl, flags, ttl: ttl.unwrap_or(0) })
        } else {
            let op_code = if mode.is_container() { op::CREATE_CONTAINER } else { op::CREATE };
            MultiOp::Create { op: op_code, request: CreateRequest { path, data, acl, flags } }
        };
        self.ops.push(op);
        self
    }

    pub fn delete(mut self, path: &str, version: i32) -> Self {
        self.ops.push(MultiOp::Delete(DeleteRequest { path: path.to_owned(), version }));
        self
    }

    pub fn set_data(mut self, path: &str, data: &[u8], version: i32) -> Self {
        let data = Some(Bytes::copy_from_slice(data));
        self.ops.push(MultiOp::SetData(SetDataRequest { path: path.to_owned(), data, version }));
        self
    }

    /// Fails the multi unless the node's data version is `version` (-1: only existence).
    pub fn check(mut self, path: &str, version: i32) -> Self {
        self.ops.push(MultiOp::Check(CheckVersionRequest { path: path.to_owned(), version }));
        self
    }

    /// For `multi_read`.
    pub fn get_data(mut self, path: &str) -> Self {
        self.ops.push(MultiOp::GetData(GetDataRequest { path: path.to_owned(), watch: false }));
        self
    }

    /// For `multi_read`.
    pub fn get_children(mut self, path: &str) -> Self {
        self.ops.push(MultiOp::GetChildren(GetChildrenRequest { path: path.to_owned(), watch: false }));
        self
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}
